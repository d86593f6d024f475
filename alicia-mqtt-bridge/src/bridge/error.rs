//! Errors of the MQTT bridge.

use std::path::PathBuf;

/// Failure to start the bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A setting is out of range.
    #[error("bridge setting {setting} is invalid: {reason}")]
    InvalidConfig {
        /// The setting's name.
        setting: &'static str,
        /// Why, and what to use instead.
        reason: String,
    },

    /// A TLS file could not be read or parsed.
    #[error(
        "TLS {role} file {path} could not be loaded: {reason} (check the path and that it is PEM)"
    )]
    TlsFile {
        /// The file's content: `CA`, `client certificate` or `client key`.
        role: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's or the file system's error.
        reason: String,
    },

    /// rustls rejected the certificates or the key.
    #[error(
        "TLS settings were rejected: {reason} (check that the client key matches its certificate)"
    )]
    Tls {
        /// rustls's error.
        reason: String,
    },

    /// The presence envelope or a topic could not be built from the node id.
    #[error("node id \"{node}\" cannot name its topics: {reason}")]
    NodeTopic {
        /// The node id.
        node: String,
        /// Why.
        reason: String,
    },

    /// The bridge actor could not be spawned.
    #[error("starting the bridge actor failed: {reason}")]
    Spawn {
        /// ractor's error.
        reason: String,
    },
}
