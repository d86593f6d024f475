//! Load program: durable registrations per second through a node over MQTT, against a bare redb
//! insert of the same records in the same run.
//!
//! ```text
//! cargo run --release --example registry_load -- --devices 100000
//! ```
//!
//! It first runs on the node's in-process bus (no MQTT), then on two brokers, both on 127.0.0.1:
//! the embedded rumqttd, then a private Mosquitto with its default queue limits from
//! `alicia-testkit`. On each it starts a node with a fresh database and sends registration
//! requests, `--in-flight` of them at a time. A registration counts when its reply arrives, which
//! the registry sends only after the durable commit. The bare side inserts the same
//! postcard-encoded records into one redb table in durable transactions of `--batch` records.
//! The run stops after the device count or `--timeout`, whichever comes first.
//!
//! A last run replaces the node with a bare MQTT responder that publishes the same three messages
//! per request and does nothing else, which shows how much of the machine the broker and the
//! load client take.
//!
//! On the in-process bus the requests go through the node's own `Bus::request`. Over MQTT a plain
//! rumqttc client sends them at QoS 1, because the load client shares the machine with the node
//! and the broker, and a full bridge per request would take CPU time from what is measured. It
//! encodes every request envelope before the clock starts, as devices would on their own
//! hardware, and checks each reply's correlation id and status.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alicia::actors::registry::validate_spec;
use alicia::actors::registry::{Capability, DeviceSpec, Property, Registration, ValueType};
use alicia::core::bus::Bus;
use alicia::core::{Codec, Envelope, MessageId, SourceId, SystemClock, Timestamp, TopicName};
use alicia::mqtt_bridge::{BrokerUrl, MqttVersion};
use alicia::{BrokerChoice, Node, NodeConfig};
use clap::Parser;

/// Registrations per second that the system Alicia replaces persisted.
const REPLACED_SYSTEM_RATE: f64 = 1_000.0;

/// Ratio to the replaced system's rate that Alicia aims for.
const TARGET_RATIO: f64 = 30.0;

const REGISTER_TOPIC: &str = "alicia/registry/request/register";

/// Measures durable registration throughput through a node over MQTT.
#[derive(Debug, Parser)]
#[command(name = "registry_load")]
struct Args {
    /// Registrations per broker run (the registry's default limit is 100000 devices).
    #[arg(long, default_value_t = 100_000)]
    devices: usize,

    /// Registration requests outstanding at a time.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,

    /// Records per durable transaction on the bare redb side.
    #[arg(long, default_value_t = 1024)]
    batch: usize,

    /// Upper bound of each run, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,

    /// Time one request may wait for its reply, in seconds.
    #[arg(long, default_value_t = 10)]
    request_timeout: u64,

    /// Runs to make, in this order: bare redb, the node on its in-process bus, the node on the
    /// embedded broker, the node on Mosquitto, a bare responder on Mosquitto. A profiler can
    /// select one run with this.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = RunKind::ALL)]
    runs: Vec<RunKind>,
}

/// One of the runs the program can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RunKind {
    /// Bare redb insert of the same records.
    Bare,
    /// The node on its in-process bus, without MQTT.
    InProcess,
    /// The node on its embedded rumqttd.
    Embedded,
    /// The node on a private Mosquitto with its default queue limits.
    Mosquitto,
    /// No node: a plain MQTT responder on a private Mosquitto sends the reply and the two events
    /// of each registration without decoding, storing or validating anything. It measures what
    /// the broker and the load client alone allow on this machine.
    BareMosquitto,
}

