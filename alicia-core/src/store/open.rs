//! Opening the node's database file, and moving a corrupt one aside.
//!
//! redb 5.0 reports the damaged files this module has been tested with as follows:
//!
//! - garbage bytes or a zero-filled file: an I/O error of kind `InvalidData`, "Not a redb
//!   database: magic number mismatch";
//! - a real database cut short: `StorageError::Corrupted`, "File truncated below stored layout";
//! - a real database with a page overwritten: `StorageError::Corrupted` from the integrity check,
//!   where an open without the check panics in redb's debug builds;
//! - an overwritten header: `StorageError::Corrupted`, "Expected file format version <= 3".
//!
//! A file that another process has open fails with `DatabaseAlreadyOpen`, and a file that
//! cannot be read fails with an ordinary I/O error. Neither is corruption, so neither is moved.

use std::fs;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use super::{Opened, Recovery, Store, StoreError, StoreOptions};
use crate::clock::{SharedClock, Timestamp};

/// The database file's name inside the data directory.
pub const DATABASE_FILE_NAME: &str = "alicia.redb";

/// How many numbered names are tried when the timestamped name for a corrupt file is taken.
const MAX_MOVE_ASIDE_SUFFIX: u32 = 1000;

/// The open's verification of every page checksum, which [`open`] always runs. Tests skip it to
/// reach redb's panicking path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IntegrityCheck {
    OnOpen,
    #[cfg(test)]
    Skip,
}

/// Opens or creates `<data_dir>/alicia.redb`, moving a corrupt file aside.
pub(super) fn open(
    data_dir: &Path,
    clock: &SharedClock,
    options: StoreOptions,
) -> Result<Opened, StoreError> {
    open_with(data_dir, clock, options, IntegrityCheck::OnOpen)
}

pub(super) fn open_with(
    data_dir: &Path,
    clock: &SharedClock,
    options: StoreOptions,
    check: IntegrityCheck,
) -> Result<Opened, StoreError> {
    create_data_dir(data_dir)?;
    let path = data_dir.join(DATABASE_FILE_NAME);

    let reason = match open_database(&path, options, check) {
        Ok(database) => {
            tracing::info!(database = %path.display(), "opened the store");
            return Ok(Opened {
                store: Store::new(database, path),
                recovery: None,
            });
        }
        Err(OpenFailure::Corrupt(reason)) => reason,
        Err(OpenFailure::Other(error)) => return Err(error),
    };

    let moved_to = move_aside(&path, clock.now(), &reason)?;
    tracing::error!(
        database = %path.display(),
        moved_to = %moved_to.display(),
        reason = %reason,
        "database file is corrupt: moved it aside and created an empty database"
    );

    // The new file is empty, so it cannot be corrupt. Any failure now is returned rather than
    // retried, which keeps a broken disk from looping through rename after rename.
    let database = open_database(&path, options, check).map_err(|failure| match failure {
        OpenFailure::Corrupt(reason) => StoreError::Corrupted {
            path: path.clone(),
            reason,
        },
        OpenFailure::Other(error) => error,
    })?;
    Ok(Opened {
        store: Store::new(database, path),
        recovery: Some(Recovery { moved_to, reason }),
    })
}

/// Why [`open_database`] failed: corruption, which moving the file aside fixes, or anything else.
enum OpenFailure {
    Corrupt(String),
    Other(StoreError),
}

/// Creates the data directory and its missing parents, with mode 0700 on unix.
///
/// An existing directory keeps its mode.
fn create_data_dir(data_dir: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(data_dir)
        .map_err(|error| StoreError::CreateDataDir {
            path: data_dir.to_path_buf(),
            error,
        })
}

/// Opens the database file, creating an empty one with mode 0600 on unix if it is missing.
fn open_database(
    path: &Path,
    options: StoreOptions,
    check: IntegrityCheck,
) -> Result<redb::Database, OpenFailure> {
    create_file_if_missing(path).map_err(|error| {
        OpenFailure::Other(StoreError::OpenFile {
            path: path.to_path_buf(),
            error,
        })
    })?;

    // The integrity check verifies the checksum of every page reachable from the last commit and
    // rebuilds the allocator state, reading the whole file on each open. Without it redb 5.0
    // trusts a file that was shut down cleanly and may panic on one damaged afterwards.
    let mut builder = redb::Builder::new();
    builder.set_check_integrity_on_open(check == IntegrityCheck::OnOpen);
    builder.set_cache_size(options.cache_size);

    // redb checks some states that its own writes never produce with debug assertions, which
    // panic in debug builds. A damaged file must not take the node down, so a panic here counts
    // as corruption. With panic = "abort" nothing is caught.
    let opened = panic::catch_unwind(AssertUnwindSafe(|| builder.create(path)));
    match opened {
        Ok(Ok(database)) => Ok(database),
        Ok(Err(error)) => Err(classify(path, error)),
        Err(payload) => Err(OpenFailure::Corrupt(format!(
            "redb panicked while opening the file: {}",
            panic_message(payload.as_ref())
        ))),
    }
}

