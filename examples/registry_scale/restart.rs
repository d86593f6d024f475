//! Restart of a registry whose database already contains the devices. Each phase runs in a child
//! process of its own, so that its memory figures start from a process that has never held the
//! devices.
//!
//! - [`supervised`]: the registry under a supervisor, as a node runs it, with typed-client
//!   heartbeats and a query sent before it has started.
//! - [`node`]: a whole node on the in-process bus, with heartbeats published on its bus right
//!   after it starts, then query latency through the typed client and over the bus.
//! - [`node_over_mqtt`]: a whole node on a private Mosquitto, with heartbeats published over MQTT
//!   by a device client from before the node starts until after it serves.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alicia::actors::registry::{
    DeviceHeartbeat, DeviceQuery, RegistryActor, RegistryArgs, RegistryClient, RegistryConfig,
    RegistryError, RegistryStats,
};
use alicia::core::bus::{Bus, PublishOptions};
use alicia::core::{
    ChildId, ChildSpec, DeviceId, Envelope, SourceId, Store, Supervisor, SupervisorSpec,
    SystemClock, TopicName,
};
use alicia::{BrokerChoice, Node, NodeConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::devices::{self, COMMON_CAPABILITY};
use crate::measure::{Memory, load_average, millis};
use crate::queries;

/// Settings of a restart phase, from the command line.
pub struct RestartSettings<'a> {
    pub data_dir: &'a Path,
    pub devices: usize,
    pub heartbeats: usize,
    pub queries: usize,
    pub page_size: usize,
    pub deadline: Instant,
    pub request_timeout: Duration,
}

impl RestartSettings<'_> {
    fn registry_config(&self) -> RegistryConfig {
        let defaults = RegistryConfig::default();
        RegistryConfig {
            max_devices: self.devices.max(defaults.max_devices),
            ..defaults
        }
    }

    /// Returns the id of the `k`-th heartbeating device, spread evenly over all devices.
    fn heartbeat_device(&self, k: usize) -> Result<DeviceId, String> {
        let index = k * self.devices / self.heartbeats.max(1);
        DeviceId::new(devices::device_id(index)).map_err(|error| error.to_string())
    }

    fn first_page(&self) -> DeviceQuery {
        DeviceQuery {
            capability: Some(COMMON_CAPABILITY.to_owned()),
            limit: self.page_size,
            ..DeviceQuery::default()
        }
    }
}

