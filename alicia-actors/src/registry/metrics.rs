//! The device registry's figures for the metrics endpoint.

use std::future::Future;
use std::pin::Pin;

use crate::health::{MetricFamily, MetricKind, MetricSource, Sample};

use super::actor::RegistryStats;
use super::client::RegistryClient;

impl MetricSource for RegistryClient {
    fn collect(&self) -> Pin<Box<dyn Future<Output = Vec<MetricFamily>> + Send + '_>> {
        Box::pin(async move {
            match self.stats().await {
                Ok(stats) => registry_families(&stats),
                Err(error) => {
                    tracing::warn!(%error, "registry metrics left out of the scrape");
                    Vec::new()
                }
            }
        })
    }
}

/// Builds the metric families of the device registry, one unlabelled sample each.
pub fn registry_families(stats: &RegistryStats) -> Vec<MetricFamily> {
    let figures = [
        (
            "alicia_registry_devices",
            "Registered devices.",
            MetricKind::Gauge,
            stats.devices as f64,
        ),
        (
            "alicia_registry_groups",
            "Device groups.",
            MetricKind::Gauge,
            stats.groups as f64,
        ),
        (
            "alicia_registry_rejected_requests_total",
            "Registrations, updates and deregistrations rejected for bad input, conflicts or limits.",
            MetricKind::Counter,
            stats.rejected_requests as f64,
        ),
        (
            "alicia_registry_rejected_heartbeats_total",
            "Heartbeats from devices that are not registered.",
            MetricKind::Counter,
            stats.rejected_heartbeats as f64,
        ),
        (
            "alicia_registry_registrations_committed_total",
            "Registrations acknowledged after a durable commit.",
            MetricKind::Counter,
            stats.registrations_committed as f64,
        ),
        (
            "alicia_registry_registration_commits_total",
            "Durable commits of registration batches.",
            MetricKind::Counter,
            stats.registration_commits as f64,
        ),
        (
            "alicia_registry_last_seen_flushes_total",
            "Durable commits of device last-seen times.",
            MetricKind::Counter,
            stats.last_seen_flushes as f64,
        ),
        (
            "alicia_registry_unreadable_entries",
            "Stored entries that failed to decode when the registry started and were skipped.",
            MetricKind::Gauge,
            stats.unreadable_entries as f64,
        ),
    ];
    // The names are literals that satisfy the metric name rule, so no check is needed.
    figures
        .into_iter()
        .map(|(name, help, kind, value)| MetricFamily {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            samples: vec![Sample {
                labels: Vec::new(),
                value,
            }],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_families_carry_counts() {
        let stats = RegistryStats {
            devices: 3,
            groups: 1,
            rejected_requests: 2,
            rejected_heartbeats: 5,
            ..RegistryStats::default()
        };
        let families = registry_families(&stats);
        let value = |name: &str| {
            families
                .iter()
                .find(|family| family.name == name)
                .map(|family| family.samples[0].value)
        };
        assert_eq!(value("alicia_registry_devices"), Some(3.0));
        assert_eq!(value("alicia_registry_groups"), Some(1.0));
        assert_eq!(value("alicia_registry_rejected_requests_total"), Some(2.0));
        assert_eq!(
            value("alicia_registry_rejected_heartbeats_total"),
            Some(5.0)
        );
    }
}
