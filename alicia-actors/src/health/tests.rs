//! Detection, alert lifecycle, history and metrics endpoint tests, driven by a manual clock.

use std::time::Duration;

use alicia_core::{ManualClock, NodeId, ServiceId, Store, Timestamp};

use super::*;

const INTERVAL: Duration = Duration::from_secs(1);

fn service(name: &str) -> ServiceId {
    ServiceId::new(name).unwrap()
}

fn node() -> NodeId {
    NodeId::new("hub").unwrap()
}

fn heartbeat(name: &str) -> ServiceHeartbeat {
    ServiceHeartbeat {
        service: service(name),
        node: node(),
        sent_at: Timestamp(0),
        interval_ms: 1_000,
        uptime_ms: 60_000,
        messages_handled: 0,
        errors: 0,
        latency_p50_us: None,
        latency_p99_us: None,
        mailbox_depth: 0,
        restarts: 0,
        process: None,
    }
}

fn with_cpu(name: &str, cpu_percent: f32) -> ServiceHeartbeat {
    ServiceHeartbeat {
        process: Some(ProcessSample {
            cpu_percent: Some(cpu_percent),
            resident_memory_bytes: 1_000,
        }),
        ..heartbeat(name)
    }
}

fn config() -> HealthConfig {
    HealthConfig {
        default_thresholds: Thresholds {
            cpu_percent: Some(Threshold::new(80.0, 70.0).unwrap()),
            ..Thresholds::default()
        },
        sweep_interval: None,
        alert_update_interval: Duration::from_secs(3_600),
        ..HealthConfig::default()
    }
}

fn detector(clock: &ManualClock) -> Detector {
    Detector::new(config(), clock.shared(), 1).unwrap()
}

fn state_of(detector: &Detector, name: &str) -> ServiceState {
    detector.status(&service(name)).unwrap().state
}

fn kinds(events: &[HealthAlert]) -> Vec<(AlertEventKind, AlertKind)> {
    events
        .iter()
        .map(|event| (event.event, event.alert.kind))
        .collect()
}

#[test]
fn down_after_exact_missed_intervals() {
    let clock = ManualClock::new(Timestamp(1_000_000));
    let mut detector = detector(&clock);
    detector.ingest(heartbeat("lights")).unwrap();

    clock.advance(INTERVAL * 3 - Duration::from_millis(1));
    assert!(detector.sweep().is_empty());
    assert_eq!(state_of(&detector, "lights"), ServiceState::Healthy);

    clock.advance(Duration::from_millis(1));
    let events = detector.sweep();
    assert_eq!(
        kinds(&events),
        vec![(AlertEventKind::Raised, AlertKind::ServiceDown)]
    );
    assert_eq!(state_of(&detector, "lights"), ServiceState::Down);
}

#[test]
fn missed_count_is_configurable() {
    let clock = ManualClock::new(Timestamp(0));
    let mut config = config();
    config.per_service.insert(
        service("lights"),
        Thresholds {
            missed_heartbeats: 5,
            ..Thresholds::default()
        },
    );
    let mut detector = Detector::new(config, clock.shared(), 1).unwrap();
    detector.ingest(heartbeat("lights")).unwrap();

    clock.advance(INTERVAL * 5 - Duration::from_millis(1));
    detector.sweep();
    assert_eq!(state_of(&detector, "lights"), ServiceState::Healthy);

    clock.advance(Duration::from_millis(1));
    detector.sweep();
    assert_eq!(state_of(&detector, "lights"), ServiceState::Down);
}

#[test]
fn down_raised_once_across_sweeps() {
    let clock = ManualClock::new(Timestamp(0));
    let mut detector = detector(&clock);
    detector.ingest(heartbeat("lights")).unwrap();

    clock.advance(INTERVAL * 3);
    assert_eq!(detector.sweep().len(), 1);
    clock.advance(INTERVAL * 10);
    assert!(detector.sweep().is_empty());
    assert_eq!(detector.active_alerts().len(), 1);
}

