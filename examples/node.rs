//! The bundled example node: the embedded MQTT broker (or an external one), the bridge, and every
//! service, until Ctrl-C or SIGTERM.
//!
//! ```sh
//! cargo run --example node
//! cargo run --example node -- --broker mqtt://127.0.0.1:1883 --data-dir /tmp/alicia
//! ```
//!
//! Logs go to stderr. Log level: `RUST_LOG` (for example `RUST_LOG=debug`); the default is
//! `info`, with the embedded broker's routine per-connection lines left out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use alicia::config::{parse_listen, tls_files};
use alicia::core::NodeId;
use alicia::mqtt_bridge::{BrokerUrl, MqttVersion, Transport};
use alicia::{BrokerChoice, Node, NodeConfig};
use clap::Parser;

/// Log filter without `RUST_LOG`. rumqttd logs routine client disconnects as errors: its router
/// ("no-connection id ... is already gone") and its connection handler ("router-drop", and a
/// rejected connect of an MQTT 5 client). Both are quiet, and the rest of rumqttd logs warnings
/// only.
const DEFAULT_LOG_FILTER: &str =
    "info,rumqttd=warn,rumqttd::router=off,rumqttd::server::broker=off";

/// Runs an Alicia node with the device registry and the health monitor.
#[derive(Debug, Parser)]
#[command(name = "node", version)]
struct Args {
    /// Connect to this broker (mqtt://HOST[:PORT] or mqtts://...) instead of running the
    /// embedded one.
    #[arg(long, value_name = "URL", conflicts_with = "listen")]
    broker: Option<BrokerUrl>,

    /// MQTT version to speak to the external broker: 5 (default) or 3.1.1 for brokers without
    /// MQTT 5, such as another node's embedded broker.
    #[arg(long, value_name = "VERSION", conflicts_with = "listen")]
    mqtt_version: Option<MqttVersion>,

    /// Address the embedded broker listens on [default: 127.0.0.1:1883].
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    listen: Option<SocketAddr>,

    /// Directory of the node's database [default: $XDG_DATA_HOME/alicia or ~/.local/share/alicia].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// TOML configuration file; the other flags override its values.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The node's id, also its MQTT client id [default: alicia].
    #[arg(long, value_name = "ID")]
    node_id: Option<NodeId>,

    /// CA certificate (PEM) that signed the broker's certificate, for an mqtts:// broker.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// Client certificate chain (PEM), for brokers that require one; needs --client-key.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,

    /// Private key (PEM) of the client certificate; needs --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,

    /// Serve Prometheus metrics on this loopback address (for example 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    /// Run no device registry, for a second node on a broker whose first node runs it. Every
    /// registry on a broker replies to every registry request.
    #[arg(long)]
    no_registry: bool,

    /// Run no health monitor.
    #[arg(long)]
    no_health: bool,

    /// Connect to the external broker with a clean MQTT session: the broker drops what it kept
    /// for this node id, including subscriptions of services the node no longer runs, and
    /// keeps nothing while the node is down.
    #[arg(long)]
    clean_session: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = node_config(&args)?;

    let mut builder = Node::builder(config.clone());
    if let Some(address) = args.metrics {
        builder = builder.metrics(address);
    }
    if args.no_registry {
        builder = builder.without_registry();
    }
    if args.no_health {
        builder = builder.without_health();
    }
    if args.clean_session {
        builder = builder.session_expiry(None);
    }
    let node = builder.start().await.map_err(|error| error.to_string())?;
    if let Some(bridge) = node.bridge() {
        // The bridge connects in the background; a short wait lets the banner say whether it has.
        bridge.wait_connected(Duration::from_secs(3)).await;
    }

    print_welcome(&node, &config);

    wait_for_stop_signal().await?;
    eprintln!("stopping...");
    node.shutdown().await.map_err(|error| error.to_string())
}

