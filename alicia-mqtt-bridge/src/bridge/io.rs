//! The I/O task: it polls rumqttc's event loop and nothing else waits in it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use alicia_core::bus::{InboundMessage, InboundReply, LogRateLimit};
use alicia_core::codec::Codec;
use alicia_core::topic::TopicName;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::watch;

use super::Backoff;
use super::protocol::{Event, EventLoop, Inbound, MqttVersion, PollError};
use super::shared::{Shared, lock};
use super::stats::Counters;

/// Polls `eventloop` until a clean disconnect or until `stop` turns true.
///
/// Per inbound publish it checks the size and the topic, forwards a reply to its waiting
/// requester and `try_send`s the message into the queue of every matching route. It never waits
/// on an actor, a route or a publish: the only `.await`s are `poll` and the backoff sleep.
pub(crate) async fn run(
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    backoff: Backoff,
    hold_until: Option<tokio::time::Instant>,
    mut stop: watch::Receiver<bool>,
) {
    let mut io = Io {
        start_hold: hold_until.map(|_| VecDeque::new()),
        shared,
        failures: 0,
        connecting: false,
        connected_at: None,
        bad_topic_log: LogRateLimit::default(),
        oversized_log: LogRateLimit::default(),
        overflow_log: LogRateLimit::default(),
        unrouted_log: LogRateLimit::default(),
    };

    // One timer for the whole hold: `select!` builds every branch's future on each pass, even a
    // disabled one, and this loop runs once per inbound message.
    let hold_timer = tokio::time::sleep_until(hold_until.unwrap_or_else(tokio::time::Instant::now));
    tokio::pin!(hold_timer);

    loop {
        if !io.connecting && io.connected_at.is_none() {
            io.connecting = true;
            Counters::add(&io.shared.counters.connect_attempts);
        }

        let holding = io.start_hold.is_some();
        let polled = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            () = io.shared.release_held.notified(), if holding => {
                io.release_held("released");
                continue;
            }
            () = &mut hold_timer, if holding => {
                io.release_held("hold time over");
                continue;
            }
            polled = eventloop.poll() => polled,
        };

        match polled {
            Ok(Event::ConnAck { session_present }) => io.connected(session_present),
            Ok(Event::Publish(publish)) => io.inbound(publish),
            Ok(Event::SubAck { pkid }) => {
                if let Some(done) = lock(&io.shared.subscribes_sent).remove(&pkid) {
                    let _ = done.send(());
                }
            }
            Ok(Event::SubscribeSent { pkid }) => {
                let waiting = lock(&io.shared.subscribes_unsent).pop_front().flatten();
                if let Some(done) = waiting {
                    lock(&io.shared.subscribes_sent).insert(pkid, done);
                }
            }
            Ok(Event::DisconnectSent) => {
                tracing::info!(client = %io.shared.client, "disconnected from the broker");
                break;
            }
            Ok(Event::Other) => {}
            Err(error) => {
                let while_connecting = io.connected_at.is_none();
                io.disconnected(&mut eventloop, &error);
                let delay = backoff.delay(io.failures, rand::random::<f64>());
                let hint = if while_connecting
                    && error.closed_by_broker
                    && eventloop.version() == MqttVersion::V5
                {
                    "the broker closed the connection before accepting it; a broker that speaks MQTT 3.1.1 only (such as another node's embedded broker) does this to an MQTT 5 client, so set mqtt_version = \"3.1.1\" (flag --mqtt-version 3.1.1) for it"
                } else if error.tls {
                    "TLS handshake with the broker failed; check that tls.ca_file contains the CA that signed the broker's certificate and that the certificate names the broker URL's host"
                } else {
                    "broker connection failed"
                };
                tracing::warn!(
                    client = %io.shared.client,
                    attempt = io.failures,
                    delay_ms = delay.as_millis() as u64,
                    %error,
                    "{hint}; retrying after the backoff delay"
                );
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }

    io.shared
        .connection
        .send_modify(|connection| connection.connected = false);
}

/// The maximum number of inbound messages the start-up hold keeps; more are dropped and counted.
/// It equals a node's route queue, so a hold never keeps more than one route could take at once.
const MAX_HELD: usize = 65_536;

/// How long a connection must last before a loss of it starts the backoff sequence afresh.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// A connection lost sooner than this after it was accepted gets a hint about duplicate client
/// ids, the usual cause.
const SHORT_CONNECTION: Duration = Duration::from_secs(2);

struct Io {
    shared: Arc<Shared>,
    /// Inbound messages kept back at start, in arrival order, while the bridge has a session;
    /// `None` once they went to the routes. See [`BridgeConfig::start_hold`](super::BridgeConfig).
    start_hold: Option<VecDeque<InboundMessage>>,
    /// Failed polls since the last connection that lasted [`STABLE_CONNECTION`]. A connection that
    /// the broker closes soon after accepting it does not reset the count, so two clients with
    /// the same client id that keep taking the session from each other still back off.
    failures: u32,
    /// Whether a connect attempt is under way, so each attempt is counted once.
    connecting: bool,
    /// When the current connection was accepted.
    connected_at: Option<std::time::Instant>,
    bad_topic_log: LogRateLimit,
    oversized_log: LogRateLimit,
    overflow_log: LogRateLimit,
    unrouted_log: LogRateLimit,
}

impl Io {
    fn connected(&mut self, session_present: bool) {
        let counters = &self.shared.counters;
        Counters::add(&counters.connections);
        let reconnect = counters
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            > 1;
        tracing::info!(
            client = %self.shared.client,
            reconnect,
            session_present,
            failed_attempts = self.failures,
            "connected to the broker"
        );
        self.connecting = false;
        self.connected_at = Some(std::time::Instant::now());
        self.shared.connection.send_modify(|connection| {
            connection.connected = true;
            connection.generation += 1;
        });
    }

    /// Records a failed poll and saves what rumqttc would lose.
    ///
    /// It moves the publishes rumqttc kept to [`Shared::resend`], for the writer to send after the
    /// session replay, and drops subscribes and unsubscribes, because the replay subscribes every
    /// route again.
    fn disconnected(&mut self, eventloop: &mut EventLoop, error: &PollError) {
        self.connecting = false;
        let lasted = self.connected_at.take().map(|at| at.elapsed());
        if lasted.is_some_and(|lasted| lasted >= STABLE_CONNECTION) {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        let was_connected = self.shared.is_connected();
        if was_connected {
            Counters::add(&self.shared.counters.connection_losses);
            match lasted {
                Some(lasted) if lasted < SHORT_CONNECTION => tracing::warn!(
                    client = %self.shared.client,
                    lasted_ms = lasted.as_millis() as u64,
                    %error,
                    "broker connection lost right after it was accepted; if another client uses the same client id, the broker hands the session back and forth, so give each node its own node id"
                ),
                _ => tracing::warn!(client = %self.shared.client, %error, "broker connection lost"),
            }
        }
        self.shared
            .connection
            .send_modify(|connection| connection.connected = false);

        let (resend, dropped_subscribes) = eventloop.take_pending();
        if !resend.is_empty() {
            lock(&self.shared.resend).extend(resend);
        }

        // The drained subscribes are the oldest unsent ones. Their routes stay in the table, so
        // the replay covers them, and their callers need not wait for it.
        let mut unsent = lock(&self.shared.subscribes_unsent);
        for _ in 0..dropped_subscribes {
            if let Some(Some(done)) = unsent.pop_front() {
                let _ = done.send(());
            }
        }
        drop(unsent);
        for (_, done) in lock(&self.shared.subscribes_sent).drain() {
            let _ = done.send(());
        }
        for done in lock(&self.shared.awaiting_replay).drain(..) {
            let _ = done.send(());
        }
    }

    fn inbound(&mut self, publish: Inbound) {
        let counters = &self.shared.counters;
        Counters::add(&counters.messages_in);

        let topic = match publish.topic {
            Ok(topic) => TopicName::new(topic).map_err(|error| error.to_string()),
            Err(bytes) => Err(format!(
                "the {}-byte topic is not UTF-8, which MQTT requires",
                bytes.len()
            )),
        };
        let topic = match topic {
            Ok(topic) => topic,
            Err(error) => {
                Counters::add(&counters.invalid_topic);
                if let Some(suppressed) = self.bad_topic_log.record(self.shared.clock.monotonic()) {
                    tracing::warn!(%error, suppressed, "dropped a message with an invalid topic");
                }
                return;
            }
        };

        if publish.payload.len() > self.shared.limits.max_size {
            self.drop_oversized(&topic, publish.payload.len());
            return;
        }

        // NOTE: every inbound payload is decoded as JSON. MQTT 3.1.1 carries no content type, and
        // the bridge does not read MQTT 5's content type property yet, which postcard needs.
        let message = InboundMessage {
            topic,
            payload: Arc::from(&publish.payload[..]),
            codec: Codec::Json,
            retained: publish.retain,
        };

        self.forward_reply(&message);
        if message.payload.is_empty() {
            return;
        }
        if let Some(held) = &mut self.start_hold {
            if held.len() < MAX_HELD {
                Counters::add(&self.shared.counters.held_at_start);
                held.push_back(message);
            } else {
                Counters::add(&self.shared.counters.start_hold_overflow);
                if let Some(suppressed) = self.overflow_log.record(self.shared.clock.monotonic()) {
                    tracing::warn!(
                        topic = %message.topic,
                        max = MAX_HELD,
                        suppressed,
                        "start-up hold full: message dropped (the services took too long to subscribe)"
                    );
                }
            }
            return;
        }
        self.dispatch(message);
    }

    /// Ends the start-up hold and hands every held message to the routes subscribed by now.
    fn release_held(&mut self, reason: &'static str) {
        let Some(held) = self.start_hold.take() else {
            return;
        };
        tracing::info!(
            client = %self.shared.client,
            messages = held.len(),
            reason,
            "start-up hold ended: held messages go to the routes"
        );
        for message in held {
            self.dispatch(message);
        }
    }

    /// Counts an oversized payload as a decode error of every route it matches, without copying
    /// or parsing it. Its reply topic is unknown, so it gets no error reply.
    fn drop_oversized(&mut self, topic: &TopicName, size: usize) {
        Counters::add(&self.shared.counters.oversized);
        self.shared.routes.for_each_match(topic, |_, slot| {
            Counters::add(&slot.counters.decode_errors);
            Counters::add(&self.shared.counters.decode_errors);
        });
        if let Some(suppressed) = self.oversized_log.record(self.shared.clock.monotonic()) {
            tracing::warn!(
                topic = %topic,
                size,
                max = self.shared.limits.max_size,
                suppressed,
                "dropped a payload over the maximum payload size"
            );
        }
    }

    /// Hands `message` to the requester waiting on its topic, if any.
    fn forward_reply(&self, message: &InboundMessage) {
        // Only topics in the reply namespace can have a requester, so others skip the lock.
        if !self.shared.reply_filter.matches(&message.topic) {
            return;
        }
        let Some(waiting) = lock(&self.shared.pending).remove(&message.topic) else {
            return;
        };
        let reply = InboundReply {
            topic: message.topic.clone(),
            payload: Arc::clone(&message.payload),
            codec: message.codec,
        };
        if waiting.send(Ok(reply)).is_err() {
            tracing::debug!(topic = %message.topic, "reply arrived after its requester stopped waiting");
        }
    }

    fn dispatch(&mut self, message: InboundMessage) {
        let mut overflowed = Vec::new();
        let mut matched = false;
        self.shared
            .routes
            .for_each_match(&message.topic, |id, slot| {
                matched = true;
                match slot.queue.try_send(message.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        Counters::add(&slot.counters.overflow);
                        Counters::add(&self.shared.counters.route_overflow);
                        overflowed.push(id);
                    }
                    // The route is being removed; its worker has ended.
                    Err(TrySendError::Closed(_)) => {}
                }
            });

        // A reply went to its requester in `forward_reply`; it needs no route.
        if !matched && !self.shared.reply_filter.matches(&message.topic) {
            Counters::add(&self.shared.counters.unrouted);
            if let Some(suppressed) = self.unrouted_log.record(self.shared.clock.monotonic()) {
                tracing::warn!(
                    client = %self.shared.client,
                    topic = %message.topic,
                    suppressed,
                    "dropped a message that matches no route; if this node id ran other services before, its MQTT session still holds their subscriptions: start the node once with a clean session (NodeBuilder::session_expiry(None), flag --clean-session)"
                );
            }
            return;
        }
        if let Some(route) = overflowed.first()
            && let Some(suppressed) = self.overflow_log.record(self.shared.clock.monotonic())
        {
            tracing::warn!(
                topic = %message.topic,
                route = route.0,
                suppressed,
                "route queue full: message dropped (the route's actor or decoder is behind)"
            );
        }
    }
}