#[test]
fn heartbeat_recovers_down_service() {
    let clock = ManualClock::new(Timestamp(0));
    let mut detector = detector(&clock);
    detector.ingest(heartbeat("lights")).unwrap();
    clock.advance(INTERVAL * 3);
    detector.sweep();

    clock.advance(INTERVAL);
    let events = detector.ingest(heartbeat("lights")).unwrap();

    assert_eq!(
        kinds(&events),
        vec![(AlertEventKind::Resolved, AlertKind::ServiceDown)]
    );
    assert_eq!(events[0].alert.resolved_at, Some(clock_now(&clock)));
    assert_eq!(state_of(&detector, "lights"), ServiceState::Healthy);
    assert!(detector.active_alerts().is_empty());
}

fn clock_now(clock: &ManualClock) -> Timestamp {
    use alicia_core::Clock;
    clock.now()
}

#[test]
fn node_offline_downs_its_services_at_once() {
    let clock = ManualClock::new(Timestamp(0));
    let mut detector = detector(&clock);
    detector.ingest(heartbeat("lights")).unwrap();
    let mut elsewhere = heartbeat("heating");
    elsewhere.node = NodeId::new("garage").unwrap();
    detector.ingest(elsewhere).unwrap();

    let events = detector.node_offline(&node());

    assert_eq!(
        kinds(&events),
        vec![(AlertEventKind::Raised, AlertKind::ServiceDown)]
    );
    assert_eq!(state_of(&detector, "lights"), ServiceState::Down);
    assert_eq!(state_of(&detector, "heating"), ServiceState::Healthy);
}

#[test]
fn expected_service_unknown_then_down() {
    let clock = ManualClock::new(Timestamp(0));
    let config = HealthConfig {
        expected_services: vec![service("locks")],
        expected_interval: INTERVAL,
        ..config()
    };
    let mut detector = Detector::new(config, clock.shared(), 1).unwrap();
    assert_eq!(state_of(&detector, "locks"), ServiceState::Unknown);

    clock.advance(INTERVAL * 3 - Duration::from_millis(1));
    detector.sweep();
    assert_eq!(state_of(&detector, "locks"), ServiceState::Unknown);

    clock.advance(Duration::from_millis(1));
    detector.sweep();
    assert_eq!(state_of(&detector, "locks"), ServiceState::Down);
}

#[test]
fn hovering_cpu_raises_one_alert() {
    let clock = ManualClock::new(Timestamp(0));
    let mut detector = detector(&clock);
    let mut events = Vec::new();

    for cpu in [79.0, 81.0, 79.0, 80.5, 71.0, 79.9, 80.0, 70.0] {
        clock.advance(INTERVAL);
        events.extend(detector.ingest(with_cpu("lights", cpu)).unwrap());
    }

    assert_eq!(
        kinds(&events),
        vec![(AlertEventKind::Raised, AlertKind::HighCpu)]
    );
    assert_eq!(state_of(&detector, "lights"), ServiceState::Degraded);
}

#[test]
fn cpu_alert_resolves_below_clear() {
    let clock = ManualClock::new(Timestamp(0));
    let mut detector = detector(&clock);
    detector.ingest(with_cpu("lights", 95.0)).unwrap();

    let events = detector.ingest(with_cpu("lights", 69.9)).unwrap();

    assert_eq!(
        kinds(&events),
        vec![(AlertEventKind::Resolved, AlertKind::HighCpu)]
    );
    assert_eq!(events[0].alert.peak, 95.0);
    assert_eq!(state_of(&detector, "lights"), ServiceState::Healthy);
}

#[test]
fn one_alert_per_service_and_kind() {
    let clock = ManualClock::new(Timestamp(0));
    let mut detector = detector(&clock);
    let slow_and_busy = ServiceHeartbeat {
        latency_p99_us: Some(900_000),
        ..with_cpu("lights", 99.0)
    };

    for _ in 0..5 {
        clock.advance(INTERVAL);
        detector.ingest(slow_and_busy.clone()).unwrap();
        detector.ingest(with_cpu("heating", 99.0)).unwrap();
    }

    let mut active: Vec<_> = detector
        .active_alerts()
        .into_iter()
        .map(|alert| (alert.service.to_string(), alert.kind))
        .collect();
    active.sort();
    assert_eq!(
        active,
        vec![
            ("heating".to_string(), AlertKind::HighCpu),
            ("lights".to_string(), AlertKind::HighCpu),
            ("lights".to_string(), AlertKind::SlowResponses),
        ]
    );
}

