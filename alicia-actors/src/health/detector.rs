//! The detection state machine of every service and the alerts it raises, without the actor.
//!
//! [`Detector`] is plain data and reads time only through its clock, so tests drive it with a
//! manual clock and the monitor actor wraps it. Intervals and windows use the clock's monotonic
//! time, and records carry its wall-clock time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use alicia_core::{NodeId, ServiceId, SharedClock, Timestamp};
use serde::{Deserialize, Serialize};

use super::alert::{Alert, AlertEventKind, AlertKind, HealthAlert};
use super::config::{HealthConfig, Threshold, Thresholds};
use super::error::HealthError;
use super::heartbeat::{MAX_HEARTBEAT_INTERVAL, MIN_HEARTBEAT_INTERVAL, ServiceHeartbeat};

/// Most counter samples kept per service. With a 1-second heartbeat this covers windows of
/// over an hour, and it bounds memory when the windows are set longer than that.
const MAX_WINDOW_SAMPLES: usize = 4_096;

/// What the monitor believes about a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Expected, or known from an alert stored before a restart, but not heard from yet.
    Unknown,
    /// Heartbeats arrive and no threshold is exceeded.
    Healthy,
    /// Heartbeats arrive but at least one threshold alert is active.
    Degraded,
    /// Heartbeats stopped for the configured number of intervals, or the node went offline.
    Down,
}

impl ServiceState {
    /// Returns the snake_case name used on the wire and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Unknown => "unknown",
            ServiceState::Healthy => "healthy",
            ServiceState::Degraded => "degraded",
            ServiceState::Down => "down",
        }
    }
}

/// The monitor's view of one service, as queries return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The service.
    pub service: ServiceId,
    /// Its current state.
    pub state: ServiceState,
    /// When it entered that state.
    pub since: Timestamp,
    /// When its last heartbeat arrived, by the monitor's clock.
    pub last_seen: Option<Timestamp>,
    /// Its last heartbeat.
    pub last_heartbeat: Option<ServiceHeartbeat>,
    /// The kinds of its active alerts.
    pub active_alerts: Vec<AlertKind>,
}

/// Counters of one heartbeat, at the monotonic time it arrived.
#[derive(Debug, Clone, Copy)]
struct CounterSample {
    at: Duration,
    messages: u64,
    errors: u64,
    restarts: u64,
}

#[derive(Debug)]
struct ActiveAlert {
    alert: Alert,
    /// Monotonic time of the last event published for this alert.
    published_at: Duration,
}

#[derive(Debug)]
struct ServiceRecord {
    state: ServiceState,
    since: Timestamp,
    node: Option<NodeId>,
    last_heartbeat: Option<ServiceHeartbeat>,
    last_seen: Option<Timestamp>,
    /// Monotonic time from which missed intervals are counted: the last heartbeat, or the
    /// monitor's start for a service not heard from yet.
    deadline_base: Duration,
    interval: Duration,
    /// Counter samples, oldest first. The front is the baseline of the longest window.
    samples: VecDeque<CounterSample>,
    alerts: BTreeMap<AlertKind, ActiveAlert>,
}

impl ServiceRecord {
    fn unknown(now: Timestamp, started: Duration, interval: Duration) -> Self {
        Self {
            state: ServiceState::Unknown,
            since: now,
            node: None,
            last_heartbeat: None,
            last_seen: None,
            deadline_base: started,
            interval,
            samples: VecDeque::new(),
            alerts: BTreeMap::new(),
        }
    }
}

/// Per-service detection: heartbeats in, alert events out.
#[derive(Debug)]
pub struct Detector {
    clock: SharedClock,
    config: HealthConfig,
    services: HashMap<ServiceId, ServiceRecord>,
    next_alert_id: u64,
}

