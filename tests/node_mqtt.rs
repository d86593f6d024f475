//! A whole node on MQTT: the embedded broker and a private Mosquitto, with another MQTT client
//! (a second bridge) sending requests the way any device or script would.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use alicia::actors::registry::{AvailabilityState, Registration};
use alicia::core::bus::Bus;
use alicia::core::{Envelope, SourceId, TopicName};
use alicia::mqtt_bridge::{BridgeConfig, BrokerUrl, MqttBridge, MqttVersion};
use alicia::{BrokerChoice, Node, NodeConfig};
use alicia_testkit::Mosquitto;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn config(data_dir: &Path, broker: BrokerChoice) -> NodeConfig {
    NodeConfig {
        node_id: "hub".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        broker,
        tls: None,
    }
}

/// Connects a second MQTT client, with its own client id, to `url`.
async fn client(url: &BrokerUrl, version: MqttVersion) -> Bus {
    let config = BridgeConfig::new(url.clone(), "script".parse().unwrap()).with_protocol(version);
    let (bus, handle, _join) = MqttBridge::spawn(config).await.unwrap();
    assert!(handle.wait_connected(WAIT).await, "the client connects");
    bus
}

async fn register(bus: &Bus) -> Envelope<Registration> {
    let spec = json!({"id": "lamp-1", "type": "light", "name": "Kitchen lamp"});
    let request = Envelope::new(SourceId::new("script").unwrap(), spec, bus.clock().as_ref());
    let topic = TopicName::new("alicia/registry/request/register").unwrap();
    bus.request(&topic, request, WAIT).await.unwrap()
}

