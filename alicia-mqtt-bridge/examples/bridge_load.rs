//! Load program: the MQTT bridge against a bare rumqttc client on the same broker, in one run.
//!
//! ```text
//! cargo run --release -p alicia-mqtt-bridge --example bridge_load
//! ```
//!
//! For each broker (the embedded rumqttd and a private Mosquitto from `alicia-testkit`, both on
//! 127.0.0.1) it measures:
//!
//! - delivery throughput at QoS 0 and QoS 1: a rumqttc publisher sends `MESSAGES` envelopes with a
//!   64-byte body. A bare rumqttc subscriber receives them in one run. In the other, a bridge
//!   route decodes each into `Envelope<Body>` and casts it to an actor;
//! - the request/response round trip: `ROUND_TRIPS` sequential requests between two bare rumqttc
//!   clients, and between two bridges through `Bus::request` and `Bus::respond`.
//!
//! Each measurement stops after its message count or `RUN_TIMEOUT`, whichever comes first, and
//! prints how many messages arrived.

use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alicia_core::bus::{Bus, Delivery};
use alicia_core::clock::SystemClock;
use alicia_core::codec::Codec;
use alicia_core::envelope::{Envelope, SourceId};
use alicia_core::id::NodeId;
use alicia_core::topic::{TopicFilter, TopicName};
use alicia_mqtt_bridge::BrokerUrl;
use alicia_mqtt_bridge::bridge::{BridgeConfig, BridgeHandle, MqttBridge, MqttVersion};
use alicia_mqtt_bridge::broker::{EmbeddedBroker, EmbeddedBrokerConfig};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

/// Messages per throughput run.
const MESSAGES: u64 = 50_000;

/// Throughput runs per broker and QoS; bare and bridge runs alternate, and the median counts.
const ROUNDS: usize = 5;

/// Sequential requests per round-trip run.
const ROUND_TRIPS: usize = 1_000;

/// Upper bound of one run.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a throughput run waits after the last arrival before it gives up on lost messages.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    data: String,
}

fn body() -> Body {
    Body {
        data: "x".repeat(64),
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let embedded = EmbeddedBroker::start(EmbeddedBrokerConfig::with_listen(listen))?;
    let mosquitto = alicia_testkit::Mosquitto::start()?;

    let payload = Codec::Json.encode(&Envelope::new(
        SourceId::new("bench")?,
        body(),
        &SystemClock::new(),
    ))?;
    println!(
        "body 64 bytes, envelope payload {} bytes, {MESSAGES} messages per throughput run, {ROUNDS} runs, {ROUND_TRIPS} round trips",
        payload.len()
    );

    // The bare client speaks MQTT 3.1.1; the last row shows the bridge on MQTT 5, which is what a
    // node speaks to an external broker by default.
    let brokers = [
        (
            "embedded rumqttd",
            embedded.local_addr().port(),
            MqttVersion::V311,
        ),
        ("mosquitto", mosquitto.port(), MqttVersion::V311),
        ("mosquitto, MQTT 5", mosquitto.port(), MqttVersion::V5),
    ];
    for (name, port, version) in brokers {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let mut bare_rates = Vec::new();
            let mut bridge_rates = Vec::new();
            for _ in 0..ROUNDS {
                let bare = bare_throughput(port, qos, &payload).await?;
                let bridge = bridge_throughput(port, version, qos, &payload).await?;
                if bare.received < MESSAGES || bridge.received < MESSAGES {
                    println!(
                        "  {name} QoS {}: bare received {}, bridge received {} of {MESSAGES}",
                        qos as u8, bare.received, bridge.received
                    );
                }
                bare_rates.push(bare.rate());
                bridge_rates.push(bridge.rate());
            }
            let bare = median(&mut bare_rates);
            let bridge = median(&mut bridge_rates);
            println!(
                "{name:18} QoS {} throughput (median of {ROUNDS}): bare {bare:>8.0} msg/s, bridge {bridge:>8.0} msg/s, ratio {:.2}",
                qos as u8,
                bridge / bare
            );
        }

        let bare = bare_round_trips(port).await?;
        let bridge = bridge_round_trips(port, version).await?;
        println!(
            "{name:18} round trip p50: bare {:>7.1} µs, bridge {:>7.1} µs, ratio {:.2} (p99 bare {:.1} µs, bridge {:.1} µs)",
            micros(percentile(&bare, 0.5)),
            micros(percentile(&bridge, 0.5)),
            micros(percentile(&bridge, 0.5)) / micros(percentile(&bare, 0.5)),
            micros(percentile(&bare, 0.99)),
            micros(percentile(&bridge, 0.99)),
        );
    }

    embedded.shutdown()?;
    Ok(())
}

struct Throughput {
    received: u64,
    elapsed: Duration,
}

