//! Tests of the bus protocol on the local bus, with real actors.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::*;
use crate::clock::{ManualClock, Timestamp};
use crate::codec::{Codec, DecodeLimits};
use crate::envelope::{AuthToken, Envelope, SourceId};
use crate::manifest;
use crate::topic::{TopicFilter, TopicName};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reading {
    device: String,
    level: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Double {
    value: i64,
}

/// How long a test waits for a delivery that must come. Tests with paused time never wait it.
const WAIT: Duration = Duration::from_secs(5);

fn name(topic: &str) -> TopicName {
    TopicName::new(topic).expect("test topic names are valid")
}

fn filter(text: &str) -> TopicFilter {
    TopicFilter::new(text).expect("test filters are valid")
}

fn clock() -> ManualClock {
    ManualClock::new(Timestamp(1_700_000_000_000))
}

fn envelope<T>(body: T) -> Envelope<T> {
    let source = SourceId::new("test-sender").expect("a valid source id");
    Envelope::new(source, body, &clock())
}

fn reading(level: i32) -> Envelope<Reading> {
    envelope(Reading {
        device: "lamp-1".to_owned(),
        level,
    })
}

fn config(client: &str) -> LocalBusConfig {
    let client = SourceId::new(client).expect("a valid client id");
    LocalBusConfig::new(client).with_clock(clock().shared())
}

async fn local_bus(client: &str) -> Bus {
    let (bus, _handle) = LocalBus::spawn(config(client))
        .await
        .expect("the local bus starts");
    bus
}

/// An actor that forwards every delivery it receives to the test.
struct Probe<T>(PhantomData<fn() -> T>);

impl<T: Send + 'static> Actor for Probe<T> {
    type Msg = Delivery<T>;
    type State = mpsc::UnboundedSender<Delivery<T>>;
    type Arguments = mpsc::UnboundedSender<Delivery<T>>;

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
        sender
            .send(delivery)
            .map_err(|_| "the test stopped receiving deliveries")?;
        Ok(())
    }
}

async fn probe_of<T: Send + 'static>()
-> (ActorRef<Delivery<T>>, mpsc::UnboundedReceiver<Delivery<T>>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let (actor, _handle) = Actor::spawn(None, Probe(PhantomData), sender)
        .await
        .expect("the probe starts");
    (actor, receiver)
}

async fn probe() -> (
    ActorRef<Delivery<Reading>>,
    mpsc::UnboundedReceiver<Delivery<Reading>>,
) {
    probe_of::<Reading>().await
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<Delivery<T>>) -> Delivery<T> {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .expect("a delivery arrives in time")
        .expect("the probe is running")
}

/// Subscribes `actor` to a sentinel topic of its own, publishes there and returns the next
/// delivery. A mailbox is first in, first out, so anything cast to `actor` before the sentinel
/// arrives first.
async fn next_after_sentinel(
    bus: &Bus,
    actor: &ActorRef<Delivery<Reading>>,
    receiver: &mut mpsc::UnboundedReceiver<Delivery<Reading>>,
) -> Delivery<Reading> {
    let sentinel = format!("test/sentinel/{}", actor.get_id().pid());
    bus.subscribe(filter(&sentinel), actor, |delivery: Delivery<Reading>| {
        delivery
    })
    .await
    .expect("subscribe the sentinel");
    bus.publish(&name(&sentinel), &reading(-1), PublishOptions::default())
        .await
        .expect("publish the sentinel");
    next(receiver).await
}

fn is_sentinel(delivery: &Delivery<Reading>) -> bool {
    delivery.topic.as_str().starts_with("test/sentinel/")
}

/// An actor that replies to `Double` requests with twice the value, or with an error for negative
/// values.
struct Doubler;

impl Actor for Doubler {
    type Msg = Delivery<Double>;
    type State = Bus;
    type Arguments = Bus;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        bus: Bus,
    ) -> Result<Bus, ActorProcessingErr> {
        Ok(bus)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        request: Self::Msg,
        bus: &mut Bus,
    ) -> Result<(), ActorProcessingErr> {
        let value = request.envelope.body().value;
        let result = if value < 0 {
            Err(ErrorBody::new("negative", "value must not be negative"))
        } else {
            Ok(value * 2)
        };
        bus.respond(&request, result).await?;
        Ok(())
    }
}

