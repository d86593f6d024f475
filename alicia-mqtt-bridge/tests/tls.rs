//! The MQTT bridge over TLS (`mqtts://`) against a private Mosquitto on 127.0.0.1, with
//! certificates generated for each test.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alicia_core::bus::{Bus, Delivery};
use alicia_core::envelope::Envelope;
use alicia_core::id::NodeId;
use alicia_core::topic::{TopicFilter, TopicName};
use alicia_mqtt_bridge::BrokerUrl;
use alicia_mqtt_bridge::bridge::{
    Backoff, BridgeConfig, BridgeError, BridgeHandle, ClientCertFiles, MqttBridge, TlsFiles,
};
use alicia_testkit::{ClientAuth, Mosquitto, TestPki};
use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus};
use serde::{Deserialize, Serialize};

/// Upper bound of any single wait, so a broken bridge fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

/// How long the failure tests watch a bridge that cannot connect.
const FAILING_PERIOD: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ping {
    text: String,
}

fn pki() -> TestPki {
    TestPki::generate().expect("test certificates generate")
}

fn tls_broker(pki: &TestPki, client_auth: ClientAuth) -> Mosquitto {
    Mosquitto::start_tls(pki, client_auth)
        .expect("TLS mosquitto starts (run scripts/install-test-deps.sh)")
}

/// Settings for `node` on `url` that trust `ca_file`, with a fast backoff.
fn config(url: &str, node: &str, ca_file: PathBuf) -> BridgeConfig {
    let broker = BrokerUrl::parse(url).expect("test broker URLs are valid");
    let node = NodeId::new(node).expect("test node ids are valid");
    let mut config = BridgeConfig::new(broker, node).with_backoff(Backoff {
        min: Duration::from_millis(50),
        max: Duration::from_millis(400),
    });
    config.tls = Some(TlsFiles {
        ca_file,
        client: None,
    });
    config
}

/// `config` with `pki`'s client certificate and key added.
fn with_client_cert(mut config: BridgeConfig, pki: &TestPki) -> BridgeConfig {
    if let Some(tls) = &mut config.tls {
        tls.client = Some(ClientCertFiles {
            cert_file: pki.client_cert_file(),
            key_file: pki.client_key_file(),
        });
    }
    config
}

async fn start(config: BridgeConfig) -> (Bus, BridgeHandle) {
    let (bus, handle, _join) = MqttBridge::spawn(config).await.expect("bridge starts");
    (bus, handle)
}

async fn start_error(config: BridgeConfig) -> BridgeError {
    match MqttBridge::spawn(config).await {
        Ok(_) => panic!("the bridge started with invalid TLS settings"),
        Err(error) => error,
    }
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
    let filter = TopicFilter::new(pattern).expect("test filters are valid");
    bus.subscribe(filter, &actor, |delivery| delivery)
        .await
        .expect("echo route subscribes");
}

/// Sends a `Ping` request from `bus` to the echo actor behind `topic` and returns the reply text.
async fn ping(bus: &Bus, topic: &str, text: &str) -> String {
    let topic = TopicName::new(topic).expect("test topics are valid");
    let request = Envelope::new(
        bus.client().clone(),
        Ping { text: text.into() },
        &**bus.clock(),
    );
    let reply: Envelope<Ping> = bus
        .request(&topic, request, WAIT)
        .await
        .expect("echo replies over TLS");
    reply.body().text.clone()
}

/// Log lines written while the guard from [`LogCapture::install`] lives, for checking the
/// messages that the bridge logs when it cannot connect.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Sends this thread's logs here. The bridge's tasks log into it too when the test runs on a
    /// current-thread runtime, because they run on this thread.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        let bytes = self.0.lock().expect("log buffer lock").clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("log buffer lock")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs a bridge with `config`, which cannot complete its TLS handshake, for
