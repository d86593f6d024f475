//! Typed, versioned tables over one redb database per node.
//!
//! Each node keeps its state in `<data_dir>/alicia.redb`. Each service declares its tables as
//! `const` [`Table`] handles, with a name prefixed by the service and a value format version:
//!
//! ```
//! use alicia_core::store::{Store, Table};
//! use alicia_core::{DeviceId, SystemClock};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct DeviceRecord { name: String }
//!
//! const DEVICES: Table<DeviceId, DeviceRecord> = Table::new("registry.devices", 1);
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let data_dir = tempfile::tempdir()?;
//! let opened = Store::open(data_dir.path(), SystemClock::shared())?;
//! if let Some(recovery) = &opened.recovery {
//!     eprintln!("raise an alert: {recovery}");
//! }
//! let store = opened.store;
//!
//! let lamp = DeviceId::new("kitchen-lamp")?;
//! store.write(|tx| tx.insert(&DEVICES, &lamp, &DeviceRecord { name: "Kitchen".into() }))?;
//!
//! let read = store.begin_read()?;
//! assert_eq!(read.get(&DEVICES, &lamp)?.map(|record| record.name), Some("Kitchen".into()));
//! # Ok(())
//! # }
//! ```
//!
//! # Durability
//!
//! - [`Store::write`] and [`Store::begin_write`]: when the commit returns `Ok`, the changes have
//!   been fsynced and survive a crash or power loss (as far as the disk honours fsync). Use this
//!   for every write that is acknowledged to a caller.
//! - [`Store::write_non_durable`] and [`Store::begin_write_non_durable`]: the commit makes the
//!   changes visible to later transactions in this process, but does not write them to disk. They
//!   become durable with the next durable commit, a [`Store::sync`], or a clean close of the last
//!   handle. A crash or power loss before then loses every non-durable commit since the last
//!   durable one, and leaves the store as that durable commit left it. Use this for high-rate
//!   updates such as last-seen times, and call [`Store::sync`] on a timer to bound the loss.
//!
//! # Corruption
//!
//! [`Store::open`] verifies every page checksum of the file. A file that is not a redb database,
//! is cut short or fails the check is renamed to `alicia.redb.corrupt-<UTC time>`, logged at
//! error level, and replaced by an empty database. [`Opened::recovery`] reports the move so the
//! caller can raise an alert. After an unclean shutdown redb rolls the file back to its last durable
//! commit during the open, which is not corruption.

mod error;
mod open;
mod table;
mod transaction;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::ReadableDatabase;

pub use error::StoreError;
pub use open::DATABASE_FILE_NAME;
pub use table::{
    DecodeError, StoreKey, Table, Upgrade, UpgradeFn, VERSION_HEADER_LEN, decode_postcard,
};
pub use transaction::{Entries, ReadTransaction, WriteTransaction};

use crate::clock::SharedClock;

/// The node's database: a cheap, cloneable handle shared by every service on the node.
///
/// Any number of read transactions run alongside one write transaction. Only one process may have
/// the file open, and a second one gets [`StoreError::Locked`]. The file closes when the last
/// handle, transaction and [`Entries`] iterator are dropped.
#[derive(Clone)]
pub struct Store {
    database: Arc<redb::Database>,
    path: Arc<Path>,
}

/// Settings of [`Store::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// The maximum memory, in bytes, of redb's page cache. Pages outside it are read
    /// through the operating system's file cache. redb's own default is 1 GiB, which a small
    /// home server cannot spare and which makes resident memory grow with the file.
    pub cache_size: usize,
}

impl StoreOptions {
    /// The default cache size: 16 MiB. With 100,000 registered devices (a 77 MiB file) it kept
    /// query latency unchanged and resident memory at about 450 bytes per device.
    pub const DEFAULT_CACHE_SIZE: usize = 16 * 1024 * 1024;
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_size: Self::DEFAULT_CACHE_SIZE,
        }
    }
}

/// The result of [`Store::open`]: the store, and a report when a corrupt file was replaced.
#[derive(Debug)]
#[must_use = "a Recovery report must reach an alert"]
pub struct Opened {
    /// The open store.
    pub store: Store,
    /// Set when the database file was corrupt and has been replaced by an empty one.
    pub recovery: Option<Recovery>,
}

/// A corrupt database file that [`Store::open`] moved aside before creating an empty one.
///
/// Everything the node stored is in the moved file and missing from the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The corrupt file's new path.
    pub moved_to: PathBuf,
    /// redb's reason for judging the file corrupt.
    pub reason: String,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the database file was corrupt ({}) and was moved to {}: the node started with an empty database",
            self.reason,
            self.moved_to.display()
        )
    }
}