#[test]
fn updates_limited_by_update_interval() {
    let clock = ManualClock::new(Timestamp(0));
    let config = HealthConfig {
        alert_update_interval: Duration::from_secs(10),
        ..config()
    };
    let mut detector = Detector::new(config, clock.shared(), 1).unwrap();
    let mut events = Vec::new();

    for _ in 0..25 {
        events.extend(detector.ingest(with_cpu("lights", 90.0)).unwrap());
        clock.advance(INTERVAL);
    }

    let updates = events
        .iter()
        .filter(|event| event.event == AlertEventKind::Updated)
        .count();
    assert_eq!(updates, 2);
}

#[test]
fn error_rate_uses_sliding_window() {
    let clock = ManualClock::new(Timestamp(0));
    let config = HealthConfig {
        default_thresholds: Thresholds {
            error_rate: Some(Threshold::new(0.5, 0.1).unwrap()),
            error_window: Duration::from_secs(10),
            min_messages_for_error_rate: 10,
            ..Thresholds::default()
        },
        ..config()
    };
    let mut detector = Detector::new(config, clock.shared(), 1).unwrap();
    let mut beat = heartbeat("lights");
    beat.uptime_ms = 0;
    detector.ingest(beat.clone()).unwrap();

    // 20 messages, all failed, within one second: the rate is 1.0.
    clock.advance(INTERVAL);
    beat.messages_handled = 20;
    beat.errors = 20;
    let raised = detector.ingest(beat.clone()).unwrap();
    assert_eq!(
        kinds(&raised),
        vec![(AlertEventKind::Raised, AlertKind::HighErrorRate)]
    );

    // Then 10 successes a second. Counted since start, the rate stays above the clear value of
    // 0.1 until second 20, but the 10-second window no longer contains the failures at second 11.
    let mut resolved_at = None;
    for second in 2..=19 {
        clock.advance(INTERVAL);
        beat.messages_handled += 10;
        let events = detector.ingest(beat.clone()).unwrap();
        if !events.is_empty() {
            resolved_at = Some(second);
            assert_eq!(
                kinds(&events),
                vec![(AlertEventKind::Resolved, AlertKind::HighErrorRate)]
            );
            break;
        }
    }
    assert_eq!(resolved_at, Some(11));
}

#[test]
fn restart_storm_raised_and_calms() {
    let clock = ManualClock::new(Timestamp(0));
    let config = HealthConfig {
        default_thresholds: Thresholds {
            restarts: Some(Threshold::new(3.0, 1.0).unwrap()),
            restart_window: Duration::from_secs(10),
            ..Thresholds::default()
        },
        ..config()
    };
    let mut detector = Detector::new(config, clock.shared(), 1).unwrap();
    let mut beat = heartbeat("lights");
    beat.uptime_ms = 0;
    detector.ingest(beat.clone()).unwrap();

    let mut events = Vec::new();
    for _ in 0..3 {
        clock.advance(INTERVAL);
        beat.restarts += 1;
        events.extend(detector.ingest(beat.clone()).unwrap());
    }
    assert_eq!(
        kinds(&events),
        vec![(AlertEventKind::Raised, AlertKind::RestartStorm)]
    );

    events.clear();
    for _ in 0..12 {
        clock.advance(INTERVAL);
        events.extend(detector.ingest(beat.clone()).unwrap());
    }
    assert_eq!(
        kinds(&events),
        vec![(AlertEventKind::Resolved, AlertKind::RestartStorm)]
    );
}

