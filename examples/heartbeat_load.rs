//! Load program: device heartbeats handled by a node's registry over MQTT, against the bridge's raw
//! delivery of the same messages in the same run.
//!
//! ```text
//! cargo run --release --example heartbeat_load -- --heartbeats 50000
//! ```
//!
//! Both sides run against one private Mosquitto on 127.0.0.1 with its default limits, and the same
//! bare rumqttc client publishes the same heartbeats at QoS 1 as fast as it can, going round
//! `--devices` device topics. The raw side is an MQTT bridge whose route on
//! `alicia/devices/+/heartbeat` decodes each envelope and hands it to an actor that only counts.
//! The node side is a whole node whose registry contains every device (each already online), and a
//! heartbeat counts when the registry has taken it. Each side runs `--rounds` times, alternating,
//! and the medians are compared.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alicia::actors::registry::{DeviceHeartbeat, DeviceSpec, RegistryClient};
use alicia::core::bus::{Bus, Delivery};
use alicia::core::{Codec, Envelope, SourceId, SystemClock, TopicFilter};
use alicia::mqtt_bridge::{BridgeConfig, BrokerUrl, MqttBridge, MqttVersion};
use alicia::{BrokerChoice, Node, NodeConfig};
use clap::Parser;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};

/// The ratio of node to raw rate that the registry aims for.
const TARGET_RATIO: f64 = 0.8;

/// How often a run reads its count: often enough to time a run of a second to about 1 %, rarely
/// enough that reading the registry's counters adds little load.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Measures heartbeat ingestion through a node's registry against the bridge's raw delivery.
#[derive(Debug, Parser)]
#[command(name = "heartbeat_load")]
struct Args {
    /// Heartbeats per run.
    #[arg(long, default_value_t = 50_000)]
    heartbeats: u64,

    /// Registered devices the heartbeats go round.
    #[arg(long, default_value_t = 1_000)]
    devices: usize,

    /// Runs per side; the medians are compared.
    #[arg(long, default_value_t = 3)]
    rounds: usize,

    /// Upper bound of each run, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.heartbeats == 0 || args.devices == 0 || args.rounds == 0 {
        eprintln!("error: --heartbeats, --devices and --rounds must be at least 1");
        return ExitCode::FAILURE;
    }
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let mosquitto = alicia_testkit::Mosquitto::start_with(alicia_testkit::DEFAULT_QUEUE_CONFIG)
        .map_err(|error| format!("starting Mosquitto failed: {error}"))?;
    let url = BrokerUrl::parse(&mosquitto.url()).map_err(|error| error.to_string())?;
    let heartbeats = encode_heartbeats(args)?;
    println!(
        "{} heartbeats per run at QoS 1 over {} devices, {} rounds, Mosquitto {} with default limits",
        args.heartbeats,
        args.devices,
        args.rounds,
        mosquitto.url()
    );

    let raw = RawSide::start(&url).await?;
    let dir = tempfile::tempdir()
        .map_err(|error| format!("creating a temporary directory failed: {error}"))?;
    let node = NodeSide::start(&url, dir.path(), args).await?;

    let mut raw_rates = Vec::new();
    let mut node_rates = Vec::new();
    for round in 1..=args.rounds {
        let raw_run = raw.run(&mosquitto, &heartbeats, args).await?;
        let node_run = node.run(&mosquitto, &heartbeats, args).await?;
        println!(
            "round {round}: raw bridge {:>8.0}/s ({} of {}), node registry {:>8.0}/s ({} of {})",
            raw_run.rate(),
            raw_run.count,
            args.heartbeats,
            node_run.rate(),
            node_run.count,
            args.heartbeats
        );
        raw_rates.push(raw_run.rate());
        node_rates.push(node_run.rate());
    }

    let raw_rate = median(&mut raw_rates);
    let node_rate = median(&mut node_rates);
    println!(
        "median: raw bridge {raw_rate:.0}/s, node registry {node_rate:.0}/s, ratio {:.2} (target {TARGET_RATIO})",
        node_rate / raw_rate
    );

    node.node
        .shutdown()
        .await
        .map_err(|error| error.to_string())?;
    raw.actor.stop(None);
    Ok(())
}

