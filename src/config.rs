//! Settings of one node: its id, data directory and broker, read from TOML.
//!
//! ```toml
//! node_id = "hub"
//! data_dir = "/var/lib/alicia"
//!
//! [broker]
//! # Either run the embedded broker on this address ...
//! listen = "127.0.0.1:1883"
//! # ... or connect to an external one (not both):
//! # url = "mqtt://127.0.0.1:1883"
//! # The protocol version for the external broker: "5" (the default) or "3.1.1" for brokers
//! # without MQTT 5. The embedded broker always speaks 3.1.1.
//! # mqtt_version = "5"
//! # For an mqtts:// URL: the CA that signed the broker's certificate, and a client certificate
//! # and key for brokers that require one.
//! # ca_file = "/etc/alicia/ca.pem"
//! # client_cert = "/etc/alicia/node.pem"
//! # client_key = "/etc/alicia/node.key"
//! ```
//!
//! Every key is optional; [`NodeConfig::default`] gives the values used for a missing key.
//! Unknown keys are rejected, so a misspelled key is an error instead of a silently ignored
//! setting.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use alicia_core::NodeId;
use alicia_mqtt_bridge::BrokerUrl;
use alicia_mqtt_bridge::bridge::{ClientCertFiles, MqttVersion, TlsFiles};
use serde::Deserialize;

/// Address of the embedded broker when none is configured: loopback only, the standard port.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 1883);

/// Node id when none is configured.
pub const DEFAULT_NODE_ID: &str = "alicia";

/// Which broker the node uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerChoice {
    /// Run the embedded broker, listening on this address.
    Embedded {
        /// Address the embedded broker listens on.
        listen: SocketAddr,
    },
    /// Connect to a broker that runs elsewhere (Mosquitto, EMQX, ...).
    External {
        /// The broker's URL.
        url: BrokerUrl,
        /// The protocol version to speak to it.
        protocol: MqttVersion,
    },
    /// No MQTT at all: the services talk over the in-process bus only. For applications that
    /// embed Alicia without a broker, and for tests. Only the builder API selects it.
    InProcess,
}

/// The settings of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node's id; also its MQTT client namespace.
    pub node_id: NodeId,
    /// Directory of the node's database and other state; created if missing.
    pub data_dir: PathBuf,
    /// The broker to run or connect to.
    pub broker: BrokerChoice,
    /// Certificate files for an `mqtts://` external broker.
    pub tls: Option<TlsFiles>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading configuration file {path} failed: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The TOML is malformed or a value is invalid; the message names the key and position.
    #[error("configuration {origin} is invalid: {message}")]
    Invalid {
        /// The file name, or a description of where the text came from.
        origin: String,
        /// What is wrong, with the line and column where the parser knows them.
        message: String,
    },

    /// A client certificate was given without its key, or the other way round.
    #[error(
        "configuration {origin} is invalid: [broker] sets only one of `client_cert` and `client_key`; a client certificate needs both"
    )]
    ClientCertIncomplete {
        /// The file name, or a description of where the text came from.
        origin: String,
    },

    /// TLS files were given without a CA file.
    #[error(
        "configuration {origin} is invalid: [broker] sets a client certificate without `ca_file`; TLS needs the CA that signed the broker's certificate"
    )]
    CaFileMissing {
        /// The file name, or a description of where the text came from.
        origin: String,
    },

    /// An MQTT version was given for the embedded broker, which speaks only 3.1.1.
    #[error(
        "configuration {origin} is invalid: [broker] sets `mqtt_version` without `url`; the embedded broker always speaks MQTT 3.1.1, so set `mqtt_version` only for an external broker"
    )]
    VersionWithoutUrl {
        /// The file name, or a description of where the text came from.
        origin: String,
    },

    /// Both an embedded listen address and an external URL were given.
    #[error(
        "configuration {origin} is invalid: [broker] sets both `listen` (embedded broker) and `url` (external broker); keep only one"
    )]
    BrokerConflict {
        /// The file name, or a description of where the text came from.
        origin: String,
    },
}