#[test]
fn counter_reset_starts_new_window() {
    let clock = ManualClock::new(Timestamp(0));
    let config = HealthConfig {
        default_thresholds: Thresholds {
            restarts: Some(Threshold::new(3.0, 1.0).unwrap()),
            ..Thresholds::default()
        },
        ..config()
    };
    let mut detector = Detector::new(config, clock.shared(), 1).unwrap();
    let mut beat = heartbeat("lights");
    beat.restarts = 2;
    detector.ingest(beat.clone()).unwrap();

    clock.advance(INTERVAL);
    beat.restarts = 1;
    let events = detector.ingest(beat).unwrap();

    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn heartbeat_interval_out_of_range_rejected() {
    let clock = ManualClock::new(Timestamp(0));
    let mut detector = detector(&clock);
    let mut beat = heartbeat("lights");
    beat.interval_ms = 0;

    let error = detector.ingest(beat).unwrap_err();

    assert!(error.to_string().contains("interval_ms 0"), "{error}");
    assert!(detector.status(&service("lights")).is_none());
}

#[test]
fn alert_ids_increase() {
    let clock = ManualClock::new(Timestamp(0));
    let mut detector = Detector::new(config(), clock.shared(), 41).unwrap();
    detector.ingest(with_cpu("lights", 99.0)).unwrap();
    detector.ingest(with_cpu("heating", 99.0)).unwrap();

    let ids: Vec<_> = detector
        .active_alerts()
        .iter()
        .map(|alert| alert.id)
        .collect();
    assert_eq!(ids, vec![41, 42]);
}

// The history and the actor, against a real store.

fn open_store(dir: &std::path::Path, clock: &ManualClock) -> Store {
    Store::open(dir, clock.shared()).unwrap().store
}

fn resolved_alert(id: u64) -> Alert {
    Alert {
        id,
        service: service("lights"),
        kind: AlertKind::HighCpu,
        severity: Severity::Warning,
        message: String::new(),
        value: 1.0,
        peak: 1.0,
        threshold: 1.0,
        raised_at: Timestamp(id),
        updated_at: Timestamp(id),
        resolved_at: Some(Timestamp(id + 1)),
    }
}

#[test]
fn history_keeps_retention_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let history = AlertHistory::new(open_store(dir.path(), &clock), 3);

    for id in 1..=5 {
        history.record(&resolved_alert(id)).unwrap();
    }

    assert_eq!(history.len().unwrap(), 3);
    let ids: Vec<_> = history
        .newest(10)
        .unwrap()
        .iter()
        .map(|alert| alert.id)
        .collect();
    assert_eq!(ids, vec![5, 4, 3]);
}

#[test]
fn history_keeps_active_alerts_past_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let history = AlertHistory::new(open_store(dir.path(), &clock), 1);
    let mut active = resolved_alert(1);
    active.resolved_at = None;

    history.record(&active).unwrap();
    history.record(&resolved_alert(2)).unwrap();

    assert_eq!(history.open_alerts().unwrap(), vec![active]);
}

#[test]
fn history_newest_respects_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let history = AlertHistory::new(open_store(dir.path(), &clock), 10);
    for id in 1..=4 {
        history.record(&resolved_alert(id)).unwrap();
    }

    let ids: Vec<_> = history
        .newest(2)
        .unwrap()
        .iter()
        .map(|alert| alert.id)
        .collect();
    assert_eq!(ids, vec![4, 3]);
    assert!(history.newest(0).unwrap().is_empty());
    assert_eq!(history.next_id().unwrap(), 5);
}

async fn stop(client: HealthClient, join: tokio::task::JoinHandle<()>) {
    client.actor().expect("the monitor is running").stop(None);
    join.await.unwrap();
}

#[tokio::test]
async fn history_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(5_000));

    let (client, join) =
        HealthClient::start(config(), open_store(dir.path(), &clock), clock.shared())
            .await
            .unwrap();
    client
        .record_heartbeat(with_cpu("lights", 99.0))
        .await
        .unwrap();
    stop(client, join).await;

    let (client, join) =
        HealthClient::start(config(), open_store(dir.path(), &clock), clock.shared())
            .await
            .unwrap();
    let history = client.alert_history(10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, AlertKind::HighCpu);
    assert!(history[0].is_active());

    // The restored alert resolves when the condition clears, under the same id.
    let active = client.active_alerts().await.unwrap();
    assert_eq!(active.len(), 1);
    client
        .record_heartbeat(with_cpu("lights", 10.0))
        .await
        .unwrap();
    let history = client.alert_history(10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, active[0].id);
    assert_eq!(history[0].resolved_at, Some(Timestamp(5_000)));
    stop(client, join).await;
}

