//! The embedded broker serves real MQTT clients on 127.0.0.1 and stops cleanly.
#![cfg(feature = "embedded-broker")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use alicia_mqtt_bridge::broker::{BrokerError, EmbeddedBroker, EmbeddedBrokerConfig};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Upper bound for any single wait on the broker, so a broken broker fails the test instead of
/// hanging it.
const WAIT: Duration = Duration::from_secs(10);

fn start_loopback() -> EmbeddedBroker {
    let config = EmbeddedBrokerConfig::with_listen(loopback(0));
    EmbeddedBroker::start(config).expect("embedded broker starts on 127.0.0.1")
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An MQTT client whose event loop runs in a task and sends received packets to `incoming`.
struct Client {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Packet>,
    event_loop: JoinHandle<()>,
}

impl Client {
    async fn connect(broker: SocketAddr, client_id: &str) -> Self {
        let mut options = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut event_loop) = AsyncClient::new(options, 16);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        event_loop.set_network_options(network);

        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let event_loop =
            tokio::spawn(async move { forward_incoming(&mut event_loop, incoming_tx).await });
        let mut client = Self {
            client,
            incoming,
            event_loop,
        };

        client
            .expect(|packet| matches!(packet, Packet::ConnAck(_)))
            .await;
        client
    }

    async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe request queued");
        self.expect(|packet| matches!(packet, Packet::SubAck(_)))
            .await;
    }

    async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .expect("publish request queued");
    }

    /// Waits for the next publish and returns its topic and payload.
    async fn next_publish(&mut self) -> (String, String) {
        match self
            .expect(|packet| matches!(packet, Packet::Publish(_)))
            .await
        {
            Packet::Publish(publish) => (
                publish.topic,
                String::from_utf8_lossy(&publish.payload).into_owned(),
            ),
            other => panic!("expected a publish, got {other:?}"),
        }
    }

    /// Waits for the next packet that `wanted` accepts, skipping others.
    async fn expect(&mut self, wanted: impl Fn(&Packet) -> bool) -> Packet {
        let wait = async {
            loop {
                match self.incoming.recv().await {
                    Some(packet) if wanted(&packet) => return packet,
                    Some(_) => continue,
                    None => panic!("connection to the broker ended"),
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("packet arrives in time")
    }

    /// Returns whether no publish arrives within `quiet`.
    async fn no_publish_within(&mut self, quiet: Duration) -> bool {
        let wait = async {
            loop {
                match self.incoming.recv().await {
                    Some(Packet::Publish(_)) | None => return,
                    Some(_) => continue,
                }
            }
        };
        tokio::time::timeout(quiet, wait).await.is_err()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.event_loop.abort();
    }
}

/// Drives `event_loop` and sends every received packet to `incoming`. Ends at the first
/// connection error, so that a closed broker ends the test's wait instead of reconnecting.
async fn forward_incoming(event_loop: &mut EventLoop, incoming: mpsc::UnboundedSender<Packet>) {
    while let Ok(event) = event_loop.poll().await {
        if let Event::Incoming(packet) = event
            && incoming.send(packet).is_err()
        {
            return;
        }
    }
}

#[tokio::test]
async fn broker_delivers_qos1_publish() {
    let broker = start_loopback();
    let mut subscriber = Client::connect(broker.local_addr(), "subscriber").await;
    let publisher = Client::connect(broker.local_addr(), "publisher").await;
    subscriber.subscribe("alicia/test/#").await;

    publisher.publish("alicia/test/lamp", "on").await;

    let (topic, payload) = subscriber.next_publish().await;
    assert_eq!(topic, "alicia/test/lamp");
    assert_eq!(payload, "on");
}

#[tokio::test]
async fn broker_serves_request_reply() {
    let broker = start_loopback();
    let mut responder = Client::connect(broker.local_addr(), "responder").await;
    let mut requester = Client::connect(broker.local_addr(), "requester").await;
    responder.subscribe("alicia/echo/request/#").await;
    requester.subscribe("alicia/reply/requester/#").await;

    for round in 0..3 {
        let body = format!("ping {round}");
        requester.publish("alicia/echo/request/ping", &body).await;
        let (_, request) = responder.next_publish().await;
        responder
            .publish(
                "alicia/reply/requester/ping",
                &request.replace("ping", "pong"),
            )
            .await;

        let (topic, reply) = requester.next_publish().await;
        assert_eq!(topic, "alicia/reply/requester/ping");
        assert_eq!(reply, format!("pong {round}"));
    }
}

#[test]
fn start_resolves_port_zero() {
    let broker = start_loopback();

    assert_eq!(broker.local_addr().ip(), loopback(0).ip());
    assert_ne!(broker.local_addr().port(), 0);
}

#[test]
fn start_sets_tcp_nodelay() {
    let broker = start_loopback();

    assert!(broker.tcp_nodelay());
}

#[test]
fn address_in_use_is_rejected() {
    let existing_listener = TcpListener::bind(loopback(0)).expect("bind a loopback port");
    let addr = existing_listener.local_addr().expect("local address");

    let result = EmbeddedBroker::start(EmbeddedBrokerConfig::with_listen(addr));

    let error = result.expect_err("start fails on an address in use");
    assert!(
        matches!(error, BrokerError::AddressInUse { addr: reported } if reported == addr),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("cannot listen on {addr}")),
        "{message}"
    );
    assert!(message.contains("already in use"), "{message}");
    assert!(
        message.contains(&format!("--broker mqtt://{addr}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("--listen 127.0.0.1:{}", addr.port() + 1)),
        "{message}"
    );
}

#[tokio::test]
async fn brokers_run_side_by_side() {
    let first = start_loopback();
    let second = start_loopback();
    assert_ne!(first.local_addr(), second.local_addr());

    let mut first_subscriber = Client::connect(first.local_addr(), "subscriber").await;
    let mut second_subscriber = Client::connect(second.local_addr(), "subscriber").await;
    first_subscriber.subscribe("alicia/test/#").await;
    second_subscriber.subscribe("alicia/test/#").await;
    let first_publisher = Client::connect(first.local_addr(), "publisher").await;
    let second_publisher = Client::connect(second.local_addr(), "publisher").await;

    first_publisher.publish("alicia/test/first", "1").await;
    second_publisher.publish("alicia/test/second", "2").await;

    assert_eq!(
        first_subscriber.next_publish().await,
        ("alicia/test/first".to_owned(), "1".to_owned())
    );
    assert_eq!(
        second_subscriber.next_publish().await,
        ("alicia/test/second".to_owned(), "2".to_owned())
    );
    assert!(
        first_subscriber
            .no_publish_within(Duration::from_millis(200))
            .await
    );
}

#[test]
fn shutdown_closes_port() {
    let broker = start_loopback();
    let addr = broker.local_addr();
    assert!(TcpStream::connect_timeout(&addr, WAIT).is_ok());

    broker.shutdown().expect("broker shuts down");

    assert!(TcpStream::connect_timeout(&addr, WAIT).is_err());
}

#[test]
fn drop_closes_port() {
    let broker = start_loopback();
    let addr = broker.local_addr();

    drop(broker);

    assert!(TcpStream::connect_timeout(&addr, WAIT).is_err());
}

#[test]
fn shutdown_frees_address_for_restart() {
    let first = start_loopback();
    let addr = first.local_addr();
    first.shutdown().expect("first broker shuts down");

    let second = EmbeddedBroker::start(EmbeddedBrokerConfig::with_listen(addr));

    let second = second.expect("second broker starts on the same address");
    assert_eq!(second.local_addr(), addr);
}

#[tokio::test]
async fn shutdown_disconnects_clients() {
    let broker = start_loopback();
    let mut client = Client::connect(broker.local_addr(), "client").await;

    tokio::task::spawn_blocking(move || broker.shutdown())
        .await
        .expect("shutdown task runs")
        .expect("broker shuts down");

    // The event loop task ends at the first connection error, which closes `incoming`.
    let closed = async { while client.incoming.recv().await.is_some() {} };
    let ended = tokio::time::timeout(WAIT, closed).await;
    assert!(ended.is_ok(), "client still connected after {WAIT:?}");
}