impl Detector {
    /// Creates a detector that knows the expected services, as `unknown`, and numbers new alerts
    /// from `next_alert_id`.
    ///
    /// # Errors
    ///
    /// [`HealthError::Config`] if the configuration is invalid.
    pub fn new(
        config: HealthConfig,
        clock: SharedClock,
        next_alert_id: u64,
    ) -> Result<Self, HealthError> {
        config.validate()?;
        let mut detector = Self {
            clock,
            config,
            services: HashMap::new(),
            next_alert_id,
        };
        for service in detector.config.expected_services.clone() {
            detector.record_mut(&service);
        }
        Ok(detector)
    }

    /// Puts back alerts that were active when the monitor stopped, so they resolve when their
    /// condition clears instead of staying open in the history forever.
    pub fn restore(&mut self, alerts: Vec<Alert>) {
        let started = self.clock.monotonic();
        for alert in alerts.into_iter().filter(Alert::is_active) {
            self.next_alert_id = self.next_alert_id.max(alert.id.saturating_add(1));
            let record = self.record_mut(&alert.service);
            record.alerts.insert(
                alert.kind,
                ActiveAlert {
                    alert,
                    published_at: started,
                },
            );
        }
    }

    /// Records a heartbeat, updates the service's state and returns the alert events it causes.
    ///
    /// # Errors
    ///
    /// [`HealthError::InvalidHeartbeat`] if its interval is outside
    /// [`MIN_HEARTBEAT_INTERVAL`]..=[`MAX_HEARTBEAT_INTERVAL`]. The service's state is unchanged.
    pub fn ingest(&mut self, heartbeat: ServiceHeartbeat) -> Result<Vec<HealthAlert>, HealthError> {
        let interval = heartbeat.interval();
        if !(MIN_HEARTBEAT_INTERVAL..=MAX_HEARTBEAT_INTERVAL).contains(&interval) {
            return Err(HealthError::InvalidHeartbeat {
                service: heartbeat.service.to_string(),
                reason: format!(
                    "interval_ms {} is outside {}..={}: send heartbeats at an interval in that range",
                    heartbeat.interval_ms,
                    MIN_HEARTBEAT_INTERVAL.as_millis(),
                    MAX_HEARTBEAT_INTERVAL.as_millis()
                ),
            });
        }

        let now = self.clock.now();
        let monotonic = self.clock.monotonic();
        let thresholds = self.config.thresholds(&heartbeat.service).clone();
        let update_interval = self.config.alert_update_interval;
        let service = heartbeat.service.clone();
        let mut events = Vec::new();
        let mut next_alert_id = self.next_alert_id;

        let record = self.record_mut(&service);
        record.node = Some(heartbeat.node.clone());
        record.last_seen = Some(now);
        record.deadline_base = monotonic;
        record.interval = interval;
        push_sample(record, &heartbeat, monotonic, &thresholds);
        let figures = Figures::read(record, &heartbeat, monotonic, &thresholds);
        record.last_heartbeat = Some(heartbeat);

        if let Some(active) = record.alerts.remove(&AlertKind::ServiceDown) {
            events.push(resolve(active.alert, now));
        }

        let checks = [
            (
                AlertKind::HighCpu,
                figures.cpu_percent,
                thresholds.cpu_percent,
            ),
            (
                AlertKind::HighMemory,
                figures.memory_bytes,
                thresholds.memory_bytes,
            ),
            (
                AlertKind::HighErrorRate,
                figures.error_rate,
                thresholds.error_rate,
            ),
            (
                AlertKind::SlowResponses,
                figures.latency_p99_ms,
                thresholds.latency_p99_ms,
            ),
            (
                AlertKind::RestartStorm,
                figures.restarts,
                thresholds.restarts,
            ),
        ];
        for (kind, value, threshold) in checks {
            let check = Check {
                service: &service,
                kind,
                value,
                threshold,
                now,
                monotonic,
                update_interval,
            };
            if let Some(event) = check.apply(record, &mut next_alert_id) {
                events.push(event);
            }
        }
        let state = if record.alerts.is_empty() {
            ServiceState::Healthy
        } else {
            ServiceState::Degraded
        };
        set_state(&service, record, state, now);
        self.next_alert_id = next_alert_id;
        Ok(events)
    }

