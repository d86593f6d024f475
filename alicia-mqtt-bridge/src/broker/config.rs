//! Settings of the embedded broker and their translation into rumqttd's configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rumqttd::{ConnectionSettings, RouterConfig, ServerSettings};

use super::BrokerError;

/// The default listening address: the standard MQTT port on the loopback interface, so that only
/// clients on this machine can connect until the user chooses otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 1883);

/// rumqttd's router id. Each embedded broker has its own router, so the id only labels log lines.
pub(super) const ROUTER_ID: usize = 0;

/// Maximum number of QoS 0 messages the router reads from a commit log for one connection in one
/// pass. rumqttd's sample configuration uses 200 as well.
const MAX_OUTGOING_PACKET_COUNT: u64 = 200;

/// Maximum number of packets rumqttd reads from one connection before it hands them to the
/// router. rumqttd names this setting `max_inflight_count`, but the outgoing QoS 1/2 window is
/// fixed at 100 inside rumqttd 0.20 and does not depend on it.
const MAX_INCOMING_BATCH: usize = 100;

/// Pause in ms after each accepted connection, which limits accepts to about 1000 per second.
const NEXT_CONNECTION_DELAY_MS: u64 = 1;

/// rumqttd 0.20 takes the connect timeout as a `u16` number of milliseconds.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_millis(u16::MAX as u64);

/// rumqttd 0.20 panics when a segment is smaller than 1 KiB.
const MIN_SEGMENT_SIZE: usize = 1024;

/// Settings of the embedded MQTT broker.
///
/// The broker serves MQTT 3.1.1 over plain TCP. The defaults suit a home hub with up to a few
/// hundred devices and services; see each field for what it bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedBrokerConfig {
    /// Address to listen on. Default [`DEFAULT_LISTEN`] (`127.0.0.1:1883`). Port 0 picks a free
    /// port; [`EmbeddedBroker::local_addr`](super::EmbeddedBroker::local_addr) returns it. Any
    /// address of this machine is accepted, including `0.0.0.0` to serve the local network.
    pub listen: SocketAddr,

    /// Maximum number of client connections at once. Default 1024. Beyond this limit rumqttd
    /// accepts the TCP connection but sends no CONNACK, so the client times out.
    pub max_connections: usize,

    /// Maximum size in bytes of an incoming MQTT packet after its fixed header, that is topic,
    /// properties and payload together. Default 1 MiB. rumqttd closes the connection of a client
    /// that sends a larger packet.
    pub max_payload_size: usize,

    /// How long a new TCP connection may take to send its CONNECT packet before rumqttd closes it.
    /// Default 10 s, at most 65.535 s.
    pub connect_timeout: Duration,

    /// Size in bytes after which a commit log starts a new segment. Default 256 KiB, at least
    /// 1 KiB. rumqttd keeps one commit log per subscription filter, so together with
    /// [`max_segment_count`](Self::max_segment_count) this bounds the memory each filter holds:
    /// about `max_segment_size * max_segment_count`, plus one packet per segment.
    pub max_segment_size: usize,

    /// Number of segments a commit log keeps before it drops the oldest. Default 4, at least 1. A
    /// subscriber that falls further behind than the log reaches loses the dropped messages.
    pub max_segment_count: usize,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            max_connections: 1024,
            max_payload_size: 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_segment_size: 256 * 1024,
            max_segment_count: 4,
        }
    }
}

impl EmbeddedBrokerConfig {
    /// Creates the default configuration with another listening address.
    pub fn with_listen(listen: SocketAddr) -> Self {
        Self {
            listen,
            ..Self::default()
        }
    }

    /// Checks every value that rumqttd would reject, or panic on, later.
    pub fn validate(&self) -> Result<(), BrokerError> {
        if self.max_connections == 0 {
            return Err(invalid(
                "max_connections",
                self.max_connections,
                "must be at least 1",
            ));
        }

        if self.max_payload_size == 0 {
            return Err(invalid(
                "max_payload_size",
                self.max_payload_size,
                "must be at least 1 byte",
            ));
        }

        if self.connect_timeout.is_zero() || self.connect_timeout > MAX_CONNECT_TIMEOUT {
            return Err(invalid(
                "connect_timeout",
                format!("{:?}", self.connect_timeout),
                "must be between 1 ms and 65.535 s (rumqttd stores it as u16 milliseconds)",
            ));
        }

        if self.max_segment_size < MIN_SEGMENT_SIZE {
            return Err(invalid(
                "max_segment_size",
                self.max_segment_size,
                "must be at least 1024 bytes (rumqttd panics below that)",
            ));
        }

        if self.max_segment_count == 0 {
            return Err(invalid(
                "max_segment_count",
                self.max_segment_count,
                "must be at least 1 (rumqttd panics on 0)",
            ));
        }

        Ok(())
    }

