//! Health monitor benchmarks: heartbeat ingestion for 1,000 services, and the cost of stats
//! collection on a service's call throughput (collection off against on, in the same run).

use std::time::Duration;

use alicia_actors::health::{
    Detector, HealthConfig, ProcessSample, ServiceHeartbeat, ServiceStats,
};
use alicia_core::{ManualClock, NodeId, ServiceId, Timestamp};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

const SERVICES: usize = 1_000;
const CALLS: u64 = 1_000;

fn heartbeats() -> Vec<ServiceHeartbeat> {
    let node = NodeId::new("hub").expect("valid node id");
    (0..SERVICES)
        .map(|index| ServiceHeartbeat {
            service: ServiceId::new(format!("service-{index}")).expect("valid service id"),
            node: node.clone(),
            sent_at: Timestamp(0),
            interval_ms: 1_000,
            uptime_ms: 60_000,
            messages_handled: 1_000,
            errors: 1,
            latency_p50_us: Some(80),
            latency_p99_us: Some(900),
            mailbox_depth: 0,
            restarts: 0,
            process: Some(ProcessSample {
                cpu_percent: Some(12.0),
                resident_memory_bytes: 50_000_000,
            }),
        })
        .collect()
}

/// Measures one round of heartbeats from 1,000 known services into the detector, with a sweep.
fn ingestion(c: &mut Criterion) {
    let clock = ManualClock::new(Timestamp(0));
    let mut detector =
        Detector::new(HealthConfig::default(), clock.shared(), 1).expect("default config is valid");
    let beats = heartbeats();
    for beat in &beats {
        detector.ingest(beat.clone()).expect("heartbeat is valid");
    }

    let mut group = c.benchmark_group("health_ingest");
    group.throughput(Throughput::Elements(SERVICES as u64));
    group.bench_function("1000_services", |b| {
        b.iter_batched(
            || beats.clone(),
            |beats| {
                clock.advance(Duration::from_secs(1));
                for beat in beats {
                    detector.ingest(beat).expect("heartbeat is valid");
                }
                detector.sweep()
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

/// A service whose handler records each call in its stats, as a supervised service does.
struct Counter;

enum CounterMsg {
    Add(u64, RpcReplyPort<u64>),
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = (u64, ServiceStats);
    type Arguments = ServiceStats;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        stats: ServiceStats,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((0, stats))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        (total, stats): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let timer = stats.start_timer();
        match message {
            CounterMsg::Add(amount, reply) => {
                *total += amount;
                let _ = reply.send(*total);
            }
        }
        timer.finish(false);
        Ok(())
    }
}

/// Measures 1,000 sequential calls to the service, with stats collection off and on.
fn collection_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let stats = ServiceStats::new();
    let (actor, _join) = runtime
        .block_on(Actor::spawn(None, Counter, stats.clone()))
        .expect("counter actor starts");

    let mut group = c.benchmark_group("health_call_overhead");
    group.throughput(Throughput::Elements(CALLS));
    for (name, enabled) in [("collection_off", false), ("collection_on", true)] {
        stats.set_enabled(enabled);
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                for _ in 0..CALLS {
                    let _ = actor
                        .call(|reply| CounterMsg::Add(1, reply), None)
                        .await
                        .expect("counter replies");
                }
            });
        });
        // Drain the histogram as the heartbeat publisher would once per interval.
        let _ = stats.take_snapshot();
    }
    group.finish();
    actor.stop(None);
}

criterion_group!(benches, ingestion, collection_overhead);
criterion_main!(benches);
