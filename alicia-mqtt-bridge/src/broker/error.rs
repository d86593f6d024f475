//! Errors of the embedded broker.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Failure to start or stop the embedded broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// A configuration value is out of range.
    #[error("embedded broker setting {field} = {value} is invalid: {reason}")]
    InvalidConfig {
        /// The name of the [`EmbeddedBrokerConfig`](super::EmbeddedBrokerConfig) field.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// The accepted range and the reason for it.
        reason: &'static str,
    },

    /// Another socket already listens on the address, most often a broker that is already running.
    #[error(
        "cannot listen on {addr}: the address is already in use, most likely by another MQTT broker; \
         either connect to that broker instead (--broker mqtt://{broker_addr}; if it is another \
         Alicia node's embedded broker, add --mqtt-version 3.1.1, a --node-id of its own and \
         --no-registry) or let the embedded broker listen on another address (--listen \
         {alternative})",
        broker_addr = connectable(*addr),
        alternative = next_port(*addr)
    )]
    AddressInUse {
        /// The address that was requested.
        addr: SocketAddr,
    },

    /// Binding the address failed for another reason than the address being in use.
    #[error(
        "cannot listen on {addr}: {source}; check that the address belongs to this machine and \
         that this process may bind the port (ports below 1024 need privileges)"
    )]
    Bind {
        /// The address that was requested.
        addr: SocketAddr,
        /// The error from the operating system.
        source: io::Error,
    },

    /// Creating the broker's server thread failed.
    #[error(
        "creating the embedded broker's thread for {addr} failed: {source}; the process may have \
         reached its limit of threads"
    )]
    Spawn {
        /// The address the broker was to listen on.
        addr: SocketAddr,
        /// The error from the operating system.
        source: io::Error,
    },

    /// rumqttd's server stopped with an error before it was listening.
    #[error("the embedded broker on {addr} stopped during start-up: {message}")]
    Server {
        /// The address the broker was to listen on.
        addr: SocketAddr,
        /// rumqttd's error, as text because rumqttd 0.20 does not export its error type.
        message: String,
    },

    /// rumqttd did not open its listening socket in time.
    #[error(
        "the embedded broker did not start listening on {addr} within {timeout:?}; \
         the machine may be overloaded, so try again"
    )]
    StartTimeout {
        /// The address the broker was to listen on.
        addr: SocketAddr,
        /// How long start-up waited.
        timeout: Duration,
    },

    /// The broker's thread did not finish in time after a shutdown request.
    #[error(
        "the embedded broker on {addr} did not stop within {timeout:?}; its thread is left \
         running and the port may stay open until the process exits"
    )]
    ShutdownTimeout {
        /// The address the broker listened on.
        addr: SocketAddr,
        /// How long shutdown waited.
        timeout: Duration,
    },
}

/// Returns the address a client on this machine can connect to for a broker listening on
/// `addr`: an unspecified address (`0.0.0.0`, `::`) becomes the loopback address.
fn connectable(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    match addr {
        SocketAddr::V4(ref mut v4) if v4.ip().is_unspecified() => {
            v4.set_ip(std::net::Ipv4Addr::LOCALHOST);
        }
        SocketAddr::V6(ref mut v6) if v6.ip().is_unspecified() => {
            v6.set_ip(std::net::Ipv6Addr::LOCALHOST);
        }
        _ => {}
    }
    addr
}

/// Returns `addr` with the next port number, as a suggestion for a free address. Port 65535 wraps
/// to 1884, one above the standard MQTT port.
fn next_port(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    addr.set_port(addr.port().checked_add(1).unwrap_or(1884));
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_in_use_names_both_ways_out() {
        let addr: SocketAddr = "127.0.0.1:1883".parse().expect("valid address");

        let message = BrokerError::AddressInUse { addr }.to_string();

        assert!(message.contains("127.0.0.1:1883"), "{message}");
        assert!(message.contains("already in use"), "{message}");
        assert!(
            message.contains("--broker mqtt://127.0.0.1:1883"),
            "{message}"
        );
        assert!(message.contains("--listen 127.0.0.1:1884"), "{message}");
    }

    #[test]
    fn address_in_use_unspecified_suggests_loopback() {
        let addr: SocketAddr = "0.0.0.0:1883".parse().expect("valid address");

        let message = BrokerError::AddressInUse { addr }.to_string();

        assert!(
            message.contains("--broker mqtt://127.0.0.1:1883"),
            "{message}"
        );
        assert!(message.contains("--listen 0.0.0.0:1884"), "{message}");
    }

    #[test]
    fn address_in_use_ipv6_keeps_brackets() {
        let addr: SocketAddr = "[::1]:1883".parse().expect("valid address");

        let message = BrokerError::AddressInUse { addr }.to_string();

        assert!(message.contains("--broker mqtt://[::1]:1883"), "{message}");
        assert!(message.contains("--listen [::1]:1884"), "{message}");
    }

    #[test]
    fn next_port_wraps_at_maximum() {
        let addr: SocketAddr = "127.0.0.1:65535".parse().expect("valid address");

        assert_eq!(next_port(addr).port(), 1884);
    }
}
