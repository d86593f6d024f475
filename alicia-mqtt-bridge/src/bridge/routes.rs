//! The route table and the per-route workers that decode, authorize and deliver.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use alicia_core::bus::{
    Action, Authorization, AuthorizationRequest, ErrorBody, InboundMessage, LogRateLimit,
    OutboundMessage, PendingDelivery, PublishOptions, Reply, Route, RouteId, RouteStats,
    error_code,
};
use alicia_core::codec::Codec;
use alicia_core::envelope::{Envelope, MessageId};
use alicia_core::topic::{TopicFilter, TopicName};
use serde::de::IgnoredAny;
use tokio::sync::mpsc;

use super::shared::Shared;
use super::stats::{Counters, RouteCounters};

/// The routes of one bridge, by id.
///
/// The bridge actor adds and removes routes, and the I/O task reads the table for every inbound
/// message. A route's worker removes its own route when the target actor has stopped. No task
/// keeps the lock across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    routes: RwLock<BTreeMap<RouteId, RouteSlot>>,
}

/// The I/O task's end of one route.
#[derive(Debug, Clone)]
pub(crate) struct RouteSlot {
    pub filter: TopicFilter,
    /// Topics the filter matches that the route leaves out.
    pub excluded: Vec<TopicName>,
    /// The route's bounded inbound queue. The I/O task only ever `try_send`s into it, so a slow
    /// worker or actor cannot stall it.
    pub queue: mpsc::Sender<InboundMessage>,
    pub counters: Arc<RouteCounters>,
    /// Cleared when the route is removed, so that the worker drops what is still queued.
    pub active: Arc<AtomicBool>,
}

impl RouteTable {
    /// Adds a route and returns whether no other route had the same filter, which means the
    /// bridge must subscribe it at the broker.
    pub fn insert(&self, id: RouteId, slot: RouteSlot) -> bool {
        let mut routes = self.write();
        let first = !routes.values().any(|other| other.filter == slot.filter);
        routes.insert(id, slot);
        first
    }

    /// Removes a route. Returns its slot, and whether it was the last route with its filter,
    /// which means the bridge must unsubscribe it at the broker.
    pub fn remove(&self, id: RouteId) -> Option<(RouteSlot, bool)> {
        let mut routes = self.write();
        let slot = routes.remove(&id)?;
        slot.active.store(false, Ordering::Release);
        let last = !routes.values().any(|other| other.filter == slot.filter);
        Some((slot, last))
    }

    /// Removes every route, which ends their workers.
    pub fn clear(&self) {
        let mut routes = self.write();
        for slot in routes.values() {
            slot.active.store(false, Ordering::Release);
        }
        routes.clear();
    }

    pub fn stats(&self, id: RouteId) -> Option<(RouteStats, u64)> {
        let routes = self.read();
        let counters = &routes.get(&id)?.counters;
        let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let stats = RouteStats {
            delivered: read(&counters.delivered),
            decode_errors: read(&counters.decode_errors),
            rejected: read(&counters.rejected),
        };
        Some((stats, read(&counters.overflow)))
    }

