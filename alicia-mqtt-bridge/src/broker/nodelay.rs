//! TCP_NODELAY for rumqttd's connections, set through its listening socket.
//!
//! rumqttd 0.20 binds its listener itself and never sets TCP_NODELAY on the connections it
//! accepts, and its API takes neither a bound listener nor accepted sockets. With Nagle's
//! algorithm on, a small packet waits for the ACK of the previous one, and the client delays that
//! ACK by about 40 ms, so every QoS 1 request/response round trip stalls.
//!
//! On Linux an accepted TCP socket inherits TCP_NODELAY from its listening socket, which this
//! module's tests check. rumqttd runs in this process, so its listener is one of this process's
//! file descriptors. This module lists them, finds the one listening on the broker's address and
//! sets TCP_NODELAY on it, so every connection accepted afterwards has Nagle's algorithm off.
//!
//! NOTE: only Linux is built and tested. Other Unix kernels are expected to pass the option on as
//! well, and there a socket without a peer counts as listening, which may let start-up return
//! microseconds before rumqttd calls `listen`. On other targets the search is not implemented, so
//! start-up waits a short grace period instead and connections keep Nagle's algorithm.
//! [`EmbeddedBroker::tcp_nodelay`](super::EmbeddedBroker::tcp_nodelay) reports whether the
//! option is set on the listener, not whether accepted sockets inherited it.

use std::io;
use std::net::SocketAddr;

/// Result of one search for the broker's listening socket.
#[derive(Debug)]
pub(super) enum Search {
    /// No socket of this process listens on the address yet.
    NotFound,
    /// The listener was found and TCP_NODELAY is set on it.
    NoDelaySet,
    /// The listener was found, but setting TCP_NODELAY on it failed.
    NoDelayFailed(io::Error),
}

/// Searches this process's file descriptors for a TCP socket listening on `addr` and sets
/// TCP_NODELAY on it. Fails when the descriptors cannot be listed.
#[cfg(unix)]
pub(super) fn set_on_listener(addr: SocketAddr) -> io::Result<Search> {
    use std::os::fd::RawFd;

    for entry in std::fs::read_dir(FD_DIR)? {
        let Ok(entry) = entry else {
            continue;
        };
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<RawFd>().ok())
        else {
            continue;
        };

        // SAFETY: `fd` was open when the directory was listed. Another thread may close it, and
        // the number may be reused, before the calls below. They then fail with EBADF or query
        // the new descriptor. The calls only read socket options and addresses, except
        // `set_tcp_nodelay`, which runs only on a socket just confirmed to listen on `addr`. That
        // socket is rumqttd's listener, which stays open until the broker is shut down, and
        // shutdown cannot begin before start-up, which runs this search, has returned.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);

        if !listens_on(&socket, addr) {
            continue;
        }

        return Ok(match socket.set_tcp_nodelay(true) {
            Ok(()) => Search::NoDelaySet,
            Err(error) => Search::NoDelayFailed(error),
        });
    }

    Ok(Search::NotFound)
}

/// Returns an error, because file descriptors cannot be listed on this platform.
#[cfg(not(unix))]
pub(super) fn set_on_listener(_addr: SocketAddr) -> io::Result<Search> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "listing this process's sockets is implemented for Unix only",
    ))
}

/// The directory that lists this process's open file descriptors.
#[cfg(any(target_os = "linux", target_os = "android"))]
const FD_DIR: &str = "/proc/self/fd";

/// The directory that lists this process's open file descriptors.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
const FD_DIR: &str = "/dev/fd";

/// Returns whether `socket` is a TCP socket in the listening state bound to exactly `addr`.
#[cfg(unix)]
fn listens_on(socket: &socket2::SockRef<'_>, addr: SocketAddr) -> bool {
    let Ok(local) = socket.local_addr() else {
        return false;
    };
    if local.as_socket() != Some(addr) {
        return false;
    }

    if !matches!(socket.r#type(), Ok(socket2::Type::STREAM)) {
        return false;
    }

    is_listening(socket)
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn is_listening(socket: &socket2::SockRef<'_>) -> bool {
    socket.is_listener().unwrap_or(false)
}

/// Returns whether `socket` has no peer, as a substitute for SO_ACCEPTCONN, which socket2 does not
/// offer on these platforms. Accepted connections on the same address have a peer, so they never
/// match, but a socket that is bound and not yet listening does.
#[cfg(all(
    unix,
    not(any(target_os = "linux", target_os = "android", target_os = "freebsd"))
))]
fn is_listening(socket: &socket2::SockRef<'_>) -> bool {
    socket.peer_addr().is_err()
}

/// Returns TCP_NODELAY of the socket of this process that listens on `server` and is connected to
/// `client`, that is the accepted end of the client's connection, or `None` if there is none.
#[cfg(all(test, unix))]
pub(super) fn accepted_nodelay(server: SocketAddr, client: SocketAddr) -> Option<bool> {
    for entry in std::fs::read_dir(FD_DIR).ok()? {
        let Some(fd) = entry
            .ok()
            .and_then(|entry| entry.file_name().to_str()?.parse().ok())
        else {
            continue;
        };

        // SAFETY: as in `set_on_listener`. This loop only reads socket options and addresses.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let local = socket.local_addr().ok().and_then(|addr| addr.as_socket());
        let peer = socket.peer_addr().ok().and_then(|addr| addr.as_socket());
        if local == Some(server) && peer == Some(client) {
            return socket.tcp_nodelay().ok();
        }
    }
    None
}

#[cfg(all(test, unix))]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn listener_not_found_before_bind() {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = probe.local_addr().expect("local address");
        drop(probe);

        let search = set_on_listener(addr).expect("file descriptors listed");

        assert!(matches!(search, Search::NotFound), "{search:?}");
    }

    #[test]
    fn accepted_socket_inherits_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");

        let search = set_on_listener(addr).expect("file descriptors listed");
        let client = TcpStream::connect(addr).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");

        assert!(matches!(search, Search::NoDelaySet), "{search:?}");
        assert!(accepted.nodelay().expect("read TCP_NODELAY"));
        let client_addr = client.local_addr().expect("client address");
        assert_eq!(accepted_nodelay(addr, client_addr), Some(true));
    }

    #[test]
    fn accepted_socket_without_search_keeps_nagle() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");

        let _client = TcpStream::connect(addr).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");

        assert!(!accepted.nodelay().expect("read TCP_NODELAY"));
    }
}
