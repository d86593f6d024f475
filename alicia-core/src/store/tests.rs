//! Tests against real redb files in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::open::{IntegrityCheck, open_with};
use super::*;
use crate::clock::{ManualClock, Timestamp};
use crate::id::DeviceId;

/// 2024-05-01T12:00:00Z.
const START: Timestamp = Timestamp(1_714_564_800_000);
const START_UTC: &str = "20240501T120000Z";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Lamp {
    name: String,
    brightness: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LampV1 {
    name: String,
}

impl From<LampV1> for Lamp {
    fn from(old: LampV1) -> Self {
        Lamp {
            name: old.name,
            brightness: 100,
        }
    }
}

const LAMPS: Table<String, Lamp> =
    Table::new("test.lamps", 2).with_upgrades(&[Upgrade::decode_and_convert::<LampV1>(1)]);
const LAMPS_V1: Table<String, LampV1> = Table::new("test.lamps", 1);
const LAMPS_V3: Table<String, Lamp> = Table::new("test.lamps", 3);
const LAMPS_AS_NUMBERS: Table<String, u64> = Table::new("test.lamps", 2);
const LAMPS_BY_NUMBER: Table<u64, Lamp> = Table::new("test.lamps", 2);
const COUNTERS: Table<u64, u64> = Table::new("test.counters", 1);
const BLOBS: Table<Vec<u8>, String> = Table::new("test.blobs", 1);
const DEVICES: Table<DeviceId, Lamp> = Table::new("test.devices", 2);
const DEVICE_NAMES: Table<String, Lamp> = Table::new("test.devices", 2);

fn lamp(name: &str, brightness: u8) -> Lamp {
    Lamp {
        name: name.into(),
        brightness,
    }
}

fn clock() -> ManualClock {
    ManualClock::new(START)
}

fn open_store(data_dir: &Path) -> Store {
    let opened = Store::open(data_dir, clock().shared()).unwrap();
    assert_eq!(opened.recovery, None);
    opened.store
}

fn insert_lamp(store: &Store, name: &str, brightness: u8) {
    store
        .write(|tx| tx.insert(&LAMPS, &name.to_string(), &lamp(name, brightness)))
        .unwrap();
}

fn get_lamp(store: &Store, name: &str) -> Option<Lamp> {
    store
        .begin_read()
        .unwrap()
        .get(&LAMPS, &name.to_string())
        .unwrap()
}

/// Stores `bytes` under `key` in `table` without the value encoding.
fn insert_raw(store: &Store, table: &str, key: &str, bytes: &[u8]) {
    let definition: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new(table);
    let tx = store.database.begin_write().unwrap();
    tx.open_table(definition)
        .unwrap()
        .insert(key, bytes)
        .unwrap();
    tx.commit().unwrap();
}

/// Files in `dir` whose names contain `.corrupt-`.
fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains(".corrupt-"))
        .collect();
    found.sort();
    found
}

/// Inserts lamps `lamp-00000` to `lamp-01999`, enough to span many pages.
fn insert_many_lamps(store: &Store) {
    store
        .write(|tx| {
            for index in 0..2000 {
                let name = format!("lamp-{index:05}");
                tx.insert(&LAMPS, &name, &lamp(&name, 50))?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

/// Writes a database with many pages, closes it and returns its bytes.
fn real_database_bytes(data_dir: &Path) -> Vec<u8> {
    let store = open_store(data_dir);
    insert_many_lamps(&store);
    drop(store);
    fs::read(data_dir.join(DATABASE_FILE_NAME)).unwrap()
}

/// Copies the database file of an open store, as a crash at this moment would leave it.
fn crash_copy(store: &Store, into: &Path) {
    fs::create_dir_all(into).unwrap();
    fs::copy(store.path(), into.join(DATABASE_FILE_NAME)).unwrap();
}

#[test]
fn open_creates_missing_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("nested/node-1");

    let store = open_store(&data_dir);

    assert_eq!(store.path(), data_dir.join("alicia.redb"));
    assert!(store.path().is_file());
}

#[cfg(unix)]
#[test]
fn open_sets_private_modes() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("node");

    let store = open_store(&data_dir);

    let dir_mode = fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
    let file_mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "data dir mode {dir_mode:o}");
    assert_eq!(file_mode, 0o600, "database file mode {file_mode:o}");
}

#[test]
fn open_rejects_file_as_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("not-a-dir");
    fs::write(&data_dir, b"x").unwrap();

    let error = Store::open(&data_dir, clock().shared()).unwrap_err();

    assert!(
        matches!(error, StoreError::CreateDataDir { .. }),
        "{error:?}"
    );
}

