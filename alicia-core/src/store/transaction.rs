//! Read and write transactions over typed tables.

use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::error::from_storage;
use super::table::{StoreKey, Table};

/// A key in the form its table stores it.
type StoredKey<'a, K> = <<K as StoreKey>::Stored as redb::Value>::SelfType<'a>;

/// A table opened in a read transaction, with values still encoded.
type StoredReadTable<K> = redb::ReadOnlyTable<<K as StoreKey>::Stored, &'static [u8]>;

/// A consistent snapshot of the store.
///
/// Reads see every write transaction committed before [`Store::begin_read`](super::Store::begin_read)
/// and nothing committed after it. A table that was never written reads as empty.
pub struct ReadTransaction {
    transaction: redb::ReadTransaction,
    path: Arc<Path>,
    /// Keeps the file open: redb closes it when the last `Database` handle drops, even under a
    /// live read transaction. Declared last so it drops after the transaction.
    database: Arc<redb::Database>,
}

impl ReadTransaction {
    pub(super) fn new(
        transaction: redb::ReadTransaction,
        path: Arc<Path>,
        database: Arc<redb::Database>,
    ) -> Self {
        Self {
            transaction,
            path,
            database,
        }
    }

    /// Reads the value stored under `key`, or `None` if there is none.
    pub fn get<K: StoreKey, V: DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        let Some(opened) = self.open(table)? else {
            return Ok(None);
        };
        let stored = opened
            .get(key.to_stored())
            .map_err(|error| self.storage_error(table, error))?;
        match stored {
            Some(value) => decode(table, &key.to_stored(), value.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Counts the entries of `table`.
    pub fn len<K: StoreKey, V>(&self, table: &Table<K, V>) -> Result<u64, StoreError> {
        match self.open(table)? {
            Some(opened) => opened
                .len()
                .map_err(|error| self.storage_error(table, error)),
            None => Ok(0),
        }
    }

    /// Iterates over every entry of `table` in key order.
    pub fn iter<K: StoreKey, V: DeserializeOwned>(
        &self,
        table: &Table<K, V>,
    ) -> Result<Entries<K, V>, StoreError> {
        self.entries(table, (Bound::Unbounded, Bound::Unbounded), None)
    }

    /// Iterates in key order over the entries of `table` whose keys lie in `range`.
    ///
    /// A range whose start is after its end yields nothing.
    pub fn range<K: StoreKey, V: DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        range: impl RangeBounds<K>,
    ) -> Result<Entries<K, V>, StoreError> {
        let lower = range.start_bound().map(StoreKey::to_stored);
        let upper = range.end_bound().map(StoreKey::to_stored);
        self.entries(table, (lower, upper), None)
    }

    /// Iterates in key order over the entries of a string-keyed `table` whose keys start with
    /// `prefix`.
    pub fn prefix<K, V>(
        &self,
        table: &Table<K, V>,
        prefix: &str,
    ) -> Result<Entries<K, V>, StoreError>
    where
        K: StoreKey<Stored = &'static str>,
        V: DeserializeOwned,
    {
        let bounds = (Bound::Included(prefix), Bound::Unbounded);
        self.entries(table, bounds, Some(prefix.as_bytes().to_vec()))
    }

    fn entries<'k, K: StoreKey, V>(
        &self,
        table: &Table<K, V>,
        bounds: (Bound<StoredKey<'k, K>>, Bound<StoredKey<'k, K>>),
        prefix: Option<Vec<u8>>,
    ) -> Result<Entries<K, V>, StoreError> {
        let Some(opened) = self.open(table)? else {
            return Ok(Entries::empty(
                *table,
                self.path.clone(),
                self.database.clone(),
            ));
        };
        let range = opened
            .range_owned(bounds)
            .map_err(|error| self.storage_error(table, error))?;
        Ok(Entries {
            range: Some(range),
            table: *table,
            prefix,
            path: self.path.clone(),
            _database: self.database.clone(),
        })
    }

