//! Bursts through a Mosquitto with default settings: a node must handle every message of a
//! 10,000-registration burst and of a 50,000-heartbeat burst, published back to back at QoS 1 as
//! fast as the publishing clients can.
//!
//! Mosquitto 2.0 sends an MQTT 3.1.1 subscriber at most 20 QoS 1 messages in flight
//! (`max_inflight_messages`), queues at most 1000 more (`max_queued_messages`) and drops the rest
//! without telling the publisher. Over MQTT 5 the node's bridge announces a receive maximum of
//! 65,535, so Mosquitto sends the burst on without waiting for acknowledgements and its queue
//! stays empty. The broker here runs the default limits of both.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alicia::actors::registry::{RegistryClient, RegistryStats};
use alicia::core::bus::{Bus, PublishOptions};
use alicia::core::{Envelope, SourceId, TopicName};
use alicia::mqtt_bridge::{BridgeConfig, BrokerUrl, MqttBridge, MqttVersion};
use alicia::{BrokerChoice, Node, NodeConfig};
use alicia_testkit::{DEFAULT_QUEUE_CONFIG, Mosquitto};
use serde_json::json;

/// Registrations in the first burst, one per device.
const REGISTRATIONS: usize = 10_000;

/// Heartbeats in the second burst, five per registered device.
const HEARTBEATS: usize = 50_000;

/// How long the node may take to handle a burst after the last message was published.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a publisher may take to publish a burst.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_burst_loses_no_message() {
    let broker = Mosquitto::start_with(DEFAULT_QUEUE_CONFIG).unwrap();
    let url = BrokerUrl::parse(&broker.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        node_id: "hub".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        broker: BrokerChoice::External {
            url: url.clone(),
            protocol: MqttVersion::V5,
        },
        tls: None,
    };
    let node = Node::builder(config).start().await.unwrap();
    let bridge = node.bridge().unwrap().clone();
    assert!(bridge.wait_connected(CONNECT_TIMEOUT).await);
    let registry = node.registry().unwrap().clone();

    // Registrations, from mosquitto_pub the way a script would send them, without reply topics.
    let started = Instant::now();
    publish_registrations(broker.port(), REGISTRATIONS);
    let published_in = started.elapsed();
    let stats = settle(&registry, |stats| stats.devices >= REGISTRATIONS).await;
    let registration_time = started.elapsed();
    assert_eq!(
        stats.devices,
        REGISTRATIONS,
        "registrations lost: bridge {:?}; broker log:\n{}",
        bridge.stats(),
        broker.log()
    );
    assert_eq!(stats.rejected_requests, 0, "{stats:?}");
    eprintln!(
        "{REGISTRATIONS} registrations: published in {published_in:?}, all stored after {registration_time:?}"
    );

    // Heartbeats, one per device topic, from a second MQTT client publishing at QoS 1.
    let publisher = connect(&url).await;
    let started = Instant::now();
    publish_heartbeats(&publisher, HEARTBEATS, REGISTRATIONS).await;
    let published_in = started.elapsed();
    let stats = settle(&registry, |stats| {
        stats.heartbeats + stats.rejected_heartbeats >= HEARTBEATS as u64
    })
    .await;
    let heartbeat_time = started.elapsed();
    assert_eq!(
        stats.heartbeats,
        HEARTBEATS as u64,
        "heartbeats lost: bridge {:?}; broker log:\n{}",
        bridge.stats(),
        broker.log()
    );
    assert_eq!(stats.rejected_heartbeats, 0, "{stats:?}");
    eprintln!(
        "{HEARTBEATS} heartbeats: published in {published_in:?}, all counted after {heartbeat_time:?}"
    );

    let bridge_stats = bridge.stats();
    assert_eq!(bridge_stats.route_overflow, 0, "{bridge_stats:?}");
    let log = broker.log();
    assert!(
        !log.contains("dropped"),
        "the broker dropped messages:\n{log}"
    );

    if let Some(actor) = publisher.actor() {
        actor.stop(None);
    }
    node.shutdown().await.unwrap();
}

/// Publishes `count` registration requests at QoS 1 with one `mosquitto_pub -l`, which sends
/// each line of its input as one message.
fn publish_registrations(port: u16, count: usize) {
    let mut lines = String::new();
    for index in 0..count {
        let envelope = json!({
            "v": 1,
            "id": format!("{:032x}", index + 1),
            "timestamp_ms": 0,
            "source": "burst",
            "body": {"id": device_id(index), "type": "sensor", "name": format!("Sensor {index}")},
        });
        lines.push_str(&envelope.to_string());
        lines.push('\n');
    }

    let mut publisher = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-l"])
        .args([
            "-i",
            "burst-script",
            "-t",
            "alicia/registry/request/register",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub runs (install mosquitto-clients)");
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(lines.as_bytes()).unwrap();
    drop(stdin);

    let deadline = Instant::now() + PUBLISH_TIMEOUT;
    loop {
        if let Some(status) = publisher.try_wait().unwrap() {
            assert!(status.success(), "mosquitto_pub failed with {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = publisher.kill();
            let _ = publisher.wait();
            panic!("mosquitto_pub did not publish {count} messages within {PUBLISH_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Publishes `count` heartbeats at QoS 1, going round the first `devices` devices.
async fn publish_heartbeats(publisher: &Bus, count: usize, devices: usize) {
    let source = SourceId::new("burst").unwrap();
    for index in 0..count {
        let topic = TopicName::new(format!(
            "alicia/devices/{}/heartbeat",
            device_id(index % devices)
        ))
        .unwrap();
        let envelope = Envelope::new(source.clone(), json!({}), &**publisher.clock());
        tokio::time::timeout(
            PUBLISH_TIMEOUT,
            publisher.publish(&topic, &envelope, PublishOptions::state_change()),
        )
        .await
        .expect("the publisher's outbox takes the heartbeat in time")
        .unwrap();
    }
}

/// Polls the registry's counters until `done` holds, or until they stop changing for 5 s, or
/// until [`SETTLE_TIMEOUT`]; returns the last counters.
async fn settle(registry: &RegistryClient, done: impl Fn(&RegistryStats) -> bool) -> RegistryStats {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = registry.stats().await.unwrap();
    let mut last_change = Instant::now();
    while !done(&last)
        && Instant::now() < deadline
        && last_change.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stats = registry.stats().await.unwrap();
        if stats != last {
            last_change = Instant::now();
        }
        last = stats;
    }
    last
}

async fn connect(url: &BrokerUrl) -> Bus {
    let config = BridgeConfig::new(url.clone(), "burst-publisher".parse().unwrap());
    let (bus, handle, _join) = MqttBridge::spawn(config).await.unwrap();
    assert!(handle.wait_connected(CONNECT_TIMEOUT).await);
    bus
}

fn device_id(index: usize) -> String {
    format!("burst-{index:05}")
}
