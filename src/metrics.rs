//! Metric sources that the facade adds to the node's metrics endpoint: the MQTT bridge's
//! counters. The bridge crate does not depend on the health monitor, so the adapter lives here.

use std::future::Future;
use std::pin::Pin;

use alicia_actors::health::{MetricFamily, MetricKind, MetricSource, Sample};
use alicia_mqtt_bridge::{BridgeHandle, BridgeStats};

/// The MQTT bridge's counters and connection state as a [`MetricSource`].
#[derive(Debug, Clone)]
pub struct BridgeMetrics(pub BridgeHandle);

impl MetricSource for BridgeMetrics {
    fn collect(&self) -> Pin<Box<dyn Future<Output = Vec<MetricFamily>> + Send + '_>> {
        // Reading the handle never waits on the bridge, so the future is ready at once.
        let families = bridge_families(&self.0.stats(), self.0.is_connected());
        Box::pin(std::future::ready(families))
    }
}

/// Builds the metric families of an MQTT bridge from its counters and connection state.
pub fn bridge_families(stats: &BridgeStats, connected: bool) -> Vec<MetricFamily> {
    let single = |name: &str, help: &str, kind, value: u64| MetricFamily {
        name: name.to_owned(),
        help: help.to_owned(),
        kind,
        samples: vec![Sample {
            labels: Vec::new(),
            value: value as f64,
        }],
    };

    let dropped_by_reason = [
        ("oversized", stats.oversized),
        ("invalid_topic", stats.invalid_topic),
        ("route_overflow", stats.route_overflow),
        ("telemetry_overflow", stats.telemetry_dropped),
        ("error_reply_overflow", stats.error_replies_dropped),
        ("publish_timeout", stats.publish_timeouts),
        ("unrouted", stats.unrouted),
        ("start_hold_full", stats.start_hold_overflow),
    ];
    let dropped = MetricFamily {
        name: "alicia_bridge_messages_dropped_total".to_owned(),
        help: "Messages the bridge dropped, by reason: inbound oversized, invalid topic, full \
               route queue, matching no route or over the start-up hold; outbound telemetry or error replies pushed out of a full outbox, or \
               publishes that timed out waiting for outbox room."
            .to_owned(),
        kind: MetricKind::Counter,
        samples: dropped_by_reason
            .into_iter()
            .map(|(reason, count)| Sample {
                labels: vec![("reason", reason.to_owned())],
                value: count as f64,
            })
            .collect(),
    };

    // The names are literals that satisfy the metric name rule, so no check is needed.
    vec![
        single(
            "alicia_bridge_messages_received_total",
            "MQTT publishes received from the broker.",
            MetricKind::Counter,
            stats.messages_in,
        ),
        single(
            "alicia_bridge_messages_sent_total",
            "MQTT publishes handed to the MQTT client for sending, including presence and replays.",
            MetricKind::Counter,
            stats.messages_out,
        ),
        dropped,
        single(
            "alicia_bridge_decode_errors_total",
            "Inbound messages that failed to decode, summed over all routes.",
            MetricKind::Counter,
            stats.decode_errors,
        ),
        single(
            "alicia_bridge_rejected_total",
            "Inbound messages the authorizer rejected, summed over all routes.",
            MetricKind::Counter,
            stats.rejected,
        ),
        single(
            "alicia_bridge_connect_attempts_total",
            "Connection attempts to the broker, successful or not.",
            MetricKind::Counter,
            stats.connect_attempts,
        ),
        single(
            "alicia_bridge_reconnects_total",
            "Successful connections to the broker after the first.",
            MetricKind::Counter,
            stats.reconnects(),
        ),
        single(
            "alicia_bridge_connection_losses_total",
            "Established broker connections that were lost.",
            MetricKind::Counter,
            stats.connection_losses,
        ),
        single(
            "alicia_bridge_connected",
            "1 while the bridge is connected to the broker, 0 otherwise.",
            MetricKind::Gauge,
            u64::from(connected),
        ),
    ]
}