#[tokio::test]
async fn new_ids_continue_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let (client, join) =
        HealthClient::start(config(), open_store(dir.path(), &clock), clock.shared())
            .await
            .unwrap();
    client
        .record_heartbeat(with_cpu("lights", 99.0))
        .await
        .unwrap();
    client
        .record_heartbeat(with_cpu("lights", 1.0))
        .await
        .unwrap();
    stop(client, join).await;

    let (client, join) =
        HealthClient::start(config(), open_store(dir.path(), &clock), clock.shared())
            .await
            .unwrap();
    client
        .record_heartbeat(with_cpu("heating", 99.0))
        .await
        .unwrap();

    let ids: Vec<_> = client
        .alert_history(10)
        .await
        .unwrap()
        .iter()
        .map(|alert| alert.id)
        .collect();
    assert_eq!(ids, vec![2, 1]);
    stop(client, join).await;
}

#[tokio::test]
async fn monitor_publishes_alert_events() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let (client, join) =
        HealthClient::start(config(), open_store(dir.path(), &clock), clock.shared())
            .await
            .unwrap();
    let mut events = client.subscribe_alerts();

    client.record_heartbeat(heartbeat("lights")).await.unwrap();
    clock.advance(INTERVAL * 3);
    client.sweep().await.unwrap();
    client.record_heartbeat(heartbeat("lights")).await.unwrap();

    let raised = events.try_recv().unwrap();
    assert_eq!(
        (raised.event, raised.alert.kind),
        (AlertEventKind::Raised, AlertKind::ServiceDown)
    );
    let resolved = events.try_recv().unwrap();
    assert_eq!(resolved.event, AlertEventKind::Resolved);
    assert!(events.try_recv().is_err());
    stop(client, join).await;
}

#[tokio::test]
async fn monitor_rejects_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let config = HealthConfig {
        history_retention: 0,
        ..config()
    };

    let result = HealthClient::start(config, open_store(dir.path(), &clock), clock.shared()).await;

    assert!(matches!(
        result,
        Err(HealthError::Config(ConfigError::ZeroRetention))
    ));
}

// The metrics endpoint, fetched over 127.0.0.1 and parsed as Prometheus text.

struct BridgeCounters;

impl MetricSource for BridgeCounters {
    fn collect(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<MetricFamily>> + Send + '_>> {
        Box::pin(async {
            vec![
                MetricFamily::new(
                    "alicia_bridge_messages_in_total",
                    "Messages received.",
                    MetricKind::Counter,
                )
                .unwrap()
                .sample(Vec::new(), 42.0),
            ]
        })
    }
}

async fn fetch(address: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn metrics_endpoint_serves_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let (client, join) =
        HealthClient::start(config(), open_store(dir.path(), &clock), clock.shared())
            .await
            .unwrap();
    let beat = ServiceHeartbeat {
        messages_handled: 17,
        latency_p99_us: Some(2_500),
        ..with_cpu("lights", 99.0)
    };
    client.record_heartbeat(beat).await.unwrap();

    let registry = MetricsRegistry::new();
    registry.register(std::sync::Arc::new(client.clone()));
    registry.register(std::sync::Arc::new(BridgeCounters));
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), registry)
        .await
        .unwrap();

    let response = fetch(
        server.address(),
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");

    let lines = body.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| {
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
    };
    assert_eq!(
        value(
            "alicia_service_messages_handled_total",
            Some(("service", "lights"))
        ),
        Some(17.0)
    );
    assert_eq!(
        value(
            "alicia_service_latency_p99_seconds",
            Some(("service", "lights"))
        ),
        Some(0.0025)
    );
    assert_eq!(
        value("alicia_service_cpu_percent", Some(("service", "lights"))),
        Some(99.0)
    );
    assert_eq!(
        value("alicia_health_active_alerts", Some(("kind", "high_cpu"))),
        Some(1.0)
    );
    assert_eq!(
        value("alicia_health_service_state", Some(("state", "degraded"))),
        Some(1.0)
    );
    assert_eq!(value("alicia_bridge_messages_in_total", None), Some(42.0));

    server.stop().await;
    stop(client, join).await;
}

