//! Registration through the `RegistryClient` against a bare redb write of the same records.
//!
//! Both sides commit durably (fsync) into a fresh database in a temporary directory:
//!
//! - `single`: one registration per call against one redb transaction with one record;
//! - `burst_100`: 100 concurrent registrations against one redb transaction with 100 records,
//!   which is what the registry's group commit turns a burst into.
//!
//! Run with `cargo bench -p alicia-actors --bench registry`; docs/benchmarks-registry.md records
//! the figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alicia_actors::registry::{
    Capability, DeviceSpec, Property, RegistryArgs, RegistryClient, RegistryConfig, ValueType,
    validate_spec,
};
use alicia_core::{Store, SystemClock, Timestamp};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BURST: u64 = 100;

fn spec(index: u64) -> DeviceSpec {
    let mut spec = DeviceSpec::new(format!("lamp-{index}"), "light", format!("Lamp {index}"));
    spec.location = Some("Kitchen".into());
    spec.capabilities = vec![
        Capability::new("on_off").with_property(Property::new("on", ValueType::Boolean).writable()),
        Capability::new("brightness").with_property(
            Property::new("level", ValueType::Integer)
                .with_unit("%")
                .with_range(0.0, 100.0, Some(1.0))
                .writable(),
        ),
    ];
    spec
}

/// Encodes a record with postcard, as the registry stores it.
fn encoded(index: u64) -> (String, Vec<u8>) {
    let record = validate_spec(&spec(index), Timestamp(0)).expect("the bench spec is valid");
    let bytes = postcard::to_allocvec(&record).expect("a device record encodes");
    (record.id.to_string(), bytes)
}

const BARE_TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("devices");

fn bare_write(database: &redb::Database, first: u64, count: u64) {
    let records: Vec<(String, Vec<u8>)> = (first..first + count).map(encoded).collect();
    let transaction = database.begin_write().expect("a write transaction begins");
    {
        let mut table = transaction.open_table(BARE_TABLE).expect("the table opens");
        for (key, value) in &records {
            table
                .insert(key.as_str(), value.as_slice())
                .expect("the insert succeeds");
        }
    }
    transaction.commit().expect("the commit succeeds");
}

fn registration(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the runtime starts");

    let registry_dir = tempfile::tempdir().expect("a temporary directory");
    let clock = SystemClock::shared();
    let store = Store::open(registry_dir.path(), clock.clone())
        .expect("the store opens")
        .store;
    let config = RegistryConfig {
        max_devices: usize::MAX,
        ..RegistryConfig::default()
    };
    let (client, _handle) = runtime
        .block_on(RegistryClient::spawn(RegistryArgs {
            store,
            clock,
            config,
            events: None,
        }))
        .expect("the registry starts");

    let bare_dir = tempfile::tempdir().expect("a temporary directory");
    let database =
        redb::Database::create(bare_dir.path().join("bare.redb")).expect("the database opens");

    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("registration");
    group.measurement_time(Duration::from_secs(10));

    group.throughput(Throughput::Elements(1));
    group.bench_function("single/registry", |b| {
        b.to_async(&runtime).iter(|| async {
            let index = next.fetch_add(1, Ordering::Relaxed);
            client
                .register(spec(index))
                .await
                .expect("the registration succeeds");
        })
    });
    group.bench_function("single/bare_redb", |b| {
        b.iter(|| bare_write(&database, next.fetch_add(1, Ordering::Relaxed), 1))
    });

    group.throughput(Throughput::Elements(BURST));
    group.bench_function("burst_100/registry", |b| {
        b.to_async(&runtime).iter(|| async {
            let first = next.fetch_add(BURST, Ordering::Relaxed);
            let calls: Vec<_> = (first..first + BURST)
                .map(|index| {
                    let client = client.clone();
                    tokio::spawn(async move { client.register(spec(index)).await })
                })
                .collect();
            for call in calls {
                call.await
                    .expect("the registration task completes")
                    .expect("the registration succeeds");
            }
        })
    });
    group.bench_function("burst_100/bare_redb", |b| {
        b.iter(|| bare_write(&database, next.fetch_add(BURST, Ordering::Relaxed), BURST))
    });
    group.finish();
}

criterion_group!(benches, registration);
criterion_main!(benches);