/// Reads the retained message of `topic` with `mosquitto_sub`.
fn retained(port: u16, topic: &str) -> String {
    let output = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-C", "1", "-W", "10"])
        .output()
        .expect("mosquitto_sub runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn embedded_broker_node_answers_mqtt_request() {
    let dir = tempfile::tempdir().unwrap();
    let listen = "127.0.0.1:0".parse().unwrap();
    let node = Node::builder(config(dir.path(), BrokerChoice::Embedded { listen }))
        .start()
        .await
        .unwrap();
    let address = node
        .broker_addr()
        .expect("the node runs the embedded broker");
    assert!(address.ip().is_loopback());
    let url = BrokerUrl::parse(&format!("mqtt://{address}")).unwrap();

    let reply = register(&client(&url, MqttVersion::V311).await).await;

    assert_eq!(reply.body().record.id.as_str(), "lamp-1");
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn mosquitto_node_answers_and_leaves_offline() {
    let broker = Mosquitto::start().unwrap();
    let url = BrokerUrl::parse(&broker.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config(
        dir.path(),
        BrokerChoice::External {
            url: url.clone(),
            protocol: MqttVersion::V5,
        },
    ))
    .start()
    .await
    .unwrap();
    assert!(node.bridge().unwrap().wait_connected(WAIT).await);

    let reply = register(&client(&url, MqttVersion::V5).await).await;
    assert_eq!(reply.body().record.id.as_str(), "lamp-1");
    let online = retained(broker.port(), "alicia/nodes/hub/presence");
    assert!(online.contains("\"body\":\"online\""), "{online}");

    node.shutdown().await.unwrap();

    let offline = retained(broker.port(), "alicia/nodes/hub/presence");
    assert!(offline.contains("\"body\":\"offline\""), "{offline}");
    let status = retained(broker.port(), "alicia/devices/status/lamp-1");
    assert!(status.contains("\"device_id\":\"lamp-1\""), "{status}");
}

#[tokio::test]
async fn embedded_broker_address_in_use_names_fixes() {
    let occupant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = occupant.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let error = Node::builder(config(dir.path(), BrokerChoice::Embedded { listen }))
        .start()
        .await
        .unwrap_err()
        .to_string();

    assert!(error.contains("already in use"), "{error}");
    assert!(error.contains("--broker mqtt://"), "{error}");
    assert!(error.contains("--listen"), "{error}");
}

#[tokio::test]
async fn node_connects_over_tls() {
    let pki = alicia_testkit::TestPki::generate().unwrap();
    let broker = Mosquitto::start_tls(&pki, alicia_testkit::ClientAuth::None).unwrap();
    let url = BrokerUrl::parse(&broker.url()).unwrap();
    assert!(broker.url().starts_with("mqtts://"));
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        dir.path(),
        BrokerChoice::External {
            url,
            protocol: MqttVersion::V5,
        },
    );
    config.tls = Some(alicia::mqtt_bridge::bridge::TlsFiles {
        ca_file: pki.ca_file(),
        client: None,
    });

    let node = Node::builder(config).start().await.unwrap();

    assert!(
        node.bridge().unwrap().wait_connected(WAIT).await,
        "{}",
        broker.log()
    );
    node.shutdown().await.unwrap();
}

/// Reads the retained message of `topic` with a fresh `mosquitto_sub`, or `None` when none
/// arrives within a second.
fn retained_if_any(port: u16, topic: &str) -> Option<String> {
    let output = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-C", "1", "-W", "1"])
        .output()
        .expect("mosquitto_sub runs");
    // mosquitto_sub exits with 27 when -W times out.
    if output.status.code() == Some(27) {
        return None;
    }
    assert!(output.status.success(), "{output:?}");
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Polls the retained message of `topic` until `done` holds for it, or fails after [`WAIT`].
/// `mosquitto_sub` runs on a blocking thread, so the node keeps running meanwhile.
async fn wait_for_retained(port: u16, topic: &str, done: impl Fn(Option<&str>) -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let owned = topic.to_owned();
        let retained = tokio::task::spawn_blocking(move || retained_if_any(port, &owned))
            .await
            .expect("mosquitto_sub's thread does not panic");
        if done(retained.as_deref()) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retained message of {topic} is still {retained:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_clears_retained_status() {
    let broker = Mosquitto::start().unwrap();
    let url = BrokerUrl::parse(&broker.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config(
        dir.path(),
        BrokerChoice::External {
            url: url.clone(),
            protocol: MqttVersion::V5,
        },
    ))
    .start()
    .await
    .unwrap();
    assert!(node.bridge().unwrap().wait_connected(WAIT).await);
    let script = client(&url, MqttVersion::V5).await;
    register(&script).await;

    // The device heartbeats the way a shell script would.
    let heartbeat = json!({
        "v": 1,
        "id": format!("{:032x}", 1),
        "timestamp_ms": 0,
        "source": "lamp-1",
        "body": {},
    });
    let published = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port().to_string(),
            "-q",
            "1",
        ])
        .args(["-t", "alicia/devices/lamp-1/heartbeat"])
        .args(["-m", &heartbeat.to_string()])
        .status()
        .expect("mosquitto_pub runs");
    assert!(published.success());
    let status_topic = "alicia/devices/status/lamp-1";
    wait_for_retained(broker.port(), status_topic, |retained| {
        retained.is_some_and(|status| status.contains("\"online\""))
    })
    .await;

    let request = Envelope::new(
        SourceId::new("script").unwrap(),
        json!({"device_id": "lamp-1"}),
        script.clock().as_ref(),
    );
    let topic = TopicName::new("alicia/registry/request/deregister").unwrap();
    let reply: Envelope<serde_json::Value> = script.request(&topic, request, WAIT).await.unwrap();
    assert_eq!(reply.body()["device_id"], "lamp-1", "{:?}", reply.body());

    wait_for_retained(broker.port(), status_topic, |retained| retained.is_none()).await;
    node.shutdown().await.unwrap();
}

/// Publishes `envelope` once at QoS 1 on `topic` with `mosquitto_pub`, as a script would.
fn publish_with_mosquitto_pub(port: u16, topic: &str, envelope: &serde_json::Value) {
    let published = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", &envelope.to_string()])
        .status()
        .expect("mosquitto_pub runs");
    assert!(published.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_handles_messages_sent_while_down() {
    let broker = Mosquitto::start().unwrap();
    let url = BrokerUrl::parse(&broker.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker_choice = BrokerChoice::External {
        url: url.clone(),
        protocol: MqttVersion::V5,
    };
    let node = Node::builder(config(dir.path(), broker_choice.clone()))
        .start()
        .await
        .unwrap();
    assert!(node.bridge().unwrap().wait_connected(WAIT).await);
    register(&client(&url, MqttVersion::V5).await).await;
    node.shutdown().await.unwrap();

    // While the node is down, its device heartbeats and a script registers a second device.
    let envelope = |id: u32, body: serde_json::Value| json!({"v": 1, "id": format!("{id:032x}"), "timestamp_ms": 0, "source": "script", "body": body});
    publish_with_mosquitto_pub(
        broker.port(),
        "alicia/devices/lamp-1/heartbeat",
        &envelope(1, json!({})),
    );
    publish_with_mosquitto_pub(
        broker.port(),
        "alicia/registry/request/register",
        &envelope(
            2,
            json!({"id": "lamp-2", "type": "light", "name": "Hall lamp"}),
        ),
    );

    let node = Node::builder(config(dir.path(), broker_choice))
        .start()
        .await
        .unwrap();
    let registry = node.registry().unwrap().clone();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let lamp_1 = registry.get(&"lamp-1".parse().unwrap()).await.unwrap();
        let lamp_2 = registry.get(&"lamp-2".parse().unwrap()).await;
        if lamp_1.availability.state == AvailabilityState::Online && lamp_2.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the messages sent while the node was down were not handled: lamp-1 {:?}, lamp-2 {lamp_2:?}, bridge {:?}; broker log:\n{}",
            lamp_1.availability,
            node.bridge().unwrap().stats(),
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await.unwrap();
}