    /// Returns every distinct filter, for resubscribing after a reconnect.
    pub fn filters(&self) -> Vec<TopicFilter> {
        let mut filters: Vec<TopicFilter> = self
            .read()
            .values()
            .map(|slot| slot.filter.clone())
            .collect();
        filters.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        filters.dedup();
        filters
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Runs `visit` on every route whose filter matches `topic`, in subscribe order.
    pub fn for_each_match(&self, topic: &TopicName, mut visit: impl FnMut(RouteId, &RouteSlot)) {
        for (id, slot) in self.read().iter() {
            if slot.filter.matches(topic) && !slot.excluded.contains(topic) {
                visit(*id, slot);
            }
        }
    }

    /// Locks for reading. Every change under the write lock is a single map operation, so a
    /// poisoned lock still guards a consistent map and is used as it is.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<RouteId, RouteSlot>> {
        self.routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<RouteId, RouteSlot>> {
        self.routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Decodes, authorizes and delivers the messages of one route, in arrival order, until the
/// route is removed.
///
/// It runs as its own task, so decoding one route's messages never delays another route or the
/// MQTT event loop. Casting to the actor never waits, because ractor mailboxes are unbounded.
///
/// NOTE: the route queue bounds only the messages waiting for this worker. A stalled actor's
/// mailbox still grows without limit, because a cast gives no signal when the actor has handled
/// the message.
pub(crate) async fn run_worker(
    id: RouteId,
    route: Route,
    mut queue: mpsc::Receiver<InboundMessage>,
    counters: Arc<RouteCounters>,
    active: Arc<AtomicBool>,
    shared: Arc<Shared>,
) {
    let mut worker = Worker {
        id,
        route,
        counters,
        shared,
        bad_input_log: LogRateLimit::default(),
    };

    while let Some(message) = queue.recv().await {
        if !active.load(Ordering::Acquire) {
            break;
        }
        if let Some(error_reply) = worker.handle(&message) {
            worker.shared.send_error_reply(error_reply);
        }
        if !active.load(Ordering::Acquire) {
            break;
        }
    }
}

struct Worker {
    id: RouteId,
    route: Route,
    counters: Arc<RouteCounters>,
    shared: Arc<Shared>,
    /// Limits the log lines about this route's decode errors and rejections.
    bad_input_log: LogRateLimit,
}

impl Worker {
    /// Handles one message as the local bus does. Returns the error reply to publish when the
    /// message is dropped and names a reply topic.
    fn handle(&mut self, message: &InboundMessage) -> Option<OutboundMessage> {
        let limits = self.shared.limits;

        let pending = match self.route.decode(message, &limits) {
            Ok(pending) => pending,
            Err(error) => {
                Counters::add(&self.counters.decode_errors);
                Counters::add(&self.shared.counters.decode_errors);
                if let Some(suppressed) = self.bad_input_log.record(self.shared.clock.monotonic()) {
                    tracing::warn!(
                        topic = %message.topic,
                        route = self.id.0,
                        body_type = self.route.body_type(),
                        %error,
                        suppressed,
                        "dropped a message that does not decode into the route's body type"
                    );
                }
                let (request_id, reply_to) = peek_reply_header(message, &limits)?;
                let body = ErrorBody::new(
                    error_code::INVALID_REQUEST,
                    format!("the message on \"{}\" was dropped: {error}", message.topic),
                );
                return self.shared.error_reply(&reply_to, request_id, body);
            }
        };

        if let Authorization::Deny { reason } = self.authorize(message, pending.as_ref()) {
            Counters::add(&self.counters.rejected);
            Counters::add(&self.shared.counters.rejected);
            if let Some(suppressed) = self.bad_input_log.record(self.shared.clock.monotonic()) {
                tracing::warn!(
                    topic = %message.topic,
                    route = self.id.0,
                    source = %pending.source(),
                    %reason,
                    suppressed,
                    "authorizer rejected a message"
                );
            }
            let reply_to = pending.reply_to()?.clone();
            let body = ErrorBody::new(
                error_code::FORBIDDEN,
                format!(
                    "the message on \"{}\" was rejected: {reason}",
                    message.topic
                ),
            );
            return self
                .shared
                .error_reply(&reply_to, pending.message_id(), body);
        }

        match pending.deliver() {
            Ok(()) => Counters::add(&self.counters.delivered),
            Err(error) => {
                tracing::warn!(topic = %message.topic, route = self.id.0, %error, "route removed");
                self.shared.remove_route(self.id);
            }
        }
        None
    }

    fn authorize(&self, message: &InboundMessage, pending: &dyn PendingDelivery) -> Authorization {
        let action = if pending.reply_to().is_some() {
            Action::Request
        } else {
            Action::Publish
        };
        self.shared.authorizer.authorize(&AuthorizationRequest {
            token: pending.auth_token(),
            source: pending.source(),
            action,
            topic: &message.topic,
        })
    }
}

/// Reads the message id and reply topic of a payload whose body did not decode.
///
/// Returns `None` when the header itself is invalid, because then the reply topic cannot be
/// trusted, and for postcard payloads, whose body of unknown type cannot be skipped.
fn peek_reply_header(
    message: &InboundMessage,
    limits: &alicia_core::codec::DecodeLimits,
) -> Option<(MessageId, TopicName)> {
    let envelope = message
        .codec
        .decode::<IgnoredAny>(&message.payload, limits)
        .ok()?;
    let reply_to = envelope.reply_to()?.clone();
    Some((envelope.message_id(), reply_to))
}

impl Shared {
    /// Builds the error reply to request `request_id`, as a JSON [`Reply`] from the bridge's
    /// client id.
    pub fn error_reply(
        &self,
        reply_to: &TopicName,
        request_id: MessageId,
        error: ErrorBody,
    ) -> Option<OutboundMessage> {
        let reply: Reply<()> = Reply::Error { error };
        let envelope =
            Envelope::new(self.client.clone(), reply, &*self.clock).with_correlation(request_id);
        match Codec::Json.encode(&envelope) {
            Ok(payload) => Some(OutboundMessage {
                topic: reply_to.clone(),
                payload: payload.into(),
                options: PublishOptions::request(),
            }),
            Err(error) => {
                tracing::error!(topic = %reply_to, %error, "error reply could not be encoded");
                None
            }
        }
    }
}
