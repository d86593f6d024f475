//! Crash safety of the registry: the example node runs as a child process, a second MQTT client
//! streams registrations to it, and the node is killed with SIGKILL at a random moment. After each
//! kill the node restarts on the same data directory, and every registration it acknowledged
//! before the kill must be there, in a database that opened without being moved aside.
//!
//! The test runs the example binary `target/<profile>/examples/node`. `cargo test` and
//! `cargo test --all-targets` build it; `cargo test --test registry_crash` alone does not, so run
//! `cargo build --example node` first in that case.
//!
//! Environment variables:
//! - `ALICIA_CRASH_ROUNDS`: number of kill-and-restart rounds (default 20).
//! - `ALICIA_CRASH_SEED`: seed of the random kill delays, to repeat a run (default: random, printed).

#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alicia::actors::registry::{DEVICES, DevicePage, DeviceQuery, Registration};
use alicia::core::bus::Bus;
use alicia::core::{DeviceId, Envelope, SourceId, Store, SystemClock, TopicName};
use alicia::mqtt_bridge::{BridgeConfig, BrokerUrl, MqttBridge, MqttVersion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Rounds when `ALICIA_CRASH_ROUNDS` is not set.
const DEFAULT_ROUNDS: usize = 20;

/// Maximum registrations sent in one round. The kill usually comes first.
const MAX_REGISTRATIONS_PER_ROUND: usize = 3_000;

/// Registration requests the test keeps in flight at once.
const CONCURRENT_REQUESTS: usize = 32;

/// Bounds of the random time between the start of streaming and the kill.
const KILL_DELAY_MS: std::ops::RangeInclusive<u64> = 50..=500;

/// How long a started node may take to print that it runs.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one request may wait for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to connect to the node's broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a SIGTERM-ed node may take to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Page size of the verification queries. A page of 200 device views stays well under the
/// bridge's 256 KiB maximum payload.
const QUERY_PAGE: usize = 200;

const REGISTER_TOPIC: &str = "alicia/registry/request/register";
const QUERY_TOPIC: &str = "alicia/registry/request/query";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_survives_sigkill_rounds() {
    let rounds = env_number("ALICIA_CRASH_ROUNDS", DEFAULT_ROUNDS);
    let seed = env_number("ALICIA_CRASH_SEED", rand::random::<u64>());
    eprintln!("registry crash test: {rounds} rounds, ALICIA_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let binary = node_binary();
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    // Device id -> name, for every registration the node acknowledged.
    let mut acknowledged: BTreeMap<String, String> = BTreeMap::new();
    let started = Instant::now();

    let mut node = NodeProcess::start(&binary, &data_dir, work.path(), 0);
    for round in 0..rounds {
        let client = connect(node.port, &format!("crash-writer-{round}")).await;
        let kill_after = Duration::from_millis(rng.random_range(KILL_DELAY_MS));

        let streamed = stream_and_kill(&client, &mut node, round, kill_after).await;
        stop_client(&client);
        let count = streamed.len();
        acknowledged.extend(streamed);

        node = NodeProcess::start(&binary, &data_dir, work.path(), round + 1);
        assert_no_corrupt_files(&data_dir, &node);
        let reader = connect(node.port, &format!("crash-reader-{round}")).await;
        let stored = query_all(&reader).await;
        stop_client(&reader);
        assert_all_present(&acknowledged, &stored, &format!("after round {round}"));
        eprintln!(
            "round {round}: killed after {kill_after:?}, {count} acknowledged, \
             {} stored in total",
            stored.len()
        );
    }

    assert!(
        !acknowledged.is_empty(),
        "the node acknowledged no registration in {rounds} rounds; its last log:\n{}",
        node.log()
    );
    node.terminate();
    assert_no_corrupt_files(&data_dir, &node);
    let opened = Store::open(&data_dir, SystemClock::shared()).unwrap();
    assert!(
        opened.recovery.is_none(),
        "the store was recovered: {:?}",
        opened.recovery
    );
    let read = opened.store.begin_read().unwrap();
    for (id, name) in &acknowledged {
        let device_id: DeviceId = id.parse().unwrap();
        let record = read.get(&DEVICES, &device_id).unwrap();
        let record = record.unwrap_or_else(|| panic!("acknowledged device {id} is not stored"));
        assert_eq!(&record.name, name, "name of device {id}");
    }
    eprintln!(
        "registry crash test: {} acknowledged registrations survived {rounds} kills in {:?}",
        acknowledged.len(),
        started.elapsed()
    );
}

/// Streams registrations to the node and kills it with SIGKILL after `kill_after`. Returns the
/// id and name of every registration whose reply arrived before the kill.
async fn stream_and_kill(
    client: &Bus,
    node: &mut NodeProcess,
    round: usize,
    kill_after: Duration,
) -> BTreeMap<String, String> {
    let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..CONCURRENT_REQUESTS {
        let (client, acknowledged, next) = (client.clone(), acknowledged.clone(), next.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= MAX_REGISTRATIONS_PER_ROUND {
                    return;
                }
                let id = format!("crash-{round:03}-{index:05}");
                let name = format!("Sensor {index} of round {round}");
                if register(&client, &id, &name).await.is_err() {
                    // The node is gone; nothing this writer sends now can be acknowledged.
                    return;
                }
                acknowledged.lock().unwrap().insert(id, name);
            }
        }));
    }

    tokio::time::sleep(kill_after).await;
    node.kill();
    // A reply that had not arrived when the node died never will: the broker died with it.
    for writer in &writers {
        writer.abort();
    }
    for writer in writers {
        let _ = writer.await;
    }
    std::mem::take(&mut *acknowledged.lock().unwrap())
}