    /// Marks `down` every service whose heartbeat is overdue by the configured number of
    /// intervals, and returns the alerts raised.
    ///
    /// A service whose last heartbeat arrived at monotonic time `t` with interval `i` is down from
    /// `t + missed_heartbeats × i` on, and not a millisecond earlier.
    pub fn sweep(&mut self) -> Vec<HealthAlert> {
        let now = self.clock.now();
        let monotonic = self.clock.monotonic();
        let mut events = Vec::new();

        for (service, record) in &mut self.services {
            if record.state == ServiceState::Down {
                continue;
            }
            let missed = self.config.thresholds(service).missed_heartbeats;
            let overdue_after = record.interval.saturating_mul(missed);
            let silent_for = monotonic.saturating_sub(record.deadline_base);
            if silent_for < overdue_after {
                continue;
            }

            let intervals = silent_for.as_secs_f64() / record.interval.as_secs_f64();
            let message = format!(
                "service \"{service}\" is down: no heartbeat for {intervals:.1} intervals of {} ms (limit {missed})",
                record.interval.as_millis()
            );
            events.extend(mark_down(
                service,
                record,
                (intervals, f64::from(missed)),
                message,
                (now, monotonic),
                &mut self.next_alert_id,
            ));
        }
        events
    }

    /// Marks `down` at once every service last seen on `node`, because the node's presence went
    /// offline, and returns the alerts raised.
    pub fn node_offline(&mut self, node: &NodeId) -> Vec<HealthAlert> {
        let now = self.clock.now();
        let monotonic = self.clock.monotonic();
        let mut events = Vec::new();

        for (service, record) in &mut self.services {
            if record.state == ServiceState::Down || record.node.as_ref() != Some(node) {
                continue;
            }
            let missed = self.config.thresholds(service).missed_heartbeats;
            let message =
                format!("service \"{service}\" is down: its node \"{node}\" went offline");
            events.extend(mark_down(
                service,
                record,
                (0.0, f64::from(missed)),
                message,
                (now, monotonic),
                &mut self.next_alert_id,
            ));
        }
        events
    }

    /// Returns the status of one service, or `None` if the monitor has never heard of it.
    pub fn status(&self, service: &ServiceId) -> Option<ServiceStatus> {
        self.services
            .get(service)
            .map(|record| status_of(service, record))
    }

    /// Returns the status of every known service, sorted by service id.
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        let mut statuses: Vec<_> = self
            .services
            .iter()
            .map(|(service, record)| status_of(service, record))
            .collect();
        statuses.sort_by(|a, b| a.service.cmp(&b.service));
        statuses
    }

    /// Returns every active alert, sorted by id.
    pub fn active_alerts(&self) -> Vec<Alert> {
        let mut alerts: Vec<_> = self
            .services
            .values()
            .flat_map(|record| record.alerts.values().map(|active| active.alert.clone()))
            .collect();
        alerts.sort_by_key(|alert| alert.id);
        alerts
    }

    /// Returns the number of known services.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    fn record_mut(&mut self, service: &ServiceId) -> &mut ServiceRecord {
        let now = self.clock.now();
        let started = self.clock.monotonic();
        let interval = self.config.expected_interval;
        self.services
            .entry(service.clone())
            .or_insert_with(|| ServiceRecord::unknown(now, started, interval))
    }
}

/// The figures that thresholds are checked against, each `None` when the heartbeat gives no
/// evidence either way.
struct Figures {
    cpu_percent: Option<f64>,
    memory_bytes: Option<f64>,
    error_rate: Option<f64>,
    latency_p99_ms: Option<f64>,
    restarts: Option<f64>,
}