/// The encoded heartbeats of one run: topic and JSON envelope, going round the devices.
type Heartbeats = Vec<(String, Vec<u8>)>;

fn device_id(index: usize) -> String {
    format!("sensor-{index:06}")
}

fn encode_heartbeats(args: &Args) -> Result<Heartbeats, String> {
    let source = SourceId::new("heartbeat-load").map_err(|error| error.to_string())?;
    let clock = SystemClock::new();
    (0..args.heartbeats)
        .map(|index| {
            let device = device_id(index as usize % args.devices);
            let envelope = Envelope::new(source.clone(), DeviceHeartbeat::default(), &clock);
            let payload = Codec::Json
                .encode(&envelope)
                .map_err(|error| format!("encoding a heartbeat failed: {error}"))?;
            Ok((format!("alicia/devices/{device}/heartbeat"), payload))
        })
        .collect()
}

/// The outcome of one run.
struct Run {
    count: u64,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// Publishes every heartbeat at QoS 1 from a fresh bare rumqttc client, then disconnects.
async fn publish(port: u16, heartbeats: &Heartbeats) -> Result<(), String> {
    let id = format!("heartbeat-publisher-{}", std::process::id());
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);

    let total = heartbeats.len();
    let poller = tokio::spawn(async move { poll_until_acknowledged(&mut eventloop, total).await });
    for (topic, payload) in heartbeats {
        client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone())
            .await
            .map_err(|error| format!("publishing a heartbeat failed: {error}"))?;
    }
    let outcome = poller
        .await
        .map_err(|error| format!("the publisher's poller failed: {error}"))?;
    let _ = client.try_disconnect();
    outcome
}

/// Polls the publisher's event loop until the broker has acknowledged `total` publishes.
async fn poll_until_acknowledged(eventloop: &mut EventLoop, total: usize) -> Result<(), String> {
    let mut acknowledged = 0;
    while acknowledged < total {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acknowledged += 1,
            Ok(_) => {}
            Err(error) => return Err(format!("the publisher's connection failed: {error}")),
        }
    }
    Ok(())
}

/// Waits until `count` reaches `target`, or until it stops moving for 5 s, or until the timeout.
/// Returns the count and the time from `started` to its last change.
async fn wait_for(
    started: Instant,
    target: u64,
    timeout: Duration,
    count: impl AsyncFn() -> Result<u64, String>,
) -> Result<Run, String> {
    let deadline = started + timeout;
    let mut last = count().await?;
    let mut last_change = Instant::now();
    while last < target
        && Instant::now() < deadline
        && last_change.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(POLL_INTERVAL).await;
        let now = count().await?;
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    Ok(Run {
        count: last,
        elapsed: last_change.duration_since(started),
    })
}

/// A bridge with one route on the heartbeat topics, delivering to a counting actor.
struct RawSide {
    count: Arc<AtomicU64>,
    actor: ActorRef<Delivery<DeviceHeartbeat>>,
    _bus: Bus,
}

impl RawSide {
    async fn start(url: &BrokerUrl) -> Result<Self, String> {
        let mut config = BridgeConfig::new(
            url.clone(),
            "heartbeat-raw".parse().map_err(|_| "invalid client id")?,
        )
        .with_protocol(MqttVersion::V5);
        // The same route queue as a node's, so both sides can take a whole burst.
        config.route_queue = 65_536;
        let (bus, handle, _join) = MqttBridge::spawn(config)
            .await
            .map_err(|error| format!("starting the raw bridge failed: {error}"))?;
        if !handle.wait_connected(Duration::from_secs(10)).await {
            return Err("the raw bridge did not connect within 10 s".into());
        }
        let count = Arc::new(AtomicU64::new(0));
        let (actor, _) = Actor::spawn(None, Counter, Arc::clone(&count))
            .await
            .map_err(|error| format!("starting the counter failed: {error}"))?;
        let filter = TopicFilter::new("alicia/devices/+/heartbeat").map_err(|e| e.to_string())?;
        bus.subscribe(filter, &actor, |delivery| delivery)
            .await
            .map_err(|error| format!("subscribing the raw route failed: {error}"))?;
        Ok(Self {
            count,
            actor,
            _bus: bus,
        })
    }

