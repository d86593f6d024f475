//! Test support for Alicia: a private Mosquitto broker per test.
//!
//! [`Mosquitto::start`] runs the system's `mosquitto` binary with the configuration in
//! `alicia-testkit/mosquitto/test.conf`, listening on a free port on 127.0.0.1 only, and stops it
//! when the handle is dropped. Tests therefore never depend on how the machine's own broker (if
//! any) is set up. `scripts/install-test-deps.sh` installs Mosquitto on Debian-based machines.
//!
//! For TLS tests, [`TestPki`] generates a CA with a server and a client certificate, and
//! [`Mosquitto::start_tls`] runs a broker whose listener serves that server certificate.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod pki;

pub use pki::{PkiError, SERVER_NAMES, TestPki};

/// The test broker configuration shipped in the repository.
pub const CONFIG_TEMPLATE: &str = include_str!("../mosquitto/test.conf");

/// The TLS options of a test broker's listener, with `@NAME@` placeholders that
/// [`Mosquitto::start_tls`] fills in.
pub const TLS_CONFIG_TEMPLATE: &str = include_str!("../mosquitto/tls.conf");

/// The test configuration with Mosquitto's default queue limits (`max_queued_messages` 1000,
/// `max_inflight_messages` 20), for showing what a stock broker does to a burst.
pub const DEFAULT_QUEUE_CONFIG: &str = include_str!("../mosquitto/default-queue.conf");

/// Environment variable naming the `mosquitto` binary to run, overriding the search.
pub const MOSQUITTO_BIN_ENV: &str = "ALICIA_MOSQUITTO";

/// How long [`Mosquitto::start`] waits for the broker to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many free ports are tried before giving up. Another process may take a port between the
/// moment it is found free and the moment Mosquitto binds it.
const START_ATTEMPTS: usize = 3;

/// A failure to start a test broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No `mosquitto` binary was found.
    #[error(
        "mosquitto binary not found (looked in ${MOSQUITTO_BIN_ENV}, PATH, /usr/sbin and /usr/local/sbin): \
         run scripts/install-test-deps.sh or set {MOSQUITTO_BIN_ENV} to its path"
    )]
    NotInstalled,

    /// Writing the configuration or log file failed.
    #[error("preparing the broker directory {path} failed: {source}")]
    Prepare {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The process could not be spawned.
    #[error("starting {binary} failed: {source}")]
    Spawn {
        /// The binary that was run.
        binary: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The broker exited or did not accept connections in time.
    #[error(
        "mosquitto on 127.0.0.1:{port} did not become ready after {attempts} attempts; its log ends with:\n{log_tail}"
    )]
    NotReady {
        /// The last port tried.
        port: u16,
        /// How many ports were tried.
        attempts: usize,
        /// The last lines the broker wrote.
        log_tail: String,
    },
}

/// Whether a TLS test broker requires a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// The broker requests no client certificate.
    None,
    /// The broker rejects clients without a certificate signed by the test CA (mutual TLS).
    Required,
}