async fn serve_doubler(bus: &Bus, topic: &str) {
    let (actor, _handle) = Actor::spawn(None, Doubler, bus.clone())
        .await
        .expect("the doubler starts");
    bus.subscribe(filter(topic), &actor, |request: Delivery<Double>| request)
        .await
        .expect("subscribe the doubler");
}

/// Rejects every message without an auth token, and every message with the token `bad`.
#[derive(Debug)]
struct RequireToken;

impl Authorizer for RequireToken {
    fn authorize(&self, request: &AuthorizationRequest<'_>) -> Authorization {
        match request.token {
            Some(token) if token.expose_secret() != "bad" => Authorization::Allow,
            Some(_) => Authorization::Deny {
                reason: "the token is revoked".to_owned(),
            },
            None => Authorization::Deny {
                reason: "no auth token: attach one".to_owned(),
            },
        }
    }
}

#[tokio::test]
async fn route_delivers_by_filter() {
    let bus = local_bus("node-1").await;
    let (actor, mut receiver) = probe().await;
    for text in ["alicia/devices/+/heartbeat", "alicia/system/#"] {
        bus.subscribe(filter(text), &actor, |delivery: Delivery<Reading>| delivery)
            .await
            .expect("subscribe");
    }

    let published = [
        ("alicia/devices/lamp-1/heartbeat", true),
        ("alicia/devices/lamp-1/state", false),
        ("alicia/devices/lamp-1/heartbeat/extra", false),
        ("alicia/system", true),
        ("alicia/system/health/registry", true),
        ("alicia/systems", false),
        ("other/alicia/system", false),
    ];
    for (level, (topic, _)) in (0..).zip(published) {
        bus.publish(&name(topic), &reading(level), PublishOptions::default())
            .await
            .expect("publish");
    }

    for (level, (topic, matches)) in (0..).zip(published) {
        if !matches {
            continue;
        }
        let delivery = next(&mut receiver).await;
        assert_eq!(delivery.topic.as_str(), topic);
        assert_eq!(delivery.envelope.body().level, level, "{topic}");
        assert!(!delivery.retained, "{topic}");
    }
    let last = next_after_sentinel(&bus, &actor, &mut receiver).await;
    assert!(is_sentinel(&last), "unexpected delivery on {}", last.topic);
}

#[tokio::test]
async fn route_counts_deliveries() {
    let bus = local_bus("node-1").await;
    let (actor, mut receiver) = probe().await;
    let route = bus
        .subscribe(filter("a/+"), &actor, |delivery: Delivery<Reading>| {
            delivery
        })
        .await
        .expect("subscribe");

    for level in 0..3 {
        bus.publish(&name("a/b"), &reading(level), PublishOptions::telemetry())
            .await
            .expect("publish");
    }
    next(&mut receiver).await;

    let stats = bus.route_stats(route).await.expect("stats");
    assert_eq!(stats.delivered, 3);
    assert_eq!(stats.decode_errors, 0);
    assert_eq!(stats.rejected, 0);
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let bus = local_bus("node-1").await;
    let (actor, mut receiver) = probe().await;
    let route = bus
        .subscribe(filter("a/#"), &actor, |delivery: Delivery<Reading>| {
            delivery
        })
        .await
        .expect("subscribe");

    bus.unsubscribe(route).await.expect("unsubscribe");
    bus.publish(&name("a/b"), &reading(1), PublishOptions::default())
        .await
        .expect("publish");

    let first = next_after_sentinel(&bus, &actor, &mut receiver).await;
    assert!(
        is_sentinel(&first),
        "unexpected delivery on {}",
        first.topic
    );
    let stats = bus.route_stats(route).await;
    assert_eq!(stats, Err(BusError::UnknownRoute { route }));
}

#[tokio::test]
async fn unsubscribe_twice_fails() {
    let bus = local_bus("node-1").await;
    let (actor, _receiver) = probe().await;
    let route = bus
        .subscribe(filter("a"), &actor, |delivery: Delivery<Reading>| delivery)
        .await
        .expect("subscribe");

    bus.unsubscribe(route).await.expect("first unsubscribe");
    let error = bus.unsubscribe(route).await.unwrap_err();
    assert_eq!(error, BusError::UnknownRoute { route });
}

