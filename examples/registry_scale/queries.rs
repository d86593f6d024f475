//! The query cases, and timed runs of them through each path: the typed client, the in-process
//! bus, bare redb and a bare actor over bare redb.

use std::time::{Duration, Instant};

use alicia::actors::registry::{DevicePage, DeviceQuery, DeviceRecord, RegistryClient};
use alicia::core::bus::Bus;
use alicia::core::{DeviceId, Envelope, SourceId, TopicName};
use ractor::ActorRef;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::Database;

use crate::bare::{self, BareQuery};
use crate::devices::{self, COMMON_CAPABILITY, RARE_CAPABILITY};
use crate::measure::Latency;

const QUERY_TOPIC: &str = "alicia/registry/request/query";

/// Seed of the cursors, so that every path and every run reads the same pages.
const CURSOR_SEED: u64 = 20_240_601;

/// One query case: the same capability and page size from a list of start positions.
pub struct QueryCase {
    pub label: String,
    pub capability: &'static str,
    /// `after` of each query, in order.
    pub cursors: Vec<Option<String>>,
    pub limit: usize,
}

/// Builds the two cases: a page of the common capability after a random lamp, and the first
/// page of the rare capability, which contains every match while they fit in one page.
pub fn cases(devices: usize, queries: usize, page_size: usize) -> Vec<QueryCase> {
    let mut random = StdRng::seed_from_u64(CURSOR_SEED);
    let lamps = devices.div_ceil(4);
    let common_cursors = (0..queries)
        .map(|_| Some(devices::device_id(random.random_range(0..lamps) * 4)))
        .collect();
    let common = devices::count_with(devices, COMMON_CAPABILITY);
    let rare = devices::count_with(devices, RARE_CAPABILITY);
    vec![
        QueryCase {
            label: format!(
                "capability {COMMON_CAPABILITY} ({common} devices), page of {page_size} after a random lamp"
            ),
            capability: COMMON_CAPABILITY,
            cursors: common_cursors,
            limit: page_size,
        },
        QueryCase {
            label: format!(
                "capability {RARE_CAPABILITY} ({rare} devices), first page of {page_size}"
            ),
            capability: RARE_CAPABILITY,
            cursors: vec![None; queries],
            limit: page_size,
        },
    ]
}

impl QueryCase {
    fn query(&self, cursor: &Option<String>) -> Result<DeviceQuery, String> {
        let after = match cursor {
            Some(id) => Some(DeviceId::new(id.as_str()).map_err(|error| error.to_string())?),
            None => None,
        };
        Ok(DeviceQuery {
            capability: Some(self.capability.to_owned()),
            after,
            limit: self.limit,
            ..DeviceQuery::default()
        })
    }

    /// Checks that a page is not empty, not too long, and contains only matching devices.
    fn check<'a>(&self, ids: impl Iterator<Item = &'a str>, len: usize) -> Result<(), String> {
        if len == 0 || len > self.limit {
            return Err(format!(
                "{}: a page held {len} devices, expected 1 to {}",
                self.label, self.limit
            ));
        }
        for id in ids {
            let index = devices::index_of(id)
                .ok_or_else(|| format!("{}: unexpected device id {id}", self.label))?;
            if !devices::has_capability(index, self.capability) {
                return Err(format!(
                    "{}: device {id} lacks {}",
                    self.label, self.capability
                ));
            }
        }
        Ok(())
    }
}

fn check_page(case: &QueryCase, page: &DevicePage) -> Result<(), String> {
    case.check(
        page.devices.iter().map(|view| view.record.id.as_str()),
        page.devices.len(),
    )
}

fn check_records(case: &QueryCase, records: &[DeviceRecord]) -> Result<(), String> {
    case.check(
        records.iter().map(|record| record.id.as_str()),
        records.len(),
    )
}

/// Times every query of `case` through the typed client, stopping at `deadline`.
pub async fn typed(
    client: &RegistryClient,
    case: &QueryCase,
    deadline: Instant,
) -> Result<Option<Latency>, String> {
    let mut samples = Vec::with_capacity(case.cursors.len());
    for cursor in &case.cursors {
        if Instant::now() >= deadline {
            break;
        }
        let query = case.query(cursor)?;
        let started = Instant::now();
        let page = client
            .query(query)
            .await
            .map_err(|error| format!("{}: query failed: {error}", case.label))?;
        samples.push(started.elapsed());
        check_page(case, &page)?;
    }
    Ok(Latency::of(samples))
}

/// Times every query of `case` as a request and reply on `bus`, stopping at `deadline`.
pub async fn over_bus(
    bus: &Bus,
    case: &QueryCase,
    deadline: Instant,
    timeout: Duration,
) -> Result<Option<Latency>, String> {
    let topic = TopicName::new(QUERY_TOPIC).map_err(|error| error.to_string())?;
    let source = SourceId::new("registry-scale").map_err(|error| error.to_string())?;
    let mut samples = Vec::with_capacity(case.cursors.len());
    for cursor in &case.cursors {
        if Instant::now() >= deadline {
            break;
        }
        let query = case.query(cursor)?;
        let started = Instant::now();
        let request = Envelope::new(source.clone(), query, &**bus.clock());
        let reply: Envelope<DevicePage> = bus
            .request(&topic, request, timeout)
            .await
            .map_err(|error| format!("{}: bus query failed: {error}", case.label))?;
        samples.push(started.elapsed());
        check_page(case, reply.body())?;
    }
    Ok(Latency::of(samples))
}

/// Times every query of `case` directly on the bare database, stopping at `deadline`.
pub fn bare_direct(
    database: &Database,
    case: &QueryCase,
    deadline: Instant,
) -> Result<Option<Latency>, String> {
    let mut samples = Vec::with_capacity(case.cursors.len());
    for cursor in &case.cursors {
        if Instant::now() >= deadline {
            break;
        }
        let started = Instant::now();
        let records = bare::query(database, case.capability, cursor.as_deref(), case.limit)?;
        samples.push(started.elapsed());
        check_records(case, &records)?;
    }
    Ok(Latency::of(samples))
}

/// Times every query of `case` through the bare actor, stopping at `deadline`.
pub async fn bare_actor(
    actor: &ActorRef<BareQuery>,
    case: &QueryCase,
    deadline: Instant,
    timeout: Duration,
) -> Result<Option<Latency>, String> {
    let mut samples = Vec::with_capacity(case.cursors.len());
    for cursor in &case.cursors {
        if Instant::now() >= deadline {
            break;
        }
        let started = Instant::now();
        let outcome = actor
            .call(
                |reply| BareQuery {
                    capability: case.capability.to_owned(),
                    after: cursor.clone(),
                    limit: case.limit,
                    reply,
                },
                Some(timeout),
            )
            .await
            .map_err(|error| format!("{}: bare actor call failed: {error}", case.label))?;
        let records = match outcome {
            ractor::rpc::CallResult::Success(result) => result?,
            ractor::rpc::CallResult::Timeout => {
                return Err(format!("{}: bare actor timed out", case.label));
            }
            ractor::rpc::CallResult::SenderError => {
                return Err(format!("{}: bare actor dropped the reply", case.label));
            }
        };
        samples.push(started.elapsed());
        check_records(case, &records)?;
    }
    Ok(Latency::of(samples))
}