    async fn run(
        &self,
        broker: &alicia_testkit::Mosquitto,
        heartbeats: &Heartbeats,
        args: &Args,
    ) -> Result<Run, String> {
        self.count.store(0, Ordering::Relaxed);
        let started = Instant::now();
        publish(broker.port(), heartbeats).await?;
        let count = Arc::clone(&self.count);
        wait_for(
            started,
            args.heartbeats,
            Duration::from_secs(args.timeout),
            async || Ok(count.load(Ordering::Relaxed)),
        )
        .await
    }
}

/// Counts deliveries, touching each body so the decode is not optimised away.
struct Counter;

impl Actor for Counter {
    type Msg = Delivery<DeviceHeartbeat>;
    type State = Arc<AtomicU64>;
    type Arguments = Arc<AtomicU64>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        count: Arc<AtomicU64>,
    ) -> Result<Arc<AtomicU64>, ActorProcessingErr> {
        Ok(count)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        delivery: Delivery<DeviceHeartbeat>,
        count: &mut Arc<AtomicU64>,
    ) -> Result<(), ActorProcessingErr> {
        std::hint::black_box(delivery.envelope.body().uptime_secs);
        count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A whole node on the broker, its registry holding every device of the run, each online.
struct NodeSide {
    node: Node,
    registry: RegistryClient,
}

impl NodeSide {
    async fn start(url: &BrokerUrl, dir: &std::path::Path, args: &Args) -> Result<Self, String> {
        let config = NodeConfig {
            node_id: "heartbeat-node".parse().map_err(|_| "invalid node id")?,
            data_dir: dir.to_path_buf(),
            broker: BrokerChoice::External {
                url: url.clone(),
                protocol: MqttVersion::V5,
            },
            tls: None,
        };
        let node = Node::builder(config)
            .start()
            .await
            .map_err(|error| format!("starting the node failed: {error}"))?;
        if let Some(bridge) = node.bridge()
            && !bridge.wait_connected(Duration::from_secs(10)).await
        {
            return Err("the node did not connect within 10 s".into());
        }
        let registry = node.registry().ok_or("the node runs no registry")?.clone();
        for index in 0..args.devices {
            let spec = DeviceSpec::new(device_id(index), "sensor", format!("Sensor {index}"));
            registry
                .register(spec)
                .await
                .map_err(|error| format!("registering device {index} failed: {error}"))?;
            // The first heartbeat turns the device online, which publishes an event and a
            // retained status; the measured runs then see steady-state heartbeats only.
            registry
                .heartbeat(&device_id(index).parse().map_err(|_| "invalid device id")?)
                .await
                .map_err(|error| format!("device {index}'s first heartbeat failed: {error}"))?;
        }
        Ok(Self { node, registry })
    }

    async fn run(
        &self,
        broker: &alicia_testkit::Mosquitto,
        heartbeats: &Heartbeats,
        args: &Args,
    ) -> Result<Run, String> {
        let before = self.heartbeats().await?;
        let started = Instant::now();
        publish(broker.port(), heartbeats).await?;
        let run = wait_for(
            started,
            before + args.heartbeats,
            Duration::from_secs(args.timeout),
            async || self.heartbeats().await,
        )
        .await?;
        Ok(Run {
            count: run.count - before,
            elapsed: run.elapsed,
        })
    }

    async fn heartbeats(&self) -> Result<u64, String> {
        let stats = self
            .registry
            .stats()
            .await
            .map_err(|error| format!("reading the registry's counters failed: {error}"))?;
        Ok(stats.heartbeats)
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