    /// Builds rumqttd's router settings. Call [`validate`](Self::validate) first.
    pub(super) fn router_config(&self) -> RouterConfig {
        RouterConfig {
            max_connections: self.max_connections,
            max_outgoing_packet_count: MAX_OUTGOING_PACKET_COUNT,
            max_segment_size: self.max_segment_size,
            max_segment_count: self.max_segment_count,
            ..RouterConfig::default()
        }
    }

    /// Builds rumqttd's settings of the MQTT 3.1.1 listener on `addr`, the address that was
    /// actually bound (the port is no longer 0). Call [`validate`](Self::validate) first.
    pub(super) fn server_settings(&self, addr: SocketAddr) -> ServerSettings {
        let connect_timeout_ms =
            u16::try_from(self.connect_timeout.as_millis()).unwrap_or(u16::MAX);

        ServerSettings {
            name: format!("alicia-broker-{addr}"),
            listen: addr,
            tls: None,
            next_connection_delay_ms: NEXT_CONNECTION_DELAY_MS,
            connections: ConnectionSettings {
                connection_timeout_ms: connect_timeout_ms,
                max_payload_size: self.max_payload_size,
                max_inflight_count: MAX_INCOMING_BATCH,
                auth: None,
                external_auth: None,
                // Has no effect on TCP clients in rumqttd 0.20, which drops a publish that no
                // subscription filter matches either way.
                dynamic_filters: false,
            },
        }
    }
}

fn invalid(field: &'static str, value: impl ToString, reason: &'static str) -> BrokerError {
    BrokerError::InvalidConfig {
        field,
        value: value.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_listens_on_loopback() {
        let config = EmbeddedBrokerConfig::default();

        assert_eq!(
            config.listen,
            "127.0.0.1:1883".parse().expect("valid address")
        );
        assert!(config.validate().is_ok());
    }

    /// A field name and a change that puts that field out of range.
    type Case = (&'static str, fn(&mut EmbeddedBrokerConfig));

    #[test]
    fn validate_rejects_out_of_range() {
        let cases: [Case; 6] = [
            ("max_connections", |c| c.max_connections = 0),
            ("max_payload_size", |c| c.max_payload_size = 0),
            ("connect_timeout", |c| c.connect_timeout = Duration::ZERO),
            ("connect_timeout", |c| {
                c.connect_timeout = Duration::from_secs(66)
            }),
            ("max_segment_size", |c| c.max_segment_size = 1023),
            ("max_segment_count", |c| c.max_segment_count = 0),
        ];

        for (expected_field, change) in cases {
            let mut config = EmbeddedBrokerConfig::default();
            change(&mut config);

            let result = config.validate();

            assert!(
                matches!(result, Err(BrokerError::InvalidConfig { field, .. }) if field == expected_field),
                "{expected_field}: {result:?}"
            );
        }
    }

    #[test]
    fn validate_accepts_lower_bounds() {
        let config = EmbeddedBrokerConfig {
            max_connections: 1,
            max_payload_size: 1,
            connect_timeout: Duration::from_millis(1),
            max_segment_size: 1024,
            max_segment_count: 1,
            ..EmbeddedBrokerConfig::default()
        };

        assert!(config.validate().is_ok());
    }

    #[test]
    fn server_settings_keep_connect_timeout() {
        let config = EmbeddedBrokerConfig {
            connect_timeout: Duration::from_millis(65_535),
            ..EmbeddedBrokerConfig::default()
        };
        let addr = "127.0.0.1:4000".parse().expect("valid address");

        let settings = config.server_settings(addr);

        assert_eq!(settings.connections.connection_timeout_ms, 65_535);
        assert_eq!(settings.listen, addr);
        assert!(settings.tls.is_none());
    }
}
