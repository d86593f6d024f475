//! Embedded MQTT broker: rumqttd 0.20 inside the node's process.
//!
//! [`EmbeddedBroker::start`] serves MQTT over plain TCP on [`EmbeddedBrokerConfig::listen`], by
//! default `127.0.0.1:1883`, so that a node needs no separate broker. A node that uses an external
//! broker (Mosquitto, EMQX, ...) can leave this module out by turning off the `embedded-broker`
//! cargo feature, which removes rumqttd and about 120 crates it depends on.
//!
//! The broker speaks MQTT 3.1.1 only: rumqttd closes the connection of a client that connects
//! with MQTT 5 or 3.1, or with a keep-alive of 0. It has no TLS, authentication or topic ACLs
//! yet, which is one reason why it listens on loopback by default.
//!
//! ```no_run
//! use alicia_mqtt_bridge::broker::{EmbeddedBroker, EmbeddedBrokerConfig};
//!
//! let config = EmbeddedBrokerConfig::with_listen("127.0.0.1:0".parse()?);
//! let broker = EmbeddedBroker::start(config)?;
//! println!("MQTT broker on mqtt://{}", broker.local_addr());
//! broker.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Start-up
//!
//! Start-up binds the address itself first, so an address in use fails at once with
//! [`BrokerError::AddressInUse`] instead of as a log line from a rumqttd thread. It then releases
//! the address and lets rumqttd bind it, because rumqttd 0.20 cannot take a bound listener, and
//! returns once rumqttd listens.
//!
//! # Latency: TCP_NODELAY
//!
//! rumqttd 0.20 leaves Nagle's algorithm on for the connections it accepts, which stalls each
//! QoS 1 request/response round trip by about 40 ms. Start-up finds rumqttd's listening socket
//! among this process's file descriptors and sets TCP_NODELAY on it. Accepted connections inherit
//! the option. [`EmbeddedBroker::tcp_nodelay`] returns whether that worked. Clients need
//! TCP_NODELAY on their side too, or their own small writes stall in the same way.
//!
//! # Shutdown
//!
//! rumqttd 0.20 has no way to stop a broker. This module runs rumqttd's TCP server on a thread
//! and tokio runtime of its own, and [`EmbeddedBroker::shutdown`] (or dropping the handle) drops
//! that runtime: the listening socket and every client connection are closed, and the address can
//! be bound again.
//!
//! NOTE: rumqttd's router thread cannot be stopped. After shutdown it stays blocked on its empty
//! channel until the process exits, without using CPU, and keeps the memory of its retained
//! messages, commit logs and sessions. Each broker that started, or failed after its address was
//! checked, leaves one such thread behind. Clients see their connection closed without an MQTT
//! DISCONNECT, and no last will is published.
//!
//! # Logs
//!
//! This module logs start, stop and failures under the target `alicia_mqtt_bridge::broker`.
//! rumqttd logs through `tracing` as well, under targets starting with `rumqttd`. The events of
//! its listener and connections are inside an `embedded_broker` span that records the listening
//! address, and its router logs outside that span. rumqttd 0.20 logs each connection at info
//! level, and even a clean client disconnect produces an error-level event from its router
//! (`no-connection id N is already gone`). Installations therefore usually filter rumqttd, for
//! example with `RUST_LOG=info,rumqttd=off`.

mod config;
mod error;
mod nodelay;

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rumqttd::protocol::v4::V4;
use rumqttd::{LinkType, Router, Server};
use tokio::sync::oneshot;
use tracing::{Instrument, info, warn};

pub use config::{DEFAULT_LISTEN, EmbeddedBrokerConfig};
pub use error::BrokerError;

/// How long start-up waits for rumqttd to listen.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between two searches for rumqttd's listener during start-up.
const START_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// How long start-up waits for a bind failure where rumqttd's listener cannot be searched for.
const UNSEARCHABLE_GRACE: Duration = Duration::from_millis(100);

/// How many times start-up tries again when another socket takes the free port it picked for
/// port 0 before rumqttd binds it.
const FREE_PORT_ATTEMPTS: usize = 3;

