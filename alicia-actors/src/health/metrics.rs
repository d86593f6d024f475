//! The opt-in Prometheus endpoint: `GET /metrics` in the text exposition format 0.0.4, on a
//! loopback address only.
//!
//! A [`MetricsRegistry`] contains every [`MetricSource`]: the health monitor's client is one, and the
//! MQTT bridge and device registry add theirs. The server is a minimal HTTP/1.1 responder on a
//! tokio listener. It serves one request per connection and closes it, and it bounds the request
//! size, the time per connection and the number of connections at once.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::actor::HealthMetrics;
use super::alert::AlertKind;
use super::client::HealthClient;
use super::detector::ServiceState;
use super::error::MetricsError;

/// Largest request head read, in bytes; longer requests get `431`.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Time a client has to send its request and read the reply.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more wait in the listener's backlog.
const MAX_CONNECTIONS: usize = 16;

/// Time one source has to collect its metrics before it is left out of a scrape.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a metric only goes up or can go either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A count that only increases while the process runs.
    Counter,
    /// A value that can go up and down.
    Gauge,
}

/// One value of a metric, with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values. Names follow the metric name rule, without ':'.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// A metric: its name, help text, kind and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// The name, such as `alicia_health_heartbeats_total`.
    pub name: String,
    /// One line saying what it measures, in which unit.
    pub help: String,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// Its values.
    pub samples: Vec<Sample>,
}

impl MetricFamily {
    /// Creates a family without samples.
    ///
    /// # Errors
    ///
    /// [`MetricsError::InvalidName`] if `name` is not a valid Prometheus metric name.
    pub fn new(
        name: impl Into<String>,
        help: impl Into<String>,
        kind: MetricKind,
    ) -> Result<Self, MetricsError> {
        let name = name.into();
        if !is_metric_name(&name) {
            return Err(MetricsError::InvalidName { name });
        }
        Ok(Self {
            name,
            help: help.into(),
            kind,
            samples: Vec::new(),
        })
    }

    /// Adds a sample.
    pub fn sample(mut self, labels: Vec<(&'static str, String)>, value: f64) -> Self {
        self.samples.push(Sample { labels, value });
        self
    }
}

/// Something that contributes metrics to each scrape.
pub trait MetricSource: Send + Sync + 'static {
    /// Collects the source's current metrics. A source that fails logs why and returns what it
    /// has, possibly nothing.
    fn collect(&self) -> Pin<Box<dyn Future<Output = Vec<MetricFamily>> + Send + '_>>;
}

/// The sources the metrics endpoint reads, in the order they were added.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    sources: Arc<std::sync::RwLock<Vec<Arc<dyn MetricSource>>>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRegistry").finish_non_exhaustive()
    }
}

impl MetricsRegistry {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source to every later scrape.
    pub fn register(&self, source: Arc<dyn MetricSource>) {
        self.sources
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(source);
    }

    /// Collects every source and renders the result in the text exposition format.
    ///
    /// A source that takes longer than 3 seconds is left out of this scrape, with a warning.
    pub async fn render(&self) -> String {
        let sources = self
            .sources
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut text = String::new();
        for (index, source) in sources.iter().enumerate() {
            match tokio::time::timeout(COLLECT_TIMEOUT, source.collect()).await {
                Ok(families) => families
                    .iter()
                    .for_each(|family| write_family(&mut text, family)),
                Err(_) => tracing::warn!(
                    source = index,
                    "metric source left out of the scrape: it did not answer within 3 s"
                ),
            }
        }
        text
    }
}

/// Writes one family in the text exposition format.
fn write_family(text: &mut String, family: &MetricFamily) {
    let kind = match family.kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
    };
    // `fmt::Write` for `String` always returns `Ok`, so the results below are ignored.
    let _ = writeln!(text, "# HELP {} {}", family.name, escape_help(&family.help));
    let _ = writeln!(text, "# TYPE {} {kind}", family.name);
    for sample in &family.samples {
        text.push_str(&family.name);
        if !sample.labels.is_empty() {
            text.push('{');
            for (index, (name, value)) in sample.labels.iter().enumerate() {
                if index > 0 {
                    text.push(',');
                }
                let _ = write!(text, "{name}=\"{}\"", escape_label(value));
            }
            text.push('}');
        }
        let _ = writeln!(text, " {}", format_value(sample.value));
    }
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        value.to_string()
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl MetricSource for HealthClient {
    fn collect(&self) -> Pin<Box<dyn Future<Output = Vec<MetricFamily>> + Send + '_>> {
        Box::pin(async move {
            match self.metrics().await {
                Ok(metrics) => health_families(&metrics),
                Err(error) => {
                    tracing::warn!(%error, "health metrics left out of the scrape");
                    Vec::new()
                }
            }
        })
    }
}