#[test]
fn insert_get_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());

    insert_lamp(&store, "hall", 40);

    assert_eq!(get_lamp(&store, "hall"), Some(lamp("hall", 40)));
    assert_eq!(get_lamp(&store, "porch"), None);
}

#[test]
fn insert_replaces_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());

    insert_lamp(&store, "hall", 40);
    insert_lamp(&store, "hall", 90);

    assert_eq!(get_lamp(&store, "hall"), Some(lamp("hall", 90)));
    assert_eq!(store.begin_read().unwrap().len(&LAMPS).unwrap(), 1);
}

#[test]
fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    insert_lamp(&store, "hall", 40);
    drop(store);

    let store = open_store(dir.path());

    assert_eq!(get_lamp(&store, "hall"), Some(lamp("hall", 40)));
}

#[test]
fn missing_table_reads_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let read = store.begin_read().unwrap();

    assert_eq!(read.get(&LAMPS, &"hall".to_string()).unwrap(), None);
    assert_eq!(read.len(&LAMPS).unwrap(), 0);
    assert_eq!(read.iter(&LAMPS).unwrap().count(), 0);
    assert_eq!(read.prefix(&LAMPS, "h").unwrap().count(), 0);
    assert_eq!(read.range(&COUNTERS, 1..5).unwrap().count(), 0);
}

#[test]
fn remove_reports_presence() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    insert_lamp(&store, "hall", 40);
    let hall = "hall".to_string();

    let removed = store.write(|tx| tx.remove(&LAMPS, &hall)).unwrap();
    let removed_again = store.write(|tx| tx.remove(&LAMPS, &hall)).unwrap();

    assert!(removed);
    assert!(!removed_again);
    assert_eq!(get_lamp(&store, "hall"), None);
}

#[test]
fn write_transaction_reads_own_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    insert_lamp(&store, "hall", 40);
    let mut tx = store.begin_write().unwrap();

    tx.insert(&LAMPS, &"porch".to_string(), &lamp("porch", 10))
        .unwrap();
    tx.remove(&LAMPS, &"hall".to_string()).unwrap();

    assert_eq!(
        tx.get(&LAMPS, &"porch".to_string()).unwrap(),
        Some(lamp("porch", 10))
    );
    assert_eq!(tx.get(&LAMPS, &"hall".to_string()).unwrap(), None);
    assert_eq!(tx.len(&LAMPS).unwrap(), 1);
    assert_eq!(get_lamp(&store, "hall"), Some(lamp("hall", 40)));
    tx.commit().unwrap();
    assert_eq!(get_lamp(&store, "hall"), None);
}

#[test]
fn abort_discards_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let mut tx = store.begin_write().unwrap();
    tx.insert(&LAMPS, &"hall".to_string(), &lamp("hall", 40))
        .unwrap();

    tx.abort().unwrap();

    assert_eq!(get_lamp(&store, "hall"), None);
}

#[test]
fn write_error_discards_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());

    let result: Result<(), StoreError> = store.write(|tx| {
        tx.insert(&LAMPS, &"hall".to_string(), &lamp("hall", 40))?;
        Err(StoreError::Decode {
            table: LAMPS.name(),
            key: "\"hall\"".into(),
            reason: "stop here".into(),
        })
    });

    assert!(result.is_err());
    assert_eq!(get_lamp(&store, "hall"), None);
}

#[test]
fn read_snapshot_ignores_later_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let read = store.begin_read().unwrap();

    insert_lamp(&store, "hall", 40);

    assert_eq!(read.get(&LAMPS, &"hall".to_string()).unwrap(), None);
    assert_eq!(get_lamp(&store, "hall"), Some(lamp("hall", 40)));
}