/// The TOML layout, before defaults and cross-field checks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<NodeId>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    broker: FileBroker,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBroker {
    listen: Option<String>,
    url: Option<BrokerUrl>,
    mqtt_version: Option<VersionText>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// `mqtt_version` as written: `"5"` and `"3.1.1"` are strings, but a bare `5` is a TOML integer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum VersionText {
    Text(String),
    Number(i64),
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            node_id: NodeId::new(DEFAULT_NODE_ID)
                .expect("the default node id satisfies the id rule"),
            data_dir: default_data_dir(),
            broker: BrokerChoice::Embedded {
                listen: DEFAULT_LISTEN,
            },
            tls: None,
        }
    }
}

impl NodeConfig {
    /// Reads and validates a TOML configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names the text in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|error| ConfigError::Invalid {
            origin: origin.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;

        let defaults = NodeConfig::default();
        let version = file.broker.mqtt_version.map(|version| match version {
            VersionText::Text(text) => text,
            VersionText::Number(number) => number.to_string(),
        });
        let protocol = match &version {
            None => None,
            Some(text) => {
                Some(
                    text.parse::<MqttVersion>()
                        .map_err(|error| ConfigError::Invalid {
                            origin: origin.to_owned(),
                            message: format!("[broker] mqtt_version: {error}"),
                        })?,
                )
            }
        };
        let listen = match file.broker.listen {
            None => None,
            Some(text) => Some(parse_listen(&text).map_err(|message| ConfigError::Invalid {
                origin: origin.to_owned(),
                message: format!("[broker] listen: {message}"),
            })?),
        };
        let broker = match (listen, file.broker.url) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::BrokerConflict {
                    origin: origin.to_owned(),
                });
            }
            (None, Some(url)) => BrokerChoice::External {
                url,
                protocol: protocol.unwrap_or_default(),
            },
            (listen, None) => {
                if protocol.is_some() {
                    return Err(ConfigError::VersionWithoutUrl {
                        origin: origin.to_owned(),
                    });
                }
                match listen {
                    Some(listen) => BrokerChoice::Embedded { listen },
                    None => defaults.broker,
                }
            }
        };

        let tls = tls_files(
            file.broker.ca_file,
            file.broker.client_cert,
            file.broker.client_key,
            origin,
        )?;

        Ok(Self {
            node_id: file.node_id.unwrap_or(defaults.node_id),
            data_dir: file.data_dir.unwrap_or(defaults.data_dir),
            broker,
            tls,
        })
    }
}

/// Parses the embedded broker's listen address, an IP address and a port.
///
/// # Errors
///
/// A message naming the value and the expected form, for example when it is a host name.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address and port; use a form such as 127.0.0.1:1883 or [::1]:1883 (host names such as localhost are not accepted)"
        )
    })
}

