//! Counters of the bridge, shared between its tasks and readable without messaging the actor.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one bridge. Every task increments them with relaxed atomics, so a snapshot
/// is a consistent count of each counter but not across counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub oversized: AtomicU64,
    pub invalid_topic: AtomicU64,
    pub decode_errors: AtomicU64,
    pub rejected: AtomicU64,
    pub route_overflow: AtomicU64,
    pub telemetry_dropped: AtomicU64,
    pub publish_timeouts: AtomicU64,
    pub error_replies_dropped: AtomicU64,
    pub connect_attempts: AtomicU64,
    pub connections: AtomicU64,
    pub connection_losses: AtomicU64,
    pub held_at_start: AtomicU64,
    pub start_hold_overflow: AtomicU64,
    pub unrouted: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BridgeStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BridgeStats {
            messages_in: read(&self.messages_in),
            messages_out: read(&self.messages_out),
            oversized: read(&self.oversized),
            invalid_topic: read(&self.invalid_topic),
            decode_errors: read(&self.decode_errors),
            rejected: read(&self.rejected),
            route_overflow: read(&self.route_overflow),
            telemetry_dropped: read(&self.telemetry_dropped),
            publish_timeouts: read(&self.publish_timeouts),
            error_replies_dropped: read(&self.error_replies_dropped),
            connect_attempts: read(&self.connect_attempts),
            connections: read(&self.connections),
            connection_losses: read(&self.connection_losses),
            held_at_start: read(&self.held_at_start),
            start_hold_overflow: read(&self.start_hold_overflow),
            unrouted: read(&self.unrouted),
        }
    }
}

/// A snapshot of a bridge's counters since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// MQTT publishes received from the broker.
    pub messages_in: u64,
    /// MQTT publishes handed to rumqttc for sending, including presence and replays.
    pub messages_out: u64,
    /// Inbound payloads over `max_payload_size`, dropped before any decoder saw them. They also
    /// count as decode errors of every route they matched.
    pub oversized: u64,
    /// Inbound publishes whose topic is not a valid topic name, dropped.
    pub invalid_topic: u64,
    /// Per-route decode failures, summed over all routes.
    pub decode_errors: u64,
    /// Per-route authorizer rejections, summed over all routes.
    pub rejected: u64,
    /// Messages dropped because a route's inbound queue was full.
    pub route_overflow: u64,
    /// Telemetry dropped from the outbox to make room for newer telemetry.
    pub telemetry_dropped: u64,
    /// Requests and state changes that found the outbox full until their timeout.
    pub publish_timeouts: u64,
    /// Error replies to bad input that were dropped because the outbox was full.
    pub error_replies_dropped: u64,
    /// Connection attempts, successful or not.
    pub connect_attempts: u64,
    /// Successful connections (the first one and every reconnect).
    pub connections: u64,
    /// Established connections that were lost.
    pub connection_losses: u64,
    /// Inbound messages kept back at start, with a session, until the routes subscribed.
    pub held_at_start: u64,
    /// Inbound messages dropped at start because the start-up hold was full.
    pub start_hold_overflow: u64,
    /// Inbound messages that matched no route, dropped. With a session, the usual cause is a
    /// subscription left from an earlier run of the same node id that ran other services.
    pub unrouted: u64,
}

impl BridgeStats {
    /// Returns the number of reconnects: successful connections after the first.
    pub fn reconnects(&self) -> u64 {
        self.connections.saturating_sub(1)
    }
}

/// The counters of one route. The route's worker task increments them.
#[derive(Debug, Default)]
pub(crate) struct RouteCounters {
    pub delivered: AtomicU64,
    pub decode_errors: AtomicU64,
    pub rejected: AtomicU64,
    pub overflow: AtomicU64,
}