impl Figures {
    fn read(
        record: &ServiceRecord,
        heartbeat: &ServiceHeartbeat,
        monotonic: Duration,
        thresholds: &Thresholds,
    ) -> Self {
        let process = heartbeat.process.as_ref();

        let error_rate = window_delta(&record.samples, monotonic, thresholds.error_window)
            .filter(|delta| {
                delta.messages > 0 && delta.messages >= thresholds.min_messages_for_error_rate
            })
            .map(|delta| delta.errors as f64 / delta.messages as f64);
        let restarts = window_delta(&record.samples, monotonic, thresholds.restart_window)
            .map(|delta| delta.restarts as f64);

        Self {
            cpu_percent: process.and_then(|sample| sample.cpu_percent).map(f64::from),
            memory_bytes: process.map(|sample| sample.resident_memory_bytes as f64),
            error_rate,
            latency_p99_ms: heartbeat
                .latency_p99_us
                .map(|micros| micros as f64 / 1_000.0),
            restarts,
        }
    }
}

/// One threshold check of one heartbeat.
struct Check<'a> {
    service: &'a ServiceId,
    kind: AlertKind,
    value: Option<f64>,
    threshold: Option<Threshold>,
    now: Timestamp,
    monotonic: Duration,
    update_interval: Duration,
}

impl Check<'_> {
    /// Raises, updates or resolves this check's alert, and returns the event to publish.
    fn apply(self, record: &mut ServiceRecord, next_alert_id: &mut u64) -> Option<HealthAlert> {
        let Some(threshold) = self.threshold else {
            // The check was turned off: an alert it raised earlier has nothing left to watch.
            let active = record.alerts.remove(&self.kind)?;
            return Some(resolve(active.alert, self.now));
        };
        let value = self.value?;

        let active = record.alerts.contains_key(&self.kind);
        let exceeded = threshold.is_exceeded(value, active);
        match (active, exceeded) {
            (false, false) => None,
            (false, true) => {
                let alert = Alert {
                    id: *next_alert_id,
                    service: self.service.clone(),
                    kind: self.kind,
                    severity: self.kind.severity(),
                    message: Alert::describe(self.kind, self.service, value, threshold.raise()),
                    value,
                    peak: value,
                    threshold: threshold.raise(),
                    raised_at: self.now,
                    updated_at: self.now,
                    resolved_at: None,
                };
                *next_alert_id += 1;
                tracing::warn!(service = %self.service, kind = %self.kind, value, "alert raised");
                record.alerts.insert(
                    self.kind,
                    ActiveAlert {
                        alert: alert.clone(),
                        published_at: self.monotonic,
                    },
                );
                Some(HealthAlert {
                    event: AlertEventKind::Raised,
                    alert,
                })
            }
            (true, true) => {
                let active = record.alerts.get_mut(&self.kind)?;
                let alert = &mut active.alert;
                alert.value = value;
                alert.peak = alert.peak.max(value);
                alert.updated_at = self.now;
                alert.message = Alert::describe(self.kind, self.service, value, alert.threshold);
                if self.monotonic.saturating_sub(active.published_at) < self.update_interval {
                    return None;
                }
                active.published_at = self.monotonic;
                Some(HealthAlert {
                    event: AlertEventKind::Updated,
                    alert: alert.clone(),
                })
            }
            (true, false) => {
                let mut active = record.alerts.remove(&self.kind)?;
                active.alert.value = value;
                Some(resolve(active.alert, self.now))
            }
        }
    }
}

fn resolve(mut alert: Alert, now: Timestamp) -> HealthAlert {
    alert.resolved_at = Some(now);
    alert.updated_at = now;
    tracing::info!(service = %alert.service, kind = %alert.kind, "alert resolved");
    HealthAlert {
        event: AlertEventKind::Resolved,
        alert,
    }
}