fn create_file_if_missing(path: &Path) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Sorts redb's open errors into corruption and everything that moving the file would not fix.
fn classify(path: &Path, error: redb::DatabaseError) -> OpenFailure {
    let path_buf = path.to_path_buf();
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            OpenFailure::Other(StoreError::Locked { path: path_buf })
        }
        redb::DatabaseError::UpgradeRequired(found) => {
            OpenFailure::Other(StoreError::UpgradeRequired {
                path: path_buf,
                found,
            })
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => {
            OpenFailure::Corrupt(reason)
        }
        // redb reports a file without its magic number as InvalidData (since redb 2.4).
        redb::DatabaseError::Storage(redb::StorageError::Io(io_error))
            if io_error.kind() == io::ErrorKind::InvalidData =>
        {
            OpenFailure::Corrupt(io_error.to_string())
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io_error)) => {
            OpenFailure::Other(StoreError::OpenFile {
                path: path_buf,
                error: io_error,
            })
        }
        other => OpenFailure::Other(StoreError::Storage {
            path: path_buf,
            operation: "opening the database".into(),
            reason: other.to_string(),
        }),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "no message".to_owned()
    }
}

/// Renames the corrupt file to `<name>.corrupt-<UTC time>`, adding `-2`, `-3`, ... when that name
/// is taken, and returns the new path.
///
/// NOTE: the check for a free name and the rename are two steps, so a file created between them
/// under the same name is replaced.
fn move_aside(path: &Path, now: Timestamp, reason: &str) -> Result<PathBuf, StoreError> {
    let base = format!("{}.corrupt-{}", path.display(), format_utc_compact(now));
    let moved_to = (1..=MAX_MOVE_ASIDE_SUFFIX)
        .map(|attempt| match attempt {
            1 => PathBuf::from(&base),
            n => PathBuf::from(format!("{base}-{n}")),
        })
        .find(|candidate| !candidate.exists());

    let Some(moved_to) = moved_to else {
        return Err(StoreError::MoveAside {
            path: path.to_path_buf(),
            moved_to: PathBuf::from(format!("{base}-{MAX_MOVE_ASIDE_SUFFIX}")),
            reason: reason.to_owned(),
            error: io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{MAX_MOVE_ASIDE_SUFFIX} files with this name already exist"),
            ),
        });
    };

    fs::rename(path, &moved_to).map_err(|error| StoreError::MoveAside {
        path: path.to_path_buf(),
        moved_to: moved_to.clone(),
        reason: reason.to_owned(),
        error,
    })?;

    sync_parent_dir(path);
    Ok(moved_to)
}

/// Flushes the directory entry changes of the rename, so a crash right after it does not bring
/// back the corrupt file under the database name. A failure only loses that protection, so it
/// is logged and not returned.
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent()
        && let Err(error) = fs::File::open(dir).and_then(|dir| dir.sync_all())
    {
        tracing::warn!(
            directory = %dir.display(),
            %error,
            "failed to sync the data directory after moving the corrupt database aside"
        );
    }
    #[cfg(not(unix))]
    let _ = path;
}

const MILLIS_PER_DAY: u64 = 86_400_000;
const DAYS_PER_400_YEARS: u64 = 146_097;

/// Formats `time` as a UTC time for file names: `YYYYMMDDTHHMMSSZ`.
fn format_utc_compact(time: Timestamp) -> String {
    let millis = time.as_millis();
    let (year, month, day) = civil_date(millis / MILLIS_PER_DAY);
    let seconds_of_day = (millis % MILLIS_PER_DAY) / 1000;
    let hour = seconds_of_day / 3600;
    let minute = seconds_of_day % 3600 / 60;
    let second = seconds_of_day % 60;
    format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
}

/// Converts a count of days since 1970-01-01 to the Gregorian year, month (1-12) and day (1-31).
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Every 400 consecutive Gregorian years have the same number of days, so whole 400-year
    // cycles are skipped at once and at most 400 years are stepped through one by one.
    let mut year = 1970 + 400 * (days / DAYS_PER_400_YEARS);
    let mut days = days % DAYS_PER_400_YEARS;
    loop {
        let year_length = if is_leap_year(year) { 366 } else { 365 };
        if days < year_length {
            break;
        }
        days -= year_length;
        year += 1;
    }

    let february = if is_leap_year(year) { 29 } else { 28 };
    let month_lengths = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 1;
    for length in month_lengths {
        if days < length {
            break;
        }
        days -= length;
        month += 1;
    }
    (year, month, days + 1)
}

fn is_leap_year(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_compact_formats_known_times() {
        let cases = [
            (0, "19700101T000000Z"),
            (999, "19700101T000000Z"),
            (951_782_400_000, "20000229T000000Z"),
            (951_868_800_000, "20000301T000000Z"),
            (1_709_210_096_000, "20240229T123456Z"),
            (1_714_564_800_000, "20240501T120000Z"),
            (1_735_689_599_000, "20241231T235959Z"),
            (4_107_542_400_000, "21000301T000000Z"),
            (253_402_300_799_000, "99991231T235959Z"),
        ];
        for (millis, expected) in cases {
            assert_eq!(
                format_utc_compact(Timestamp(millis)),
                expected,
                "{millis} ms"
            );
        }
    }

    #[test]
    fn utc_compact_handles_max_timestamp() {
        let formatted = format_utc_compact(Timestamp(u64::MAX));
        assert!(formatted.ends_with('Z'), "{formatted}");
    }

    #[test]
    fn leap_years_follow_gregorian_rule() {
        let cases = [
            (1900, false),
            (2000, true),
            (2023, false),
            (2024, true),
            (2100, false),
        ];
        for (year, leap) in cases {
            assert_eq!(is_leap_year(year), leap, "{year}");
        }
    }
}
