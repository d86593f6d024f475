//! Health monitoring across whole nodes on a private Mosquitto: a second node that vanishes, the
//! metrics endpoint, and the supervision tree published on the bus.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use alicia::actors::health::{AlertKind, HealthClient, ServiceState};
use alicia::actors::registry::DeviceSpec;
use alicia::core::NodeId;
use alicia::mqtt_bridge::{BrokerUrl, MqttVersion};
use alicia::{BrokerChoice, Node, NodeConfig};
use alicia_testkit::Mosquitto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

/// Time between two polls of the health monitor.
const POLL: Duration = Duration::from_millis(20);

fn config(node: &str, data_dir: &Path, url: &BrokerUrl) -> NodeConfig {
    config_with(node, data_dir, url, MqttVersion::V5)
}

fn config_with(node: &str, data_dir: &Path, url: &BrokerUrl, protocol: MqttVersion) -> NodeConfig {
    NodeConfig {
        node_id: node.parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        broker: BrokerChoice::External {
            url: url.clone(),
            protocol,
        },
        tls: None,
    }
}

fn url(port: u16) -> BrokerUrl {
    BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap()
}

/// Returns the monitor's state of every service whose id starts with `prefix`.
async fn states(health: &HealthClient, prefix: &str) -> BTreeMap<String, ServiceState> {
    health
        .statuses()
        .await
        .unwrap()
        .into_iter()
        .filter(|status| status.service.as_str().starts_with(prefix))
        .map(|status| (status.service.to_string(), status.state))
        .collect()
}

/// Polls the monitor until every service in `services` is in a state `accept` takes, for at
/// most `limit`, and returns the states last read.
async fn wait_for_states(
    health: &HealthClient,
    services: &[&str],
    limit: Duration,
    accept: impl Fn(ServiceState) -> bool,
) -> BTreeMap<String, ServiceState> {
    let deadline = Instant::now() + limit;
    loop {
        let states = states(health, "").await;
        let all = services
            .iter()
            .all(|service| states.get(*service).is_some_and(|state| accept(*state)));
        if all || Instant::now() >= deadline {
            return states;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A TCP proxy on 127.0.0.1 in front of one upstream port, which ends a node's connection the
/// two ways a node can vanish without saying goodbye.
struct Proxy {
    port: u16,
    failure: watch::Sender<Option<Failure>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Both sockets are closed, which is what the kernel does for a process that is killed.
    Killed,
    /// The sockets stay open but carry nothing, as with a node that lost power or network: no
    /// FIN, no reset, only silence.
    Silent,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("proxy binds 127.0.0.1");
        let port = listener.local_addr().expect("proxy has an address").port();
        let (failure, mut failure_rx) = watch::channel(None);
        let connection_failure = failure.subscribe();
        tokio::spawn(async move {
            loop {
                let inbound = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((inbound, _)) => inbound,
                        Err(_) => return,
                    },
                    // Dropping the listener refuses the node's reconnection attempts.
                    _ = failure_rx.changed() => return,
                };
                let Ok(outbound) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).await else {
                    return;
                };
                let (inbound_read, inbound_write) = inbound.into_split();
                let (outbound_read, outbound_write) = outbound.into_split();
                tokio::spawn(pump(
                    inbound_read,
                    outbound_write,
                    connection_failure.clone(),
                ));
                tokio::spawn(pump(
                    outbound_read,
                    inbound_write,
                    connection_failure.clone(),
                ));
            }
        });
        Self { port, failure }
    }

    fn fail(&self, failure: Failure) {
        self.failure.send_replace(Some(failure));
    }
}

/// Copies bytes from `reader` to `writer` until the proxy fails. A killed connection is closed
/// at once. A silent one is held open, without reading or writing, until the proxy is dropped.
async fn pump(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut failure: watch::Receiver<Option<Failure>>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    while failure.borrow_and_update().is_none() {
        tokio::select! {
            read = reader.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(length) => {
                    if failure.borrow().is_some() || writer.write_all(&buffer[..length]).await.is_err() {
                        break;
                    }
                }
            },
            _ = failure.changed() => {}
        }
    }
    if *failure.borrow() == Some(Failure::Silent) {
        while failure.changed().await.is_ok() {}
    }
    drop((reader, writer));
}

const SATELLITE_SERVICES: [&str; 3] = [
    "satellite.bus",
    "satellite.registry",
    "satellite.registry-routes",
];