/// Sets the record `down` and raises its `service_down` alert unless one is active already
/// (restored from the history, for example).
fn mark_down(
    service: &ServiceId,
    record: &mut ServiceRecord,
    (value, threshold): (f64, f64),
    message: String,
    (now, monotonic): (Timestamp, Duration),
    next_alert_id: &mut u64,
) -> Option<HealthAlert> {
    set_state(service, record, ServiceState::Down, now);
    if record.alerts.contains_key(&AlertKind::ServiceDown) {
        return None;
    }

    let alert = Alert {
        id: *next_alert_id,
        service: service.clone(),
        kind: AlertKind::ServiceDown,
        severity: AlertKind::ServiceDown.severity(),
        message,
        value,
        peak: value,
        threshold,
        raised_at: now,
        updated_at: now,
        resolved_at: None,
    };
    *next_alert_id += 1;
    tracing::warn!(service = %service, message = %alert.message, "alert raised");
    record.alerts.insert(
        AlertKind::ServiceDown,
        ActiveAlert {
            alert: alert.clone(),
            published_at: monotonic,
        },
    );
    Some(HealthAlert {
        event: AlertEventKind::Raised,
        alert,
    })
}

fn set_state(service: &ServiceId, record: &mut ServiceRecord, state: ServiceState, now: Timestamp) {
    if record.state == state {
        return;
    }
    tracing::info!(
        service = %service,
        from = record.state.as_str(),
        to = state.as_str(),
        "service state changed"
    );
    record.state = state;
    record.since = now;
}

fn status_of(service: &ServiceId, record: &ServiceRecord) -> ServiceStatus {
    ServiceStatus {
        service: service.clone(),
        state: record.state,
        since: record.since,
        last_seen: record.last_seen,
        last_heartbeat: record.last_heartbeat.clone(),
        active_alerts: record.alerts.keys().copied().collect(),
    }
}

/// Appends the heartbeat's counters and drops samples older than every window needs.
fn push_sample(
    record: &mut ServiceRecord,
    heartbeat: &ServiceHeartbeat,
    monotonic: Duration,
    thresholds: &Thresholds,
) {
    let sample = CounterSample {
        at: monotonic,
        messages: heartbeat.messages_handled,
        errors: heartbeat.errors,
        restarts: heartbeat.restarts,
    };

    let counters_went_back = record.samples.back().is_some_and(|last| {
        sample.messages < last.messages
            || sample.errors < last.errors
            || sample.restarts < last.restarts
    });
    if record.samples.is_empty() || counters_went_back {
        // The counters start at zero when the service starts, so everything they hold happened
        // within its uptime. A zero sample at its start lets the windows count those events.
        record.samples.clear();
        let uptime = Duration::from_millis(heartbeat.uptime_ms);
        record.samples.push_back(CounterSample {
            at: monotonic.saturating_sub(uptime),
            messages: 0,
            errors: 0,
            restarts: 0,
        });
    }
    record.samples.push_back(sample);

    // Keep exactly one sample at or before the start of the longest window: it is the baseline.
    let longest = thresholds.error_window.max(thresholds.restart_window);
    let window_start = monotonic.saturating_sub(longest);
    while record.samples.len() > 2 && record.samples[1].at <= window_start {
        record.samples.pop_front();
    }
    while record.samples.len() > MAX_WINDOW_SAMPLES {
        record.samples.pop_front();
    }
}

/// Counter increases over a window.
struct WindowDelta {
    messages: u64,
    errors: u64,
    restarts: u64,
}

/// Returns how much the counters grew from the baseline of the window ending now to the newest
/// sample. The baseline is the newest sample at or before the window's start, or the oldest
/// sample when the service has not been watched for a whole window.
fn window_delta(
    samples: &VecDeque<CounterSample>,
    monotonic: Duration,
    window: Duration,
) -> Option<WindowDelta> {
    let newest = samples.back()?;
    let window_start = monotonic.saturating_sub(window);
    let baseline = samples
        .iter()
        .rev()
        .find(|sample| sample.at <= window_start)
        .or_else(|| samples.front())?;
    Some(WindowDelta {
        messages: newest.messages.saturating_sub(baseline.messages),
        errors: newest.errors.saturating_sub(baseline.errors),
        restarts: newest.restarts.saturating_sub(baseline.restarts),
    })
}