#[tokio::test]
async fn retained_reaches_late_subscriber() {
    let bus = local_bus("node-1").await;
    let retained = PublishOptions::state_change().with_retained(true);
    bus.publish(&name("status/lamp-1"), &reading(1), retained)
        .await
        .expect("publish first");
    bus.publish(&name("status/lamp-1"), &reading(2), retained)
        .await
        .expect("publish replacement");
    bus.publish(
        &name("status/lamp-2"),
        &reading(3),
        PublishOptions::default(),
    )
    .await
    .expect("publish not retained");

    let (actor, mut receiver) = probe().await;
    bus.subscribe(filter("status/+"), &actor, |delivery: Delivery<Reading>| {
        delivery
    })
    .await
    .expect("subscribe");

    let delivery = next(&mut receiver).await;
    assert_eq!(delivery.topic.as_str(), "status/lamp-1");
    assert_eq!(delivery.envelope.body().level, 2);
    assert!(delivery.retained);
    let last = next_after_sentinel(&bus, &actor, &mut receiver).await;
    assert!(is_sentinel(&last), "unexpected delivery on {}", last.topic);
}

#[tokio::test]
async fn empty_retained_payload_clears() {
    let bus = local_bus("node-1").await;
    let retained = PublishOptions::state_change().with_retained(true);
    bus.publish(&name("status/lamp-1"), &reading(1), retained)
        .await
        .expect("publish");

    let (early, mut early_receiver) = probe().await;
    let early_route = bus
        .subscribe(filter("status/+"), &early, |delivery: Delivery<Reading>| {
            delivery
        })
        .await
        .expect("subscribe early");
    assert!(next(&mut early_receiver).await.retained);

    bus.clear_retained(&name("status/lamp-1"))
        .await
        .expect("clear");

    let (late, mut late_receiver) = probe().await;
    bus.subscribe(filter("status/+"), &late, |delivery: Delivery<Reading>| {
        delivery
    })
    .await
    .expect("subscribe late");
    let first = next_after_sentinel(&bus, &late, &mut late_receiver).await;
    assert!(
        is_sentinel(&first),
        "unexpected delivery on {}",
        first.topic
    );

    let early_stats = bus.route_stats(early_route).await.expect("stats");
    assert_eq!(
        early_stats.decode_errors, 0,
        "the empty payload is no error"
    );
}

#[tokio::test]
async fn request_returns_ok_reply() {
    let bus = local_bus("client-1").await;
    serve_doubler(&bus, "alicia/math/request/double").await;

    let request = envelope(Double { value: 21 });
    let request_id = request.message_id();
    let reply: Envelope<i64> = bus
        .request(&name("alicia/math/request/double"), request, WAIT)
        .await
        .expect("an ok reply");

    assert_eq!(*reply.body(), 42);
    assert_eq!(reply.correlation_id(), Some(request_id));
    assert_eq!(reply.source().as_str(), "client-1");
}

#[tokio::test]
async fn request_returns_error_reply() {
    let bus = local_bus("client-1").await;
    serve_doubler(&bus, "alicia/math/request/double").await;

    let error = bus
        .request::<_, i64>(
            &name("alicia/math/request/double"),
            envelope(Double { value: -1 }),
            WAIT,
        )
        .await
        .unwrap_err();

    assert_eq!(
        error,
        BusError::Remote {
            topic: name("alicia/math/request/double"),
            code: "negative".to_owned(),
            message: "value must not be negative".to_owned(),
        }
    );
}

#[tokio::test]
async fn request_reply_topic_is_own_namespace() {
    let bus = local_bus("client-1").await;
    let (actor, mut receiver) = probe_of::<Reply<i64>>().await;
    bus.subscribe(
        filter("alicia/reply/#"),
        &actor,
        |delivery: Delivery<Reply<i64>>| delivery,
    )
    .await
    .expect("subscribe to replies");
    serve_doubler(&bus, "alicia/math/request/double").await;

    let request = envelope(Double { value: 1 });
    let expected = format!("alicia/reply/client-1/{}", request.message_id());
    bus.request::<_, i64>(&name("alicia/math/request/double"), request, WAIT)
        .await
        .expect("an ok reply");

    let reply = next(&mut receiver).await;
    assert_eq!(reply.topic.as_str(), expected);
    assert_eq!(*reply.envelope.body(), Reply::Ok { value: 2 });
}

