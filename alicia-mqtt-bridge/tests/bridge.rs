//! The MQTT bridge against real brokers on 127.0.0.1: the embedded rumqttd and a private
//! Mosquitto per test.
#![cfg(feature = "embedded-broker")]

use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alicia_core::bus::{
    Action, Authorization, AuthorizationRequest, Authorizer, Bus, BusError, Delivery,
    OutboundMessage, PublishOptions,
};
use alicia_core::clock::SystemClock;
use alicia_core::codec::Codec;
use alicia_core::envelope::{Envelope, SourceId};
use alicia_core::id::NodeId;
use alicia_core::topic::{TopicFilter, TopicName};
use alicia_mqtt_bridge::BrokerUrl;
use alicia_mqtt_bridge::bridge::{
    Backoff, BridgeConfig, BridgeHandle, MqttBridge, MqttVersion, OutboxCapacity,
};
use alicia_mqtt_bridge::broker::{EmbeddedBroker, EmbeddedBrokerConfig};
use alicia_testkit::Mosquitto;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Upper bound of any single wait, so a broken bridge fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reading {
    value: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ping {
    text: String,
}

fn topic(name: &str) -> TopicName {
    TopicName::new(name).expect("test topics are valid")
}

fn filter(name: &str) -> TopicFilter {
    TopicFilter::new(name).expect("test filters are valid")
}

fn embedded() -> EmbeddedBroker {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    EmbeddedBroker::start(EmbeddedBrokerConfig::with_listen(listen))
        .expect("embedded broker starts on 127.0.0.1")
}

fn embedded_url(broker: &EmbeddedBroker) -> String {
    format!("mqtt://{}", broker.local_addr())
}

fn mosquitto() -> Mosquitto {
    Mosquitto::start().expect("mosquitto starts (run scripts/install-test-deps.sh)")
}

/// Settings for `node` on Mosquitto at `url`: MQTT 5, with a fast backoff.
fn config(url: &str, node: &str) -> BridgeConfig {
    let broker = BrokerUrl::parse(url).expect("test broker URLs are valid");
    let node = NodeId::new(node).expect("test node ids are valid");
    BridgeConfig::new(broker, node).with_backoff(Backoff {
        min: Duration::from_millis(50),
        max: Duration::from_millis(400),
    })
}

/// Settings for `node` on the embedded broker, which speaks MQTT 3.1.1 only.
fn embedded_config(broker: &EmbeddedBroker, node: &str) -> BridgeConfig {
    config(&embedded_url(broker), node).with_protocol(MqttVersion::V311)
}

async fn start(config: BridgeConfig) -> (Bus, BridgeHandle) {
    let (bus, handle, _join) = MqttBridge::spawn(config).await.expect("bridge starts");
    (bus, handle)
}

async fn start_connected(config: BridgeConfig) -> (Bus, BridgeHandle) {
    let (bus, handle) = start(config).await;
    assert!(handle.wait_connected(WAIT).await, "bridge did not connect");
    (bus, handle)
}

/// An actor that forwards every delivery to a channel.
struct Forward<T>(PhantomData<fn() -> T>);

impl<T: Send + Sync + 'static> Actor for Forward<T> {
    type Msg = Delivery<T>;
    type State = mpsc::UnboundedSender<Delivery<T>>;
    type Arguments = mpsc::UnboundedSender<Delivery<T>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        sender: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(sender)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        delivery: Delivery<T>,
        sender: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = sender.send(delivery);
        Ok(())
    }
}

/// Subscribes a forwarding actor to `pattern` and returns the route id and the receiving end.
async fn collect<T>(
    bus: &Bus,
    pattern: &str,
) -> (
    alicia_core::bus::RouteId,
    mpsc::UnboundedReceiver<Delivery<T>>,
)
where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (sender, receiver) = mpsc::unbounded_channel();
    let (actor, _) = Actor::spawn(None, Forward::<T>(PhantomData), sender)
        .await
        .expect("forwarding actor starts");
    let route = bus
        .subscribe(filter(pattern), &actor, |delivery| delivery)
        .await
        .expect("route subscribes");
    (route, receiver)
}

/// An actor that replies to every `Ping` request with the same text in upper case.
struct Echo;

impl Actor for Echo {
    type Msg = Delivery<Ping>;
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
        request: Delivery<Ping>,
        bus: &mut Bus,
    ) -> Result<(), ActorProcessingErr> {
        let text = request.envelope.body().text.to_uppercase();
        bus.respond(&request, Ok(Ping { text })).await?;
        Ok(())
    }
}