    /// Opens `table`, or returns `None` if it was never created.
    fn open<K: StoreKey, V>(
        &self,
        table: &Table<K, V>,
    ) -> Result<Option<StoredReadTable<K>>, StoreError> {
        match self.transaction.open_table(table.definition()) {
            Ok(opened) => Ok(Some(opened)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(error) => Err(table_error(&self.path, table, error)),
        }
    }

    fn storage_error<K, V>(&self, table: &Table<K, V>, error: redb::StorageError) -> StoreError {
        from_storage(
            &self.path,
            || format!("reading table {}", table.name()),
            error,
        )
    }
}

impl std::fmt::Debug for ReadTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTransaction")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// An iterator over the entries of a table in key order, decoding each as it is reached.
///
/// It keeps its read transaction's snapshot alive until it is dropped. An entry that fails to
/// decode is returned as an error and the iteration goes on with the next one. A storage error
/// is returned once and ends the iteration, because redb may return it again for every later
/// entry, as it does once the database has closed.
pub struct Entries<K: StoreKey, V: 'static> {
    /// `None` when the table does not exist or the range is empty.
    range: Option<redb::OwnedRange<K::Stored, &'static [u8]>>,
    table: Table<K, V>,
    /// When set, the iteration ends at the first key whose stored bytes do not start with it.
    prefix: Option<Vec<u8>>,
    path: Arc<Path>,
    /// Keeps the file open for `range`, which it outlives because it is declared last.
    _database: Arc<redb::Database>,
}

impl<K: StoreKey, V: 'static> Entries<K, V> {
    fn empty(table: Table<K, V>, path: Arc<Path>, database: Arc<redb::Database>) -> Self {
        Self {
            range: None,
            table,
            prefix: None,
            path,
            _database: database,
        }
    }
}

impl<K: StoreKey, V: DeserializeOwned + 'static> Iterator for Entries<K, V> {
    type Item = Result<(K, V), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let range = self.range.as_mut()?;
        let (key, value) = match range.next()? {
            Ok(entry) => entry,
            Err(error) => {
                self.range = None;
                let table = self.table.name();
                return Some(Err(from_storage(
                    &self.path,
                    || format!("reading table {table}"),
                    error,
                )));
            }
        };

        let stored_key = key.value();
        if let Some(prefix) = &self.prefix {
            let key_bytes = <K::Stored as redb::Value>::as_bytes(&stored_key);
            if !key_bytes.as_ref().starts_with(prefix) {
                self.range = None;
                return None;
            }
        }

        let entry = K::from_stored(stored_key)
            .map_err(|error| StoreError::Decode {
                table: self.table.name(),
                key: K::describe(&key.value()),
                reason: format!("invalid key: {error}"),
            })
            .and_then(|decoded_key| {
                let value = decode(&self.table, &key.value(), value.value())?;
                Ok((decoded_key, value))
            });
        Some(entry)
    }
}

impl<K: StoreKey, V: 'static> std::fmt::Debug for Entries<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("table", &self.table.name())
            .finish_non_exhaustive()
    }
}

/// A set of changes that become visible to readers only when [`WriteTransaction::commit`]
/// returns `Ok`.
///
/// Only one write transaction exists at a time: [`Store::begin_write`](super::Store::begin_write)
/// blocks until the previous one is committed or dropped, so do not hold one across an `.await`.
/// Dropping the transaction without committing discards its changes.
///
/// Its durability is fixed when it begins; see [`Store::begin_write`](super::Store::begin_write)
/// and [`Store::begin_write_non_durable`](super::Store::begin_write_non_durable).
pub struct WriteTransaction {
    transaction: redb::WriteTransaction,
    path: Arc<Path>,
}

impl WriteTransaction {
    /// Wraps `transaction`, which keeps the database open by itself: redb defers the close of a
    /// dropped `Database` until its write transaction ends.
    pub(super) fn new(transaction: redb::WriteTransaction, path: Arc<Path>) -> Self {
        Self { transaction, path }
    }

