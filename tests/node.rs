//! A whole node on the in-process bus: services under the root supervisor, requests over the
//! bus, restarts, and a restart of the node on the same data directory.

use std::path::Path;
use std::time::Duration;

use alicia::actors::registry::{AvailabilityState, Registration};
use alicia::core::bus::Bus;
use alicia::core::supervisor::ChildState;
use alicia::core::{Envelope, SourceId, TopicName};
use alicia::{BrokerChoice, Node, NodeConfig};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn config(data_dir: &Path) -> NodeConfig {
    NodeConfig {
        node_id: "test-node".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        broker: BrokerChoice::InProcess,
        tls: None,
    }
}

fn device_id() -> alicia::core::DeviceId {
    "lamp-1".parse().unwrap()
}

/// Registers `lamp-1` the way a script on MQTT would: a JSON request on the registry's topic.
async fn register_over_bus(
    bus: &Bus,
) -> Result<Envelope<Registration>, alicia::core::bus::BusError> {
    let spec = json!({"id": "lamp-1", "type": "light", "name": "Kitchen lamp"});
    let request = Envelope::new(SourceId::new("script").unwrap(), spec, bus.clock().as_ref());
    let topic = TopicName::new("alicia/registry/request/register").unwrap();
    bus.request(&topic, request, WAIT).await
}

#[tokio::test]
async fn node_registers_device_over_bus() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config(dir.path())).start().await.unwrap();

    let reply = register_over_bus(node.bus()).await.unwrap();

    assert_eq!(reply.body().record.id, device_id());
    let view = node.registry().unwrap().get(&device_id()).await.unwrap();
    assert_eq!(view.record.name, "Kitchen lamp");
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn registry_restart_keeps_registration() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config(dir.path())).start().await.unwrap();
    register_over_bus(node.bus()).await.unwrap();
    let registry = node.registry().unwrap().clone();
    let first = registry.actor().expect("the registry runs");

    first.kill_and_wait(Some(WAIT)).await.unwrap();
    let view = registry.get(&device_id()).await.unwrap();

    assert_eq!(view.record.id, device_id());
    let second = registry.actor().expect("a new incarnation runs");
    assert_ne!(second.get_id(), first.get_id());
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn bus_restart_resubscribes_services() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config(dir.path())).start().await.unwrap();
    let bus = node.bus().clone();
    let first = bus.actor().expect("the bus runs");

    first.kill_and_wait(Some(WAIT)).await.unwrap();
    // Rest-for-one restarts every service after the bus; wait (bounded) until the registry
    // routes run again, so the request finds their new subscription.
    for _ in 0..250 {
        let snapshot = node.supervisor().snapshot().await.unwrap();
        let routes = snapshot.child("registry-routes").unwrap();
        if routes.restart_count >= 1 && matches!(routes.state, ChildState::Running { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = register_over_bus(&bus).await;

    assert_eq!(reply.unwrap().body().record.id, device_id());
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn node_restart_restores_devices_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config(dir.path())).start().await.unwrap();
    register_over_bus(node.bus()).await.unwrap();
    node.registry()
        .unwrap()
        .heartbeat(&device_id())
        .await
        .unwrap();
    node.shutdown().await.unwrap();

    let node = Node::builder(config(dir.path())).start().await.unwrap();
    let view = node.registry().unwrap().get(&device_id()).await.unwrap();

    assert_eq!(view.record.name, "Kitchen lamp");
    assert_eq!(view.availability.state, AvailabilityState::Unknown);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn supervision_tree_lists_services() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config(dir.path())).start().await.unwrap();

    let snapshot = node.supervisor().snapshot().await.unwrap();

    for child in ["bus", "registry", "registry-routes", "health"] {
        assert!(
            snapshot.child(child).is_some(),
            "{child} missing from {snapshot:?}"
        );
    }
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn misspelled_field_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(config(dir.path())).start().await.unwrap();
    let spec = json!({"id": "lamp-1", "type": "light", "name": "Lamp", "locaton": "kitchen"});
    let request = Envelope::new(
        SourceId::new("script").unwrap(),
        spec,
        node.bus().clock().as_ref(),
    );
    let topic = TopicName::new("alicia/registry/request/register").unwrap();

    let reply = node
        .bus()
        .request::<_, Registration>(&topic, request, WAIT)
        .await;

    match reply {
        Err(alicia::core::bus::BusError::Remote { code, message, .. }) => {
            assert_eq!(code, "invalid_request");
            assert!(message.contains("locaton"), "{message}");
        }
        other => panic!("expected an error reply, got {other:?}"),
    }
    node.shutdown().await.unwrap();
}
