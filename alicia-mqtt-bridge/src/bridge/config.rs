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
use super::protocol::MqttVersion;

/// Settings of an [`MqttBridge`](super::MqttBridge).
///
/// `Debug` prints the password as `***`.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The broker to connect to.
    pub broker: BrokerUrl,
    /// The MQTT protocol version. MQTT 5 by default; the embedded broker speaks 3.1.1.
    pub protocol: MqttVersion,
    /// The receive maximum the bridge announces over MQTT 5: how many QoS 1 and 2 messages the
    /// broker may send before it waits for an acknowledgement. rumqttc acknowledges a message as
    /// soon as it reads it, so a high value moves a burst out of the broker's per-client queue
    /// into the route queues. The broker's queue drops what is over its limit without telling
    /// anyone; a route queue counts its overflow. Ignored over MQTT 3.1.1.
    pub receive_maximum: u16,
    /// How long the broker keeps the bridge's session after a disconnect, or `None` for a clean
    /// session that ends with the connection. With a session, the broker keeps the
    /// subscriptions and queues QoS 1 messages while the bridge is away (up to its own limit,
    /// Mosquitto's `max_queued_messages`), and sends them on the next connect. Over MQTT 3.1.1 the
    /// broker decides how long it keeps the session.
    pub session_expiry: Option<Duration>,
    /// With a session, how long after start inbound messages are held, in arrival order, before
    /// they go to the routes. The broker sends queued messages right after the connect, before
    /// the node's services have subscribed their routes; holding them lets the services
    /// subscribe first. [`BridgeHandle::release_held`](super::BridgeHandle::release_held) ends the
    /// hold early, as the node does once its services run.
    pub start_hold: Duration,
    /// The node id. It is the MQTT client id, the source of the bridge's own envelopes, the
    /// `{node}` of the presence topic and the `{client}` of the reply namespace.
    pub node: NodeId,
    /// The MQTT keepalive interval: at least 1 s over MQTT 3.1.1 and 5 s over MQTT 5 (rumqttc's
    /// limits). The broker publishes the last will after about 1.5 times this
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

    /// Default hold of inbound messages at start, with a session.
    pub const DEFAULT_START_HOLD: Duration = Duration::from_secs(5);

    /// Default receive maximum over MQTT 5: the largest the protocol allows.
    pub const DEFAULT_RECEIVE_MAXIMUM: u16 = u16::MAX;

    /// Creates settings for `node` on `broker`, with defaults for the rest: no credentials, no
    /// client certificate, the system clock and [`AllowAll`].
    pub fn new(broker: BrokerUrl, node: NodeId) -> Self {
        Self {
            broker,
            protocol: MqttVersion::default(),
            receive_maximum: Self::DEFAULT_RECEIVE_MAXIMUM,
            session_expiry: None,
            start_hold: Self::DEFAULT_START_HOLD,
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

    /// These settings with another MQTT protocol version.
    pub fn with_protocol(mut self, protocol: MqttVersion) -> Self {
        self.protocol = protocol;
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

        match self.protocol {
            MqttVersion::V311 if self.keepalive < Duration::from_secs(1) => {
                return invalid(
                    "keepalive",
                    format!(
                        "{:?} is below rumqttc's minimum of 1 s; use at least 1 s",
                        self.keepalive
                    ),
                );
            }
            MqttVersion::V5 if self.keepalive < Duration::from_secs(5) => {
                return invalid(
                    "keepalive",
                    format!(
                        "{:?} is below rumqttc's minimum of 5 s over MQTT 5; use at least 5 s, or MQTT 3.1.1 for a shorter keepalive",
                        self.keepalive
                    ),
                );
            }
            _ => {}
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
        if self.max_packet_size > MQTT_MAX_PACKET_SIZE {
            return invalid(
                "max_packet_size",
                format!(
                    "{} bytes is over MQTT's largest packet of {MQTT_MAX_PACKET_SIZE} bytes; use a smaller size",
                    self.max_packet_size
                ),
            );
        }
        if let Some(expiry) = self.session_expiry
            && (expiry.is_zero() || expiry.as_secs() > u64::from(u32::MAX))
        {
            return invalid(
                "session_expiry",
                format!(
                    "{expiry:?} is out of range; use 1 s to {} s, or no session expiry for a clean session",
                    u32::MAX
                ),
            );
        }
        if self.receive_maximum == 0 {
            return invalid(
                "receive_maximum",
                "MQTT 5 forbids a receive maximum of 0; use at least 1".to_owned(),
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

/// The largest packet MQTT can frame: a 4-byte remaining length, plus the fixed header byte.
const MQTT_MAX_PACKET_SIZE: usize = 268_435_455 + 5;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BridgeConfig {
        BridgeConfig::new(
            BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap(),
            NodeId::new("hub").unwrap(),
        )
    }

    #[test]
    fn validate_accepts_defaults() {
        assert!(config().validate().is_ok());
        let mut short = config().with_protocol(MqttVersion::V311);
        short.keepalive = Duration::from_secs(2);
        assert!(short.validate().is_ok());
    }

    #[test]
    fn validate_names_setting_and_fix() {
        type Change = fn(&mut BridgeConfig);
        let cases: [(&str, Change, &str, &str); 8] = [
            (
                "keepalive under 1 s on 3.1.1",
                |c| {
                    c.protocol = MqttVersion::V311;
                    c.keepalive = Duration::from_millis(500);
                },
                "keepalive",
                "at least 1 s",
            ),
            (
                "keepalive under 5 s on MQTT 5",
                |c| c.keepalive = Duration::from_secs(2),
                "keepalive",
                "at least 5 s",
            ),
            (
                "zero payload size",
                |c| c.max_payload_size = 0,
                "max_payload_size",
                "at least 1 KiB",
            ),
            (
                "packet size below payload size",
                |c| c.max_packet_size = c.max_payload_size,
                "max_packet_size",
                "use at least",
            ),
            (
                "packet size over MQTT's limit",
                |c| c.max_packet_size = 300 * 1024 * 1024,
                "max_packet_size",
                "smaller size",
            ),
            (
                "zero receive maximum",
                |c| c.receive_maximum = 0,
                "receive_maximum",
                "at least 1",
            ),
            (
                "zero route queue",
                |c| c.route_queue = 0,
                "route_queue",
                "at least 1",
            ),
            (
                "backoff min over max",
                |c| {
                    c.backoff = Backoff {
                        min: Duration::from_secs(2),
                        max: Duration::from_secs(1),
                    }
                },
                "backoff",
                "min <= max",
            ),
        ];
        for (case, change, setting, fix) in cases {
            let mut config = config();
            change(&mut config);
            match config.validate() {
                Err(BridgeError::InvalidConfig {
                    setting: named,
                    reason,
                }) => {
                    assert_eq!(named, setting, "{case}");
                    assert!(reason.contains(fix), "{case}: {reason}");
                }
                other => panic!("{case}: {other:?}"),
            }
        }
    }

    #[test]
    fn mqtt_version_parses_and_prints() {
        assert_eq!("5".parse::<MqttVersion>().unwrap(), MqttVersion::V5);
        assert_eq!("3.1.1".parse::<MqttVersion>().unwrap(), MqttVersion::V311);
        assert_eq!(MqttVersion::V311.to_string(), "3.1.1");
        let error = "3".parse::<MqttVersion>().unwrap_err();
        assert!(error.to_string().contains("\"3.1.1\""), "{error}");
    }
}