/// Combines the TLS file settings into [`TlsFiles`]; `origin` names the settings in errors.
pub fn tls_files(
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    origin: &str,
) -> Result<Option<TlsFiles>, ConfigError> {
    let client = match (client_cert, client_key) {
        (Some(cert_file), Some(key_file)) => Some(ClientCertFiles {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        _ => {
            return Err(ConfigError::ClientCertIncomplete {
                origin: origin.to_owned(),
            });
        }
    };
    match (ca_file, client) {
        (Some(ca_file), client) => Ok(Some(TlsFiles { ca_file, client })),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ConfigError::CaFileMissing {
            origin: origin.to_owned(),
        }),
    }
}

/// `$XDG_DATA_HOME/alicia`, else `$HOME/.local/share/alicia`, else `./alicia-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir).join("alicia");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|home| !home.is_empty()) {
        return PathBuf::from(home).join(".local/share/alicia");
    }
    PathBuf::from("alicia-data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_empty_text_gives_defaults() {
        let config = NodeConfig::from_toml("", "test").unwrap();
        assert_eq!(config, NodeConfig::default());
    }

    #[test]
    fn config_reads_every_key() {
        let text = "node_id = \"hub\"\ndata_dir = \"/srv/alicia\"\n[broker]\nurl = \"mqtt://127.0.0.1:1884\"\n";
        let config = NodeConfig::from_toml(text, "test").unwrap();
        assert_eq!(config.node_id.as_str(), "hub");
        assert_eq!(config.data_dir, PathBuf::from("/srv/alicia"));
        assert_eq!(
            config.broker,
            BrokerChoice::External {
                url: BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap(),
                protocol: MqttVersion::V5,
            }
        );
    }

    #[test]
    fn config_reads_mqtt_version() {
        let text = "[broker]\nurl = \"mqtt://127.0.0.1:1884\"\nmqtt_version = \"3.1.1\"";
        let config = NodeConfig::from_toml(text, "test").unwrap();
        assert!(
            matches!(
                config.broker,
                BrokerChoice::External {
                    protocol: MqttVersion::V311,
                    ..
                }
            ),
            "{config:?}"
        );
    }

    #[test]
    fn config_reads_bare_mqtt_version_number() {
        let text = "[broker]\nurl = \"mqtt://127.0.0.1:1884\"\nmqtt_version = 5";
        let config = NodeConfig::from_toml(text, "test").unwrap();
        assert!(
            matches!(
                config.broker,
                BrokerChoice::External {
                    protocol: MqttVersion::V5,
                    ..
                }
            ),
            "{config:?}"
        );
    }

    #[test]
    fn config_rejects_mqtt_version_for_embedded_broker() {
        let text = "[broker]\nlisten = \"127.0.0.1:1883\"\nmqtt_version = \"5\"";
        let error = NodeConfig::from_toml(text, "node.toml").unwrap_err();
        assert!(
            matches!(error, ConfigError::VersionWithoutUrl { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn config_embedded_listen_address() {
        let config =
            NodeConfig::from_toml("[broker]\nlisten = \"127.0.0.1:1999\"", "test").unwrap();
        assert_eq!(
            config.broker,
            BrokerChoice::Embedded {
                listen: "127.0.0.1:1999".parse().unwrap()
            }
        );
    }

    #[test]
    fn config_rejects_invalid_input() {
        let cases = [
            ("node_id = \"kitchen/hub\"", "'/' at position 8"),
            ("nodeid = \"hub\"", "nodeid"),
            ("[broker]\nurl = \"http://x\"", "mqtt://"),
            ("[broker]\nlisten = \"localhost\"", "listen"),
            ("[broker]\nlisten = \"localhost:1883\"", "127.0.0.1:1883"),
            ("[broker]\nport = 1883", "port"),
            ("node_id = ", "node_id"),
            (
                "[broker]\nurl = \"mqtt://x\"\nmqtt_version = \"3.1\"",
                "unknown MQTT version \"3.1\"",
            ),
        ];
        for (text, expected) in cases {
            let error = NodeConfig::from_toml(text, "node.toml").unwrap_err();
            let message = error.to_string();
            assert!(message.contains("node.toml"), "{text:?}: {message}");
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn config_reads_tls_files() {
        let text = "[broker]\nurl = \"mqtts://hub\"\nca_file = \"/etc/ca.pem\"\nclient_cert = \"/etc/n.pem\"\nclient_key = \"/etc/n.key\"";
        let tls = NodeConfig::from_toml(text, "test").unwrap().tls.unwrap();
        assert_eq!(tls.ca_file, PathBuf::from("/etc/ca.pem"));
        assert_eq!(tls.client.unwrap().key_file, PathBuf::from("/etc/n.key"));
    }

    #[test]
    fn config_rejects_incomplete_tls() {
        let half = "[broker]\nca_file = \"/ca.pem\"\nclient_cert = \"/n.pem\"";
        let error = NodeConfig::from_toml(half, "node.toml").unwrap_err();
        assert!(
            matches!(error, ConfigError::ClientCertIncomplete { .. }),
            "{error:?}"
        );

        let no_ca = "[broker]\nclient_cert = \"/n.pem\"\nclient_key = \"/n.key\"";
        let error = NodeConfig::from_toml(no_ca, "node.toml").unwrap_err();
        assert!(
            matches!(error, ConfigError::CaFileMissing { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn config_rejects_both_brokers() {
        let text = "[broker]\nlisten = \"127.0.0.1:1883\"\nurl = \"mqtt://127.0.0.1:1884\"";
        let error = NodeConfig::from_toml(text, "node.toml").unwrap_err();
        assert!(
            matches!(error, ConfigError::BrokerConflict { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn config_load_names_missing_file() {
        let error = NodeConfig::load(Path::new("/nonexistent/alicia.toml")).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/alicia.toml"),
            "{error}"
        );
    }
}