/// Builds the metric families of the health monitor.
pub fn health_families(metrics: &HealthMetrics) -> Vec<MetricFamily> {
    // The names below are literals that satisfy the name rule, so `family` cannot fail.
    let family = |name: &str, help: &str, kind| MetricFamily {
        name: name.into(),
        help: help.into(),
        kind,
        samples: Vec::new(),
    };

    let mut state = family(
        "alicia_health_service_state",
        "1 for the state each service is in, 0 for the others.",
        MetricKind::Gauge,
    );
    let mut uptime = family(
        "alicia_service_uptime_seconds",
        "Service uptime from its last heartbeat.",
        MetricKind::Gauge,
    );
    let mut messages = family(
        "alicia_service_messages_handled_total",
        "Messages handled by the service.",
        MetricKind::Counter,
    );
    let mut errors = family(
        "alicia_service_errors_total",
        "Handler errors of the service.",
        MetricKind::Counter,
    );
    let mut restarts = family(
        "alicia_service_restarts_total",
        "Restarts of the service by its supervisor.",
        MetricKind::Counter,
    );
    let mut mailbox = family(
        "alicia_service_mailbox_depth",
        "Messages waiting in the service's mailbox.",
        MetricKind::Gauge,
    );
    let mut p50 = family(
        "alicia_service_latency_p50_seconds",
        "Median handler latency over the last heartbeat interval.",
        MetricKind::Gauge,
    );
    let mut p99 = family(
        "alicia_service_latency_p99_seconds",
        "99th percentile handler latency over the last heartbeat interval.",
        MetricKind::Gauge,
    );
    let mut cpu = family(
        "alicia_service_cpu_percent",
        "Process CPU in percent of one core.",
        MetricKind::Gauge,
    );
    let mut memory = family(
        "alicia_service_resident_memory_bytes",
        "Process resident memory.",
        MetricKind::Gauge,
    );

    for status in &metrics.statuses {
        let service = status.service.to_string();
        for candidate in [
            ServiceState::Unknown,
            ServiceState::Healthy,
            ServiceState::Degraded,
            ServiceState::Down,
        ] {
            let value = if candidate == status.state { 1.0 } else { 0.0 };
            state.samples.push(Sample {
                labels: vec![
                    ("service", service.clone()),
                    ("state", candidate.as_str().into()),
                ],
                value,
            });
        }

        let Some(heartbeat) = &status.last_heartbeat else {
            continue;
        };
        let labels = || vec![("service", service.clone())];
        let push = |family: &mut MetricFamily, value: f64| {
            family.samples.push(Sample {
                labels: labels(),
                value,
            });
        };
        push(&mut uptime, heartbeat.uptime_ms as f64 / 1_000.0);
        push(&mut messages, heartbeat.messages_handled as f64);
        push(&mut errors, heartbeat.errors as f64);
        push(&mut restarts, heartbeat.restarts as f64);
        push(&mut mailbox, heartbeat.mailbox_depth as f64);
        if let Some(micros) = heartbeat.latency_p50_us {
            push(&mut p50, micros as f64 / 1e6);
        }
        if let Some(micros) = heartbeat.latency_p99_us {
            push(&mut p99, micros as f64 / 1e6);
        }
        if let Some(process) = &heartbeat.process {
            if let Some(percent) = process.cpu_percent {
                push(&mut cpu, f64::from(percent));
            }
            push(&mut memory, process.resident_memory_bytes as f64);
        }
    }

    let mut active = family(
        "alicia_health_active_alerts",
        "Active alerts by kind.",
        MetricKind::Gauge,
    );
    let mut raised = family(
        "alicia_health_alerts_raised_total",
        "Alerts raised since the monitor started, by kind.",
        MetricKind::Counter,
    );
    let mut resolved = family(
        "alicia_health_alerts_resolved_total",
        "Alerts resolved since the monitor started, by kind.",
        MetricKind::Counter,
    );
    for kind in AlertKind::ALL {
        let labels = vec![("kind", kind.as_str().to_owned())];
        let count = |map: &std::collections::BTreeMap<AlertKind, u64>| {
            map.get(&kind).copied().unwrap_or(0) as f64
        };
        active.samples.push(Sample {
            labels: labels.clone(),
            value: count(&metrics.active_alerts),
        });
        raised.samples.push(Sample {
            labels: labels.clone(),
            value: count(&metrics.raised_total),
        });
        resolved.samples.push(Sample {
            labels,
            value: count(&metrics.resolved_total),
        });
    }

    let heartbeats = family(
        "alicia_health_heartbeats_total",
        "Heartbeats accepted by the monitor.",
        MetricKind::Counter,
    )
    .sample(Vec::new(), metrics.heartbeats_total as f64);
    let rejected = family(
        "alicia_health_heartbeats_rejected_total",
        "Heartbeats rejected by the monitor.",
        MetricKind::Counter,
    )
    .sample(Vec::new(), metrics.heartbeats_rejected_total as f64);
    let history_errors = family(
        "alicia_health_history_errors_total",
        "Failed writes to the alert history.",
        MetricKind::Counter,
    )
    .sample(Vec::new(), metrics.history_errors_total as f64);

    vec![
        state,
        uptime,
        messages,
        errors,
        restarts,
        mailbox,
        p50,
        p99,
        cpu,
        memory,
        active,
        raised,
        resolved,
        heartbeats,
        rejected,
        history_errors,
    ]
}

