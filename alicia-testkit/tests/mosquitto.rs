//! The private test broker really runs, serves MQTT and stops.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use alicia_testkit::{ClientAuth, Mosquitto, TestPki, find_mosquitto};

/// Runs a Mosquitto command-line client next to the broker binary or on `PATH`.
fn client(name: &str) -> Command {
    let beside_broker = find_mosquitto()
        .and_then(|broker| broker.parent().map(|dir| dir.join(name)))
        .filter(|path| path.is_file());
    let in_usr_bin = std::path::Path::new("/usr/bin").join(name);
    match beside_broker {
        Some(path) => Command::new(path),
        None if in_usr_bin.is_file() => Command::new(in_usr_bin),
        None => Command::new(name),
    }
}

#[test]
fn broker_delivers_retained_message() {
    let broker = Mosquitto::start().expect("mosquitto starts");
    let port = broker.port().to_string();

    let publish = client("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-r"])
        .args(["-t", "alicia/test/retained", "-m", "hello"])
        .output()
        .expect("mosquitto_pub runs");
    assert!(publish.status.success(), "{publish:?}\n{}", broker.log());

    let subscribe = client("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1"])
        .args(["-t", "alicia/test/#", "-C", "1", "-W", "10", "-v"])
        .output()
        .expect("mosquitto_sub runs");
    assert!(
        subscribe.status.success(),
        "{subscribe:?}\n{}",
        broker.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&subscribe.stdout).trim(),
        "alicia/test/retained hello"
    );
}

#[test]
fn brokers_get_separate_ports() {
    let first = Mosquitto::start().expect("first mosquitto starts");
    let second = Mosquitto::start().expect("second mosquitto starts");
    assert_ne!(first.port(), second.port());
}

#[test]
fn broker_config_binds_loopback_only() {
    let broker = Mosquitto::start().expect("mosquitto starts");
    let config = std::fs::read_to_string(broker.config_path()).expect("config readable");
    let listeners: Vec<&str> = config
        .lines()
        .filter(|line| line.trim_start().starts_with("listener"))
        .collect();
    assert_eq!(listeners, [format!("listener {} 127.0.0.1", broker.port())]);
    assert!(config.contains("set_tcp_nodelay true"));
}

#[test]
fn broker_stops_when_dropped() {
    let broker = Mosquitto::start().expect("mosquitto starts");
    let addr = broker.addr();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());

    drop(broker);

    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

/// Publishes one message with `mosquitto_pub` over TLS, trusting `ca_file`, and returns its
/// output. With `client_cert` set it also presents that PKI's client certificate and key.
fn publish_tls(
    broker: &Mosquitto,
    ca_file: &std::path::Path,
    client_cert: Option<&TestPki>,
) -> std::process::Output {
    let mut command = client("mosquitto_pub");
    command
        .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()])
        .arg("--cafile")
        .arg(ca_file)
        .args(["-t", "alicia/test/tls", "-m", "hello", "-q", "1"]);
    if let Some(pki) = client_cert {
        command
            .arg("--cert")
            .arg(pki.client_cert_file())
            .arg("--key")
            .arg(pki.client_key_file());
    }
    command.output().expect("mosquitto_pub runs")
}

#[test]
fn tls_broker_serves_test_certificate() {
    let pki = TestPki::generate().expect("test certificates generate");
    let broker = Mosquitto::start_tls(&pki, ClientAuth::None).expect("TLS mosquitto starts");
    assert!(
        broker.url().starts_with("mqtts://127.0.0.1:"),
        "{}",
        broker.url()
    );

    let trusted = publish_tls(&broker, &pki.ca_file(), None);
    assert!(trusted.status.success(), "{trusted:?}\n{}", broker.log());

    let other = TestPki::generate().expect("second test certificates generate");
    let untrusted = publish_tls(&broker, &other.ca_file(), None);
    assert!(!untrusted.status.success(), "a foreign CA was accepted");
}

#[test]
fn tls_broker_requires_client_certificate() {
    let pki = TestPki::generate().expect("test certificates generate");
    let broker = Mosquitto::start_tls(&pki, ClientAuth::Required).expect("TLS mosquitto starts");
    let config = std::fs::read_to_string(broker.config_path()).expect("config readable");
    assert!(config.contains("require_certificate true"), "{config}");

    let without = publish_tls(&broker, &pki.ca_file(), None);
    assert!(
        !without.status.success(),
        "a client without a certificate was accepted"
    );

    let with = publish_tls(&broker, &pki.ca_file(), Some(&pki));
    assert!(with.status.success(), "{with:?}\n{}", broker.log());
}
