//! Opening the node's database file.
//!
//! redb 5.0 reports damaged files as follows:
//!
//! - garbage bytes or a zero-filled file: an I/O error of kind `InvalidData`, "Not a redb
//!   database: magic number mismatch";
//! - a real database cut short: `StorageError::Corrupted`, "File truncated below stored layout";
//! - a real database with a page overwritten: `StorageError::Corrupted` from the integrity check;
//! - an overwritten header: `StorageError::Corrupted`, "Expected file format version <= 3".
//!
//! A file that another process has open fails with `DatabaseAlreadyOpen`, and a file that
//! cannot be read fails with an ordinary I/O error. Neither is corruption.

use std::fs;
use std::io;
use std::path::Path;

use super::{Store, StoreError};

/// The database file's name inside the data directory.
pub const DATABASE_FILE_NAME: &str = "alicia.redb";

/// Opens or creates `<data_dir>/alicia.redb`.
pub(super) fn open(data_dir: &Path) -> Result<Store, StoreError> {
    create_data_dir(data_dir)?;
    let path = data_dir.join(DATABASE_FILE_NAME);

    let database = open_database(&path).map_err(|failure| match failure {
        OpenFailure::Corrupt(reason) => StoreError::Corrupted {
            path: path.clone(),
            reason,
        },
        OpenFailure::Other(error) => error,
    })?;
    tracing::info!(database = %path.display(), "opened the store");
    Ok(Store::new(database, path))
}

/// Why [`open_database`] failed: corruption or anything else.
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
fn open_database(path: &Path) -> Result<redb::Database, OpenFailure> {
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
    builder.set_check_integrity_on_open(true);

    builder.create(path).map_err(|error| classify(path, error))
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

/// Sorts redb's open errors into corruption and everything else.
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