#[tokio::test(start_paused = true)]
async fn request_times_out_without_responder() {
    let bus = local_bus("client-1").await;
    let timeout = Duration::from_secs(3);

    let request = envelope(Double { value: 1 });
    let reply_topic = format!("alicia/reply/client-1/{}", request.message_id());
    let started = tokio::time::Instant::now();
    let error = bus
        .request::<_, i64>(&name("alicia/nobody/request/x"), request, timeout)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        BusError::Timeout {
            topic: name("alicia/nobody/request/x"),
            reply_topic: name(&reply_topic),
            timeout,
        }
    );
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    let message = error.to_string();
    assert!(message.contains("alicia/nobody/request/x"), "{message}");
    assert!(message.contains("3s"), "{message}");
}

#[tokio::test]
async fn request_rejects_foreign_reply_topic() {
    let bus = local_bus("client-1").await;
    let message = OutboundMessage {
        topic: name("alicia/math/request/double"),
        payload: Arc::from(&b"{}"[..]),
        options: PublishOptions::request(),
    };

    let outcome = bus
        .actor()
        .expect("the bus actor is running")
        .call(
            |reply| BusCommand::Request {
                message,
                reply_topic: name("alicia/reply/client-2/abc"),
                reply,
            },
            Some(WAIT),
        )
        .await
        .expect("the bus is running");

    let CallResult::Success(Err(error)) = outcome else {
        panic!("expected an error reply, got {outcome:?}");
    };
    assert!(
        matches!(error, BusError::ForeignReplyTopic { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn malformed_payload_never_reaches_actor() {
    let bus = local_bus("node-1").await;
    let (actor, mut receiver) = probe().await;
    let route = bus
        .subscribe(
            filter("alicia/devices/+/state"),
            &actor,
            |delivery: Delivery<Reading>| delivery,
        )
        .await
        .expect("subscribe");
    let topic = name("alicia/devices/lamp-1/state");

    let wrong_type = Codec::Json
        .encode(&envelope(Double { value: 7 }))
        .expect("encode");
    let bad_payloads: [&[u8]; 4] = [
        b"{not json",
        b"\xff\xfe",
        br#"{"v":99,"id":"00000000000000000000000000000001"}"#,
        &wrong_type,
    ];
    for payload in bad_payloads {
        bus.publish_raw(&topic, payload.to_vec(), PublishOptions::default())
            .await
            .expect("publish bad payload");
    }
    bus.publish(&topic, &reading(5), PublishOptions::default())
        .await
        .expect("publish valid");

    let delivery = next(&mut receiver).await;
    assert_eq!(delivery.envelope.body().level, 5);
    let stats = bus.route_stats(route).await.expect("stats");
    assert_eq!(stats.decode_errors, 4);
    assert_eq!(stats.delivered, 1);
}

#[tokio::test]
async fn oversized_payload_is_a_decode_error() {
    let limits = DecodeLimits::default().with_max_size(512);
    let (bus, _handle) = LocalBus::spawn(config("node-1").with_limits(limits))
        .await
        .expect("the local bus starts");
    let (actor, mut receiver) = probe().await;
    let route = bus
        .subscribe(filter("a"), &actor, |delivery: Delivery<Reading>| delivery)
        .await
        .expect("subscribe");

    let oversized = envelope(Reading {
        device: "x".repeat(600),
        level: 1,
    });
    bus.publish(&name("a"), &oversized, PublishOptions::default())
        .await
        .expect("publish");

    let first = next_after_sentinel(&bus, &actor, &mut receiver).await;
    assert!(
        is_sentinel(&first),
        "unexpected delivery on {}",
        first.topic
    );
    let stats = bus.route_stats(route).await.expect("stats");
    assert_eq!(stats.decode_errors, 1);
}

#[tokio::test]
async fn malformed_request_gets_error_reply() {
    let bus = local_bus("client-1").await;
    let (actor, _receiver) = probe().await;
    let route = bus
        .subscribe(
            filter("alicia/lamp/request/set"),
            &actor,
            |delivery: Delivery<Reading>| delivery,
        )
        .await
        .expect("subscribe");

    let error = bus
        .request::<_, i64>(
            &name("alicia/lamp/request/set"),
            envelope(Double { value: 1 }),
            WAIT,
        )
        .await
        .unwrap_err();

    let BusError::Remote { code, message, .. } = error else {
        panic!("expected an error reply, got {error:?}");
    };
    assert_eq!(code, error_code::INVALID_REQUEST);
    assert!(message.contains("body"), "{message}");
    let stats = bus.route_stats(route).await.expect("stats");
    assert_eq!(stats.decode_errors, 1);
}

#[tokio::test]
async fn denying_authorizer_drops_and_replies() {
    let config = config("client-1").with_authorizer(Arc::new(RequireToken));
    let (bus, _handle) = LocalBus::spawn(config).await.expect("the local bus starts");
    let (actor, mut receiver) = probe().await;
    let route = bus
        .subscribe(
            filter("alicia/lamp/request/set"),
            &actor,
            |delivery: Delivery<Reading>| delivery,
        )
        .await
        .expect("subscribe");
    let topic = name("alicia/lamp/request/set");

    bus.publish(&topic, &reading(1), PublishOptions::default())
        .await
        .expect("publish without token");
    let error = bus
        .request::<_, i64>(&topic, reading(2), WAIT)
        .await
        .unwrap_err();
    let token = AuthToken::new("good").expect("a valid token");
    bus.publish(
        &topic,
        &reading(3).with_auth_token(token),
        PublishOptions::default(),
    )
    .await
    .expect("publish with token");

    let BusError::Remote { code, message, .. } = error else {
        panic!("expected an error reply, got {error:?}");
    };
    assert_eq!(code, error_code::FORBIDDEN);
    assert!(message.contains("no auth token"), "{message}");
    let delivery = next(&mut receiver).await;
    assert_eq!(delivery.envelope.body().level, 3);
    let stats = bus.route_stats(route).await.expect("stats");
    assert_eq!(stats.rejected, 2);
    assert_eq!(stats.delivered, 1);
}

#[tokio::test]
async fn two_buses_stay_separate() {
    let first_bus = local_bus("node-1").await;
    let second_bus = local_bus("node-2").await;
    let (first, mut first_receiver) = probe().await;
    let (second, mut second_receiver) = probe().await;
    for (bus, actor) in [(&first_bus, &first), (&second_bus, &second)] {
        bus.subscribe(
            filter("shared/topic"),
            actor,
            |delivery: Delivery<Reading>| delivery,
        )
        .await
        .expect("subscribe");
    }

    first_bus
        .publish(
            &name("shared/topic"),
            &reading(1),
            PublishOptions::default(),
        )
        .await
        .expect("publish on the first bus");

    assert_eq!(next(&mut first_receiver).await.envelope.body().level, 1);
    let other = next_after_sentinel(&second_bus, &second, &mut second_receiver).await;
    assert!(is_sentinel(&other), "second bus got {}", other.topic);
}

#[tokio::test]
async fn stopped_actor_route_is_removed() {
    let bus = local_bus("node-1").await;
    let (actor, _receiver) = probe().await;
    let route = bus
        .subscribe(filter("a"), &actor, |delivery: Delivery<Reading>| delivery)
        .await
        .expect("subscribe");

    actor
        .stop_and_wait(None, Some(WAIT))
        .await
        .expect("the probe stops");
    bus.publish(&name("a"), &reading(1), PublishOptions::default())
        .await
        .expect("publish");

    let stats = bus.route_stats(route).await;
    assert_eq!(stats, Err(BusError::UnknownRoute { route }));
}

#[tokio::test]
async fn stopped_bus_is_unavailable() {
    let bus = local_bus("node-1").await;
    bus.actor()
        .expect("the bus actor is running")
        .stop_and_wait(None, Some(WAIT))
        .await
        .expect("the bus stops");

    let error = bus
        .publish(&name("a"), &reading(1), PublishOptions::default())
        .await
        .unwrap_err();

    assert!(matches!(error, BusError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("\"a\""), "{error}");
}

#[test]
fn reply_json_shape() {
    let ok: Reply<i64> = Reply::Ok { value: 42 };
    let error: Reply<i64> = Reply::Error {
        error: ErrorBody::new("not_found", "no such device"),
    };

    let ok_json = serde_json::to_value(&ok).expect("encode ok");
    let error_json = serde_json::to_value(&error).expect("encode error");

    assert_eq!(ok_json, serde_json::json!({"status": "ok", "value": 42}));
    assert_eq!(
        error_json,
        serde_json::json!({
            "status": "error",
            "error": {"code": "not_found", "message": "no such device"}
        })
    );
    assert_eq!(serde_json::from_value::<Reply<i64>>(ok_json).ok(), Some(ok));
}

#[test]
fn reply_spec_is_in_manifest() {
    let spec = manifest::lookup("client.reply").expect("MANIFEST has client.reply");
    assert_eq!(spec.pattern(), "alicia/reply/{client}/{request}");
}

#[tokio::test]
async fn supervised_bus_survives_restart() {
    use crate::supervisor::{ChildId, ChildSpec, Supervisor, SupervisorSpec};

    let child = ChildSpec::new(ChildId::new("bus").unwrap(), || {
        (LocalBus, config("node-1"))
    });
    let handle = child.handle();
    let supervisor =
        Supervisor::start(SupervisorSpec::new(ChildId::new("root").unwrap()).child(child))
            .await
            .unwrap();
    let bus = Bus::connect_supervised(handle).await.unwrap();
    let first = bus.actor().expect("the bus actor is running");

    first.kill_and_wait(Some(WAIT)).await.unwrap();
    let published = bus
        .publish(
            &name("sensors/lamp-1"),
            &reading(1),
            PublishOptions::telemetry(),
        )
        .await;

    assert!(published.is_ok(), "{published:?}");
    let second = bus.actor().expect("a new incarnation is running");
    assert_ne!(second.get_id(), first.get_id());
    supervisor.stop().await.unwrap();
}

#[tokio::test]
async fn excluded_topic_is_skipped_uncounted() {
    let bus = local_bus("node-1").await;
    let (actor, mut receiver) = probe().await;
    let route = bus
        .subscribe_excluding(
            filter("a/+"),
            vec![name("a/other")],
            &actor,
            |delivery: Delivery<Reading>| delivery,
        )
        .await
        .expect("subscribe");

    bus.publish_raw(
        &name("a/other"),
        b"not a reading".to_vec(),
        PublishOptions::telemetry(),
    )
    .await
    .expect("publish to the excluded topic");
    bus.publish(&name("a/b"), &reading(7), PublishOptions::telemetry())
        .await
        .expect("publish to an included topic");

    let first = next(&mut receiver).await;
    assert_eq!(first.topic, name("a/b"));
    let stats = bus.route_stats(route).await.expect("stats");
    assert_eq!(stats.delivered, 1);
    assert_eq!(stats.decode_errors, 0);
}

fn encoded(topic: &str, level: i32, options: PublishOptions) -> OutboundMessage {
    OutboundMessage {
        topic: name(topic),
        payload: Codec::Json
            .encode(&reading(level))
            .expect("a reading encodes")
            .into(),
        options,
    }
}

#[tokio::test]
async fn publish_batch_delivers_in_order() {
    let bus = local_bus("node-1").await;
    let (actor, mut receiver) = probe().await;
    bus.subscribe(
        filter("alicia/devices/+/state"),
        &actor,
        |delivery: Delivery<Reading>| delivery,
    )
    .await
    .expect("subscribe");

    let messages = (0..5)
        .map(|level| {
            encoded(
                "alicia/devices/lamp-1/state",
                level,
                PublishOptions::default(),
            )
        })
        .collect();
    let results = bus
        .publish_batch(messages)
        .await
        .expect("the bus takes the batch");

    assert_eq!(results.len(), 5);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for level in 0..5 {
        let delivery = next(&mut receiver).await;
        assert_eq!(delivery.envelope.body().level, level);
    }
    let last = next_after_sentinel(&bus, &actor, &mut receiver).await;
    assert!(is_sentinel(&last), "unexpected delivery on {}", last.topic);
}

#[tokio::test]
async fn publish_batch_keeps_last_retained() {
    let bus = local_bus("node-1").await;
    let retained = PublishOptions::default().with_retained(true);
    let messages = vec![
        encoded("alicia/devices/status/lamp-1", 1, retained),
        encoded("alicia/devices/status/lamp-1", 2, retained),
    ];
    bus.publish_batch(messages)
        .await
        .expect("the bus takes the batch");

    let (actor, mut receiver) = probe().await;
    bus.subscribe(
        filter("alicia/devices/status/+"),
        &actor,
        |delivery: Delivery<Reading>| delivery,
    )
    .await
    .expect("subscribe");
    let delivery = next(&mut receiver).await;
    assert!(delivery.retained);
    assert_eq!(delivery.envelope.body().level, 2);
}

#[tokio::test]
async fn publish_batch_empty_returns_no_results() {
    let bus = local_bus("node-1").await;
    let results = bus.publish_batch(Vec::new()).await.expect("an empty batch");
    assert!(results.is_empty());
}