impl Store {
    /// Opens the node's database at `<data_dir>/alicia.redb`, creating the directory (mode 0700 on
    /// unix) and the file (mode 0600 on unix) if they are missing.
    ///
    /// A corrupt file is moved aside and replaced by an empty database, which
    /// [`Opened::recovery`] reports. The moved file's name carries the time read from `clock`.
    /// The open reads the whole file to verify it, so it takes time in proportion to the file's
    /// size.
    ///
    /// # Errors
    ///
    /// Every failure that moving the file would not fix is returned and leaves the file where it
    /// is: [`StoreError::Locked`] when another process has it open, [`StoreError::OpenFile`] when
    /// it cannot be read or written, [`StoreError::UpgradeRequired`] for an older redb file format,
    /// and [`StoreError::CreateDataDir`]. [`StoreError::MoveAside`] reports a corrupt file that
    /// could not be renamed.
    pub fn open(data_dir: &Path, clock: SharedClock) -> Result<Opened, StoreError> {
        Self::open_with(data_dir, clock, StoreOptions::default())
    }

    /// Opens the node's database like [`Store::open`], with `options`.
    ///
    /// # Errors
    ///
    /// As [`Store::open`].
    pub fn open_with(
        data_dir: &Path,
        clock: SharedClock,
        options: StoreOptions,
    ) -> Result<Opened, StoreError> {
        open::open(data_dir, &clock, options)
    }

    fn new(database: redb::Database, path: PathBuf) -> Self {
        Self {
            database: Arc::new(database),
            path: path.into(),
        }
    }

    /// Returns the path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Begins a read transaction on a snapshot of the last commit, durable or not.
    pub fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        let transaction = self
            .database
            .begin_read()
            .map_err(|error| self.transaction_error("beginning a read transaction", error))?;
        Ok(ReadTransaction::new(
            transaction,
            self.path.clone(),
            self.database.clone(),
        ))
    }

    /// Begins a durable write transaction: when its [`WriteTransaction::commit`] returns `Ok`,
    /// its changes and every earlier non-durable commit are fsynced to disk.
    ///
    /// Blocks while another write transaction is open.
    pub fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.begin_write_with(redb::Durability::Immediate)
    }

    /// Begins a non-durable write transaction (redb's `Durability::None`): its commit is visible
    /// to later transactions at once but reaches the disk only with the next durable commit,
    /// [`Store::sync`] or a clean close. A crash before then loses it.
    ///
    /// Blocks while another write transaction is open.
    pub fn begin_write_non_durable(&self) -> Result<WriteTransaction, StoreError> {
        self.begin_write_with(redb::Durability::None)
    }

    fn begin_write_with(
        &self,
        durability: redb::Durability,
    ) -> Result<WriteTransaction, StoreError> {
        let mut transaction = self
            .database
            .begin_write()
            .map_err(|error| self.transaction_error("beginning a write transaction", error))?;
        transaction
            .set_durability(durability)
            .map_err(|error| StoreError::Storage {
                path: self.path.to_path_buf(),
                operation: "setting the durability of a write transaction".into(),
                reason: error.to_string(),
            })?;
        Ok(WriteTransaction::new(transaction, self.path.clone()))
    }

    /// Runs `f` in a durable write transaction and commits it if `f` returns `Ok`. The changes
    /// are fsynced when this returns `Ok`. If `f` returns an error, its changes are discarded.
    pub fn write<R, E>(&self, f: impl FnOnce(&mut WriteTransaction) -> Result<R, E>) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        Self::run_and_commit(self.begin_write()?, f)
    }

    /// Runs `f` in a non-durable write transaction and commits it if `f` returns `Ok`.
    ///
    /// The changes are visible at once. They reach the disk with the next durable commit,
    /// [`Store::sync`] or a clean close, and a crash before then loses them.
    pub fn write_non_durable<R, E>(
        &self,
        f: impl FnOnce(&mut WriteTransaction) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        Self::run_and_commit(self.begin_write_non_durable()?, f)
    }

    fn run_and_commit<R, E>(
        mut transaction: WriteTransaction,
        f: impl FnOnce(&mut WriteTransaction) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        let result = f(&mut transaction)?;
        transaction.commit()?;
        Ok(result)
    }

    /// Makes every earlier non-durable commit durable, with an empty durable commit, which is
    /// fsynced when this returns `Ok`.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.begin_write()?.commit()
    }

    fn transaction_error(&self, operation: &str, error: redb::TransactionError) -> StoreError {
        match error {
            redb::TransactionError::Storage(storage) => {
                error::from_storage(&self.path, || operation.to_owned(), storage)
            }
            other => StoreError::Storage {
                path: self.path.to_path_buf(),
                operation: operation.to_owned(),
                reason: other.to_string(),
            },
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}