/// How long shutdown waits for the server thread to drop its runtime.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running embedded MQTT broker.
///
/// Dropping the handle shuts the broker down as [`shutdown`](Self::shutdown) does, blocking in the
/// same way, and logs a failure instead of returning it.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// The address rumqttd listens on, with the port it really uses when port 0 was requested.
    local_addr: SocketAddr,

    /// Whether TCP_NODELAY is set on rumqttd's listener, and so on every accepted connection.
    tcp_nodelay: bool,

    /// Ends the server thread's runtime when sent to or dropped. `None` once shutdown has begun,
    /// so that shutdown runs once.
    stop_tx: Option<oneshot::Sender<()>>,

    /// Receives the server thread's reports: [`ServerExit::Failed`] when rumqttd's server fails,
    /// and [`ServerExit::Stopped`] as the thread's last report.
    exit_rx: mpsc::Receiver<ServerExit>,

    /// The server thread, joined after it has reported [`ServerExit::Stopped`].
    thread: Option<JoinHandle<()>>,
}

/// Report that the server thread sends when it ends.
#[derive(Debug)]
enum ServerExit {
    /// rumqttd's server or the thread's runtime failed before or while binding the address.
    Failed {
        /// The error as text, because rumqttd 0.20 does not export its error type.
        message: String,
        /// Whether the error was that the address is in use.
        address_in_use: bool,
    },
    /// The runtime, with the listener and every client connection, has been dropped.
    Stopped,
}

impl EmbeddedBroker {
    /// Starts a broker with `config` and returns once it accepts connections.
    ///
    /// Blocks the calling thread until rumqttd listens, usually a few milliseconds and at most
    /// 5 s per attempt. In async code, call it through `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`BrokerError::InvalidConfig`] for a value out of range, [`BrokerError::AddressInUse`]
    /// when another socket listens on the address, [`BrokerError::Bind`] when the address cannot
    /// be bound for another reason, and the other variants when rumqttd or its thread fails to
    /// start.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot create rumqttd's router thread, because rumqttd
    /// 0.20 unwraps that error.
    pub fn start(config: EmbeddedBrokerConfig) -> Result<Self, BrokerError> {
        config.validate()?;
        let mut addr = reserve_address(config.listen)?;

        let router_tx = Router::new(config::ROUTER_ID, config.router_config()).spawn();

        let mut attempt = 1;
        loop {
            let server = Server::new(config.server_settings(addr), router_tx.clone(), V4);

            match Self::start_server(server, addr) {
                Err(BrokerError::AddressInUse { .. })
                    if config.listen.port() == 0 && attempt < FREE_PORT_ATTEMPTS =>
                {
                    warn!(listen = %addr, attempt, "another socket took the free port before rumqttd bound it, trying another port");
                    attempt += 1;
                    addr = reserve_address(config.listen)?;
                }
                result => return result,
            }
        }
    }

    /// Returns the address the broker listens on. When port 0 was requested, the port is the one
    /// the operating system chose.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns whether TCP_NODELAY is set on the broker's listener, and so on every connection it
    /// accepts. `false` means that start-up could not set it and logged a warning. QoS 1 round
    /// trips through the broker then take about 40 ms longer.
    pub fn tcp_nodelay(&self) -> bool {
        self.tcp_nodelay
    }

    /// Stops accepting connections and closes the listening socket and every client connection.
    ///
    /// Returns once the port is closed, at most about 5 s later. rumqttd's router thread keeps
    /// running, as the module documentation explains.
    ///
    /// # Errors
    ///
    /// [`BrokerError::ShutdownTimeout`] when the server thread has not finished in time. The
    /// thread is then left running and the port may stay open.
    pub fn shutdown(mut self) -> Result<(), BrokerError> {
        self.stop()
    }

    /// Spawns the server thread for `server` and waits until rumqttd listens on `addr`.
    fn start_server(server: Server<V4>, addr: SocketAddr) -> Result<Self, BrokerError> {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = mpsc::channel();

        let thread = thread::Builder::new()
            .name(format!("broker-{}", addr.port()))
            .spawn(move || run_server(server, addr, stop_rx, exit_tx))
            .map_err(|source| BrokerError::Spawn { addr, source })?;

        let mut broker = Self {
            local_addr: addr,
            tcp_nodelay: false,
            stop_tx: Some(stop_tx),
            exit_rx,
            thread: Some(thread),
        };

        match broker.wait_until_listening() {
            Ok(tcp_nodelay) => {
                broker.tcp_nodelay = tcp_nodelay;
                info!(listen = %addr, tcp_nodelay, "embedded MQTT broker started");
                Ok(broker)
            }
            Err(error) => {
                if let Err(stop_error) = broker.stop() {
                    warn!(listen = %addr, error = %stop_error, "cleaning up after a failed start failed");
                }
                Err(error)
            }
        }
    }