#[tokio::test]
async fn metrics_endpoint_rejects_other_paths() {
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), MetricsRegistry::new())
        .await
        .unwrap();

    let missing = fetch(server.address(), "GET / HTTP/1.1\r\n\r\n").await;
    let wrong_method = fetch(server.address(), "POST /metrics HTTP/1.1\r\n\r\n").await;

    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(wrong_method.starts_with("HTTP/1.1 405"), "{wrong_method}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_endpoint_rejects_oversized_request() {
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), MetricsRegistry::new())
        .await
        .unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));

    let response = fetch(server.address(), &request).await;

    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_endpoint_refuses_non_loopback() {
    let result = MetricsServer::bind("0.0.0.0:0".parse().unwrap(), MetricsRegistry::new()).await;

    assert!(
        matches!(result, Err(MetricsError::NotLoopback { .. })),
        "{result:?}"
    );
}

// Heartbeats and alerts over the in-process bus.

struct AlertProbe;

impl ractor::Actor for AlertProbe {
    type Msg = HealthAlert;
    type State = tokio::sync::mpsc::UnboundedSender<HealthAlert>;
    type Arguments = tokio::sync::mpsc::UnboundedSender<HealthAlert>;

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        sender: Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(sender)
    }

    async fn handle(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        message: Self::Msg,
        sender: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        let _ = sender.send(message);
        Ok(())
    }
}

#[tokio::test]
async fn bus_heartbeat_raises_published_alert() {
    use alicia_core::bus::{LocalBus, LocalBusConfig};

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let (bus, bus_join) = LocalBus::spawn(
        LocalBusConfig::new(alicia_core::SourceId::new("node-hub").unwrap())
            .with_clock(clock.shared()),
    )
    .await
    .unwrap();
    let (client, join) =
        HealthClient::start(config(), open_store(dir.path(), &clock), clock.shared())
            .await
            .unwrap();
    let link = HealthBusLink::attach(bus.clone(), &client).await.unwrap();

    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let (probe, probe_join) = ractor::Actor::spawn(None, AlertProbe, sender)
        .await
        .unwrap();
    let alerts_filter = alicia_core::TopicFilter::new("alicia/system/health/alerts").unwrap();
    bus.subscribe(
        alerts_filter,
        &probe,
        |delivery: alicia_core::bus::Delivery<HealthAlert>| delivery.envelope.into_body(),
    )
    .await
    .unwrap();

    publish_heartbeat(&bus, &with_cpu("lights", 99.0))
        .await
        .unwrap();

    let event = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.event, event.alert.kind),
        (AlertEventKind::Raised, AlertKind::HighCpu)
    );
    let status = client.status(&service("lights")).await.unwrap().unwrap();
    assert_eq!(status.state, ServiceState::Degraded);

    link.detach(&bus).await.unwrap();
    probe.stop(None);
    probe_join.await.unwrap();
    stop(client, join).await;
    bus.actor().expect("the bus actor is running").stop(None);
    bus_join.await.unwrap();
}

#[tokio::test]
async fn heartbeat_on_wrong_topic_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let (client, join) =
        HealthClient::start(config(), open_store(dir.path(), &clock), clock.shared())
            .await
            .unwrap();

    client
        .actor()
        .expect("the monitor is running")
        .cast(HealthMsg::BusHeartbeat {
            topic: heartbeat_topic(&service("heating")).unwrap(),
            heartbeat: heartbeat("lights"),
        })
        .unwrap();

    let metrics = client.metrics().await.unwrap();
    assert_eq!(metrics.heartbeats_rejected_total, 1);
    assert!(metrics.statuses.is_empty());
    stop(client, join).await;
}

// Heartbeats from a real supervisor.

/// A worker that panics on `Panic` and records each `Work` message in its stats.
struct Flaky;

enum FlakyMsg {
    Panic,
    Work,
}

impl ractor::Actor for Flaky {
    type Msg = FlakyMsg;
    type State = ServiceStats;
    type Arguments = ServiceStats;

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        stats: Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(stats)
    }

    async fn handle(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        message: Self::Msg,
        stats: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        let timer = stats.start_timer();
        match message {
            FlakyMsg::Panic => panic!("flaky worker told to panic"),
            FlakyMsg::Work => timer.finish(false),
        }
        Ok(())
    }
}