impl Throughput {
    fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64()
    }
}

/// Connects a rumqttc client and waits for its CONNACK.
async fn connect(port: u16, id: &str) -> Result<(AsyncClient, EventLoop), Error> {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await? {
            return Ok((client, eventloop));
        }
    }
}

/// Polls an event loop in a task, sending every received publish to the returned channel.
fn spawn_poller(mut eventloop: EventLoop) -> mpsc::UnboundedReceiver<rumqttc::Publish> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(publish)) = event
                && sender.send(publish).is_err()
            {
                break;
            }
        }
    });
    receiver
}

/// Subscribes and polls until the SUBACK, so that no message is published before it.
async fn subscribe(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    filter: &str,
    qos: QoS,
) -> Result<(), Error> {
    client.subscribe(filter, qos).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            return Ok(());
        }
    }
}

/// Publishes `MESSAGES` copies of `payload` from a fresh rumqttc client.
async fn publish_burst(
    port: u16,
    id: &str,
    topic: &str,
    qos: QoS,
    payload: &[u8],
) -> Result<(), Error> {
    let (client, eventloop) = connect(port, id).await?;
    let _ = spawn_poller(eventloop);
    for _ in 0..MESSAGES {
        client.publish(topic, qos, false, payload.to_vec()).await?;
    }
    Ok(())
}

async fn bare_throughput(port: u16, qos: QoS, payload: &[u8]) -> Result<Throughput, Error> {
    let topic = format!("alicia/devices/bare-{}/state", qos as u8);
    let (client, mut eventloop) = connect(port, &unique("bare-sub-")).await?;
    // The bridge subscribes every route at QoS 1, so the bare subscriber does too.
    subscribe(&client, &mut eventloop, &topic, QoS::AtLeastOnce).await?;
    let mut received_rx = spawn_poller(eventloop);

    let started = Instant::now();
    publish_burst(port, &unique("bare-pub-"), &topic, qos, payload).await?;

    let mut received = 0;
    let mut last = started;
    while received < MESSAGES && started.elapsed() < RUN_TIMEOUT {
        match tokio::time::timeout(IDLE_TIMEOUT, received_rx.recv()).await {
            Ok(Some(_)) => {
                received += 1;
                last = Instant::now();
            }
            _ => break,
        }
    }
    client.disconnect().await?;
    Ok(Throughput {
        received,
        elapsed: last - started,
    })
}

/// Counts deliveries and wakes the benchmark at the last one.
struct Counter(PhantomData<fn() -> Body>);

struct CounterState {
    count: Arc<AtomicU64>,
    done: Arc<Notify>,
    /// When the run started, and nanoseconds from then to the latest delivery.
    started: Instant,
    last_arrival: Arc<AtomicU64>,
}

impl Actor for Counter {
    type Msg = Delivery<Body>;
    type State = CounterState;
    type Arguments = CounterState;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: CounterState,
    ) -> Result<CounterState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        delivery: Delivery<Body>,
        state: &mut CounterState,
    ) -> Result<(), ActorProcessingErr> {
        std::hint::black_box(delivery.envelope.body().data.len());
        let count = state.count.fetch_add(1, Ordering::Relaxed) + 1;
        let since_start = state.started.elapsed().as_nanos() as u64;
        state.last_arrival.store(since_start, Ordering::Relaxed);
        if count == MESSAGES {
            state.done.notify_one();
        }
        Ok(())
    }
}

fn bridge_config(port: u16, version: MqttVersion, node: &str) -> Result<BridgeConfig, Error> {
    let broker = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}"))?;
    let mut config = BridgeConfig::new(broker, NodeId::new(node)?).with_protocol(version);
    config.route_queue = MESSAGES as usize;
    Ok(config)
}

async fn start_bridge(
    port: u16,
    version: MqttVersion,
    node: &str,
) -> Result<(Bus, BridgeHandle), Error> {
    let (bus, handle, _) = MqttBridge::spawn(bridge_config(port, version, node)?).await?;
    if !handle.wait_connected(Duration::from_secs(10)).await {
        return Err(format!("bridge {node} did not connect to 127.0.0.1:{port}").into());
    }
    Ok((bus, handle))
}

