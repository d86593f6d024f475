//! State that the bridge actor, the I/O task, the writer task and the route workers share.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use alicia_core::bus::{Authorizer, BusError, InboundReply, OutboundMessage, RouteId};
use alicia_core::clock::SharedClock;
use alicia_core::codec::DecodeLimits;
use alicia_core::envelope::SourceId;
use alicia_core::topic::{TopicFilter, TopicName};
use ractor::RpcReplyPort;
use tokio::sync::{mpsc, oneshot, watch};

use super::outbox::{Outbox, PushError};
use super::routes::RouteTable;
use super::stats::Counters;

/// A requester waiting for the first message on its reply topic.
pub(crate) type ReplyPort = RpcReplyPort<Result<InboundReply, BusError>>;

/// An instruction for the writer task, which is the only sender of MQTT packets.
#[derive(Debug)]
pub(crate) enum Control {
    /// Subscribe a filter at the broker. `done` fires on the SUBACK, or at once while the bridge
    /// is disconnected, because the next connect subscribes every route anyway.
    Subscribe {
        filter: TopicFilter,
        done: oneshot::Sender<()>,
    },
    /// Unsubscribe a filter at the broker.
    Unsubscribe { filter: TopicFilter },
    /// Send what the outbox holds, publish presence `offline`, disconnect; then fire `done`.
    Shutdown { done: oneshot::Sender<()> },
}

/// The connection as the I/O task reports it to the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Connection {
    /// Whether a CONNACK arrived and no error followed it.
    pub connected: bool,
    /// Counts CONNACKs, so the writer replays the session contract once per connection.
    pub generation: u64,
}

/// See the module doc. Fields without their own lock never change after start.
pub(crate) struct Shared {
    pub client: SourceId,
    pub clock: SharedClock,
    pub limits: DecodeLimits,
    /// The bound of each route's inbound queue.
    pub route_queue: usize,
    pub authorizer: Arc<dyn Authorizer>,
    /// `alicia/reply/{client}/+`, subscribed on every connect.
    pub reply_filter: TopicFilter,
    /// `alicia/nodes/{node}/presence`.
    pub presence_topic: TopicName,
    /// The encoded presence envelopes.
    pub online_payload: Arc<[u8]>,
    pub offline_payload: Arc<[u8]>,
    pub routes: RouteTable,
    pub outbox: Outbox,
    pub counters: Arc<Counters>,
    /// Requests waiting for their reply, by reply topic. The actor inserts, the I/O task removes
    /// when the reply arrives.
    pub pending: Mutex<HashMap<TopicName, ReplyPort>>,
    /// The last retained publish of each topic published through this bridge, re-published on
    /// every connect. It grows with the number of distinct retained topics, like a broker's
    /// retained store.
    pub retained: Mutex<BTreeMap<TopicName, OutboundMessage>>,
    /// Publishes that rumqttc held unacknowledged when a connection broke. The I/O task fills it;
    /// the writer sends it after the next session replay, because rumqttc drops them when the
    /// new session is clean.
    pub resend: Mutex<Vec<super::protocol::Unsent>>,
    /// Subscribes handed to rumqttc, oldest first, whose SUBSCRIBE has not been sent yet. The
    /// writer pushes before handing a SUBSCRIBE to rumqttc, the I/O task pops on each outgoing
    /// SUBSCRIBE. Replays push `None`.
    pub subscribes_unsent: Mutex<VecDeque<Option<oneshot::Sender<()>>>>,
    /// Subscribes sent and waiting for their SUBACK, by packet id.
    pub subscribes_sent: Mutex<HashMap<u16, oneshot::Sender<()>>>,
    /// Subscribes that arrived after the I/O task connected but before the writer replayed the
    /// session. The replay subscribes their routes too, and they complete with its SUBACK.
    pub awaiting_replay: Mutex<Vec<oneshot::Sender<()>>>,
    /// Ends the I/O task's start-up hold of inbound messages.
    pub release_held: tokio::sync::Notify,
    /// Set before a clean stop: a removed route no longer unsubscribes its filter at the broker.
    pub keep_broker_subscriptions: std::sync::atomic::AtomicBool,
    pub control: mpsc::UnboundedSender<Control>,
    pub connection: watch::Sender<Connection>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("client", &self.client)
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Removes a route, and unsubscribes its filter at the broker when no other route uses it.
    pub fn remove_route(&self, id: RouteId) -> Option<super::routes::RouteSlot> {
        let (slot, last) = self.routes.remove(id)?;
        let keep = self
            .keep_broker_subscriptions
            .load(std::sync::atomic::Ordering::Relaxed);
        if last && slot.filter != self.reply_filter && !keep {
            let _ = self.control.send(Control::Unsubscribe {
                filter: slot.filter.clone(),
            });
        }
        Some(slot)
    }

    /// Queues an error reply to bad input without waiting. When the outbox is full the reply is
    /// dropped and counted, because the worker must not wait on a publish.
    pub fn send_error_reply(&self, reply: OutboundMessage) {
        let topic = reply.topic.clone();
        if let Err((error, _)) = self.outbox.try_push(reply) {
            Counters::add(&self.counters.error_replies_dropped);
            if error == PushError::Full {
                tracing::debug!(topic = %topic, "outbox full: error reply dropped");
            }
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connection.borrow().connected
    }
}

/// Locks a mutex whose data stays consistent across a panic, because every change under it is a
/// single insert, remove or push.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