async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<HealthAlert>,
    wanted: AlertEventKind,
) -> HealthAlert {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("alert event within 10 s")
            .unwrap();
        if event.event == wanted {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_storm_from_supervisor() {
    use alicia_core::supervisor::{
        Backoff, ChildId, ChildSpec, Intensity, Supervisor, SupervisorSpec,
    };

    let dir = tempfile::tempdir().unwrap();
    let clock = alicia_core::SystemClock::shared();
    let store = Store::open(dir.path(), clock.clone()).unwrap().store;
    let config = HealthConfig {
        default_thresholds: Thresholds {
            restarts: Some(Threshold::new(3.0, 1.0).unwrap()),
            // The test process's own CPU and memory, busy with other tests, must not raise alerts
            // of their own: only the restart storm is under test.
            cpu_percent: None,
            memory_bytes: None,
            latency_p99_ms: None,
            error_rate: None,
            restart_window: Duration::from_secs(1),
            ..Thresholds::default()
        },
        sweep_interval: None,
        ..HealthConfig::default()
    };
    let (client, join) = HealthClient::start(config, store, clock.clone())
        .await
        .unwrap();
    let mut events = client.subscribe_alerts();

    let stats = ServiceStats::new();
    let worker_stats = stats.clone();
    let worker = ChildSpec::new(ChildId::new("flaky").unwrap(), move || {
        (Flaky, worker_stats.clone())
    });
    let worker_handle = worker.handle();
    let spec = SupervisorSpec::new(ChildId::new("root").unwrap())
        .intensity(Intensity::new(100, Duration::from_secs(1)))
        .backoff(
            Backoff::new(
                Duration::from_millis(1),
                Duration::from_millis(5),
                Duration::from_secs(60),
            )
            .unwrap(),
        )
        .child(worker);
    let supervisor = Supervisor::start(spec).await.unwrap();
    let heartbeats = SupervisorHeartbeats::start(
        supervisor.handle(),
        HeartbeatSink::Monitor(client.clone()),
        HeartbeatSettings {
            node: node(),
            interval: MIN_HEARTBEAT_INTERVAL,
            clock: clock.clone(),
            naming: ServiceNaming::ChildId,
            publish_tree: false,
        },
        [(service("flaky"), stats.clone())].into_iter().collect(),
    );

    // A cast can reach the incarnation that is about to die, so each panic waits until the
    // supervisor has counted the restart.
    for restarts in 1..=4 {
        worker_handle.cast(FlakyMsg::Panic).await.unwrap();
        for _ in 0..200 {
            let snapshot = supervisor.snapshot().await.unwrap();
            if snapshot.child("flaky").unwrap().restart_count >= restarts {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    worker_handle.cast(FlakyMsg::Work).await.unwrap();
    let raised = next_event(&mut events, AlertEventKind::Raised).await;
    assert_eq!(
        (raised.alert.kind, raised.alert.service.as_str()),
        (AlertKind::RestartStorm, "flaky")
    );

    let resolved = next_event(&mut events, AlertEventKind::Resolved).await;
    assert_eq!(resolved.alert.id, raised.alert.id);
    let status = client.status(&service("flaky")).await.unwrap().unwrap();
    assert_eq!(status.state, ServiceState::Healthy);
    assert!(status.last_heartbeat.unwrap().messages_handled >= 1);

    heartbeats.stop();
    supervisor.stop().await.unwrap();
    stop(client, join).await;
}

// Node presence from the bus.

/// Publishes `presence` for `node`, retained, the way the MQTT bridge and its last will do.
async fn publish_presence(
    bus: &alicia_core::bus::Bus,
    node: &str,
    presence: alicia_core::NodePresence,
) {
    use alicia_core::bus::{PublishClass, PublishOptions};
    use alicia_core::presence::{presence_spec, presence_topic};

    let topic = presence_topic(&NodeId::new(node).unwrap()).unwrap();
    let envelope = alicia_core::Envelope::new(bus.client().clone(), presence, bus.clock().as_ref());
    let options = PublishOptions::for_spec(presence_spec(), PublishClass::StateChange);
    bus.publish(&topic, &envelope, options).await.unwrap();
}

/// Polls `client` until `name` is in `state`, for at most 5 s, and returns the state last read.
async fn wait_for_state(
    client: &HealthClient,
    name: &str,
    state: ServiceState,
) -> Option<ServiceState> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let current = client
            .status(&service(name))
            .await
            .unwrap()
            .map(|status| status.state);
        if current == Some(state) || tokio::time::Instant::now() >= deadline {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn bus_presence_offline_downs_node() {
    use alicia_core::NodePresence;
    use alicia_core::bus::{LocalBus, LocalBusConfig};

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let (bus, bus_join) = LocalBus::spawn(
        LocalBusConfig::new(alicia_core::SourceId::new("node-hub").unwrap())
            .with_clock(clock.shared()),
    )
    .await
    .unwrap();
    let (client, join) =
        HealthClient::start(config(), open_store(dir.path(), &clock), clock.shared())
            .await
            .unwrap();
    let link = HealthBusLink::attach(bus.clone(), &client).await.unwrap();
    client.record_heartbeat(heartbeat("lights")).await.unwrap();
    let mut elsewhere = heartbeat("heating");
    elsewhere.node = NodeId::new("garage").unwrap();
    client.record_heartbeat(elsewhere).await.unwrap();

    publish_presence(&bus, "hub", NodePresence::Online).await;
    publish_presence(&bus, "garage", NodePresence::Offline).await;

    assert_eq!(
        wait_for_state(&client, "heating", ServiceState::Down).await,
        Some(ServiceState::Down)
    );
    assert_eq!(
        client
            .status(&service("lights"))
            .await
            .unwrap()
            .map(|status| status.state),
        Some(ServiceState::Healthy)
    );
    let alerts = client.active_alerts().await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].message.contains("\"garage\" went offline"),
        "{}",
        alerts[0].message
    );

    link.detach(&bus).await.unwrap();
    stop(client, join).await;
    bus.actor().expect("the bus actor is running").stop(None);
    bus_join.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_monitor_resubscribes_presence() {
    use alicia_core::NodePresence;
    use alicia_core::bus::{LocalBus, LocalBusConfig};
    use alicia_core::supervisor::{ChildId, ChildSpec, Supervisor, SupervisorSpec};

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let (bus, bus_join) = LocalBus::spawn(
        LocalBusConfig::new(alicia_core::SourceId::new("node-hub").unwrap())
            .with_clock(clock.shared()),
    )
    .await
    .unwrap();
    let store = open_store(dir.path(), &clock);
    let alerts = HealthMonitor::alert_channel();
    let (args_bus, args_alerts, args_clock) = (bus.clone(), alerts.clone(), clock.shared());
    let child = ChildSpec::new(ChildId::new("health").unwrap(), move || {
        let args = HealthArgs {
            config: config(),
            store: store.clone(),
            clock: args_clock.clone(),
            alerts: args_alerts.clone(),
            bus: Some(args_bus.clone()),
        };
        (HealthMonitor, args)
    });
    let client = HealthClient::supervised(child.handle(), alerts);
    let supervisor =
        Supervisor::start(SupervisorSpec::new(ChildId::new("root").unwrap()).child(child))
            .await
            .unwrap();

    let first = client.actor().expect("the monitor runs");
    first
        .kill_and_wait(Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while client
        .actor()
        .is_none_or(|actor| actor.get_id() == first.get_id())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client.record_heartbeat(heartbeat("lights")).await.unwrap();
    publish_presence(&bus, "hub", NodePresence::Offline).await;

    assert_eq!(
        wait_for_state(&client, "lights", ServiceState::Down).await,
        Some(ServiceState::Down),
        "the restarted monitor did not hear the presence"
    );

    supervisor.stop().await.unwrap();
    bus.actor().expect("the bus actor is running").stop(None);
    bus_join.await.unwrap();
}

#[test]
fn service_naming_qualifies_child_ids() {
    let registry = ServiceNaming::NodeQualified.service_id(&node(), "registry");
    assert_eq!(registry.unwrap().as_str(), "hub.registry");

    let plain = ServiceNaming::ChildId.service_id(&node(), "registry");
    assert_eq!(plain.unwrap().as_str(), "registry");

    let long_node = NodeId::new("n".repeat(60)).unwrap();
    let error = ServiceNaming::NodeQualified
        .service_id(&long_node, "registry")
        .unwrap_err();
    assert!(error.to_string().contains("64"), "{error}");
}
