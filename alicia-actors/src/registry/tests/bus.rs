//! The registry on the local bus: plain JSON requests, heartbeats and retained status.

use std::time::Duration;

use alicia_core::bus::{Bus, Delivery, LocalBus, LocalBusConfig, PublishOptions};
use alicia_core::envelope::{Envelope, SourceId};
use alicia_core::{ManualClock, TopicFilter, TopicName};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::support::{START, id, quiet_config};
use crate::registry::{
    AvailabilityState, Registration, RegistryArgs, RegistryClient, RegistryRoutes, RoutesArgs,
    spawn_event_publisher,
};

/// Forwards every delivery it receives to the test.
struct Probe;

impl Actor for Probe {
    type Msg = Delivery<Value>;
    type State = mpsc::UnboundedSender<Delivery<Value>>;
    type Arguments = mpsc::UnboundedSender<Delivery<Value>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        sender: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(sender)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        delivery: Self::Msg,
        sender: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = sender.send(delivery);
        Ok(())
    }
}

/// Subscribes a fresh probe to `topic` and returns what it has received after a short wait.
async fn fresh_subscriber(bus: &Bus, topic: &str) -> Vec<Value> {
    let (sender, mut received) = mpsc::unbounded_channel();
    let (probe, _handle) = Actor::spawn(None, Probe, sender).await.unwrap();
    let filter = TopicFilter::new(topic).unwrap();
    bus.subscribe(filter, &probe, |delivery| delivery)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut bodies = Vec::new();
    while let Ok(delivery) = received.try_recv() {
        bodies.push(delivery.envelope.into_body());
    }
    probe.stop(None);
    bodies
}

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

#[tokio::test]
async fn plain_json_device_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let bus_config =
        LocalBusConfig::new(SourceId::new("node-1").unwrap()).with_clock(clock.shared());
    let (bus, _bus_handle) = LocalBus::spawn(bus_config).await.unwrap();

    let store = alicia_core::Store::open(dir.path(), clock.shared())
        .unwrap()
        .store;
    let (events, receiver) = mpsc::channel(64);
    let args = RegistryArgs {
        store,
        clock: clock.shared(),
        config: quiet_config(),
        events: Some(events),
    };
    let (registry, _handle) = RegistryClient::spawn(args).await.unwrap();
    spawn_event_publisher(bus.clone(), SourceId::new("registry").unwrap(), receiver);
    let routes_args = RoutesArgs {
        bus: bus.clone(),
        registry: registry.clone(),
        max_in_flight: 16,
    };
    let (_routes, _routes_handle) = Actor::spawn(None, RegistryRoutes, routes_args)
        .await
        .unwrap();

    // What a script would send with mosquitto_pub: a JSON envelope around a JSON spec.
    let spec: Value = json!({
        "id": "lamp-1",
        "type": "light",
        "name": "Kitchen lamp",
        "capabilities": [{"name": "on_off", "properties": [{"name": "on", "type": "boolean", "writable": true}]}]
    });
    let request = Envelope::new(SourceId::new("lamp-1").unwrap(), spec, &clock);
    let reply: Envelope<Registration> = bus
        .request(
            &topic("alicia/registry/request/register"),
            request,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(reply.body().record.id.as_str(), "lamp-1");

    let heartbeat = Envelope::new(SourceId::new("lamp-1").unwrap(), json!({}), &clock);
    bus.publish(
        &topic("alicia/devices/lamp-1/heartbeat"),
        &heartbeat,
        PublishOptions::telemetry(),
    )
    .await
    .unwrap();
    // Bounded wait for the heartbeat to pass through the routes actor.
    let mut state = AvailabilityState::Unknown;
    for _ in 0..100 {
        state = registry
            .get(&id("lamp-1"))
            .await
            .unwrap()
            .availability
            .state;
        if state == AvailabilityState::Online {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state, AvailabilityState::Online);

    let retained = fresh_subscriber(&bus, "alicia/devices/status/lamp-1").await;
    assert_eq!(retained.len(), 1, "{retained:?}");
    assert_eq!(retained[0]["state"], "online");

    let deregister = Envelope::new(
        SourceId::new("admin").unwrap(),
        json!({"device_id": "lamp-1"}),
        &clock,
    );
    let _: Envelope<Value> = bus
        .request(
            &topic("alicia/registry/request/deregister"),
            deregister,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let after = fresh_subscriber(&bus, "alicia/devices/status/lamp-1").await;
    assert!(
        after.is_empty(),
        "the retained status is cleared: {after:?}"
    );
}

#[tokio::test]
async fn invalid_request_gets_error_reply() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let bus_config =
        LocalBusConfig::new(SourceId::new("node-1").unwrap()).with_clock(clock.shared());
    let (bus, _bus_handle) = LocalBus::spawn(bus_config).await.unwrap();
    let store = alicia_core::Store::open(dir.path(), clock.shared())
        .unwrap()
        .store;
    let args = RegistryArgs {
        store,
        clock: clock.shared(),
        config: quiet_config(),
        events: None,
    };
    let (registry, _handle) = RegistryClient::spawn(args).await.unwrap();
    let routes_args = RoutesArgs {
        bus: bus.clone(),
        registry,
        max_in_flight: 16,
    };
    let (_routes, _routes_handle) = Actor::spawn(None, RegistryRoutes, routes_args)
        .await
        .unwrap();

    let spec = json!({"id": "lamp-1", "type": "Light", "name": "Lamp"});
    let request = Envelope::new(SourceId::new("lamp-1").unwrap(), spec, &clock);
    let error = bus
        .request::<Value, Value>(
            &topic("alicia/registry/request/register"),
            request,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err()
        .to_string();

    assert!(error.contains("invalid"), "{error}");
    assert!(error.contains("type"), "{error}");
}