/// [`FAILING_PERIOD`], and checks that it stays up, disconnected and retrying with backoff.
/// Returns what it logged.
async fn check_retries_with_backoff(config: BridgeConfig) -> String {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let (bus, handle) = start(config).await;

    tokio::time::sleep(FAILING_PERIOD).await;

    let stats = handle.stats();
    // Backoff of 50 ms doubling to 400 ms, with jitter down to half, allows at most 12 attempts
    // in 1.5 s. Without backoff rumqttc retries at once after each failed handshake.
    assert!(stats.connect_attempts >= 3, "{stats:?}");
    assert!(stats.connect_attempts <= 12, "{stats:?}: no backoff");
    assert_eq!(stats.connections, 0, "{stats:?}");
    assert!(!handle.is_connected());

    let actor = bus.actor().expect("the bridge actor exists");
    assert_eq!(actor.get_status(), ActorStatus::Running);
    actor.stop(None);

    logs.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_request_round_trip() {
    let pki = pki();
    let broker = tls_broker(&pki, ClientAuth::None);
    assert!(broker.url().starts_with("mqtts://127.0.0.1:"));

    let (server, server_handle) = start(config(&broker.url(), "node-s", pki.ca_file())).await;
    let (client, client_handle) = start(config(&broker.url(), "node-c", pki.ca_file())).await;
    assert!(server_handle.wait_connected(WAIT).await, "{}", broker.log());
    assert!(client_handle.wait_connected(WAIT).await, "{}", broker.log());
    serve_echo(&server, "alicia/echo/request/ping").await;

    let reply = ping(&client, "alicia/echo/request/ping", "over tls").await;
    assert_eq!(reply, "OVER TLS");
    assert_eq!(client_handle.stats().connect_attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_round_trip() {
    let pki = pki();
    let broker = tls_broker(&pki, ClientAuth::Required);

    let config = with_client_cert(config(&broker.url(), "node-m", pki.ca_file()), &pki);
    let (bus, handle) = start(config).await;
    assert!(handle.wait_connected(WAIT).await, "{}", broker.log());
    serve_echo(&bus, "alicia/echo/request/mutual").await;

    let reply = ping(&bus, "alicia/echo/request/mutual", "mutual").await;
    assert_eq!(reply, "MUTUAL");
}

#[tokio::test]
async fn mutual_tls_without_client_cert_retries() {
    let pki = pki();
    let broker = tls_broker(&pki, ClientAuth::Required);

    // In TLS 1.3 the broker rejects the missing certificate after the client has finished its
    // handshake, so the alert arrives while the bridge reads the CONNACK.
    let logs = check_retries_with_backoff(config(&broker.url(), "node-n", pki.ca_file())).await;
    assert!(logs.contains("CertificateRequired"), "{logs}");
}

#[tokio::test]
async fn wrong_ca_retries_with_backoff() {
    let pki = pki();
    let other = TestPki::generate().expect("second test certificates generate");
    let broker = tls_broker(&pki, ClientAuth::None);

    let logs = check_retries_with_backoff(config(&broker.url(), "node-x", other.ca_file())).await;
    assert!(
        logs.contains("TLS handshake with the broker failed"),
        "{logs}"
    );
    assert!(
        logs.contains("check that tls.ca_file contains the CA"),
        "{logs}"
    );
    // Both test CAs have the same name, so rustls finds the wrong CA and rejects the signature.
    assert!(
        logs.contains("invalid peer certificate: BadSignature"),
        "{logs}"
    );
}

#[tokio::test]
async fn certificate_without_ip_san_rejected() {
    // The bridge verifies the URL's host, 127.0.0.1, against the certificate's IP address SANs,
    // so a certificate for the name "localhost" alone must not pass.
    let pki = TestPki::generate_for(&["localhost"]).expect("test certificates generate");
    let broker = tls_broker(&pki, ClientAuth::None);

    let logs = check_retries_with_backoff(config(&broker.url(), "node-h", pki.ca_file())).await;
    assert!(
        logs.contains("TLS handshake with the broker failed"),
        "{logs}"
    );
    assert!(
        logs.contains(r#"certificate not valid for name "127.0.0.1""#),
        "{logs}"
    );
}

#[tokio::test]
async fn missing_ca_file_names_file() {
    let pki = pki();
    let missing = pki.dir().join("absent-ca.pem");
    let url = "mqtts://127.0.0.1:8883";

    let error = start_error(config(url, "node-f", missing.clone())).await;
    let message = error.to_string();
    assert!(
        matches!(&error, BridgeError::TlsFile { role: "CA", path, .. } if path == &missing),
        "{error:?}"
    );
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn invalid_client_key_names_file() {
    let pki = pki();
    let url = "mqtts://127.0.0.1:8883";
    let mut config = with_client_cert(config(url, "node-k", pki.ca_file()), &pki);
    let not_a_key = pki.client_cert_file();
    if let Some(tls) = &mut config.tls
        && let Some(client) = &mut tls.client
    {
        client.key_file = not_a_key.clone();
    }

    let error = start_error(config).await;
    let message = error.to_string();
    assert!(
        matches!(&error, BridgeError::TlsFile { role: "client key", path, .. } if path == &not_a_key),
        "{error:?}"
    );
    assert!(message.contains("no PRIVATE KEY"), "{message}");
}

#[tokio::test]
async fn tls_files_with_plain_url_rejected() {
    let pki = pki();

    let error = start_error(config("mqtt://127.0.0.1:1883", "node-p", pki.ca_file())).await;
    let message = error.to_string();
    assert!(
        matches!(&error, BridgeError::InvalidConfig { setting: "tls", .. }),
        "{error:?}"
    );
    assert!(message.contains("mqtts://"), "{message}");
}
