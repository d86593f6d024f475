//! Settings of the MQTT bridge.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alicia_core::bus::{AllowAll, Authorizer};
use alicia_core::clock::{SharedClock, SystemClock};
use alicia_core::codec::DecodeLimits;
use alicia_core::id::NodeId;

use crate::url::BrokerUrl;

use super::BridgeError;

/// Settings of an [`MqttBridge`](super::MqttBridge).
///
/// `Debug` prints the password as `***`.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The broker to connect to.
    pub broker: BrokerUrl,
    /// The node id. It is the MQTT client id, the source of the bridge's own envelopes, the
    /// `{node}` of the presence topic and the `{client}` of the reply namespace.
    pub node: NodeId,
    /// The MQTT keepalive interval. The broker publishes the last will after about 1.5 times this
    /// interval without a packet from the bridge.
    pub keepalive: Duration,
    /// User name and password, if the broker requires them.
    pub credentials: Option<Credentials>,
    /// CA and client certificate files. Required with an `mqtts://` URL and rejected with an
    /// `mqtt://` URL.
    pub tls: Option<TlsFiles>,
    /// The maximum payload size in bytes that reaches a route's decoder. A larger inbound payload
    /// is dropped at the edge and counted; a larger outbound payload is rejected.
    pub max_payload_size: usize,
    /// The maximum MQTT packet size in bytes that rumqttc accepts, in both directions.
    ///
    /// It must exceed `max_payload_size` by room for the topic, so that a payload slightly over
    /// the maximum is dropped and counted instead of ending the connection. rumqttc closes the
    /// connection when an inbound packet exceeds this size.
    pub max_packet_size: usize,
    /// Outbox capacities per publish class.
    pub outbox: OutboxCapacity,
    /// How long a request or state change waits for outbox space before the publish fails.
    pub outbox_timeout: Duration,
    /// The number of messages that may wait for one route's decoder. Messages that arrive while
    /// the queue is full are dropped and counted as the route's overflow.
    pub route_queue: usize,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Decides on every decoded inbound message before it reaches a route's actor.
    pub authorizer: Arc<dyn Authorizer>,
    /// The clock that stamps the bridge's own envelopes (presence, error replies) and drives the
    /// log rate limit.
    pub clock: SharedClock,
}

impl BridgeConfig {
    /// Default keepalive interval.
    pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

    /// Default maximum MQTT packet size: 1 MiB, four times the default maximum payload size.
    pub const DEFAULT_MAX_PACKET_SIZE: usize = 1024 * 1024;

    /// Default outbox wait of requests and state changes.
    pub const DEFAULT_OUTBOX_TIMEOUT: Duration = Duration::from_secs(5);

    /// Default bound of each route's inbound queue.
    pub const DEFAULT_ROUTE_QUEUE: usize = 1024;

    /// Creates settings for `node` on `broker`, with defaults for the rest: no credentials, no
    /// client certificate, the system clock and [`AllowAll`].
    pub fn new(broker: BrokerUrl, node: NodeId) -> Self {
        Self {
            broker,
            node,
            keepalive: Self::DEFAULT_KEEPALIVE,
            credentials: None,
            tls: None,
            max_payload_size: DecodeLimits::DEFAULT_MAX_SIZE,
            max_packet_size: Self::DEFAULT_MAX_PACKET_SIZE,
            outbox: OutboxCapacity::default(),
            outbox_timeout: Self::DEFAULT_OUTBOX_TIMEOUT,
            route_queue: Self::DEFAULT_ROUTE_QUEUE,
            backoff: Backoff::default(),
            authorizer: Arc::new(AllowAll),
            clock: SystemClock::shared(),
        }
    }

    /// These settings with another authorizer.
    pub fn with_authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// These settings with another reconnect backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Returns the decode limits that apply to inbound payloads and replies.
    pub fn limits(&self) -> DecodeLimits {
        DecodeLimits::default().with_max_size(self.max_payload_size)
    }