/// Two nodes on one Mosquitto: `hub` runs the health monitor and `satellite` reaches the broker
/// through `proxy` with the given keepalive.
async fn hub_and_satellite(
    broker: &Mosquitto,
    proxy: &Proxy,
    keepalive: Duration,
    dirs: (&Path, &Path),
) -> (Node, Node) {
    let hub = Node::builder(config("hub", dirs.0, &url(broker.port())))
        .heartbeat_interval(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    // The satellite's heartbeats are a minute apart, so within these tests only its presence can
    // mark its services down, never the sweep for missed heartbeats. It speaks MQTT 3.1.1,
    // because rumqttc allows a keepalive under 5 s only there.
    let satellite_config = config_with("satellite", dirs.1, &url(proxy.port), MqttVersion::V311);
    let satellite = Node::builder(satellite_config)
        .without_health()
        .keepalive(keepalive)
        .heartbeat_interval(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    assert!(hub.bridge().unwrap().wait_connected(WAIT).await);
    assert!(satellite.bridge().unwrap().wait_connected(WAIT).await);

    let health = hub.health().unwrap();
    let before = wait_for_states(health, &SATELLITE_SERVICES, WAIT, |state| {
        state != ServiceState::Unknown && state != ServiceState::Down
    })
    .await;
    for service in SATELLITE_SERVICES {
        assert!(
            before
                .get(service)
                .is_some_and(|state| *state != ServiceState::Down),
            "{service} was not heard from before the failure: {before:?}"
        );
    }
    (hub, satellite)
}

/// Fails the proxy and returns how long the hub's monitor took to mark every satellite service
/// down, waiting at most `limit`. Checks that presence, not the sweep, marked them down and that
/// the hub's own services stayed up.
async fn time_until_down(hub: &Node, proxy: &Proxy, failure: Failure, limit: Duration) -> Duration {
    let health = hub.health().unwrap();
    proxy.fail(failure);
    let failed_at = Instant::now();
    let after = wait_for_states(health, &SATELLITE_SERVICES, limit, |state| {
        state == ServiceState::Down
    })
    .await;
    let elapsed = failed_at.elapsed();
    eprintln!("{failure:?}: the satellite's services were down {elapsed:?} after the failure");

    for service in SATELLITE_SERVICES {
        assert_eq!(
            after.get(service),
            Some(&ServiceState::Down),
            "{service} {elapsed:?} after the failure: {after:?}"
        );
    }
    let alerts = health.active_alerts().await.unwrap();
    for service in SATELLITE_SERVICES {
        let alert = alerts
            .iter()
            .find(|alert| alert.service.as_str() == service && alert.kind == AlertKind::ServiceDown)
            .unwrap_or_else(|| panic!("no service_down alert for {service}: {alerts:?}"));
        assert!(
            alert.message.contains("went offline"),
            "{service} went down for another reason: {}",
            alert.message
        );
    }
    let hub_states = states(health, "hub.").await;
    assert!(hub_states.contains_key("hub.bus"), "{hub_states:?}");
    assert!(
        hub_states
            .values()
            .all(|state| *state != ServiceState::Down),
        "the hub's own services must stay up: {hub_states:?}"
    );
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_services_down_within_keepalive() {
    let keepalive = Duration::from_secs(2);
    let broker = Mosquitto::start().unwrap();
    let proxy = Proxy::start(broker.port()).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (hub, satellite) =
        hub_and_satellite(&broker, &proxy, keepalive, (dir_a.path(), dir_b.path())).await;

    let bound = keepalive.mul_f64(1.5);
    let elapsed = time_until_down(&hub, &proxy, Failure::Killed, bound * 2).await;

    assert!(
        elapsed <= bound,
        "the satellite's services went down {elapsed:?} after its connection was closed, over \
         the bound of 1.5 keepalive intervals ({bound:?})"
    );
    hub.shutdown().await.unwrap();
    let _ = tokio::time::timeout(WAIT * 2, satellite.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_services_down_after_will() {
    let keepalive = Duration::from_secs(2);
    let broker = Mosquitto::start().unwrap();
    let proxy = Proxy::start(broker.port()).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (hub, satellite) =
        hub_and_satellite(&broker, &proxy, keepalive, (dir_a.path(), dir_b.path())).await;

    // NOTE: MQTT lets the broker wait 1.5 keepalive intervals after the last packet. Mosquitto
    // 2.0 checks keepalives only every few seconds, in whole seconds, so with a 2 s keepalive
    // 2.0.11 published the will 5.4 to 5.7 s after the connection went silent. The bound below
    // adds that check period, so this test checks the monitor, not the broker.
    let broker_check_period = Duration::from_secs(6);
    let bound = keepalive.mul_f64(1.5) + broker_check_period + Duration::from_secs(1);
    let elapsed = time_until_down(&hub, &proxy, Failure::Silent, bound * 2).await;

    assert!(
        elapsed <= bound,
        "the satellite's services went down {elapsed:?} after its connection went silent, over \
         the bound of 1.5 keepalive intervals plus Mosquitto's keepalive check period ({bound:?})"
    );
    hub.shutdown().await.unwrap();
    // The satellite cannot publish its presence `offline` through the silent proxy, so its
    // shutdown only has to end.
    let _ = tokio::time::timeout(WAIT * 2, satellite.shutdown()).await;
}

/// Fetches `GET /metrics` from `address` and returns the body.
async fn scrape(address: SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("the response has a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    body.to_owned()
}

/// Returns the value of the first sample of `name` whose labels include `label`.
fn sample_value(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    label: Option<(&str, &str)>,
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|sample| {
            sample.metric == name
                && label.is_none_or(|(key, value)| sample.labels.get(key) == Some(value))
        })
        .map(|sample| match sample.value {
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => value,
            _ => f64::NAN,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_list_bridge_and_registry_series() {
    let broker = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config("hub", dir.path(), &url(broker.port())))
        .metrics(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .start()
        .await
        .unwrap();
    assert!(node.bridge().unwrap().wait_connected(WAIT).await);
    let registry = node.registry().unwrap();
    registry
        .register(DeviceSpec::new("lamp-1", "light", "Kitchen lamp"))
        .await
        .unwrap();
    let address = node.metrics_addr().expect("the metrics endpoint runs");
    assert!(address.ip().is_loopback());

    let body = scrape(address).await;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|line| Ok(line.to_owned())))
        .expect("the endpoint serves the Prometheus text format");

    let value = |name: &str| sample_value(&scrape, name, None);
    let sent = value("alicia_bridge_messages_sent_total");
    assert!(
        sent.is_some_and(|sent| sent >= 1.0),
        "presence and heartbeats were sent: {sent:?}"
    );
    for name in [
        "alicia_bridge_messages_received_total",
        "alicia_bridge_decode_errors_total",
        "alicia_bridge_reconnects_total",
        "alicia_bridge_connection_losses_total",
    ] {
        assert!(value(name).is_some(), "{name} missing from:\n{body}");
    }
    for reason in ["oversized", "route_overflow", "telemetry_overflow"] {
        assert!(
            sample_value(
                &scrape,
                "alicia_bridge_messages_dropped_total",
                Some(("reason", reason))
            )
            .is_some(),
            "drops for {reason} missing from:\n{body}"
        );
    }
    assert_eq!(value("alicia_bridge_connected"), Some(1.0));
    assert_eq!(value("alicia_registry_devices"), Some(1.0));
    assert_eq!(value("alicia_registry_groups"), Some(0.0));
    assert_eq!(value("alicia_registry_rejected_requests_total"), Some(0.0));
    assert_eq!(
        value("alicia_registry_rejected_heartbeats_total"),
        Some(0.0)
    );
    assert!(
        value("alicia_health_heartbeats_total").is_some(),
        "the monitor's own series missing from:\n{body}"
    );

    node.shutdown().await.unwrap();
}

/// Reads the retained message of `topic` with `mosquitto_sub`, as any observer would.
fn retained(port: u16, topic: &str) -> serde_json::Value {
    let output = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-C", "1", "-W", "10"])
        .output()
        .expect("mosquitto_sub runs");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("the message is a JSON envelope")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervision_tree_is_retained_on_bus() {
    let broker = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config("hub", dir.path(), &url(broker.port())))
        .heartbeat_interval(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    assert!(node.bridge().unwrap().wait_connected(WAIT).await);
    let topic = alicia::actors::health::supervision_topic(&NodeId::new("hub").unwrap()).unwrap();
    assert_eq!(topic.as_str(), "alicia/nodes/hub/supervision");

    let envelope = retained(broker.port(), topic.as_str());

    let tree = &envelope["body"];
    assert_eq!(tree["id"], "root", "{envelope}");
    assert_eq!(tree["strategy"], "rest_for_one", "{envelope}");
    let children = tree["children"]
        .as_array()
        .expect("the tree lists children");
    for id in ["bus", "registry", "registry-routes", "health"] {
        let child = children
            .iter()
            .find(|child| child["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from {tree}"));
        assert_eq!(child["state"]["state"], "running", "{child}");
        assert_eq!(child["restart_count"], 0, "{child}");
    }

    node.shutdown().await.unwrap();
}
