//! The writer task: the only task that hands packets to rumqttc.

use std::sync::Arc;
use std::time::Duration;

use alicia_core::bus::OutboundMessage;
use alicia_core::codec::Codec;
use alicia_core::envelope::Envelope;
use alicia_core::manifest::QoS;
use alicia_core::presence::NodePresence;
use alicia_core::topic::TopicFilter;
use tokio::sync::{mpsc, oneshot, watch};

use super::protocol::Client;
use super::shared::{Connection, Control, Shared, lock};
use super::stats::Counters;

/// How long a clean shutdown keeps sending the outbox contents before it publishes `offline`.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);

/// Sends outbox messages and control instructions to rumqttc while connected, and replays the
/// session contract once per connection before anything else.
///
/// Because this is the only sender, the order in which packets enter rumqttc's request channel
/// is the order of this loop, which is what [`Shared::subscribes_unsent`] relies on. A send
/// waits while rumqttc's request channel is full; that wait holds up later outbox messages,
/// never the I/O task or an actor.
pub(crate) async fn run(
    client: Client,
    shared: Arc<Shared>,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut connection: watch::Receiver<Connection>,
) {
    let writer = Writer { client, shared };
    let mut replayed = 0;

    loop {
        let state = *connection.borrow_and_update();
        if state.connected && state.generation != replayed {
            replayed = state.generation;
            writer.replay().await;
        }

        while let Ok(instruction) = control.try_recv() {
            if writer.control(instruction, state.connected).await {
                return;
            }
        }

        if state.connected
            && let Some(message) = writer.shared.outbox.pop()
        {
            writer.publish(&message).await;
            continue;
        }

        tokio::select! {
            biased;
            changed = connection.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            instruction = control.recv() => match instruction {
                Some(instruction) => {
                    if writer.control(instruction, state.connected).await {
                        return;
                    }
                }
                None => return,
            },
            () = writer.shared.outbox.pushed(), if state.connected => {}
        }
    }
}

struct Writer {
    client: Client,
    shared: Arc<Shared>,
}

impl Writer {
    /// Subscribes the reply namespace and every route, publishes presence `online`, re-publishes
    /// the retained announcements and resends what the last connection left unacknowledged.
    async fn replay(&self) {
        let mut filters = vec![self.shared.reply_filter.clone()];
        filters.extend(self.shared.routes.filters());
        filters.dedup();
        let count = filters.len();
        // NOTE: every filter is subscribed at QoS 1, because a route carries no QoS. A QoS 0
        // publish still arrives at QoS 0, but telemetry routes cannot ask for QoS 0 delivery.
        // Subscribes that waited for this replay complete with its SUBACK, which the broker
        // sends after it has added every filter of the SUBSCRIBE.
        let waiting = std::mem::take(&mut *lock(&self.shared.awaiting_replay));
        let acknowledged = if waiting.is_empty() {
            None
        } else {
            let (acknowledged, subscribed) = oneshot::channel();
            tokio::spawn(async move {
                // A lost connection drops the sender; the waiting subscribes complete anyway, as
                // they do without a connection, and their routes are subscribed on reconnect.
                let _ = subscribed.await;
                for done in waiting {
                    let _ = done.send(());
                }
            });
            Some(acknowledged)
        };
        lock(&self.shared.subscribes_unsent).push_back(acknowledged);
        if let Err(error) = self.client.subscribe_many(filters).await {
            tracing::warn!(client = %self.shared.client, %error, "resubscribing failed");
        }

        let presence = OutboundMessage {
            topic: self.shared.presence_topic.clone(),
            payload: self.presence_now(NodePresence::Online),
            options: super::presence_options(),
        };
        self.publish(&presence).await;

        let announcements: Vec<OutboundMessage> =
            lock(&self.shared.retained).values().cloned().collect();
        for announcement in &announcements {
            self.publish(announcement).await;
        }

        let resend = std::mem::take(&mut *lock(&self.shared.resend));
        for publish in &resend {
            self.send(
                &publish.topic,
                publish.qos,
                publish.retain,
                publish.payload.to_vec(),
            )
            .await;
        }

        tracing::info!(
            client = %self.shared.client,
            filters = count,
            announcements = announcements.len(),
            resent = resend.len(),
            "session replayed: routes subscribed, presence online"
        );
    }