    /// Waits until rumqttd's listener exists and sets TCP_NODELAY on it. Returns whether that
    /// option could be set.
    // NOTE: a listener on the same address that another part of this process opens between
    // `reserve_address` and rumqttd's bind is taken for rumqttd's. Start-up then reports success
    // although rumqttd failed, which its server thread logs.
    fn wait_until_listening(&self) -> Result<bool, BrokerError> {
        let addr = self.local_addr;
        let deadline = Instant::now() + START_TIMEOUT;

        loop {
            self.check_server_running()?;

            match nodelay::set_on_listener(addr) {
                Ok(nodelay::Search::NoDelaySet) => return Ok(true),
                Ok(nodelay::Search::NoDelayFailed(error)) => {
                    warn!(listen = %addr, %error, "setting TCP_NODELAY on the broker's listener failed; QoS 1 round trips will be about 40 ms slower");
                    return Ok(false);
                }
                Ok(nodelay::Search::NotFound) => {}
                Err(error) => {
                    warn!(listen = %addr, %error, "cannot search for the broker's listener to set TCP_NODELAY; QoS 1 round trips will be about 40 ms slower");
                    return self.wait_grace_period().map(|()| false);
                }
            }

            if Instant::now() >= deadline {
                return Err(BrokerError::StartTimeout {
                    addr,
                    timeout: START_TIMEOUT,
                });
            }
            thread::sleep(START_POLL_INTERVAL);
        }
    }

    /// Gives rumqttd time to report a bind failure where its listener cannot be observed.
    fn wait_grace_period(&self) -> Result<(), BrokerError> {
        thread::sleep(UNSEARCHABLE_GRACE);
        self.check_server_running()
    }

    /// Fails if the server thread has reported its end.
    fn check_server_running(&self) -> Result<(), BrokerError> {
        let addr = self.local_addr;
        match self.exit_rx.try_recv() {
            Err(mpsc::TryRecvError::Empty) => Ok(()),
            Ok(ServerExit::Failed {
                address_in_use: true,
                ..
            }) => Err(BrokerError::AddressInUse { addr }),
            Ok(ServerExit::Failed { message, .. }) => Err(BrokerError::Server { addr, message }),
            Ok(ServerExit::Stopped) | Err(mpsc::TryRecvError::Disconnected) => {
                Err(BrokerError::Server {
                    addr,
                    message: String::from("the server thread ended without an error"),
                })
            }
        }
    }

    /// Asks the server thread to drop its runtime and waits for it. Only the first call does
    /// this, and later calls return `Ok`.
    fn stop(&mut self) -> Result<(), BrokerError> {
        let addr = self.local_addr;
        let Some(stop_tx) = self.stop_tx.take() else {
            return Ok(());
        };

        // The send fails when the thread has already ended, which is what this waits for anyway.
        let _ = stop_tx.send(());

        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.exit_rx.recv_timeout(remaining) {
                // A failure that start-up did not read. The thread still ends with `Stopped`.
                Ok(ServerExit::Failed { .. }) => continue,
                Ok(ServerExit::Stopped) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(BrokerError::ShutdownTimeout {
                        addr,
                        timeout: SHUTDOWN_TIMEOUT,
                    });
                }
            }
        }

        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!(listen = %addr, "the embedded broker's server thread panicked");
        }
        info!(listen = %addr, "embedded MQTT broker stopped");
        Ok(())
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            warn!(listen = %self.local_addr, %error, "shutting down the embedded broker failed");
        }
    }
}

/// Binds `listen` to check that it is free and to resolve port 0, then releases it for rumqttd.
/// Returns the bound address.
fn reserve_address(listen: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let listener = TcpListener::bind(listen).map_err(|source| bind_error(listen, source))?;
    let addr = listener
        .local_addr()
        .map_err(|source| bind_error(listen, source))?;
    drop(listener);
    Ok(addr)
}