#[test]
fn u64_keys_iterate_in_numeric_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store
        .write(|tx| {
            for key in [300u64, 2, 10, 256, 1] {
                tx.insert(&COUNTERS, &key, &(key * 2))?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let read = store.begin_read().unwrap();

    let all: Vec<(u64, u64)> = read.iter(&COUNTERS).unwrap().map(Result::unwrap).collect();
    let middle: Vec<u64> = read
        .range(&COUNTERS, 2..=256)
        .unwrap()
        .map(|entry| entry.unwrap().0)
        .collect();
    let (start, end) = (256, 2);
    let inverted = read.range(&COUNTERS, start..end).unwrap().count();

    assert_eq!(all, vec![(1, 2), (2, 4), (10, 20), (256, 512), (300, 600)]);
    assert_eq!(middle, vec![2, 10, 256]);
    assert_eq!(inverted, 0);
}

#[test]
fn prefix_lists_matching_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    for name in [
        "kitchen.spot",
        "hall",
        "kitchen",
        "kitchen.ceiling",
        "kitchens",
        "l",
    ] {
        insert_lamp(&store, name, 1);
    }
    let read = store.begin_read().unwrap();

    let keys: Vec<String> = read
        .prefix(&LAMPS, "kitchen.")
        .unwrap()
        .map(|entry| entry.unwrap().0)
        .collect();
    let all = read.prefix(&LAMPS, "").unwrap().count();

    assert_eq!(keys, vec!["kitchen.ceiling", "kitchen.spot"]);
    assert_eq!(all, 6);
}

#[test]
fn byte_keys_sort_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store
        .write(|tx| {
            for key in [vec![0xff], vec![0x00, 0x01], vec![0x00], vec![]] {
                let value = format!("{key:?}");
                tx.insert(&BLOBS, &key, &value)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let read = store.begin_read().unwrap();

    let keys: Vec<Vec<u8>> = read
        .iter(&BLOBS)
        .unwrap()
        .map(|entry| entry.unwrap().0)
        .collect();

    assert_eq!(keys, vec![vec![], vec![0x00], vec![0x00, 0x01], vec![0xff]]);
    assert_eq!(
        read.get(&BLOBS, &vec![0xff]).unwrap(),
        Some("[255]".to_string())
    );
}

#[test]
fn id_keys_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let device = DeviceId::new("kitchen-lamp").unwrap();

    store
        .write(|tx| tx.insert(&DEVICES, &device, &lamp("kitchen", 5)))
        .unwrap();
    let read = store.begin_read().unwrap();

    assert_eq!(
        read.get(&DEVICES, &device).unwrap(),
        Some(lamp("kitchen", 5))
    );
    let listed: Vec<DeviceId> = read
        .iter(&DEVICES)
        .unwrap()
        .map(|entry| entry.unwrap().0)
        .collect();
    assert_eq!(listed, vec![device]);
}

#[test]
fn invalid_stored_id_is_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store
        .write(|tx| tx.insert(&DEVICE_NAMES, &"kitchen/lamp".to_string(), &lamp("x", 1)))
        .unwrap();

    let entries: Vec<_> = store
        .begin_read()
        .unwrap()
        .iter(&DEVICES)
        .unwrap()
        .collect();

    assert_eq!(entries.len(), 1);
    let error = entries.into_iter().next().unwrap().unwrap_err();
    assert!(
        matches!(&error, StoreError::Decode { table: "test.devices", key, reason }
            if key == "\"kitchen/lamp\"" && reason.contains("invalid key")),
        "{error:?}"
    );
}

#[test]
fn newer_version_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store
        .write(|tx| tx.insert(&LAMPS_V3, &"hall".to_string(), &lamp("hall", 1)))
        .unwrap();

    let error = store
        .begin_read()
        .unwrap()
        .get(&LAMPS, &"hall".to_string())
        .unwrap_err();

    assert!(
        matches!(&error, StoreError::UnsupportedVersion { table: "test.lamps", key, found: 3, supported }
            if key == "\"hall\"" && supported == &vec![2, 1]),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("test.lamps"), "{message}");
    assert!(message.contains("\"hall\""), "{message}");
    assert!(message.contains("versions 2, 1"), "{message}");
}

#[test]
fn older_version_without_upgrade_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store
        .write(|tx| tx.insert(&LAMPS, &"hall".to_string(), &lamp("hall", 1)))
        .unwrap();

    let error = store
        .begin_read()
        .unwrap()
        .get(&LAMPS_V3, &"hall".to_string())
        .unwrap_err();

    assert!(
        matches!(error, StoreError::UnsupportedVersion { found: 2, .. }),
        "{error:?}"
    );
}

#[test]
fn older_version_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let porch = LampV1 {
        name: "porch".into(),
    };
    store
        .write(|tx| tx.insert(&LAMPS_V1, &"porch".to_string(), &porch))
        .unwrap();

    let read = store.begin_read().unwrap();

    assert_eq!(
        read.get(&LAMPS, &"porch".to_string()).unwrap(),
        Some(lamp("porch", 100))
    );
    let listed: Vec<(String, Lamp)> = read.iter(&LAMPS).unwrap().map(Result::unwrap).collect();
    assert_eq!(listed, vec![("porch".to_string(), lamp("porch", 100))]);
}

