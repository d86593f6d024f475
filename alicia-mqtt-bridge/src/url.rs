//! Broker addresses in URL form: `mqtt://host[:port]` and `mqtts://host[:port]`.

use std::fmt;
use std::str::FromStr;

/// Default port of plain MQTT.
pub const MQTT_PORT: u16 = 1883;

/// Default port of MQTT over TLS.
pub const MQTTS_PORT: u16 = 8883;

/// How the bridge talks to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Plain TCP (`mqtt://`).
    Tcp,
    /// TCP with TLS (`mqtts://`).
    Tls,
}

/// A validated broker URL.
///
/// Credentials are not accepted in the URL: a URL ends up in logs and process listings, so user
/// names and passwords are configured separately.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerUrl {
    transport: Transport,
    host: String,
    port: u16,
}

/// Why a string is not a valid broker URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerUrlError {
    /// The scheme is missing or not `mqtt`/`mqtts`.
    #[error(
        "broker URL \"{url}\" is invalid: the scheme must be mqtt:// or mqtts:// (e.g. mqtt://127.0.0.1:1883)"
    )]
    Scheme {
        /// The rejected URL.
        url: String,
    },

    /// The URL contains `user:password@`.
    #[error(
        "broker URL \"{url}\" is invalid: credentials in the URL are not accepted because URLs end up in logs; remove the part before '@' and configure the user name and password separately"
    )]
    Credentials {
        /// The rejected URL with its user information removed.
        url: String,
    },

    /// The host part is empty or malformed.
    #[error(
        "broker URL \"{url}\" is invalid: host \"{host}\" is not a host name, an IPv4 address or a bracketed IPv6 address"
    )]
    Host {
        /// The rejected URL.
        url: String,
        /// The host part as found.
        host: String,
    },

    /// The port is not a number from 1 to 65535.
    #[error("broker URL \"{url}\" is invalid: port \"{port}\" is not a number from 1 to 65535")]
    Port {
        /// The rejected URL.
        url: String,
        /// The port part as found.
        port: String,
    },

    /// Something follows the address (a path, a query or a fragment).
    #[error("broker URL \"{url}\" is invalid: nothing may follow host and port (found \"{rest}\")")]
    TrailingPart {
        /// The rejected URL.
        url: String,
        /// The unexpected part.
        rest: String,
    },
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]`; an absent port is 1883 or 8883.
    pub fn parse(url: &str) -> Result<Self, BrokerUrlError> {
        let (transport, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (Transport::Tcp, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (Transport::Tls, rest)
        } else {
            return Err(BrokerUrlError::Scheme {
                url: url.to_owned(),
            });
        };

        let (authority, trailing) = match rest.find(['/', '?', '#']) {
            Some(index) => rest.split_at(index),
            None => (rest, ""),
        };
        if !trailing.is_empty() && trailing != "/" {
            return Err(BrokerUrlError::TrailingPart {
                url: url.to_owned(),
                rest: trailing.to_owned(),
            });
        }

        if let Some(at) = authority.rfind('@') {
            let scheme = if transport == Transport::Tcp {
                "mqtt"
            } else {
                "mqtts"
            };
            return Err(BrokerUrlError::Credentials {
                url: format!("{scheme}://{}", &authority[at + 1..]),
            });
        }

        let (host, port) = split_host_port(url, authority)?;
        let port = match port {
            None => match transport {
                Transport::Tcp => MQTT_PORT,
                Transport::Tls => MQTTS_PORT,
            },
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => {
                    return Err(BrokerUrlError::Port {
                        url: url.to_owned(),
                        port: text.to_owned(),
                    });
                }
            },
        };

        Ok(Self {
            transport,
            host: host.to_owned(),
            port,
        })
    }

    /// Plain TCP or TLS.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The host name or address, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Splits `host[:port]` or `[v6]:port`, validating the host.
fn split_host_port<'a>(
    url: &str,
    authority: &'a str,
) -> Result<(&'a str, Option<&'a str>), BrokerUrlError> {
    let host_error = |host: &str| BrokerUrlError::Host {
        url: url.to_owned(),
        host: host.to_owned(),
    };

    if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(host_error(authority));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(host_error(host));
        }
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(host_error(authority)),
            },
        };
    }

    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if !is_valid_host_name(host) {
        return Err(host_error(host));
    }
    Ok((host, port))
}

/// A DNS host name or IPv4 address: dot-separated labels of letters, digits and inner hyphens.
fn is_valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            Transport::Tcp => "mqtt",
            Transport::Tls => "mqtts",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for BrokerUrl {
    type Err = BrokerUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

impl serde::Serialize for BrokerUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for BrokerUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parses_valid_forms() {
        let cases = [
            ("mqtt://127.0.0.1:1883", Transport::Tcp, "127.0.0.1", 1883),
            ("mqtt://localhost", Transport::Tcp, "localhost", 1883),
            (
                "mqtts://broker.home.arpa",
                Transport::Tls,
                "broker.home.arpa",
                8883,
            ),
            ("mqtts://broker:9000/", Transport::Tls, "broker", 9000),
            ("mqtt://[::1]:1884", Transport::Tcp, "::1", 1884),
            ("mqtt://[::1]", Transport::Tcp, "::1", 1883),
        ];
        for (text, transport, host, port) in cases {
            let url = BrokerUrl::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(url.transport(), transport, "{text}");
            assert_eq!(url.host(), host, "{text}");
            assert_eq!(url.port(), port, "{text}");
        }
    }

    #[test]
    fn url_rejects_invalid_forms() {
        let cases = [
            ("127.0.0.1:1883", "missing scheme"),
            ("http://broker", "wrong scheme"),
            ("mqtt://", "empty host"),
            ("mqtt://:1883", "empty host with port"),
            ("mqtt://broker:0", "port zero"),
            ("mqtt://broker:65536", "port too large"),
            ("mqtt://broker:x", "port not a number"),
            ("mqtt://bro ker", "space in host"),
            ("mqtt://-broker", "leading hyphen"),
            ("mqtt://broker/topic", "path"),
            ("mqtt://broker?x=1", "query"),
            ("mqtt://[::1", "unclosed bracket"),
            ("mqtt://[nothost]:1", "bad IPv6"),
            ("mqtt://[::1]x", "text after bracket"),
        ];
        for (text, why) in cases {
            assert!(
                BrokerUrl::parse(text).is_err(),
                "{text:?} ({why}) should be invalid"
            );
        }
    }

    #[test]
    fn url_rejects_credentials_without_echoing_them() {
        let error = BrokerUrl::parse("mqtt://alice:s3cret@broker:1883").unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, BrokerUrlError::Credentials { .. }),
            "{error:?}"
        );
        assert!(!message.contains("s3cret"), "{message}");
        assert!(message.contains("mqtt://broker:1883"), "{message}");
    }

    #[test]
    fn url_displays_canonical_form() {
        let url = BrokerUrl::parse("mqtt://[::1]").unwrap();
        assert_eq!(url.to_string(), "mqtt://[::1]:1883");
        assert_eq!(BrokerUrl::parse(&url.to_string()).unwrap(), url);
    }

    #[test]
    fn url_deserializes_with_validation() {
        let ok: BrokerUrl = serde_json::from_str("\"mqtts://hub\"").unwrap();
        assert_eq!(ok.port(), MQTTS_PORT);
        assert!(serde_json::from_str::<BrokerUrl>("\"ftp://hub\"").is_err());
    }
}
