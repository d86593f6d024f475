//! The errors of opening the store and of reading and writing its tables.

use std::io;
use std::path::PathBuf;

/// An error from opening the store or from reading and writing its tables.
///
/// Each message names the directory, file, table or key involved and what to do about it, so it
/// can be logged or shown to an operator as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory does not exist and creating it failed.
    #[error(
        "failed to create data directory {}: {error}: check that its parent exists and that this user may write to it",
        .path.display()
    )]
    CreateDataDir {
        /// The data directory.
        path: PathBuf,
        /// The operating system's error.
        error: io::Error,
    },

    /// The database file could not be opened or created for a reason other than corruption,
    /// such as missing permissions or a directory in its place.
    #[error(
        "failed to open database file {}: {error}: check that it is a regular file that this user may read and write",
        .path.display()
    )]
    OpenFile {
        /// The database file.
        path: PathBuf,
        /// The operating system's error.
        error: io::Error,
    },

    /// Another process has the database file open.
    #[error(
        "database file {} is locked by another process: stop the other node using this data directory",
        .path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },

    /// The database file was written in a redb file format that this build cannot open.
    #[error(
        "database file {} is in redb file format {found}, which this build cannot open: upgrade the file with the redb release that wrote it",
        .path.display()
    )]
    UpgradeRequired {
        /// The database file.
        path: PathBuf,
        /// The file format version stored in the file.
        found: u8,
    },

    /// The database file is corrupt and moving it aside failed, so no fresh database was created.
    #[error(
        "database file {} is corrupt ({reason}) and moving it to {} failed: {error}: move or delete the file by hand, then restart the node",
        .path.display(),
        .moved_to.display()
    )]
    MoveAside {
        /// The database file.
        path: PathBuf,
        /// The path the file was to be renamed to.
        moved_to: PathBuf,
        /// redb's reason for judging the file corrupt.
        reason: String,
        /// The operating system's error from the rename.
        error: io::Error,
    },

    /// redb found corruption in a database that was already open.
    #[error(
        "database file {} is corrupt ({reason}): restart the node, which checks the file when it opens it and moves it aside if the check fails",
        .path.display()
    )]
    Corrupted {
        /// The database file.
        path: PathBuf,
        /// redb's description of the damage.
        reason: String,
    },

    /// A read, write or commit failed in redb or in the operating system.
    ///
    /// After a failed commit redb refuses further write transactions until the database is
    /// reopened.
    #[error(
        "{operation} in database file {} failed: {reason}: check the disk, and restart the node if writes keep failing",
        .path.display()
    )]
    Storage {
        /// The database file.
        path: PathBuf,
        /// The operation that failed, such as "commit" or "reading table registry.devices".
        operation: String,
        /// redb's error message.
        reason: String,
    },

    /// The table exists with other key or value types than the ones it was opened with.
    #[error(
        "table {table} is stored with other key or value types ({reason}): a table's key type cannot change, so store the new key type under a new table name"
    )]
    TableTypeMismatch {
        /// The table name.
        table: &'static str,
        /// redb's description of the stored and requested types.
        reason: String,
    },

    /// A stored value has a format version that the table neither writes nor can upgrade.
    #[error(
        "table {table}, key {key}: stored value has format version {found}, but this build reads only versions {}: run a build that reads version {found}, or give the table an upgrade from it",
        list_versions(.supported)
    )]
    UnsupportedVersion {
        /// The table name.
        table: &'static str,
        /// The key, as the key type prints it.
        key: String,
        /// The version stored with the value.
        found: u16,
        /// The table's current version followed by the versions it can upgrade from.
        supported: Vec<u16>,
    },

    /// A stored key or value does not decode as the table's type.
    #[error(
        "table {table}, key {key}: failed to decode the stored entry: {reason}: the stored bytes do not match the table's types, so remove the entry or restore the database from a backup"
    )]
    Decode {
        /// The table name.
        table: &'static str,
        /// The key, as the key type prints it.
        key: String,
        /// The decoder's reason for rejecting the entry.
        reason: String,
    },

    /// A value could not be encoded with postcard.
    #[error(
        "table {table}, key {key}: failed to encode the value: {reason}: the value type uses a serde feature that postcard does not support, such as a sequence of unknown length"
    )]
    Encode {
        /// The table name.
        table: &'static str,
        /// The key, as the key type prints it.
        key: String,
        /// postcard's error message.
        reason: String,
    },
}

fn list_versions(versions: &[u16]) -> String {
    versions
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps a redb storage error on an open database to [`StoreError::Corrupted`] when redb reports
/// corruption, and to [`StoreError::Storage`] otherwise.
pub(super) fn from_storage(
    path: &std::path::Path,
    operation: impl FnOnce() -> String,
    error: redb::StorageError,
) -> StoreError {
    match error {
        redb::StorageError::Corrupted(reason) => StoreError::Corrupted {
            path: path.to_path_buf(),
            reason,
        },
        other => StoreError::Storage {
            path: path.to_path_buf(),
            operation: operation(),
            reason: other.to_string(),
        },
    }
}