async fn register(client: &Bus, id: &str, name: &str) -> Result<(), alicia::core::bus::BusError> {
    let spec = json!({"id": id, "type": "sensor", "name": name, "location": "Cellar"});
    let request = Envelope::new(
        SourceId::new("crash-test").unwrap(),
        spec,
        &**client.clock(),
    );
    let topic = TopicName::new(REGISTER_TOPIC).unwrap();
    let reply: Envelope<Registration> = client.request(&topic, request, REQUEST_TIMEOUT).await?;
    assert_eq!(reply.body().record.id.as_str(), id);
    Ok(())
}

/// Reads every registered device over MQTT, page by page, as id -> name.
async fn query_all(client: &Bus) -> BTreeMap<String, String> {
    let topic = TopicName::new(QUERY_TOPIC).unwrap();
    let mut devices = BTreeMap::new();
    let mut after: Option<DeviceId> = None;
    // Bounded: the test registers at most this many devices in all.
    let max_pages = 1 + 100 * MAX_REGISTRATIONS_PER_ROUND / QUERY_PAGE;
    for _ in 0..max_pages {
        let query = DeviceQuery {
            after: after.clone(),
            limit: QUERY_PAGE,
            ..DeviceQuery::default()
        };
        let request = Envelope::new(
            SourceId::new("crash-test").unwrap(),
            query,
            &**client.clock(),
        );
        let page: Envelope<DevicePage> = client
            .request(&topic, request, REQUEST_TIMEOUT)
            .await
            .expect("the restarted node answers a query");
        let page = page.into_body();
        for view in page.devices {
            devices.insert(view.record.id.to_string(), view.record.name);
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return devices,
        }
    }
    panic!("the query did not reach its last page after {max_pages} pages");
}

fn assert_all_present(
    acknowledged: &BTreeMap<String, String>,
    stored: &BTreeMap<String, String>,
    when: &str,
) {
    let missing: Vec<&String> = acknowledged
        .keys()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{when}: {} of {} acknowledged registrations are missing, first {:?}",
        missing.len(),
        acknowledged.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    for (id, name) in acknowledged {
        assert_eq!(&stored[id], name, "{when}: name of device {id}");
    }
}

fn assert_no_corrupt_files(data_dir: &Path, node: &NodeProcess) {
    let corrupt: Vec<PathBuf> = fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains(".corrupt-"))
        .collect();
    assert!(
        corrupt.is_empty(),
        "the node moved a corrupt database aside: {corrupt:?}; its log:\n{}",
        node.log()
    );
    assert!(
        !node.log().contains("corrupt"),
        "the node logged corruption:\n{}",
        node.log()
    );
}

/// Connects a second MQTT client to the node's embedded broker.
async fn connect(port: u16, client_id: &str) -> Bus {
    let url = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let config =
        BridgeConfig::new(url, client_id.parse().unwrap()).with_protocol(MqttVersion::V311);
    let (bus, handle, _join) = MqttBridge::spawn(config).await.unwrap();
    assert!(
        handle.wait_connected(CONNECT_TIMEOUT).await,
        "client {client_id} did not connect to 127.0.0.1:{port} within {CONNECT_TIMEOUT:?}"
    );
    bus
}

fn stop_client(client: &Bus) {
    if let Some(actor) = client.actor() {
        actor.stop(None);
    }
}

/// The example node running as a child process. Dropping it kills the process, so a failing
/// test leaves none behind.
struct NodeProcess {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl NodeProcess {
    /// Starts the node on a free port of 127.0.0.1 and waits until it prints that it runs.
    fn start(binary: &Path, data_dir: &Path, work: &Path, incarnation: usize) -> Self {
        let mut last_log = String::new();
        // Another process may take the free port before the node binds it; try a few.
        for attempt in 0..3 {
            let port = free_port();
            let log_path = work.join(format!("node-{incarnation}-{attempt}.log"));
            let log = fs::File::create(&log_path).unwrap();
            let child = Command::new(binary)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--node-id", "crash-node"])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|error| panic!("starting {} failed: {error}", binary.display()));
            let mut node = NodeProcess {
                child,
                port,
                log_path,
            };
            if node.wait_running() {
                return node;
            }
            last_log = node.log();
            node.kill();
            if !last_log.contains("already in use") {
                break;
            }
        }
        panic!("the node did not start within {START_TIMEOUT:?}; its log:\n{last_log}");
    }

    /// Waits (bounded) for the line the example prints once every service runs.
    fn wait_running(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.log().contains("is running.") {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the node with SIGKILL and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the node with SIGTERM and waits (bounded) for a clean exit.
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "sending SIGTERM to the node ({pid}) failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "the node exited with {status}:\n{}",
                    self.log()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the node did not stop within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
            self.log()
        );
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds the example node next to this test binary: tests run from `target/<profile>/deps`, and
/// examples are built into `target/<profile>/examples`.
fn node_binary() -> PathBuf {
    let test_binary = std::env::current_exe().unwrap();
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lies in target/<profile>/deps");
    let binary = profile_dir.join("examples").join("node");
    assert!(
        binary.is_file(),
        "the example node {} is missing: run `cargo build --example node` \
         (or `cargo test --all-targets`) before this test",
        binary.display()
    );
    binary
}

fn free_port() -> u16 {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    listener.local_addr().unwrap().port()
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        Err(_) => default,
    }
}