#[test]
fn upgraded_value_is_rewritten_in_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let porch = "porch".to_string();
    let old = LampV1 {
        name: "porch".into(),
    };
    store
        .write(|tx| tx.insert(&LAMPS_V1, &porch, &old))
        .unwrap();

    store
        .write(|tx| {
            let upgraded = tx.get(&LAMPS, &porch)?.unwrap_or_else(|| lamp("?", 0));
            tx.insert(&LAMPS, &porch, &upgraded)
        })
        .unwrap();

    let error = store
        .begin_read()
        .unwrap()
        .get(&LAMPS_V1, &porch)
        .unwrap_err();
    assert!(
        matches!(error, StoreError::UnsupportedVersion { found: 2, .. }),
        "{error:?}"
    );
}

#[test]
fn mismatched_value_is_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store
        .write(|tx| tx.insert(&LAMPS_AS_NUMBERS, &"hall".to_string(), &u64::MAX))
        .unwrap();

    let error = store
        .begin_read()
        .unwrap()
        .get(&LAMPS, &"hall".to_string())
        .unwrap_err();

    assert!(
        matches!(&error, StoreError::Decode { table: "test.lamps", key, .. } if key == "\"hall\""),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("test.lamps"), "{message}");
    assert!(message.contains("failed to decode"), "{message}");
}

#[test]
fn raw_garbage_values_are_decode_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let cases: [(&str, &[u8]); 3] = [
        ("empty", &[]),
        ("header only", &[2]),
        ("bad payload", &[2, 0, 0xff, 0xff, 0xff]),
    ];
    for (key, bytes) in cases {
        insert_raw(&store, LAMPS.name(), key, bytes);
    }
    let read = store.begin_read().unwrap();

    for (key, _) in cases {
        let error = read.get(&LAMPS, &key.to_string()).unwrap_err();
        assert!(
            matches!(error, StoreError::Decode { .. }),
            "{key}: {error:?}"
        );
    }
    let decoded = read.iter(&LAMPS).unwrap().filter(Result::is_ok).count();
    assert_eq!(decoded, 0);
}

#[test]
fn iteration_continues_after_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    insert_lamp(&store, "a", 1);
    insert_raw(&store, LAMPS.name(), "b", &[9, 9]);
    insert_lamp(&store, "c", 3);

    let results: Vec<_> = store.begin_read().unwrap().iter(&LAMPS).unwrap().collect();

    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok());
    assert!(results[1].is_err());
    assert!(results[2].is_ok());
}

#[test]
fn table_key_type_mismatch_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    insert_lamp(&store, "hall", 40);

    let read_error = store
        .begin_read()
        .unwrap()
        .len(&LAMPS_BY_NUMBER)
        .unwrap_err();
    let write_error = store
        .write(|tx| tx.insert(&LAMPS_BY_NUMBER, &1, &lamp("x", 1)))
        .unwrap_err();

    for error in [read_error, write_error] {
        assert!(
            matches!(
                error,
                StoreError::TableTypeMismatch {
                    table: "test.lamps",
                    ..
                }
            ),
            "{error:?}"
        );
    }
}

#[test]
fn non_durable_write_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());

    store
        .write_non_durable(|tx| tx.insert(&LAMPS, &"hall".to_string(), &lamp("hall", 1)))
        .unwrap();

    assert_eq!(get_lamp(&store, "hall"), Some(lamp("hall", 1)));
}

#[test]
fn non_durable_write_lost_in_crash() {
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&root.path().join("live"));
    insert_lamp(&store, "durable", 1);
    store
        .write_non_durable(|tx| tx.insert(&LAMPS, &"pending".to_string(), &lamp("pending", 2)))
        .unwrap();

    crash_copy(&store, &root.path().join("crashed"));
    let crashed = open_store(&root.path().join("crashed"));

    assert_eq!(get_lamp(&crashed, "durable"), Some(lamp("durable", 1)));
    assert_eq!(get_lamp(&crashed, "pending"), None);
}

#[test]
fn durable_commit_persists_earlier_non_durable() {
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&root.path().join("live"));
    store
        .write_non_durable(|tx| tx.insert(&LAMPS, &"pending".to_string(), &lamp("pending", 2)))
        .unwrap();

    insert_lamp(&store, "durable", 1);
    crash_copy(&store, &root.path().join("crashed"));
    let crashed = open_store(&root.path().join("crashed"));

    assert_eq!(get_lamp(&crashed, "pending"), Some(lamp("pending", 2)));
    assert_eq!(get_lamp(&crashed, "durable"), Some(lamp("durable", 1)));
}