/// A running metrics endpoint. Dropping it, or calling [`stop`](Self::stop), closes the listener.
#[derive(Debug)]
pub struct MetricsServer {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `address`, which must be a loopback address such as `127.0.0.1:9464`, and serves
    /// `registry` on `GET /metrics`. Port 0 picks a free port; [`address`](Self::address)
    /// returns it.
    ///
    /// # Errors
    ///
    /// [`MetricsError::NotLoopback`] for any other address, [`MetricsError::Bind`] if the port
    /// is taken.
    pub async fn bind(
        address: SocketAddr,
        registry: MetricsRegistry,
    ) -> Result<Self, MetricsError> {
        if !address.ip().is_loopback() {
            return Err(MetricsError::NotLoopback { address });
        }
        let listener = TcpListener::bind(address)
            .await
            .map_err(|error| MetricsError::Bind { address, error })?;
        let address = listener
            .local_addr()
            .map_err(|error| MetricsError::Bind { address, error })?;

        let (shutdown, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, registry, stopped));
        tracing::info!(%address, "metrics endpoint listening");
        Ok(Self {
            address,
            shutdown,
            task,
        })
    }

    /// Returns the address the endpoint listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections and waits until the accept loop has ended.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn serve(
    listener: TcpListener,
    registry: MetricsRegistry,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stopped.changed() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let served =
                        tokio::time::timeout(CONNECTION_TIMEOUT, respond(stream, &registry)).await;
                    if served.is_err() {
                        tracing::debug!(%peer, "metrics connection closed: timed out");
                    }
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint failed to accept a connection");
                // Errors such as running out of file descriptors repeat at once; pausing keeps the
                // loop from spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!("metrics endpoint stopped");
}

/// Reads one request head and writes one response.
async fn respond(mut stream: TcpStream, registry: &MetricsRegistry) {
    let mut request = Vec::with_capacity(1_024);
    let mut buffer = [0u8; 1_024];
    let head_complete = loop {
        if request.windows(4).any(|window| window == b"\r\n\r\n") {
            break true;
        }
        if request.len() > MAX_REQUEST_BYTES {
            break false;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    };

    let (status, content_type, body) = if !head_complete {
        (
            "431 Request Header Fields Too Large",
            "text/plain",
            String::from("request too large\n"),
        )
    } else {
        route(&request, registry).await
    };

    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn route(request: &[u8], registry: &MetricsRegistry) -> (&'static str, &'static str, String) {
    let line_end = request
        .iter()
        .position(|&byte| byte == b'\r')
        .unwrap_or(request.len());
    let line = String::from_utf8_lossy(&request[..line_end]);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");

    match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            registry.render().await,
        ),
        (_, "/metrics") => ("405 Method Not Allowed", "text/plain", "use GET\n".into()),
        _ => (
            "404 Not Found",
            "text/plain",
            "the only path is /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_name_rule() {
        assert!(is_metric_name("alicia_bridge_messages_in_total"));
        assert!(is_metric_name(":a_b"));
        assert!(!is_metric_name("9lives"));
        assert!(!is_metric_name("bad-name"));
        assert!(!is_metric_name(""));
    }

    #[test]
    fn label_values_escaped() {
        let mut text = String::new();
        let family = MetricFamily::new("x", "line\nbreak", MetricKind::Gauge)
            .unwrap()
            .sample(vec![("l", "a\"b\\c\nd".into())], 1.5);
        write_family(&mut text, &family);
        assert_eq!(
            text,
            "# HELP x line\\nbreak\n# TYPE x gauge\nx{l=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }

    #[test]
    fn special_values_formatted() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(3.0), "3");
    }
}