    /// Checks the settings that rumqttc would otherwise reject late or by panicking.
    pub fn validate(&self) -> Result<(), BridgeError> {
        let invalid = |setting: &'static str, reason: String| {
            Err(BridgeError::InvalidConfig { setting, reason })
        };

        if self.keepalive < Duration::from_secs(1) {
            return invalid(
                "keepalive",
                format!(
                    "{:?} is below rumqttc's minimum of 1 s; use at least 1 s",
                    self.keepalive
                ),
            );
        }
        if self.max_payload_size == 0 {
            return invalid(
                "max_payload_size",
                "0 bytes admits no message; use at least 1 KiB".to_owned(),
            );
        }
        let needed = self.max_payload_size.saturating_add(MAX_PACKET_OVERHEAD);
        if self.max_packet_size < needed {
            return invalid(
                "max_packet_size",
                format!(
                    "{} bytes leaves no room for the topic of a {}-byte payload; use at least {needed}",
                    self.max_packet_size, self.max_payload_size
                ),
            );
        }
        for (setting, capacity) in [
            ("outbox.requests", self.outbox.requests),
            ("outbox.state_changes", self.outbox.state_changes),
            ("outbox.telemetry", self.outbox.telemetry),
            ("route_queue", self.route_queue),
        ] {
            if capacity == 0 {
                return invalid(
                    setting,
                    "a capacity of 0 holds no message; use at least 1".to_owned(),
                );
            }
        }
        if self.backoff.min.is_zero() || self.backoff.min > self.backoff.max {
            return invalid(
                "backoff",
                format!(
                    "min {:?} and max {:?} must satisfy 0 < min <= max",
                    self.backoff.min, self.backoff.max
                ),
            );
        }
        let uses_tls = self.broker.transport() == crate::url::Transport::Tls;
        if uses_tls && self.tls.is_none() {
            return invalid(
                "tls",
                format!(
                    "broker URL {} uses mqtts:// but no CA file is configured; set tls.ca_file",
                    self.broker
                ),
            );
        }
        // Connecting in plain text while TLS files are set would send the credentials and every
        // message unencrypted to a broker the operator meant to verify.
        if !uses_tls && self.tls.is_some() {
            return invalid(
                "tls",
                format!(
                    "TLS files are set but broker URL {} uses plain mqtt://, which would ignore them; use mqtts:// or remove the tls setting",
                    self.broker
                ),
            );
        }
        Ok(())
    }
}

/// Room for the fixed header, the topic and the packet id of a publish around its payload: a
/// topic is at most 65,535 bytes, plus 2 length bytes, 2 packet id bytes and 5 header bytes.
const MAX_PACKET_OVERHEAD: usize = 65_535 + 9;

/// A user name and password for the broker.
///
/// `Debug` prints the password as `***`, so the settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    password: String,
}

impl Credentials {
    /// Creates credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Returns the password, for handing to the MQTT client only.
    pub fn expose_password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// PEM files for a TLS connection to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificates that the broker's certificate must chain to.
    pub ca_file: PathBuf,
    /// The client certificate chain and its private key, for brokers that require client
    /// certificates.
    pub client: Option<ClientCertFiles>,
}

/// A client certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFiles {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The number of messages the outbox accepts per publish class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxCapacity {
    /// Requests and replies.
    pub requests: usize,
    /// State changes.
    pub state_changes: usize,
    /// Telemetry.
    pub telemetry: usize,
}

impl Default for OutboxCapacity {
    fn default() -> Self {
        Self {
            requests: 1024,
            state_changes: 4096,
            telemetry: 1024,
        }
    }
}

/// Exponential reconnect backoff with jitter.
///
/// The n-th consecutive failed attempt waits a random time between half and all of
/// `min * 2^(n-1)`, capped at `max`. A successful connection resets the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub min: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Returns the delay after `failures` consecutive failed attempts (1 or more), with the
    /// jitter factor `jitter` in `[0, 1]` selecting a point between half and all of the delay.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        let full = self.min.saturating_mul(1u32 << exponent).min(self.max);
        let factor = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
        full.mul_f64(factor)
    }
}