#[test]
fn sync_persists_non_durable() {
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&root.path().join("live"));
    store
        .write_non_durable(|tx| tx.insert(&LAMPS, &"pending".to_string(), &lamp("pending", 2)))
        .unwrap();

    store.sync().unwrap();
    crash_copy(&store, &root.path().join("crashed"));
    let crashed = open_store(&root.path().join("crashed"));

    assert_eq!(get_lamp(&crashed, "pending"), Some(lamp("pending", 2)));
}

#[test]
fn clean_close_persists_non_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store
        .write_non_durable(|tx| tx.insert(&LAMPS, &"pending".to_string(), &lamp("pending", 2)))
        .unwrap();

    drop(store);
    let store = open_store(dir.path());

    assert_eq!(get_lamp(&store, "pending"), Some(lamp("pending", 2)));
}

#[test]
fn unclean_shutdown_is_not_corruption() {
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&root.path().join("live"));
    insert_lamp(&store, "hall", 40);
    store
        .write_non_durable(|tx| tx.insert(&LAMPS, &"porch".to_string(), &lamp("porch", 2)))
        .unwrap();
    crash_copy(&store, &root.path().join("crashed"));

    let opened = Store::open(&root.path().join("crashed"), clock().shared()).unwrap();

    assert_eq!(opened.recovery, None);
    assert_eq!(get_lamp(&opened.store, "hall"), Some(lamp("hall", 40)));
    assert!(corrupt_files(&root.path().join("crashed")).is_empty());
}

/// Damaged file contents, each built from a real database's bytes.
fn corrupt_cases(real: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut flipped = real.to_vec();
    let middle = flipped.len() / 2;
    for byte in &mut flipped[middle..] {
        *byte ^= 0xff;
    }
    let mut header = real.to_vec();
    for byte in &mut header[64..512] {
        *byte = 0x5a;
    }
    vec![
        (
            "garbage",
            b"this is not a redb database\n".repeat(200).to_vec(),
        ),
        ("short garbage", b"xyz".to_vec()),
        ("zeros", vec![0; 1 << 20]),
        ("truncated to half", real[..real.len() / 2].to_vec()),
        ("truncated to one page", real[..4096].to_vec()),
        ("second half flipped", flipped),
        ("header overwritten", header),
    ]
}

#[test]
fn corrupt_file_is_moved_aside() {
    let source = tempfile::tempdir().unwrap();
    let real = real_database_bytes(source.path());

    for (case, bytes) in corrupt_cases(&real) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE_NAME);
        fs::write(&path, &bytes).unwrap();

        let opened = Store::open(dir.path(), clock().shared())
            .unwrap_or_else(|error| panic!("{case}: {error}"));

        let recovery = opened
            .recovery
            .unwrap_or_else(|| panic!("{case}: no recovery report"));
        let expected = dir.path().join(format!("alicia.redb.corrupt-{START_UTC}"));
        assert_eq!(recovery.moved_to, expected, "{case}");
        assert!(!recovery.reason.is_empty(), "{case}");
        assert_eq!(fs::read(&recovery.moved_to).unwrap(), bytes, "{case}");
        assert_eq!(corrupt_files(dir.path()), vec![expected], "{case}");

        let store = opened.store;
        assert_eq!(get_lamp(&store, "lamp-00000"), None, "{case}");
        insert_lamp(&store, "fresh", 1);
        assert_eq!(get_lamp(&store, "fresh"), Some(lamp("fresh", 1)), "{case}");
    }
}

#[test]
fn corrupt_reasons_name_the_damage() {
    let source = tempfile::tempdir().unwrap();
    let real = real_database_bytes(source.path());
    let expected = [
        ("garbage", "Not a redb database"),
        ("zeros", "Not a redb database"),
        ("truncated to half", "truncated"),
    ];
    let cases = corrupt_cases(&real);

    for (case, fragment) in expected {
        let (_, bytes) = cases.iter().find(|(name, _)| *name == case).unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DATABASE_FILE_NAME), bytes).unwrap();

        let recovery = Store::open(dir.path(), clock().shared())
            .unwrap()
            .recovery
            .unwrap();

        assert!(
            recovery.reason.contains(fragment),
            "{case}: {}",
            recovery.reason
        );
    }
}