    /// Carries out one instruction. Returns `true` when the bridge is shutting down.
    async fn control(&self, instruction: Control, connected: bool) -> bool {
        match instruction {
            Control::Subscribe { filter, done } => {
                if !connected {
                    if self.shared.is_connected() {
                        // The I/O task has a connection this loop has not replayed yet. The
                        // replay subscribes every route, this one included, so the subscribe
                        // completes with the replay's SUBACK rather than before the broker
                        // knows the filter.
                        lock(&self.shared.awaiting_replay).push(done);
                    } else {
                        let _ = done.send(());
                    }
                    return false;
                }
                lock(&self.shared.subscribes_unsent).push_back(Some(done));
                if let Err(error) = self.client.subscribe(&filter).await {
                    tracing::warn!(topic = %filter, %error, "subscribing failed");
                }
                false
            }
            Control::Unsubscribe { filter } => {
                if connected {
                    self.unsubscribe(&filter).await;
                }
                false
            }
            Control::Shutdown { done } => {
                self.shutdown(connected).await;
                let _ = done.send(());
                true
            }
        }
    }

    async fn unsubscribe(&self, filter: &TopicFilter) {
        if let Err(error) = self.client.unsubscribe(filter).await {
            tracing::warn!(topic = %filter, %error, "unsubscribing failed");
        }
    }

    /// Sends the outbox contents (for at most [`SHUTDOWN_DRAIN`]), publishes presence
    /// `offline` and disconnects, so the broker does not publish the last will.
    async fn shutdown(&self, connected: bool) {
        self.shared.outbox.close();
        if !connected {
            tracing::info!(
                client = %self.shared.client,
                unsent = self.shared.outbox.len(),
                "bridge stopping while disconnected: the outbox is dropped, the last will reports offline"
            );
            return;
        }

        let drain = async {
            while let Some(message) = self.shared.outbox.pop() {
                self.publish(&message).await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_DRAIN, drain).await.is_err() {
            tracing::warn!(
                client = %self.shared.client,
                unsent = self.shared.outbox.len(),
                "bridge stopping: outbox not empty after the drain timeout, the rest is dropped"
            );
        }

        // The last will's payload was encoded at start; a clean stop carries the time of the stop.
        let offline = OutboundMessage {
            topic: self.shared.presence_topic.clone(),
            payload: self.presence_now(NodePresence::Offline),
            options: super::presence_options(),
        };
        self.publish(&offline).await;
        if let Err(error) = self.client.disconnect().await {
            tracing::warn!(client = %self.shared.client, %error, "disconnecting failed");
        }
    }

    /// Encodes `presence` in an envelope stamped now. The payloads encoded at start, which the
    /// last will must use, serve only if encoding fails.
    fn presence_now(&self, presence: NodePresence) -> Arc<[u8]> {
        let envelope = Envelope::new(self.shared.client.clone(), presence, &*self.shared.clock);
        match Codec::Json.encode(&envelope) {
            Ok(payload) => Arc::from(payload),
            Err(_) => match presence {
                NodePresence::Online => Arc::clone(&self.shared.online_payload),
                NodePresence::Offline => Arc::clone(&self.shared.offline_payload),
            },
        }
    }

    async fn publish(&self, message: &OutboundMessage) {
        self.send(
            message.topic.as_str(),
            message.options.qos,
            message.options.retained,
            message.payload.to_vec(),
        )
        .await;
    }

    async fn send(&self, topic: &str, qos: QoS, retain: bool, payload: Vec<u8>) {
        match self.client.publish(topic, qos, retain, payload).await {
            Ok(()) => Counters::add(&self.shared.counters.messages_out),
            Err(error) => tracing::warn!(topic, %error, "handing a publish to rumqttc failed"),
        }
    }
}
