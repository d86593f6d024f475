//! The raw layers under the registry, measured in the same run: a bare redb file with the same
//! postcard-encoded records and a capability index with the registry's key layout, read directly
//! and through a bare ractor actor.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alicia::actors::registry::{DeviceRecord, validate_spec};
use alicia::core::Timestamp;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::devices;

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
const CAPABILITY_INDEX: TableDefinition<&str, ()> = TableDefinition::new("capability_index");

/// Records per durable transaction while the file is built.
const BUILD_BATCH: usize = 1024;

/// Writes `count` device records and their capability index entries into a fresh file at
/// `path`, stopping at `deadline`, and returns how many it wrote.
pub fn build(path: &Path, count: usize, deadline: Instant) -> Result<usize, String> {
    let database = Database::create(path)
        .map_err(|error| format!("creating {} failed: {error}", path.display()))?;
    let mut written = 0;
    while written < count && Instant::now() < deadline {
        let end = (written + BUILD_BATCH).min(count);
        let transaction = database
            .begin_write()
            .map_err(|error| format!("beginning a redb write failed: {error}"))?;
        {
            let mut records = transaction
                .open_table(RECORDS)
                .map_err(|error| format!("opening the records table failed: {error}"))?;
            let mut index = transaction
                .open_table(CAPABILITY_INDEX)
                .map_err(|error| format!("opening the index table failed: {error}"))?;
            for number in written..end {
                let record = validate_spec(&devices::spec(number), Timestamp(0))
                    .map_err(|error| format!("device {number} is invalid: {error}"))?;
                let bytes = postcard::to_allocvec(&record)
                    .map_err(|error| format!("encoding device {number} failed: {error}"))?;
                records
                    .insert(record.id.as_str(), bytes.as_slice())
                    .map_err(|error| format!("inserting device {number} failed: {error}"))?;
                for capability in &record.capabilities {
                    let key = format!("{}\0{}", capability.name, record.id);
                    index
                        .insert(key.as_str(), ())
                        .map_err(|error| format!("indexing device {number} failed: {error}"))?;
                }
            }
        }
        transaction
            .commit()
            .map_err(|error| format!("committing a redb batch failed: {error}"))?;
        written = end;
    }
    Ok(written)
}

/// Opens the file at `path` and decodes every record, as a restart of the registry must.
/// Returns the time to open, the time to open and decode everything, and the record count.
pub fn open_and_scan(
    path: &Path,
    check_integrity: bool,
) -> Result<(Duration, Duration, usize), String> {
    let started = Instant::now();
    let mut builder = redb::Builder::new();
    builder.set_check_integrity_on_open(check_integrity);
    let database = builder
        .open(path)
        .map_err(|error| format!("opening {} failed: {error}", path.display()))?;
    let opened = started.elapsed();

    let read = database
        .begin_read()
        .map_err(|error| format!("beginning a redb read failed: {error}"))?;
    let records = read
        .open_table(RECORDS)
        .map_err(|error| format!("opening the records table failed: {error}"))?;
    let mut count = 0;
    for entry in records
        .iter()
        .map_err(|error| format!("iterating the records failed: {error}"))?
    {
        let (_, value) = entry.map_err(|error| format!("reading a record failed: {error}"))?;
        let record: DeviceRecord = postcard::from_bytes(value.value())
            .map_err(|error| format!("decoding a record failed: {error}"))?;
        std::hint::black_box(&record);
        count += 1;
    }
    Ok((opened, started.elapsed(), count))
}

/// Opens the file at `path` for queries.
pub fn open(path: &Path) -> Result<Arc<Database>, String> {
    Database::open(path)
        .map(Arc::new)
        .map_err(|error| format!("opening {} failed: {error}", path.display()))
}

/// Reads one page of the devices with `capability` whose ids sort after `after`. It does the
/// same range scan over the index and record reads as the registry's query, without its
/// validation, actor and availability join.
pub fn query(
    database: &Database,
    capability: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<DeviceRecord>, String> {
    let read = database
        .begin_read()
        .map_err(|error| format!("beginning a redb read failed: {error}"))?;
    let index = read
        .open_table(CAPABILITY_INDEX)
        .map_err(|error| format!("opening the index table failed: {error}"))?;
    let records = read
        .open_table(RECORDS)
        .map_err(|error| format!("opening the records table failed: {error}"))?;

    let prefix = format!("{capability}\0");
    let start = match after {
        Some(after) => Bound::Excluded(format!("{prefix}{after}")),
        None => Bound::Included(prefix.clone()),
    };
    let bounds: (Bound<&str>, Bound<&str>) = (start.as_ref().map(String::as_str), Bound::Unbounded);
    let entries = index
        .range(bounds)
        .map_err(|error| format!("scanning the index failed: {error}"))?;

    // One record beyond the page shows whether a next page exists, as in the registry.
    let mut page = Vec::with_capacity(limit + 1);
    for entry in entries {
        let (key, _) = entry.map_err(|error| format!("reading the index failed: {error}"))?;
        let Some(id) = key.value().strip_prefix(prefix.as_str()) else {
            break;
        };
        let Some(value) = records
            .get(id)
            .map_err(|error| format!("reading record {id} failed: {error}"))?
        else {
            continue;
        };
        let record: DeviceRecord = postcard::from_bytes(value.value())
            .map_err(|error| format!("decoding record {id} failed: {error}"))?;
        page.push(record);
        if page.len() > limit {
            break;
        }
    }
    page.truncate(limit);
    Ok(page)
}

/// A query for the bare actor.
pub struct BareQuery {
    pub capability: String,
    pub after: Option<String>,
    pub limit: usize,
    pub reply: RpcReplyPort<Result<Vec<DeviceRecord>, String>>,
}

/// An actor that owns the bare database and serves [`BareQuery`]s with [`query`]: the ractor
/// hop without the registry's own work.
pub struct BareActor;

impl Actor for BareActor {
    type Msg = BareQuery;
    type State = Arc<Database>;
    type Arguments = Arc<Database>;

    async fn pre_start(
        &self,
        _myself: ActorRef<BareQuery>,
        database: Arc<Database>,
    ) -> Result<Arc<Database>, ActorProcessingErr> {
        Ok(database)
    }

    async fn handle(
        &self,
        _myself: ActorRef<BareQuery>,
        message: BareQuery,
        database: &mut Arc<Database>,
    ) -> Result<(), ActorProcessingErr> {
        let page = query(
            database,
            &message.capability,
            message.after.as_deref(),
            message.limit,
        );
        let _ = message.reply.send(page);
        Ok(())
    }
}