    /// Stores `value` under `key`, replacing any value there.
    pub fn insert<K: StoreKey, V: Serialize>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), StoreError> {
        self.insert_all(table, [(key, value)])
    }

    /// Stores each `(key, value)` of `entries` in order, replacing any value there.
    ///
    /// The table is opened once for all entries, which saves redb's table lookup per entry when
    /// one transaction writes many. The first failure stops the loop and is returned; entries
    /// before it stay written in the transaction.
    pub fn insert_all<'e, K: StoreKey + 'e, V: Serialize + 'e>(
        &mut self,
        table: &Table<K, V>,
        entries: impl IntoIterator<Item = (&'e K, &'e V)>,
    ) -> Result<(), StoreError> {
        let mut opened = self.open(table)?;
        for (key, value) in entries {
            let encoded = table.encode(value).map_err(|error| StoreError::Encode {
                table: table.name(),
                key: K::describe(&key.to_stored()),
                reason: error.to_string(),
            })?;
            opened
                .insert(key.to_stored(), encoded.as_slice())
                .map_err(|error| {
                    from_storage(
                        &self.path,
                        || {
                            format!(
                                "inserting key {} into table {}",
                                K::describe(&key.to_stored()),
                                table.name()
                            )
                        },
                        error,
                    )
                })?;
        }
        Ok(())
    }

    /// Reads the value stored under `key`, including changes made earlier in this transaction.
    pub fn get<K: StoreKey, V: DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        let opened = self.open(table)?;
        let stored = opened
            .get(key.to_stored())
            .map_err(|error| self.storage_error(table, "reading", error))?;
        match stored {
            Some(value) => decode(table, &key.to_stored(), value.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Removes the entry under `key` and returns whether there was one.
    pub fn remove<K: StoreKey, V>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<bool, StoreError> {
        let mut opened = self.open(table)?;
        let removed = opened
            .remove(key.to_stored())
            .map_err(|error| self.storage_error(table, "removing from", error))?;
        Ok(removed.is_some())
    }

    /// Removes every key of `keys`, opening the table once, and returns how many were present.
    pub fn remove_all<'k, K: StoreKey + 'k, V>(
        &mut self,
        table: &Table<K, V>,
        keys: impl IntoIterator<Item = &'k K>,
    ) -> Result<usize, StoreError> {
        let mut opened = self.open(table)?;
        let mut removed = 0;
        for key in keys {
            let previous = opened
                .remove(key.to_stored())
                .map_err(|error| self.storage_error(table, "removing from", error))?;
            removed += usize::from(previous.is_some());
        }
        Ok(removed)
    }

    /// Counts the entries of `table`, including changes made earlier in this transaction.
    pub fn len<K: StoreKey, V>(&self, table: &Table<K, V>) -> Result<u64, StoreError> {
        let opened = self.open(table)?;
        opened
            .len()
            .map_err(|error| self.storage_error(table, "reading", error))
    }

    /// Commits the changes, which are then visible to every later transaction.
    ///
    /// With the durability of [`Store::begin_write`](super::Store::begin_write) the changes are on
    /// disk (fsynced) when this returns `Ok`. With
    /// [`Store::begin_write_non_durable`](super::Store::begin_write_non_durable) they reach the disk
    /// with the next durable commit or when the store closes cleanly.
    ///
    /// On an error the changes may or may not have been applied, and redb refuses further write
    /// transactions until the store is reopened.
    pub fn commit(self) -> Result<(), StoreError> {
        let path = self.path;
        self.transaction.commit().map_err(|error| match error {
            redb::CommitError::Storage(storage) => from_storage(&path, || "commit".into(), storage),
            other => StoreError::Storage {
                path: path.to_path_buf(),
                operation: "commit".into(),
                reason: other.to_string(),
            },
        })
    }

    /// Discards the changes. Dropping the transaction does the same but ignores any error.
    pub fn abort(self) -> Result<(), StoreError> {
        let path = self.path;
        self.transaction
            .abort()
            .map_err(|error| from_storage(&path, || "abort".into(), error))
    }

    /// Opens `table` for writing, creating it if it does not exist.
    fn open<K: StoreKey, V>(
        &self,
        table: &Table<K, V>,
    ) -> Result<redb::Table<'_, K::Stored, &'static [u8]>, StoreError> {
        self.transaction
            .open_table(table.definition())
            .map_err(|error| table_error(&self.path, table, error))
    }

    fn storage_error<K, V>(
        &self,
        table: &Table<K, V>,
        action: &str,
        error: redb::StorageError,
    ) -> StoreError {
        from_storage(
            &self.path,
            || format!("{action} table {}", table.name()),
            error,
        )
    }
}

impl std::fmt::Debug for WriteTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTransaction")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn decode<K: StoreKey, V: DeserializeOwned>(
    table: &Table<K, V>,
    key: &StoredKey<'_, K>,
    stored: &[u8],
) -> Result<V, StoreError> {
    table
        .decode(stored)
        .map_err(|error| error.into_store_error(table, K::describe(key)))
}

fn table_error<K, V>(path: &Path, table: &Table<K, V>, error: redb::TableError) -> StoreError {
    match error {
        redb::TableError::TableTypeMismatch(mismatch) => StoreError::TableTypeMismatch {
            table: table.name(),
            reason: mismatch.to_string(),
        },
        redb::TableError::TypeDefinitionChanged(changed) => StoreError::TableTypeMismatch {
            table: table.name(),
            reason: changed.to_string(),
        },
        redb::TableError::TableIsMultimap(_) => StoreError::TableTypeMismatch {
            table: table.name(),
            reason: "it is a multimap table".into(),
        },
        redb::TableError::Storage(storage) => {
            from_storage(path, || format!("opening table {}", table.name()), storage)
        }
        other => StoreError::Storage {
            path: path.to_path_buf(),
            operation: format!("opening table {}", table.name()),
            reason: other.to_string(),
        },
    }
}