async fn serve_echo(bus: &Bus, pattern: &str) {
    let (actor, _) = Actor::spawn(None, Echo, bus.clone())
        .await
        .expect("echo actor starts");
    bus.subscribe(filter(pattern), &actor, |delivery| delivery)
        .await
        .expect("echo route subscribes");
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .expect("a message arrives in time")
        .expect("the channel stays open")
}

fn envelope<T>(bus: &Bus, body: T) -> Envelope<T> {
    Envelope::new(bus.client().clone(), body, &**bus.clock())
}

/// Route delivery, request/response and the request timeout on one broker.
async fn check_bus(config: BridgeConfig) {
    let (bus, handle) = start_connected(config).await;
    let (_, mut readings) = collect::<Reading>(&bus, "alicia/devices/+/state").await;
    serve_echo(&bus, "alicia/echo/request/ping").await;

    let sent = envelope(&bus, Reading { value: 7 });
    bus.publish(
        &topic("alicia/devices/d1/state"),
        &sent,
        PublishOptions::state_change(),
    )
    .await
    .expect("publish is accepted");
    let delivery = next(&mut readings).await;
    assert_eq!(delivery.topic.as_str(), "alicia/devices/d1/state");
    assert_eq!(delivery.envelope.body(), &Reading { value: 7 });
    assert_eq!(delivery.envelope.message_id(), sent.message_id());

    let request = envelope(&bus, Ping { text: "hi".into() });
    let reply: Envelope<Ping> = bus
        .request(&topic("alicia/echo/request/ping"), request, WAIT)
        .await
        .expect("echo replies");
    assert_eq!(reply.body().text, "HI");

    let started = Instant::now();
    let silent = envelope(&bus, Ping { text: "x".into() });
    let outcome: Result<Envelope<Ping>, BusError> = bus
        .request(
            &topic("alicia/nobody/request/ping"),
            silent,
            Duration::from_millis(300),
        )
        .await;
    assert!(
        matches!(outcome, Err(BusError::Timeout { .. })),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let stats = handle.stats();
    assert!(stats.messages_in >= 3, "{stats:?}");
    assert!(stats.messages_out >= 4, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_on_embedded_broker() {
    let broker = embedded();
    check_bus(embedded_config(&broker, "node-a")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_on_mosquitto() {
    let broker = mosquitto();
    check_bus(config(&broker.url(), "node-a")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_on_mosquitto_over_mqtt_3_1_1() {
    let broker = mosquitto();
    check_bus(config(&broker.url(), "node-a").with_protocol(MqttVersion::V311)).await;
}

/// A plain MQTT client connected with rumqttc, recording every publish it receives.
struct Observer {
    client: AsyncClient,
    publishes: mpsc::UnboundedReceiver<rumqttc::Publish>,
}

impl Observer {
    async fn connect(port: u16, id: &str, pattern: &str) -> Self {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);

        let (sender, publishes) = mpsc::unbounded_channel();
        let (subscribed, mut suback) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                match event {
                    Event::Incoming(Packet::Publish(publish)) => {
                        let _ = sender.send(publish);
                    }
                    Event::Incoming(Packet::SubAck(_)) => {
                        let _ = subscribed.send(());
                    }
                    _ => {}
                }
            }
        });
        client
            .subscribe(pattern, QoS::AtLeastOnce)
            .await
            .expect("observer subscribe is queued");
        next(&mut suback).await;
        Self { client, publishes }
    }

    /// Waits for the next publish whose JSON envelope body equals `body`.
    async fn wait_for_body(&mut self, body: &str) -> rumqttc::Publish {
        let deadline = Instant::now() + WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let publish = tokio::time::timeout(remaining, self.publishes.recv())
                .await
                .unwrap_or_else(|_| panic!("no publish with body {body:?} in time"))
                .expect("observer keeps running");
            let json: serde_json::Value =
                serde_json::from_slice(&publish.payload).expect("payload is JSON");
            if json["body"] == body {
                return publish;
            }
        }
    }
}

fn presence_topic(node: &str) -> String {
    format!("alicia/nodes/{node}/presence")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_online_then_offline_on_stop() {
    let broker = mosquitto();
    let (bus, _handle) = start_connected(config(&broker.url(), "node-p")).await;
    // The bridge counts as connected once the broker accepts it, which can be before its
    // presence publish arrives. A first observer waits for that publish, live or retained;
    // only a subscriber that comes after it can check the retained copy.
    let mut first =
        Observer::connect(broker.port(), "observer-p1", &presence_topic("node-p")).await;
    first.wait_for_body("online").await;
    let mut observer =
        Observer::connect(broker.port(), "observer-p", &presence_topic("node-p")).await;

    let online = observer.wait_for_body("online").await;
    assert!(online.retain, "presence online is retained");

    // The stop's offline carries the time of the stop, not the time of the connect.
    tokio::time::sleep(Duration::from_millis(50)).await;
    bus.actor().expect("the bridge is running").stop(None);
    let offline = observer.wait_for_body("offline").await;
    assert_eq!(offline.topic, presence_topic("node-p"));
    let timestamp = |publish: &rumqttc::Publish| {
        let json: serde_json::Value =
            serde_json::from_slice(&publish.payload).expect("payload is JSON");
        json["timestamp_ms"]
            .as_u64()
            .expect("the envelope has a timestamp")
    };
    assert!(
        timestamp(&offline) >= timestamp(&online) + 50,
        "offline at {} ms, online at {} ms",
        timestamp(&offline),
        timestamp(&online)
    );
}

/// Copies bytes between clients and one upstream address until [`Proxy::cut`] drops them.
struct Proxy {
    port: u16,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("proxy binds 127.0.0.1");
        let port = listener.local_addr().expect("proxy has an address").port();
        let (cut, cut_rx) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut_rx = cut_rx.clone();
                cut_rx.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Self { port, cut }
    }

    /// Drops every open connection at once, as a network failure would.
    fn cut(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_will_reports_offline() {
    let broker = mosquitto();
    let proxy = Proxy::start(broker.port()).await;
    let url = format!("mqtt://127.0.0.1:{}", proxy.port);
    let (_bus, handle) = start_connected(config(&url, "node-w")).await;
    let mut observer =
        Observer::connect(broker.port(), "observer-w", &presence_topic("node-w")).await;
    observer.wait_for_body("online").await;

    proxy.cut();
    let will = observer.wait_for_body("offline").await;
    assert_eq!(will.topic, presence_topic("node-w"));

    // The bridge reconnects through the proxy and publishes presence online again.
    observer.wait_for_body("online").await;
    assert!(handle.stats().connection_losses >= 1);
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_absent_at_start_backs_off() {
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let (bus, handle) = start(config(&url, "node-late")).await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = handle.stats().connect_attempts;
    // Without backoff rumqttc retries a refused loopback connection thousands of times in 1.5 s.
    // Backoff of 50 ms doubling to 400 ms, with jitter down to half, allows at most 12.
    assert!(attempts >= 3, "only {attempts} attempts");
    assert!(attempts <= 12, "{attempts} attempts: no backoff");
    assert!(!handle.is_connected());

    let broker = Mosquitto::start_on(port).expect("mosquitto starts on the chosen port");
    assert!(
        handle.wait_connected(WAIT).await,
        "bridge connects once the broker is up"
    );

    let (_, mut readings) = collect::<Reading>(&bus, "alicia/devices/late/state").await;
    let sent = envelope(&bus, Reading { value: 1 });
    bus.publish(
        &topic("alicia/devices/late/state"),
        &sent,
        PublishOptions::state_change(),
    )
    .await
    .expect("publish is accepted");
    assert_eq!(
        next(&mut readings).await.envelope.body(),
        &Reading { value: 1 }
    );
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_resubscribes_and_resends() {
    let mut broker = mosquitto();
    let port = broker.port();
    let (bus, handle) = start_connected(config(&broker.url(), "node-r")).await;
    let (_, mut readings) = collect::<Reading>(&bus, "alicia/devices/r1/state").await;

    let state = topic("alicia/devices/r1/state");
    bus.publish(
        &state,
        &envelope(&bus, Reading { value: 0 }),
        PublishOptions::state_change(),
    )
    .await
    .expect("publish is accepted");
    assert_eq!(next(&mut readings).await.envelope.body().value, 0);

    broker.kill();
    let deadline = Instant::now() + WAIT;
    while handle.is_connected() {
        assert!(
            Instant::now() < deadline,
            "bridge did not notice the broker stop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    const DURING_OUTAGE: u32 = 20;
    for value in 1..=DURING_OUTAGE {
        bus.publish(
            &state,
            &envelope(&bus, Reading { value }),
            PublishOptions::state_change(),
        )
        .await
        .expect("publish is kept in the outbox");
    }
    assert_eq!(handle.outbox_len(), DURING_OUTAGE as usize);

    let broker = Mosquitto::start_on(port).expect("mosquitto restarts on the same port");
    assert!(handle.wait_connected(WAIT).await, "bridge reconnects");

    let mut received: Vec<u32> = Vec::new();
    while received.len() < DURING_OUTAGE as usize {
        received.push(next(&mut readings).await.envelope.body().value);
    }
    let expected: Vec<u32> = (1..=DURING_OUTAGE).collect();
    assert_eq!(received, expected);
    assert_eq!(handle.stats().reconnects(), 1);

    let mut observer = Observer::connect(port, "observer-r", &presence_topic("node-r")).await;
    observer.wait_for_body("online").await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_read_and_request() {
    let broker = mosquitto();
    let port = broker.port().to_string();
    let (bus, _handle) = start_connected(config(&broker.url(), "node-cli")).await;
    serve_echo(&bus, "alicia/echo/request/ping").await;

    // mosquitto_sub reads the retained presence envelope as JSON.
    let presence = tokio::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "alicia/nodes/node-cli/presence",
        ])
        .args(["-C", "1", "-W", "5"])
        .output()
        .await
        .expect("mosquitto_sub runs");
    let json: serde_json::Value =
        serde_json::from_slice(&presence.stdout).expect("presence is a JSON envelope");
    assert_eq!(json["body"], "online");
    assert_eq!(json["source"], "node-cli");

    // mosquitto_sub waits on the reply topic while mosquitto_pub sends the request.
    let reply_topic = "alicia/reply/cli-1/req-1";
    let reply = tokio::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-t", reply_topic])
        .args(["-C", "1", "-W", "5", "-q", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let request = Envelope::new(
        SourceId::new("cli-1").expect("valid source"),
        Ping {
            text: "from cli".into(),
        },
        &SystemClock::new(),
    )
    .with_reply_to(topic(reply_topic));
    let request_json =
        String::from_utf8(Codec::Json.encode(&request).expect("encodes")).expect("JSON is UTF-8");
    let published = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1"])
        .args(["-t", "alicia/echo/request/ping", "-m", &request_json])
        .status()
        .await
        .expect("mosquitto_pub runs");
    assert!(published.success());

    let output = reply.wait_with_output().await.expect("mosquitto_sub ends");
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("reply is a JSON envelope");
    assert_eq!(json["body"]["status"], "ok");
    assert_eq!(json["body"]["value"]["text"], "FROM CLI");
    assert_eq!(
        json["correlation_id"],
        serde_json::to_value(request.message_id()).expect("id serializes")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_counted_and_dropped() {
    const MAX_PAYLOAD: usize = 2048;
    const BAD: usize = 10_000;

    let broker = mosquitto();
    let mut bridge_config = config(&broker.url(), "node-bad");
    bridge_config.max_payload_size = MAX_PAYLOAD;
    bridge_config.max_packet_size = 128 * 1024;
    bridge_config.route_queue = BAD + 16;
    let (bus, handle) = start_connected(bridge_config).await;
    let (route, mut readings) = collect::<Reading>(&bus, "alicia/devices/bad/state").await;
    let (_, mut replies) = collect::<serde_json::Value>(&bus, "alicia/reply/node-bad/+").await;

    let clock = SystemClock::new();
    let wrong_type = Envelope::new(
        SourceId::new("attacker").expect("valid"),
        "not a reading",
        &clock,
    );
    let wrong_type = Codec::Json.encode(&wrong_type).expect("encodes");
    let asks_reply = Envelope::new(SourceId::new("attacker").expect("valid"), 17u8, &clock)
        .with_reply_to(topic("alicia/reply/node-bad/bad-1"));
    let asks_reply = Codec::Json.encode(&asks_reply).expect("encodes");
    let payloads: [Vec<u8>; 5] = [
        b"{not json".to_vec(),
        vec![b' '; MAX_PAYLOAD + 1],
        wrong_type,
        b"\xff\xfe\x00garbage".to_vec(),
        asks_reply,
    ];

    let sender = Observer::connect(broker.port(), "attacker", "alicia/unused").await;
    for index in 0..BAD {
        sender
            .client
            .publish(
                "alicia/devices/bad/state",
                QoS::AtLeastOnce,
                false,
                payloads[index % 5].clone(),
            )
            .await
            .expect("bad publish is queued");
    }
    let valid = Envelope::new(
        SourceId::new("device").expect("valid"),
        Reading { value: 42 },
        &clock,
    );
    sender
        .client
        .publish(
            "alicia/devices/bad/state",
            QoS::AtLeastOnce,
            false,
            Codec::Json.encode(&valid).expect("encodes"),
        )
        .await
        .expect("valid publish is queued");

    let delivery = tokio::time::timeout(Duration::from_secs(30), readings.recv())
        .await
        .expect("the valid message arrives")
        .expect("channel open");
    assert_eq!(delivery.envelope.body(), &Reading { value: 42 });

    let stats = bus.route_stats(route).await.expect("route exists");
    assert_eq!(stats.decode_errors, BAD as u64);
    assert_eq!(stats.delivered, 1);
    assert_eq!(handle.route_overflow(route), Some(0));
    assert_eq!(handle.stats().oversized, (BAD / 5) as u64);

    // The requests that named a reply topic got an error reply there.
    let error_reply = next(&mut replies).await;
    assert_eq!(error_reply.envelope.body()["status"], "error");
    assert_eq!(
        error_reply.envelope.body()["error"]["code"],
        "invalid_request"
    );
    drop(sender.publishes);
}

/// An actor that waits on a gate before handling each message, to play a stalled consumer.
struct Stalled;

impl Actor for Stalled {
    type Msg = Delivery<Reading>;
    type State = Arc<tokio::sync::Semaphore>;
    type Arguments = Arc<tokio::sync::Semaphore>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        gate: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(gate)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        _delivery: Delivery<Reading>,
        gate: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _permit = gate.acquire().await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_does_not_stall_others() {
    let broker = embedded();
    let (bus, handle) = start_connected(embedded_config(&broker, "node-slow")).await;

    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (stalled, _) = Actor::spawn(None, Stalled, Arc::clone(&gate))
        .await
        .expect("stalled actor starts");
    bus.subscribe(filter("alicia/devices/slow/state"), &stalled, |delivery| {
        delivery
    })
    .await
    .expect("stalled route subscribes");
    let (_, mut fast) = collect::<Reading>(&bus, "alicia/devices/fast/state").await;

    let slow_topic = topic("alicia/devices/slow/state");
    let fast_topic = topic("alicia/devices/fast/state");
    for value in 0..500 {
        bus.publish(
            &slow_topic,
            &envelope(&bus, Reading { value }),
            PublishOptions::telemetry(),
        )
        .await
        .expect("publish is accepted");
        if value % 5 == 0 {
            bus.publish(
                &fast_topic,
                &envelope(&bus, Reading { value }),
                PublishOptions::telemetry(),
            )
            .await
            .expect("publish is accepted");
        }
    }

    let mut fast_values = Vec::new();
    for _ in 0..100 {
        fast_values.push(next(&mut fast).await.envelope.body().value);
    }
    let expected: Vec<u32> = (0..500).step_by(5).collect();
    assert_eq!(fast_values, expected);
    assert_eq!(handle.stats().route_overflow, 0);
    gate.close();
}

/// Rejects every request, as a security gateway would for a missing token.
#[derive(Debug)]
struct DenyRequests;

impl Authorizer for DenyRequests {
    fn authorize(&self, request: &AuthorizationRequest<'_>) -> Authorization {
        match request.action {
            Action::Request => Authorization::Deny {
                reason: "no valid token".to_owned(),
            },
            Action::Publish => Authorization::Allow,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denying_authorizer_answers_forbidden() {
    let broker = embedded();
    let config = embedded_config(&broker, "node-deny").with_authorizer(Arc::new(DenyRequests));
    let (bus, _handle) = start_connected(config).await;
    serve_echo(&bus, "alicia/echo/request/ping").await;

    let request = envelope(
        &bus,
        Ping {
            text: "let me in".into(),
        },
    );
    let outcome: Result<Envelope<Ping>, BusError> = bus
        .request(&topic("alicia/echo/request/ping"), request, WAIT)
        .await;
    match outcome {
        Err(BusError::Remote { code, .. }) => assert_eq!(code, "forbidden"),
        other => panic!("expected a forbidden reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_publish_is_rejected() {
    let broker = embedded();
    let mut bridge_config = embedded_config(&broker, "node-big");
    bridge_config.max_payload_size = 1024;
    let (bus, _handle) = start(bridge_config).await;
    let outcome = bus
        .publish_raw(
            &topic("alicia/devices/big/state"),
            vec![b'x'; 2048],
            PublishOptions::state_change(),
        )
        .await;
    assert!(
        matches!(outcome, Err(BusError::PublishFailed { .. })),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payload_above_rumqttc_default() {
    let broker = mosquitto();
    let (bus, _handle) = start_connected(config(&broker.url(), "node-large")).await;
    let (_, mut blobs) = collect::<String>(&bus, "alicia/devices/large/state").await;

    // rumqttc's default packet limit is 10 KiB.
    let text = "x".repeat(100 * 1024);
    bus.publish(
        &topic("alicia/devices/large/state"),
        &envelope(&bus, text.clone()),
        PublishOptions::state_change(),
    )
    .await
    .expect("publish is accepted");
    assert_eq!(next(&mut blobs).await.envelope.body().len(), text.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_client_ids_back_off() {
    let broker = mosquitto();
    let (_first_bus, first) = start_connected(config(&broker.url(), "twin")).await;
    let (_second_bus, second) = start(config(&broker.url(), "twin")).await;

    // Mosquitto closes the older connection whenever a client with the same id connects, so the
    // two bridges take the session from each other. Backoff from 50 ms doubling to 400 ms allows
    // about 10 attempts each in 2 s; resetting it on every accepted connection allows dozens.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (first, second) = (first.stats(), second.stats());
    assert!(first.connect_attempts <= 12, "{first:?}");
    assert!(second.connect_attempts <= 12, "{second:?}");
    assert!(first.connection_losses >= 1, "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_batch_keeps_order_through_full_outbox() {
    let broker = mosquitto();
    let mut bridge_config = config(&broker.url(), "node-batch");
    // Two slots make most of the batch wait for outbox space.
    bridge_config.outbox = OutboxCapacity {
        state_changes: 2,
        ..OutboxCapacity::default()
    };
    bridge_config.max_payload_size = 1024;
    let (bus, _handle) = start_connected(bridge_config).await;
    let (_, mut readings) = collect::<Reading>(&bus, "alicia/devices/batch/state").await;

    let state = topic("alicia/devices/batch/state");
    let mut messages = Vec::new();
    for value in 0..40 {
        let payload = Codec::Json
            .encode(&envelope(&bus, Reading { value }))
            .expect("a reading encodes");
        messages.push(OutboundMessage {
            topic: state.clone(),
            payload: payload.into(),
            options: PublishOptions::state_change(),
        });
    }
    // An oversized message in the middle fails alone.
    messages.insert(
        20,
        OutboundMessage {
            topic: state.clone(),
            payload: vec![b'x'; 2048].into(),
            options: PublishOptions::state_change(),
        },
    );

    let results = bus
        .publish_batch(messages)
        .await
        .expect("the bridge takes the batch");
    assert_eq!(results.len(), 41);
    for (index, result) in results.iter().enumerate() {
        if index == 20 {
            assert!(
                matches!(result, Err(BusError::PublishFailed { .. })),
                "{result:?}"
            );
        } else {
            assert!(result.is_ok(), "message {index}: {result:?}");
        }
    }
    for value in 0..40 {
        assert_eq!(next(&mut readings).await.envelope.body().value, value);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_without_route_is_counted() {
    let broker = mosquitto();
    let (bus, handle) = start_connected(config(&broker.url(), "node-kept")).await;
    let (route, _readings) = collect::<Reading>(&bus, "alicia/devices/+/state").await;
    // As before a clean stop: the route goes, its broker subscription stays.
    handle.keep_broker_subscriptions();
    bus.unsubscribe(route).await.expect("route unsubscribes");

    let publisher = start_connected(config(&broker.url(), "node-pub")).await.0;
    let sent = envelope(&publisher, Reading { value: 3 });
    publisher
        .publish(
            &topic("alicia/devices/d1/state"),
            &sent,
            PublishOptions::state_change(),
        )
        .await
        .expect("publish is accepted");

    let deadline = Instant::now() + WAIT;
    while handle.stats().unrouted == 0 {
        assert!(Instant::now() < deadline, "{:?}", handle.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.stats().unrouted, 1);
}