/// Restarts the registry under a supervisor and reports the time to the first query reply,
/// whether every heartbeat sent during the start was counted, and memory by owner.
pub async fn supervised(settings: &RestartSettings<'_>) -> Result<(), String> {
    println!(
        "restart phase, supervised registry; load average {}",
        load_average()
    );
    let before = Memory::settled()?;
    let started = Instant::now();

    let clock = SystemClock::shared();
    let opened = Store::open(settings.data_dir, clock.clone())
        .map_err(|error| format!("opening the store failed: {error}"))?;
    if let Some(recovery) = opened.recovery {
        return Err(format!("the populated database was replaced: {recovery}"));
    }
    let store = opened.store;
    let store_opened = started.elapsed();
    let after_open = Memory::now()?;

    // The node's event publisher would take these; here they are counted and dropped.
    let (events, mut receiver) = mpsc::channel(4096);
    let drain = tokio::spawn(async move {
        let mut count = 0u64;
        while receiver.recv().await.is_some() {
            count += 1;
        }
        count
    });
    let config = settings.registry_config();
    let factory_store = store.clone();
    let child = ChildSpec::new(child_id("registry")?, move || {
        let args = RegistryArgs {
            store: factory_store.clone(),
            clock: clock.clone(),
            config: config.clone(),
            events: Some(events.clone()),
        };
        (RegistryActor, args)
    });
    let client = RegistryClient::supervised(child.handle());
    let root = SupervisorSpec::new(child_id("root")?).child(child);

    let supervisor_task = tokio::spawn(async move {
        let supervisor = Supervisor::start(root).await;
        (supervisor, Instant::now())
    });

    // The query is sent first, then every heartbeat, all before the registry has loaded.
    let first_query = {
        let (client, query, deadline) = (client.clone(), settings.first_page(), settings.deadline);
        tokio::spawn(async move { first_answer(&client, query, deadline).await })
    };
    let answered = Arc::new(AtomicBool::new(false));
    let typed = spawn_typed_heartbeats(settings, &client)?;
    let nowait = spawn_nowait_heartbeats(settings, &client, answered.clone())?;

    let (supervisor, registry_started) = supervisor_task
        .await
        .map_err(|error| format!("the supervisor task failed: {error}"))?;
    let supervisor =
        supervisor.map_err(|error| format!("the registry failed to start: {error}"))?;
    let (first_answered, unavailable) = first_query
        .await
        .map_err(|error| format!("the query task failed: {error}"))??;
    answered.store(true, Ordering::Relaxed);

    let mut typed_ok = 0u64;
    let mut typed_errors = Vec::new();
    for task in typed {
        match task.await {
            Ok(Ok(())) => typed_ok += 1,
            Ok(Err(error)) => typed_errors.push(error.to_string()),
            Err(error) => typed_errors.push(format!("the heartbeat task failed: {error}")),
        }
    }
    let heartbeats_answered = started.elapsed();
    let (nowait_accepted, nowait_rejected) = nowait
        .await
        .map_err(|error| format!("the heartbeat task failed: {error}"))?;
    let stats = settle_stats(&client, typed_ok + nowait_accepted, settings.deadline).await?;

    println!(
        "  store open (with integrity check): {:.0} ms",
        millis(store_opened)
    );
    println!(
        "  registry started (devices loaded): {:.0} ms",
        millis(registry_started.duration_since(started))
    );
    println!(
        "  first query answered:              {:.0} ms ({unavailable} calls timed out waiting for the registry first)",
        millis(first_answered.duration_since(started))
    );
    println!(
        "  all typed heartbeats answered:     {:.0} ms",
        millis(heartbeats_answered)
    );
    print_heartbeats(
        typed_ok,
        &typed_errors,
        nowait_accepted,
        nowait_rejected,
        &stats,
    );

    let loaded = Memory::now()?;
    let settled = Memory::settled()?;
    supervisor
        .stop()
        .await
        .map_err(|error| format!("stopping the registry failed: {error}"))?;
    let status_events = drain
        .await
        .map_err(|error| format!("the event task failed: {error}"))?;
    let stopped = Memory::settled()?;
    drop(store);
    let closed = Memory::settled()?;

    let devices = settings.devices;
    println!("  status events sent at start and after heartbeats: {status_events}");
    println!(
        "  memory after restart, whole process: {}",
        loaded.since(&before).per_device(devices)
    );
    println!(
        "    heap right after the store opened: {}",
        after_open.since(&before).per_device(devices)
    );
    println!(
        "    after malloc_trim:                 {}",
        settled.since(&before).per_device(devices)
    );
    println!("    by owner, each after malloc_trim:");
    println!(
        "      registry actor state, freed at stop: {}",
        settled.since(&stopped).per_device(devices)
    );
    println!(
        "      store, freed by closing it:          {}",
        stopped.since(&closed).per_device(devices)
    );
    Ok(())
}

/// Calls `query` until the registry replies, and returns when it did and how many calls gave up
/// waiting for a running registry first.
async fn first_answer(
    client: &RegistryClient,
    query: DeviceQuery,
    deadline: Instant,
) -> Result<(Instant, u64), String> {
    let mut unavailable = 0;
    loop {
        match client.query(query.clone()).await {
            Ok(_) => return Ok((Instant::now(), unavailable)),
            Err(RegistryError::Unavailable { .. }) if Instant::now() < deadline => {
                unavailable += 1;
            }
            Err(error) => return Err(format!("the first query failed: {error}")),
        }
    }
}

/// Starts one task per heartbeat, each a typed call, so that all of them are sent at once.
fn spawn_typed_heartbeats(
    settings: &RestartSettings<'_>,
    client: &RegistryClient,
) -> Result<Vec<JoinHandle<Result<(), RegistryError>>>, String> {
    let mut tasks = Vec::with_capacity(settings.heartbeats);
    for k in 0..settings.heartbeats {
        let (client, id) = (client.clone(), settings.heartbeat_device(k)?);
        tasks.push(tokio::spawn(async move {
            client.heartbeat(&id).await.map(|_| ())
        }));
    }
    Ok(tasks)
}