fn bind_error(addr: SocketAddr, source: std::io::Error) -> BrokerError {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        BrokerError::AddressInUse { addr }
    } else {
        BrokerError::Bind { addr, source }
    }
}

/// Runs rumqttd's TCP server on a runtime of this thread until `stop_rx` fires or is dropped,
/// then drops the runtime and reports on `exit_tx`.
fn run_server(
    mut server: Server<V4>,
    addr: SocketAddr,
    stop_rx: oneshot::Receiver<()>,
    exit_tx: mpsc::Sender<ServerExit>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = exit_tx.send(ServerExit::Failed {
                message: format!("creating the tokio runtime failed: {error}"),
                address_in_use: false,
            });
            let _ = exit_tx.send(ServerExit::Stopped);
            return;
        }
    };

    let span = tracing::info_span!("embedded_broker", listen = %addr);
    runtime.block_on(
        async {
            tokio::select! {
                // rumqttd's server returns only when binding or listening fails.
                result = server.start(LinkType::Remote) => {
                    let exit = server_failure(result);
                    if let ServerExit::Failed { message, .. } = &exit {
                        warn!(error = %message, "rumqttd's server stopped");
                    }
                    let _ = exit_tx.send(exit);
                }
                _ = stop_rx => {}
            }
        }
        .instrument(span),
    );

    // Dropping the runtime drops rumqttd's connection tasks, which closes their sockets. The
    // listener was dropped with the server future above.
    drop(runtime);
    let _ = exit_tx.send(ServerExit::Stopped);
}

/// Converts the result of rumqttd's `Server::start` into a [`ServerExit::Failed`].
fn server_failure<E: std::error::Error + 'static>(result: Result<(), E>) -> ServerExit {
    match result {
        Ok(()) => ServerExit::Failed {
            message: String::from("rumqttd's server returned without an error"),
            address_in_use: false,
        },
        Err(error) => {
            let address_in_use = error
                .source()
                .and_then(|source| source.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse);
            ServerExit::Failed {
                message: error.to_string(),
                address_in_use,
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::net::TcpStream;

    use super::*;

    #[test]
    fn handle_is_send() {
        fn assert_send<T: Send>() {}

        assert_send::<EmbeddedBroker>();
    }

    /// Simulates another socket taking the address between `reserve_address` and rumqttd's bind.
    /// The socket is bound but not listening, so the listener search cannot mistake it for
    /// rumqttd's and start-up has to notice rumqttd's own failure.
    #[test]
    fn rumqttd_bind_failure_is_address_in_use() {
        let blocker = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("create socket");
        blocker
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind loopback");
        let addr = blocker
            .local_addr()
            .ok()
            .and_then(|addr| addr.as_socket())
            .expect("bound address");
        let config = EmbeddedBrokerConfig::with_listen(addr);
        let router_tx = Router::new(config::ROUTER_ID, config.router_config()).spawn();
        let server = Server::new(config.server_settings(addr), router_tx, V4);

        let result = EmbeddedBroker::start_server(server, addr);

        assert!(
            matches!(result, Err(BrokerError::AddressInUse { addr: reported }) if reported == addr),
            "{result:?}"
        );
    }

    /// Checks the TCP_NODELAY option of rumqttd's end of a connection instead of timing round
    /// trips, so the test does not depend on the machine's speed.
    #[test]
    fn accepted_connection_has_tcp_nodelay() {
        let config = EmbeddedBrokerConfig::with_listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let broker = EmbeddedBroker::start(config).expect("broker starts on 127.0.0.1");
        let client = TcpStream::connect(broker.local_addr()).expect("client connects");
        let client_addr = client.local_addr().expect("client address");

        // rumqttd accepts on its own thread, so the accepted socket may not exist yet.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut nodelay = None;
        while nodelay.is_none() && Instant::now() < deadline {
            nodelay = nodelay::accepted_nodelay(broker.local_addr(), client_addr);
            thread::sleep(Duration::from_millis(1));
        }

        assert_eq!(nodelay, Some(true));
    }
}