/// A running private Mosquitto broker, stopped when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    port: u16,
    tls: bool,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts a broker on a free port of 127.0.0.1 with the repository's test configuration.
    pub fn start() -> Result<Self, BrokerError> {
        Self::start_with(CONFIG_TEMPLATE)
    }

    /// Starts a broker with `config` (without a `listener` line; one is appended for a free
    /// loopback port).
    pub fn start_with(config: &str) -> Result<Self, BrokerError> {
        Self::start_listener(config, "")
    }

    /// Starts a broker with the repository's test configuration and a TLS listener on a free port
    /// of 127.0.0.1 that serves `pki`'s server certificate and trusts `pki`'s CA.
    pub fn start_tls(pki: &TestPki, client_auth: ClientAuth) -> Result<Self, BrokerError> {
        let require_certificate = match client_auth {
            ClientAuth::None => "false",
            ClientAuth::Required => "true",
        };
        let listener_options = TLS_CONFIG_TEMPLATE
            .replace("@CA_FILE@", &pki.ca_file().to_string_lossy())
            .replace("@CERT_FILE@", &pki.server_cert_file().to_string_lossy())
            .replace("@KEY_FILE@", &pki.server_key_file().to_string_lossy())
            .replace("@REQUIRE_CERTIFICATE@", require_certificate);
        let mut broker = Self::start_listener(CONFIG_TEMPLATE, &listener_options)?;
        broker.tls = true;
        Ok(broker)
    }

    /// Starts a broker with `config`, then a `listener` line for a free loopback port, then
    /// `listener_options`, which apply to that listener.
    fn start_listener(config: &str, listener_options: &str) -> Result<Self, BrokerError> {
        let binary = find_mosquitto().ok_or(BrokerError::NotInstalled)?;
        let dir = tempfile::Builder::new()
            .prefix("alicia-mosquitto-")
            .tempdir()
            .map_err(|source| BrokerError::Prepare {
                path: std::env::temp_dir(),
                source,
            })?;

        let mut last_port = 0;
        let mut log_tail = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_loopback_port(dir.path())?;
            last_port = port;

            let mut child = spawn(&binary, dir.path(), config, listener_options, port)?;
            if wait_until_ready(&mut child, port) {
                return Ok(Self {
                    child,
                    port,
                    tls: false,
                    dir,
                });
            }

            let _ = child.kill();
            let _ = child.wait();
            log_tail = read_log_tail(&dir.path().join("mosquitto.log"));
        }

        Err(BrokerError::NotReady {
            port: last_port,
            attempts: START_ATTEMPTS,
            log_tail,
        })
    }

    /// Starts a broker with the repository's test configuration on `port` of 127.0.0.1, such as
    /// the port of a broker that [`kill`](Self::kill) stopped, to test reconnects.
    ///
    /// Unlike [`start`](Self::start) it tries only once, because the port is fixed.
    pub fn start_on(port: u16) -> Result<Self, BrokerError> {
        let binary = find_mosquitto().ok_or(BrokerError::NotInstalled)?;
        let dir = tempfile::Builder::new()
            .prefix("alicia-mosquitto-")
            .tempdir()
            .map_err(|source| BrokerError::Prepare {
                path: std::env::temp_dir(),
                source,
            })?;

        let mut child = spawn(&binary, dir.path(), CONFIG_TEMPLATE, "", port)?;
        if wait_until_ready(&mut child, port) {
            return Ok(Self {
                child,
                port,
                tls: false,
                dir,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(BrokerError::NotReady {
            port,
            attempts: 1,
            log_tail: read_log_tail(&dir.path().join("mosquitto.log")),
        })
    }

    /// Returns the port the broker listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the broker's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Returns the broker URL in the form Alicia's bridge takes: `mqtt://127.0.0.1:PORT`, or
    /// `mqtts://127.0.0.1:PORT` for a broker from [`start_tls`](Self::start_tls).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Returns the configuration file the broker was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    /// Returns the broker's log so far, for assertions and failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker at once (SIGKILL), as a crash or power loss would; the port stops
    /// accepting connections.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds the `mosquitto` binary: `$ALICIA_MOSQUITTO`, then `PATH`, then the Debian locations
/// (`/usr/sbin` is not on a normal user's `PATH`).
pub fn find_mosquitto() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(MOSQUITTO_BIN_ENV) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }

    let path_dirs = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|candidate| candidate.is_file())
}

fn free_loopback_port(dir: &Path) -> Result<u16, BrokerError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| BrokerError::Prepare {
            path: dir.to_path_buf(),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| BrokerError::Prepare {
            path: dir.to_path_buf(),
            source,
        })?
        .port();
    Ok(port)
}

fn spawn(
    binary: &Path,
    dir: &Path,
    config: &str,
    listener_options: &str,
    port: u16,
) -> Result<Child, BrokerError> {
    let config_path = dir.join("mosquitto.conf");
    let full_config = format!("{config}\nlistener {port} 127.0.0.1\n{listener_options}");
    fs::write(&config_path, full_config).map_err(|source| BrokerError::Prepare {
        path: config_path.clone(),
        source,
    })?;

    let log_path = dir.join("mosquitto.log");
    let log = fs::File::create(&log_path).map_err(|source| BrokerError::Prepare {
        path: log_path.clone(),
        source,
    })?;
    let log_for_stdout = log.try_clone().map_err(|source| BrokerError::Prepare {
        path: log_path.clone(),
        source,
    })?;

    Command::new(binary)
        .arg("-c")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log_for_stdout)
        .stderr(log)
        .spawn()
        .map_err(|source| BrokerError::Spawn {
            binary: binary.to_path_buf(),
            source,
        })
}

fn wait_until_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn read_log_tail(path: &Path) -> String {
    const TAIL_BYTES: u64 = 4096;
    let Ok(mut file) = fs::File::open(path) else {
        return String::from("(no log written)");
    };
    let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
    let mut tail = String::new();
    let _ = file.read_to_string(&mut tail);
    tail
}