/// Tries `heartbeat_nowait`, the path of MQTT heartbeats, once a millisecond until the first
/// query reply, at most `settings.heartbeats` times. Returns the accepted and rejected
/// counts.
fn spawn_nowait_heartbeats(
    settings: &RestartSettings<'_>,
    client: &RegistryClient,
    answered: Arc<AtomicBool>,
) -> Result<JoinHandle<(u64, u64)>, String> {
    let ids: Vec<DeviceId> = (0..settings.heartbeats)
        .map(|k| settings.heartbeat_device(k))
        .collect::<Result<_, _>>()?;
    let (client, deadline) = (client.clone(), settings.deadline);
    Ok(tokio::spawn(async move {
        let (mut accepted, mut rejected) = (0, 0);
        for id in ids {
            if answered.load(Ordering::Relaxed) || Instant::now() >= deadline {
                break;
            }
            match client.heartbeat_nowait(&id) {
                Ok(()) => accepted += 1,
                Err(_) => rejected += 1,
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (accepted, rejected)
    }))
}

/// Reads the registry's counters until they count `expected` heartbeats or `deadline` passes.
async fn settle_stats(
    client: &RegistryClient,
    expected: u64,
    deadline: Instant,
) -> Result<RegistryStats, String> {
    loop {
        let stats = client
            .stats()
            .await
            .map_err(|error| format!("reading the registry's counters failed: {error}"))?;
        if stats.heartbeats + stats.rejected_heartbeats >= expected || Instant::now() >= deadline {
            return Ok(stats);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn print_heartbeats(
    typed_ok: u64,
    typed_errors: &[String],
    nowait_accepted: u64,
    nowait_rejected: u64,
    stats: &RegistryStats,
) {
    println!(
        "  heartbeats sent during the start: typed {typed_ok} answered, {} failed; \
         heartbeat_nowait {nowait_accepted} accepted, {nowait_rejected} rejected",
        typed_errors.len()
    );
    if let Some(first) = typed_errors.first() {
        println!("    first typed heartbeat error: {first}");
    }
    let sent = typed_ok + nowait_accepted;
    let verdict = if stats.heartbeats == sent && stats.rejected_heartbeats == 0 {
        "every accepted heartbeat was counted"
    } else {
        "MISMATCH: accepted heartbeats and counted ones differ"
    };
    println!(
        "  registry stats: heartbeats {}, rejected_heartbeats {} ({verdict})",
        stats.heartbeats, stats.rejected_heartbeats
    );
}

/// Starts a node on the in-process bus over the populated data directory. Reports the time to
/// its first query reply, whether the heartbeats published during its start are all counted,
/// and query latency through the typed client and over the bus.
pub async fn node(settings: &RestartSettings<'_>) -> Result<(), String> {
    println!(
        "restart phase, node on the in-process bus; load average {}",
        load_average()
    );
    let before = Memory::settled()?;
    let started = Instant::now();
    let config = NodeConfig {
        node_id: "scale-node".parse().map_err(|_| "invalid node id")?,
        data_dir: settings.data_dir.to_path_buf(),
        broker: BrokerChoice::InProcess,
        tls: None,
    };
    let node = Node::builder(config)
        .registry(settings.registry_config())
        .start()
        .await
        .map_err(|error| format!("starting the node failed: {error}"))?;
    let node_started = started.elapsed();
    let bus = node.bus().clone();
    let registry = node
        .registry()
        .cloned()
        .ok_or("the node runs no registry")?;

    let publisher = spawn_bus_heartbeats(settings, &bus)?;
    let typed = first_answer(&registry, settings.first_page(), settings.deadline).await?;
    let typed_first = typed.0.duration_since(started);
    let bus_first = {
        let case = first_page_case(settings);
        queries::over_bus(&bus, &case, settings.deadline, settings.request_timeout).await?;
        started.elapsed()
    };
    let (published, publish_errors) = publisher
        .await
        .map_err(|error| format!("the heartbeat task failed: {error}"))?;
    let stats = settle_stats(&registry, published, settings.deadline).await?;
    let heartbeats_counted = started.elapsed();

    println!(
        "  node started:                      {:.0} ms",
        millis(node_started)
    );
    println!(
        "  first typed query answered:        {:.0} ms",
        millis(typed_first)
    );
    println!(
        "  first bus query answered:          {:.0} ms",
        millis(bus_first)
    );
    println!(
        "  heartbeats published on the bus right after the start: {published} ({publish_errors} failed to publish), counted by {:.0} ms",
        millis(heartbeats_counted)
    );
    let verdict = if stats.heartbeats == published && stats.rejected_heartbeats == 0 {
        "every published heartbeat was counted"
    } else {
        "MISMATCH: published heartbeats and counted ones differ"
    };
    println!(
        "  registry stats: heartbeats {}, rejected_heartbeats {} ({verdict})",
        stats.heartbeats, stats.rejected_heartbeats
    );
    println!(
        "  memory after start, whole node: {}",
        Memory::now()?.since(&before).per_device(settings.devices)
    );

    for case in queries::cases(settings.devices, settings.queries, settings.page_size) {
        let typed = queries::typed(&registry, &case, settings.deadline).await?;
        let over_bus =
            queries::over_bus(&bus, &case, settings.deadline, settings.request_timeout).await?;
        println!("  query, {}", case.label);
        if let Some(typed) = typed {
            println!("    node, typed client:     {typed}");
        }
        if let Some(over_bus) = over_bus {
            println!("    node, in-process bus:   {over_bus}");
        }
    }

    node.shutdown()
        .await
        .map_err(|error| format!("stopping the node failed: {error}"))
}

/// Builds a one-query case for the first bus query after the start.
fn first_page_case(settings: &RestartSettings<'_>) -> queries::QueryCase {
    queries::QueryCase {
        label: "first bus query".to_owned(),
        capability: COMMON_CAPABILITY,
        cursors: vec![None],
        limit: settings.page_size,
    }
}

/// Publishes `settings.heartbeats` device heartbeats on `bus`, as devices do over MQTT, and
/// returns how many were published and how many failed.
fn spawn_bus_heartbeats(
    settings: &RestartSettings<'_>,
    bus: &Bus,
) -> Result<JoinHandle<(u64, u64)>, String> {
    let mut messages = Vec::with_capacity(settings.heartbeats);
    for k in 0..settings.heartbeats {
        let id = settings.heartbeat_device(k)?;
        let topic = TopicName::new(format!("alicia/devices/{id}/heartbeat"))
            .map_err(|error| error.to_string())?;
        messages.push((SourceId::from(id), topic));
    }
    let (bus, deadline) = (bus.clone(), settings.deadline);
    Ok(tokio::spawn(async move {
        let (mut published, mut failed) = (0, 0);
        for (source, topic) in messages {
            if Instant::now() >= deadline {
                break;
            }
            let envelope = Envelope::new(source, DeviceHeartbeat::default(), &**bus.clock());
            match bus
                .publish(&topic, &envelope, PublishOptions::telemetry())
                .await
            {
                Ok(()) => published += 1,
                Err(_) => failed += 1,
            }
        }
        (published, failed)
    }))
}

fn child_id(value: &str) -> Result<ChildId, String> {
    ChildId::new(value).map_err(|error| error.to_string())
}

/// The wait after `Node::start` returns before heartbeats count as published after the start.
const ACK_MARGIN: Duration = Duration::from_millis(20);

/// Restarts a node on a private Mosquitto with default limits over the populated data directory.
/// Meanwhile a plain MQTT client publishes `settings.heartbeats` heartbeats at QoS 1, paced over
/// about two seconds, from while the node is down until after it serves. The broker keeps the
/// node's session and queues the heartbeats that arrive while the node is down, and the bridge
/// keeps back what arrives before the routes subscribe. Every heartbeat must be counted.
pub async fn node_over_mqtt(settings: &RestartSettings<'_>) -> Result<(), String> {
    println!(
        "restart phase, node on Mosquitto; load average {}",
        load_average()
    );
    let broker = alicia_testkit::Mosquitto::start_with(alicia_testkit::DEFAULT_QUEUE_CONFIG)
        .map_err(|error| format!("starting Mosquitto failed: {error}"))?;
    let url =
        alicia::mqtt_bridge::BrokerUrl::parse(&broker.url()).map_err(|error| error.to_string())?;

    let config = NodeConfig {
        node_id: "scale-node".parse().map_err(|_| "invalid node id")?,
        data_dir: settings.data_dir.to_path_buf(),
        broker: BrokerChoice::External {
            url,
            protocol: alicia::mqtt_bridge::MqttVersion::V5,
        },
        tls: None,
    };
    // The node has run on this broker before, so the broker keeps its session while it is down.
    let earlier = Node::builder(config.clone())
        .registry(settings.registry_config())
        .start()
        .await
        .map_err(|error| format!("starting the node the first time failed: {error}"))?;
    earlier
        .shutdown()
        .await
        .map_err(|error| format!("stopping the node the first time failed: {error}"))?;

    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let publisher = spawn_mqtt_heartbeats(settings, broker.port(), Arc::clone(&published))?;
    // Heartbeats go on while the node is down: about 500 of them, under the 1000 messages that
    // Mosquitto queues by default for a client that is away.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let node = Node::builder(config)
        .registry(settings.registry_config())
        .start()
        .await
        .map_err(|error| format!("starting the node failed: {error}"))?;
    let node_started = started.elapsed();
    // A PUBACK takes well under a millisecond on loopback, so a heartbeat acknowledged after this
    // margin reached the broker after `Node::start` returned, when the routes were subscribed.
    tokio::time::sleep(ACK_MARGIN).await;
    let before_start = published.load(Ordering::Relaxed);
    let registry = node
        .registry()
        .cloned()
        .ok_or("the node runs no registry")?;
    let typed = first_answer(&registry, settings.first_page(), settings.deadline).await?;
    let typed_first = typed.0.duration_since(started);

    let total = publisher
        .await
        .map_err(|error| format!("the heartbeat client failed: {error}"))??;
    let after_start = total - before_start;
    settle_stats(&registry, total, settings.deadline).await?;
    // Let any heartbeat still on its way land before the final count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = registry
        .stats()
        .await
        .map_err(|error| format!("reading the registry's counters failed: {error}"))?;

    println!(
        "  node started:                      {:.0} ms",
        millis(node_started)
    );
    println!(
        "  first typed query answered:        {:.0} ms",
        millis(typed_first)
    );
    println!(
        "  heartbeats acknowledged by the broker: {total} in all, {} while the node was down or starting (up to {} ms after `Node::start` returned), {after_start} later",
        total - after_start,
        ACK_MARGIN.as_millis()
    );
    let verdict = if stats.heartbeats == total && stats.rejected_heartbeats == 0 {
        "every heartbeat was counted"
    } else {
        "MISMATCH: heartbeats counted and published differ"
    };
    println!(
        "  registry stats: heartbeats {}, rejected_heartbeats {} ({verdict})",
        stats.heartbeats, stats.rejected_heartbeats
    );
    let bridge = node
        .bridge()
        .map(|bridge| bridge.stats())
        .unwrap_or_default();
    println!(
        "  bridge: {} messages held at start until the routes subscribed, {} dropped from the hold",
        bridge.held_at_start, bridge.start_hold_overflow
    );

    node.shutdown()
        .await
        .map_err(|error| format!("stopping the node failed: {error}"))
}

/// Publishes `settings.heartbeats` heartbeats at QoS 1 from a plain rumqttc client, five per
/// millisecond at most, and counts in `published` those the broker has acknowledged.
fn spawn_mqtt_heartbeats(
    settings: &RestartSettings<'_>,
    port: u16,
    published: Arc<std::sync::atomic::AtomicU64>,
) -> Result<JoinHandle<Result<u64, String>>, String> {
    let clock = SystemClock::new();
    let mut messages = Vec::with_capacity(settings.heartbeats);
    for k in 0..settings.heartbeats {
        let id = settings.heartbeat_device(k)?;
        let envelope = Envelope::new(
            SourceId::from(id.clone()),
            DeviceHeartbeat::default(),
            &clock,
        );
        let payload = alicia::core::Codec::Json
            .encode(&envelope)
            .map_err(|error| format!("encoding a heartbeat failed: {error}"))?;
        messages.push((format!("alicia/devices/{id}/heartbeat"), payload));
    }
    let deadline = settings.deadline;
    Ok(tokio::spawn(async move {
        let mut options = rumqttc::MqttOptions::new("scale-device", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
        let total = messages.len() as u64;
        let counter = Arc::clone(&published);
        let poller = tokio::spawn(async move {
            while counter.load(Ordering::Relaxed) < total && Instant::now() < deadline {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        return Err(format!("the heartbeat client's connection failed: {error}"));
                    }
                }
            }
            Ok(())
        });
        for chunk in messages.chunks(5) {
            if Instant::now() >= deadline {
                break;
            }
            for (topic, payload) in chunk {
                client
                    .publish(
                        topic.as_str(),
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        payload.clone(),
                    )
                    .await
                    .map_err(|error| format!("publishing a heartbeat failed: {error}"))?;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        poller
            .await
            .map_err(|error| format!("the heartbeat client's poller failed: {error}"))??;
        let _ = client.try_disconnect();
        Ok(published.load(Ordering::Relaxed))
    }))
}