/// Reads the configuration file, if any, then applies the flags on top of it.
fn node_config(args: &Args) -> Result<NodeConfig, String> {
    let mut config = match &args.config {
        Some(path) => NodeConfig::load(path).map_err(|error| error.to_string())?,
        None => NodeConfig::default(),
    };

    if let Some(node_id) = &args.node_id {
        config.node_id = node_id.clone();
    }
    if let Some(data_dir) = &args.data_dir {
        config.data_dir = data_dir.clone();
    }
    if let Some(url) = &args.broker {
        // A version from the configuration file still applies to a broker given by flag.
        let protocol = match &config.broker {
            BrokerChoice::External { protocol, .. } => *protocol,
            _ => MqttVersion::default(),
        };
        config.broker = BrokerChoice::External {
            url: url.clone(),
            protocol,
        };
    }
    if let Some(version) = args.mqtt_version {
        match &mut config.broker {
            BrokerChoice::External { protocol, .. } => *protocol = version,
            _ => {
                return Err(
                    "--mqtt-version applies to an external broker: give --broker URL, or `url` under [broker] in the configuration file".into(),
                );
            }
        }
    }
    if let Some(listen) = args.listen {
        config.broker = BrokerChoice::Embedded { listen };
    }
    if args.ca_file.is_some() || args.client_cert.is_some() {
        config.tls = tls_files(
            args.ca_file.clone(),
            args.client_cert.clone(),
            args.client_key.clone(),
            "flags",
        )
        .map_err(|error| error.to_string())?;
    }
    Ok(config)
}

fn print_welcome(node: &Node, config: &NodeConfig) {
    let (host, port) = match (&config.broker, node.broker_addr()) {
        (_, Some(address)) => (address.ip().to_string(), address.port()),
        (BrokerChoice::External { url, .. }, None) => (url.host().to_owned(), url.port()),
        _ => ("127.0.0.1".to_owned(), 1883),
    };
    let broker = match &config.broker {
        BrokerChoice::Embedded { .. } => format!("embedded, listening on {host}:{port}"),
        BrokerChoice::External { url, .. } => {
            let connected = node.bridge().is_some_and(|bridge| bridge.is_connected());
            let state = if connected {
                "connected"
            } else {
                "not connected yet, retrying in the background"
            };
            format!("external, {url} ({state})")
        }
        BrokerChoice::InProcess => "none (in-process bus only)".to_owned(),
    };
    let tls = match &config.broker {
        BrokerChoice::External { url, .. } if url.transport() == Transport::Tls => {
            " --cafile CA.pem"
        }
        _ => "",
    };
    let (host, port) = (format!("{host}{tls}"), port);

    println!();
    println!("Alicia node \"{}\" is running.", node.id());
    println!("  broker:    {broker}");
    println!("  data dir:  {}", node.data_dir().display());
    if let Some(address) = node.metrics_addr() {
        println!("  metrics:   http://{address}/metrics");
    }
    println!();
    println!("Watch the bus:");
    println!("  mosquitto_sub -h {host} -p {port} -v -t 'alicia/#'");
    println!();
    println!("Register a device (the reply arrives on alicia/reply/script/1):");
    println!(
        "  mosquitto_pub -h {host} -p {port} -t alicia/registry/request/register -m \
         '{{\"v\":1,\"id\":\"00000000000000000000000000000001\",\"timestamp_ms\":0,\"source\":\"script\",\
         \"reply_to\":\"alicia/reply/script/1\",\"body\":{{\"id\":\"lamp-1\",\"type\":\"light\",\"name\":\"Kitchen lamp\"}}}}'"
    );
    println!();
    println!("Stop with Ctrl-C.");
}

/// Waits for Ctrl-C or, on Unix, SIGTERM.
async fn wait_for_stop_signal() -> Result<(), String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())
            .map_err(|error| format!("installing the SIGTERM handler failed: {error}"))?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(|error| format!("waiting for Ctrl-C failed: {error}")),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|error| format!("waiting for Ctrl-C failed: {error}"))
    }
}