impl RunKind {
    const ALL: [RunKind; 5] = [
        RunKind::Bare,
        RunKind::InProcess,
        RunKind::Embedded,
        RunKind::Mosquitto,
        RunKind::BareMosquitto,
    ];
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.devices == 0 || args.in_flight == 0 || args.batch == 0 {
        eprintln!("error: --devices, --in-flight and --batch must be at least 1");
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
    println!(
        "{} registrations per run, {} in flight, bare redb batches of {}",
        args.devices, args.in_flight, args.batch
    );

    let wants = |kind: RunKind| args.runs.contains(&kind);

    let bare = if wants(RunKind::Bare) {
        let bare = bare_redb(args)?;
        print_rate("bare redb insert", &bare, None);
        Some(bare)
    } else {
        None
    };

    // The same requests on the in-process bus separate the registry's own cost from the MQTT
    // path's.
    if wants(RunKind::InProcess) {
        let in_process = in_process_node(args).await?;
        print_rate("node, in-process bus", &in_process, bare.as_ref());
    }

    if wants(RunKind::Embedded) {
        let embedded = through_node(args, NodeBroker::Embedded).await?;
        print_rate("node, embedded broker", &embedded, bare.as_ref());
    }

    if wants(RunKind::Mosquitto) {
        let mosquitto = alicia_testkit::Mosquitto::start_with(alicia_testkit::DEFAULT_QUEUE_CONFIG)
            .map_err(|error| format!("starting Mosquitto failed: {error}"))?;
        let url = BrokerUrl::parse(&mosquitto.url()).map_err(|error| error.to_string())?;
        let external = through_node(args, NodeBroker::External(url)).await?;
        print_rate("node, Mosquitto (default queue)", &external, bare.as_ref());
    }

    if wants(RunKind::BareMosquitto) {
        let mosquitto = alicia_testkit::Mosquitto::start_with(alicia_testkit::DEFAULT_QUEUE_CONFIG)
            .map_err(|error| format!("starting Mosquitto failed: {error}"))?;
        let url = BrokerUrl::parse(&mosquitto.url()).map_err(|error| error.to_string())?;
        let responder = spawn_bare_responder(&url).await?;
        let result = register_over_mqtt(args, &url).await;
        responder.abort();
        print_rate("bare responder, Mosquitto", &result?, bare.as_ref());
    }
    Ok(())
}

/// Client id of the bare responder.
const BARE_RESPONDER_ID: &str = "registry-load-responder";

/// Starts a plain MQTT client that replies to every registration request like the node does on
/// the wire, with nothing behind it.
///
/// Per request it publishes, at QoS 1, a reply with the request's correlation id on the
/// request's reply topic, a `registered` event and a retained status on a topic of its own per
/// request. The reply and event bodies hold a real record's JSON and the status has the node's
/// fields, so the sizes match the node's messages.
/// It finds the message id and reply topic by searching the request text, which the load
/// client encoded.
async fn spawn_bare_responder(url: &BrokerUrl) -> Result<tokio::task::JoinHandle<()>, String> {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

    let record = validate_spec(&spec(0), Timestamp(0)).map_err(|error| error.to_string())?;
    let record_json = serde_json::to_string(&record).map_err(|error| error.to_string())?;
    let source = SourceId::new(BARE_RESPONDER_ID).map_err(|error| error.to_string())?;
    let clock = SystemClock::new();
    let event = Codec::Json
        .encode(&Envelope::new(source.clone(), &record, &clock))
        .map_err(|error| error.to_string())?;
    let status = Codec::Json
        .encode(&Envelope::new(
            source,
            serde_json::json!({
                "device_id": record.id,
                "availability": {"state": "unknown", "reason": "not_seen_since_registration", "since": 0},
            }),
            &clock,
        ))
        .map_err(|error| error.to_string())?;

    let mut options = MqttOptions::new(BARE_RESPONDER_ID, url.host(), url.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_inflight(1024);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    client
        .subscribe(REGISTER_TOPIC, QoS::AtLeastOnce)
        .await
        .map_err(|error| format!("subscribing the bare responder failed: {error}"))?;
    let subscribed = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(format!("the bare responder failed to connect: {error}")),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .map_err(|_| "the bare responder did not subscribe within 10 s".to_owned())??;

    // The event loop task only reads; the publishing task waits on rumqttc's request channel, so
    // a full channel never stops the reads that free it.
    let (requests, mut received) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Incoming::Publish(publish)) = event
                && requests.send(publish.payload).is_err()
            {
                return;
            }
        }
    });
    let publisher = tokio::spawn(async move {
        let _reader = AbortOnDrop(reader);
        while let Some(request) = received.recv().await {
            let Some((id, reply_to)) = request_header(&request) else {
                continue;
            };
            let reply = format!(
                r#"{{"v":1,"id":"{id}","timestamp_ms":0,"source":"{BARE_RESPONDER_ID}","correlation_id":"{id}","body":{{"status":"ok","value":{{"outcome":"created","record":{record_json}}}}}}}"#
            );
            let publishes = [
                (reply_to.to_owned(), reply.into_bytes(), false),
                (
                    "alicia/devices/registry/registered".to_owned(),
                    event.clone(),
                    false,
                ),
                (format!("alicia/devices/status/{id}"), status.clone(), true),
            ];
            for (topic, payload, retain) in publishes {
                if client
                    .publish(topic, QoS::AtLeastOnce, retain, payload)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(publisher)
}

/// Finds the message id and the reply topic in a request envelope's JSON text.
fn request_header(request: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(request).ok()?;
    let field = |name: &str| {
        let key = format!("\"{name}\":\"");
        let start = text.find(&key)? + key.len();
        let length = text[start..].find('"')?;
        Some(&text[start..start + length])
    };
    Some((field("id")?, field("reply_to")?))
}

/// Aborts a task when dropped, so the bare responder's reader ends with its publisher.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum NodeBroker {
    Embedded,
    External(BrokerUrl),
}

/// The outcome of one run.
struct Run {
    count: usize,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

fn print_rate(label: &str, run: &Run, bare: Option<&Run>) {
    let rate = run.rate();
    let mut line = format!(
        "{label:<34} {:>7} in {:>8.3} s = {:>9.0}/s, {:>6.1}x the replaced system (target {TARGET_RATIO}x)",
        run.count,
        run.elapsed.as_secs_f64(),
        rate,
        rate / REPLACED_SYSTEM_RATE
    );
    if let Some(bare) = bare {
        line.push_str(&format!(", {:.2} of bare redb", rate / bare.rate()));
    }
    println!("{line}");
}

/// Builds the spec of device number `index`, a dimmable lamp.
fn spec(index: usize) -> DeviceSpec {
    let mut spec = DeviceSpec::new(format!("lamp-{index:06}"), "light", format!("Lamp {index}"));
    spec.location = Some("Kitchen".into());
    spec.capabilities = vec![
        Capability::new("on_off").with_property(Property::new("on", ValueType::Boolean).writable()),
        Capability::new("brightness").with_property(
            Property::new("level", ValueType::Integer)
                .with_unit("%")
                .with_range(0.0, 100.0, Some(1.0))
                .writable(),
        ),
    ];
    spec
}

const BARE_TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("devices");

/// Inserts the records into a fresh redb file in durable transactions of `args.batch` records.
fn bare_redb(args: &Args) -> Result<Run, String> {
    let dir = tempfile::tempdir()
        .map_err(|error| format!("creating a temporary directory failed: {error}"))?;
    let path = dir.path().join("bare.redb");
    let database = redb::Database::create(&path)
        .map_err(|error| format!("creating {} failed: {error}", path.display()))?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);

    let started = Instant::now();
    let mut count = 0;
    while count < args.devices && Instant::now() < deadline {
        let end = (count + args.batch).min(args.devices);
        // Encoding is part of the work the registry does too, so it is timed.
        let mut records = Vec::with_capacity(end - count);
        for index in count..end {
            let record = validate_spec(&spec(index), Timestamp(0))
                .map_err(|error| format!("device {index} is invalid: {error}"))?;
            let bytes = postcard::to_allocvec(&record)
                .map_err(|error| format!("encoding device {index} failed: {error}"))?;
            records.push((record.id.to_string(), bytes));
        }
        let transaction = database
            .begin_write()
            .map_err(|error| format!("beginning a redb write failed: {error}"))?;
        {
            let mut table = transaction
                .open_table(BARE_TABLE)
                .map_err(|error| format!("opening the redb table failed: {error}"))?;
            for (key, value) in &records {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(|error| format!("inserting {key} failed: {error}"))?;
            }
        }
        transaction
            .commit()
            .map_err(|error| format!("committing a redb batch failed: {error}"))?;
        count = end;
    }
    Ok(Run {
        count,
        elapsed: started.elapsed(),
    })
}

/// Starts a node on `broker` with a fresh database and registers devices through it over MQTT.
async fn through_node(args: &Args, broker: NodeBroker) -> Result<Run, String> {
    let dir = tempfile::tempdir()
        .map_err(|error| format!("creating a temporary directory failed: {error}"))?;
    let (choice, external_url) = match broker {
        NodeBroker::Embedded => {
            let listen = "127.0.0.1:0"
                .parse()
                .map_err(|_| "invalid listen address")?;
            (BrokerChoice::Embedded { listen }, None)
        }
        NodeBroker::External(url) => (
            BrokerChoice::External {
                url: url.clone(),
                protocol: MqttVersion::V5,
            },
            Some(url),
        ),
    };
    let node = start_node(dir.path(), choice).await?;
    let url = match (node.broker_addr(), external_url) {
        (Some(address), _) => {
            BrokerUrl::parse(&format!("mqtt://{address}")).map_err(|error| error.to_string())?
        }
        (None, Some(url)) => url,
        (None, None) => return Err("the node runs no embedded broker and has no broker URL".into()),
    };

    let result = register_over_mqtt(args, &url).await;

    node.shutdown()
        .await
        .map_err(|error| format!("stopping the node failed: {error}"))?;
    result
}

/// Starts a node on the in-process bus with a fresh database and registers devices through its
/// own bus, with the same envelopes and JSON as over MQTT.
async fn in_process_node(args: &Args) -> Result<Run, String> {
    let dir = tempfile::tempdir()
        .map_err(|error| format!("creating a temporary directory failed: {error}"))?;
    let node = start_node(dir.path(), BrokerChoice::InProcess).await?;
    let result = register_all(args, node.bus()).await;
    node.shutdown()
        .await
        .map_err(|error| format!("stopping the node failed: {error}"))?;
    result
}

async fn start_node(data_dir: &Path, broker: BrokerChoice) -> Result<Node, String> {
    let config = NodeConfig {
        node_id: "load-node".parse().map_err(|_| "invalid node id")?,
        data_dir: data_dir.to_path_buf(),
        broker,
        tls: None,
    };
    let node = Node::builder(config)
        .start()
        .await
        .map_err(|error| format!("starting the node failed: {error}"))?;
    if let Some(bridge) = node.bridge()
        && !bridge.wait_connected(Duration::from_secs(10)).await
    {
        return Err("the node did not connect to its broker within 10 s".into());
    }
    Ok(node)
}

/// Sends `args.devices` registration requests with `args.in_flight` outstanding and returns how
/// many were acknowledged, and in what time.
async fn register_all(args: &Args, client: &Bus) -> Result<Run, String> {
    let topic = TopicName::new(REGISTER_TOPIC).map_err(|error| error.to_string())?;
    let source = SourceId::new("registry-load").map_err(|error| error.to_string())?;
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let request_timeout = Duration::from_secs(args.request_timeout);
    let devices = args.devices;

    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..args.in_flight {
        let (client, topic, source) = (client.clone(), topic.clone(), source.clone());
        let (next, acknowledged) = (next.clone(), acknowledged.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= devices || Instant::now() >= deadline {
                    return Ok(());
                }
                let request = Envelope::new(source.clone(), spec(index), &**client.clock());
                let reply: Result<Envelope<Registration>, _> =
                    client.request(&topic, request, request_timeout).await;
                match reply {
                    Ok(_) => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        return Err(format!("registering device {index} failed: {error}"));
                    }
                }
            }
        }));
    }
    for sender in senders {
        sender
            .await
            .map_err(|error| format!("a load task failed: {error}"))??;
    }
    Ok(Run {
        count: acknowledged.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// Client id of the MQTT load client; its replies arrive under `alicia/reply/registry-load/`.
const MQTT_CLIENT_ID: &str = "registry-load";

/// Sends `args.devices` registration requests over MQTT from a plain rumqttc client, with
/// `args.in_flight` outstanding, and returns how many were acknowledged, and in what time.
///
/// Request `index` carries the message id `tag | index`, so a reply's correlation id names the
/// request it replies to. A reply counts when its correlation id matches its topic, names a request
/// without a reply yet, and its status is `ok`.
async fn register_over_mqtt(args: &Args, url: &BrokerUrl) -> Result<Run, String> {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

    let reply_prefix = format!("alicia/reply/{MQTT_CLIENT_ID}/");
    let tag = u128::from(rand::random::<u64>()) << 64;
    let requests = encode_requests(args.devices, tag, &reply_prefix)?;

    let mut options = MqttOptions::new(MQTT_CLIENT_ID, url.host(), url.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_inflight(u16::try_from(args.in_flight).unwrap_or(u16::MAX));
    let (client, mut eventloop) = AsyncClient::new(options, args.in_flight.max(16));
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);

    client
        .subscribe(format!("{reply_prefix}+"), QoS::AtLeastOnce)
        .await
        .map_err(|error| format!("subscribing the load client failed: {error}"))?;
    let subscribed = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(error) => {
                    return Err(format!(
                        "the load client failed to connect to {url}: {error}"
                    ));
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .map_err(|_| format!("the load client did not subscribe at {url} within 10 s"))??;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let request_timeout = Duration::from_secs(args.request_timeout);
    let window = Arc::new(tokio::sync::Semaphore::new(args.in_flight));
    let mut answered = vec![false; args.devices];
    let mut acknowledged = 0;

    let started = Instant::now();
    let sender = {
        let (client, window) = (client.clone(), window.clone());
        tokio::spawn(async move {
            for payload in requests {
                let Ok(permit) = window.acquire().await else {
                    return;
                };
                permit.forget();
                if client
                    .publish(REGISTER_TOPIC, QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    };

    let mut last_reply = tokio::time::Instant::now();
    let outcome = loop {
        if acknowledged == args.devices {
            break Ok(());
        }
        let wait_until = deadline.min(last_reply + request_timeout);
        let event = match tokio::time::timeout_at(wait_until, eventloop.poll()).await {
            Ok(Ok(event)) => event,
            Ok(Err(error)) => break Err(format!("the load client lost {url}: {error}")),
            Err(_) if tokio::time::Instant::now() >= deadline => break Ok(()),
            Err(_) => {
                break Err(format!(
                    "no registration reply within {request_timeout:?} after {acknowledged} replies"
                ));
            }
        };
        let Event::Incoming(Incoming::Publish(publish)) = event else {
            continue;
        };
        let index = check_reply(
            &publish.topic,
            &publish.payload,
            &reply_prefix,
            tag,
            &answered,
        )?;
        answered[index] = true;
        acknowledged += 1;
        last_reply = tokio::time::Instant::now();
        window.add_permits(1);
    };
    let elapsed = started.elapsed();

    window.close();
    sender.abort();
    let _ = client.disconnect().await;
    outcome?;
    Ok(Run {
        count: acknowledged,
        elapsed,
    })
}

/// Encodes the registration request of every device, each naming its own reply topic.
fn encode_requests(devices: usize, tag: u128, reply_prefix: &str) -> Result<Vec<Vec<u8>>, String> {
    let source = SourceId::new(MQTT_CLIENT_ID).map_err(|error| error.to_string())?;
    let clock = SystemClock::new();
    (0..devices)
        .map(|index| {
            let id = MessageId::from_u128(tag | index as u128);
            let reply_to =
                TopicName::new(format!("{reply_prefix}{id}")).map_err(|error| error.to_string())?;
            let envelope = Envelope::new(source.clone(), spec(index), &clock)
                .with_message_id(id)
                .with_reply_to(reply_to);
            Codec::Json
                .encode(&envelope)
                .map_err(|error| format!("encoding request {index} failed: {error}"))
        })
        .collect()
}

/// Checks one reply and returns the index of the request it replies to.
///
/// The check searches the payload for the correlation id that the topic names and for an `ok`
/// status at the start of the body instead of parsing the JSON, to keep the load client cheap.
/// It relies on the key order of Alicia's JSON encoder (`correlation_id` before `body`, `status`
/// first in a reply body), so a change there fails the run instead of counting bad replies.
fn check_reply(
    topic: &str,
    payload: &[u8],
    reply_prefix: &str,
    tag: u128,
    answered: &[bool],
) -> Result<usize, String> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| format!("the reply on \"{topic}\" is not UTF-8"))?;
    let correlation = topic
        .strip_prefix(reply_prefix)
        .ok_or_else(|| format!("a reply arrived on the foreign topic \"{topic}\""))?;
    let correlation_field = format!("\"correlation_id\":\"{correlation}\"");
    let Some(at) = text.find(&correlation_field) else {
        return Err(format!(
            "the reply on \"{topic}\" does not carry the correlation id {correlation}: {text}"
        ));
    };
    if !text[at..].contains("\"body\":{\"status\":\"ok\"") {
        return Err(format!("a registration failed: {text}"));
    }

    let id = MessageId::parse(correlation)
        .map_err(|error| error.to_string())?
        .as_u128();
    let index = (id ^ tag) as usize;
    if id & !u128::from(u64::MAX) != tag || answered.get(index) != Some(&false) {
        return Err(format!(
            "the reply on \"{topic}\" replies to no outstanding request"
        ));
    }
    Ok(index)
}