async fn bridge_throughput(
    port: u16,
    version: MqttVersion,
    qos: QoS,
    payload: &[u8],
) -> Result<Throughput, Error> {
    let topic = format!("alicia/devices/bridge-{}/state", qos as u8);
    let (bus, handle) = start_bridge(port, version, &unique("bench-bridge-")).await?;
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let last_arrival = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let state = CounterState {
        count: Arc::clone(&count),
        done: Arc::clone(&done),
        started,
        last_arrival: Arc::clone(&last_arrival),
    };
    let (counter, _) = Actor::spawn(None, Counter(PhantomData), state).await?;
    bus.subscribe(TopicFilter::new(topic.clone())?, &counter, |delivery| {
        delivery
    })
    .await?;

    let started_publishing = started.elapsed();
    publish_burst(port, &unique("bridge-pub-"), &topic, qos, payload).await?;

    // Wait for the last delivery, or for arrivals to stop.
    let mut seen = 0;
    while count.load(Ordering::Relaxed) < MESSAGES && started.elapsed() < RUN_TIMEOUT {
        let _ = tokio::time::timeout(IDLE_TIMEOUT, done.notified()).await;
        let now = count.load(Ordering::Relaxed);
        if now == seen {
            break;
        }
        seen = now;
    }
    let elapsed = Duration::from_nanos(last_arrival.load(Ordering::Relaxed))
        .saturating_sub(started_publishing);
    let stats = handle.stats();
    if stats.messages_in < MESSAGES || stats.route_overflow > 0 {
        println!(
            "  bridge QoS {}: {} MQTT messages in, {} dropped by the full route queue",
            qos as u8, stats.messages_in, stats.route_overflow
        );
    }
    if let Some(actor) = bus.actor() {
        actor.stop(None);
    }
    counter.stop(None);
    Ok(Throughput {
        received: count.load(Ordering::Relaxed),
        elapsed,
    })
}

async fn bare_round_trips(port: u16) -> Result<Vec<Duration>, Error> {
    let request_topic = "alicia/echo/request/bare";
    let reply_topic = "alicia/reply/bare-requester/1";

    let (responder, mut responder_loop) = connect(port, "bare-responder").await?;
    subscribe(
        &responder,
        &mut responder_loop,
        request_topic,
        QoS::AtLeastOnce,
    )
    .await?;
    let mut requests = spawn_poller(responder_loop);
    tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            let reply = request.payload.to_vec();
            if responder
                .publish(reply_topic, QoS::AtLeastOnce, false, reply)
                .await
                .is_err()
            {
                break;
            }
        }
    });

    let (requester, mut requester_loop) = connect(port, "bare-requester").await?;
    subscribe(
        &requester,
        &mut requester_loop,
        reply_topic,
        QoS::AtLeastOnce,
    )
    .await?;
    let mut replies = spawn_poller(requester_loop);

    let payload = Codec::Json.encode(&Envelope::new(
        SourceId::new("bare-requester")?,
        body(),
        &SystemClock::new(),
    ))?;
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    let deadline = Instant::now() + RUN_TIMEOUT;
    for _ in 0..ROUND_TRIPS {
        if Instant::now() > deadline {
            break;
        }
        let started = Instant::now();
        requester
            .publish(request_topic, QoS::AtLeastOnce, false, payload.clone())
            .await?;
        tokio::time::timeout(Duration::from_secs(5), replies.recv())
            .await?
            .ok_or("bare replies stopped")?;
        times.push(started.elapsed());
    }
    Ok(times)
}

/// Replies to every request with its own body.
struct Echo;

impl Actor for Echo {
    type Msg = Delivery<Body>;
    type State = Bus;
    type Arguments = Bus;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        bus: Bus,
    ) -> Result<Bus, ActorProcessingErr> {
        Ok(bus)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        request: Delivery<Body>,
        bus: &mut Bus,
    ) -> Result<(), ActorProcessingErr> {
        let body = request.envelope.body().clone();
        bus.respond(&request, Ok(body)).await?;
        Ok(())
    }
}

async fn bridge_round_trips(port: u16, version: MqttVersion) -> Result<Vec<Duration>, Error> {
    let request_topic = TopicName::new("alicia/echo/request/bridge")?;
    let (responder, _) = start_bridge(port, version, "bench-responder").await?;
    let (echo, _) = Actor::spawn(None, Echo, responder.clone()).await?;
    responder
        .subscribe(
            TopicFilter::from(request_topic.clone()),
            &echo,
            |delivery| delivery,
        )
        .await?;

    let (requester, _) = start_bridge(port, version, "bench-requester").await?;
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    let deadline = Instant::now() + RUN_TIMEOUT;
    for _ in 0..ROUND_TRIPS {
        if Instant::now() > deadline {
            break;
        }
        let request = Envelope::new(requester.client().clone(), body(), &**requester.clock());
        let started = Instant::now();
        let _: Envelope<Body> = requester
            .request(&request_topic, request, Duration::from_secs(5))
            .await?;
        times.push(started.elapsed());
    }

    if let Some(actor) = requester.actor() {
        actor.stop(None);
    }
    if let Some(actor) = responder.actor() {
        actor.stop(None);
    }
    echo.stop(None);
    Ok(times)
}

fn percentile(times: &[Duration], fraction: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Returns `prefix` followed by a number not used before in this run, for MQTT client ids.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