#[test]
fn recovery_report_names_moved_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(DATABASE_FILE_NAME), vec![0u8; 8192]).unwrap();

    let recovery = Store::open(dir.path(), clock().shared())
        .unwrap()
        .recovery
        .unwrap();

    let message = recovery.to_string();
    assert!(
        message.contains(&recovery.moved_to.display().to_string()),
        "{message}"
    );
    assert!(message.contains("empty database"), "{message}");
}

#[test]
fn corrupt_name_collision_gets_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE_FILE_NAME);
    let clock = clock();

    let mut moved = Vec::new();
    for round in 0..3u8 {
        fs::write(&path, vec![round; 4096]).unwrap();
        let opened = Store::open(dir.path(), clock.shared()).unwrap();
        moved.push(opened.recovery.unwrap().moved_to);
    }

    let base = dir.path().join(format!("alicia.redb.corrupt-{START_UTC}"));
    let expected = vec![
        base.clone(),
        PathBuf::from(format!("{}-2", base.display())),
        PathBuf::from(format!("{}-3", base.display())),
    ];
    assert_eq!(moved, expected);
    assert_eq!(fs::read(&expected[1]).unwrap(), vec![1u8; 4096]);
}

#[test]
fn corrupt_name_uses_clock() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(DATABASE_FILE_NAME), b"garbage").unwrap();
    let clock = ManualClock::new(Timestamp(1_709_210_096_789));

    let recovery = Store::open(dir.path(), clock.shared())
        .unwrap()
        .recovery
        .unwrap();

    assert_eq!(
        recovery.moved_to,
        dir.path().join("alicia.redb.corrupt-20240229T123456Z")
    );
}

#[test]
fn panic_in_redb_counts_as_corruption() {
    let source = tempfile::tempdir().unwrap();
    let real = real_database_bytes(source.path());
    let (_, flipped) = corrupt_cases(&real)
        .into_iter()
        .find(|(name, _)| *name == "second half flipped")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(DATABASE_FILE_NAME), &flipped).unwrap();

    // Without the integrity check, redb 5.0 panics on this file in debug builds and reports it
    // as corrupt in release builds. Both must end in a recovery.
    let opened = open_with(
        dir.path(),
        &clock().shared(),
        StoreOptions::default(),
        IntegrityCheck::Skip,
    )
    .unwrap();

    let recovery = opened.recovery.unwrap();
    assert_eq!(fs::read(&recovery.moved_to).unwrap(), flipped);
    insert_lamp(&opened.store, "fresh", 1);
    assert_eq!(get_lamp(&opened.store, "fresh"), Some(lamp("fresh", 1)));
}

#[test]
fn locked_database_is_not_moved() {
    let dir = tempfile::tempdir().unwrap();
    let first = open_store(dir.path());
    insert_lamp(&first, "hall", 40);

    let error = Store::open(dir.path(), clock().shared()).unwrap_err();

    assert!(
        matches!(&error, StoreError::Locked { path } if path == first.path()),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&first.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("stop the other node"), "{message}");
    assert!(corrupt_files(dir.path()).is_empty());
    assert_eq!(get_lamp(&first, "hall"), Some(lamp("hall", 40)));
}

#[test]
fn lock_is_released_when_store_drops() {
    let dir = tempfile::tempdir().unwrap();
    let first = open_store(dir.path());
    let clone = first.clone();
    drop(first);

    let still_locked = Store::open(dir.path(), clock().shared()).unwrap_err();
    drop(clone);
    let reopened = Store::open(dir.path(), clock().shared());

    assert!(
        matches!(still_locked, StoreError::Locked { .. }),
        "{still_locked:?}"
    );
    assert!(reopened.is_ok(), "{reopened:?}");
}

#[test]
fn read_outlives_store_handle() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    insert_many_lamps(&store);
    let read = store.begin_read().unwrap();
    let entries = read.iter(&LAMPS).unwrap();

    drop(store);
    drop(read);

    let decoded = entries.take(3000).filter(Result::is_ok).count();
    assert_eq!(decoded, 2000);
}

#[test]
fn directory_in_place_of_file_is_not_moved() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(DATABASE_FILE_NAME)).unwrap();

    let error = Store::open(dir.path(), clock().shared()).unwrap_err();

    assert!(matches!(error, StoreError::OpenFile { .. }), "{error:?}");
    assert!(dir.path().join(DATABASE_FILE_NAME).is_dir());
    assert!(corrupt_files(dir.path()).is_empty());
}
