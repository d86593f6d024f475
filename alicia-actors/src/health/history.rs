//! The alert history, kept in the node's store so it survives restarts.
//!
//! Every alert is one entry keyed by its id. Raising writes it and resolving overwrites it with
//! its resolution time. Both writes are durable (fsynced) before they return, because an alert is
//! rare and an operator may rely on seeing it after a crash. When the table holds more than the
//! retention limit, the oldest alerts (lowest ids) are removed in the same transaction.

use std::collections::VecDeque;

use alicia_core::store::{Store, Table};

use super::alert::Alert;
use super::error::HealthError;

/// The table of every alert, keyed by alert id.
pub const ALERTS: Table<u64, Alert> = Table::new("health.alerts", 1);

/// The alert history of one node.
#[derive(Debug, Clone)]
pub struct AlertHistory {
    store: Store,
    retention: u64,
}

impl AlertHistory {
    /// Opens the history in `store`, keeping at most `retention` alerts.
    pub fn new(store: Store, retention: u64) -> Self {
        Self {
            store,
            retention: retention.max(1),
        }
    }

    /// Writes `alert`, replacing an earlier version with the same id, and removes the oldest
    /// alerts beyond the retention limit. Durable when it returns `Ok`.
    ///
    /// An active alert is never removed to make room, so a history full of open alerts can grow
    /// past the limit until they resolve.
    pub fn record(&self, alert: &Alert) -> Result<(), HealthError> {
        self.store.write(|tx| {
            tx.insert(&ALERTS, &alert.id, alert)?;

            let len = tx.len(&ALERTS)?;
            let excess = len.saturating_sub(self.retention);
            if excess > 0 {
                let removable = self.oldest_resolved(excess)?;
                for id in removable {
                    tx.remove(&ALERTS, &id)?;
                }
            }
            Ok::<_, HealthError>(())
        })
    }

    /// Returns up to `limit` alerts, newest first.
    pub fn newest(&self, limit: usize) -> Result<Vec<Alert>, HealthError> {
        // The store iterates forwards only. The retention limit bounds the table, so reading it
        // whole and keeping the last `limit` entries is bounded too.
        let read = self.store.begin_read()?;
        let mut newest = VecDeque::with_capacity(limit.min(1_024));
        for entry in read.iter(&ALERTS)? {
            let (_, alert) = entry?;
            if newest.len() == limit {
                newest.pop_front();
            }
            if limit > 0 {
                newest.push_back(alert);
            }
        }
        Ok(newest.into_iter().rev().collect())
    }

    /// Returns the alerts that were active when last written.
    pub fn open_alerts(&self) -> Result<Vec<Alert>, HealthError> {
        let read = self.store.begin_read()?;
        let mut alerts = Vec::new();
        for entry in read.iter(&ALERTS)? {
            let (_, alert) = entry?;
            if alert.is_active() {
                alerts.push(alert);
            }
        }
        Ok(alerts)
    }

    /// Returns the id after the highest one stored, from which new alerts are numbered.
    pub fn next_id(&self) -> Result<u64, HealthError> {
        let read = self.store.begin_read()?;
        let mut highest = 0;
        for entry in read.iter(&ALERTS)? {
            let (id, _) = entry?;
            highest = highest.max(id);
        }
        Ok(highest.saturating_add(1))
    }

    /// Returns the number of alerts stored.
    pub fn len(&self) -> Result<u64, HealthError> {
        Ok(self.store.begin_read()?.len(&ALERTS)?)
    }

    /// Returns whether the history is empty.
    pub fn is_empty(&self) -> Result<bool, HealthError> {
        Ok(self.len()? == 0)
    }

    /// Lists the ids of the `count` oldest resolved alerts from the last commit.
    fn oldest_resolved(&self, count: u64) -> Result<Vec<u64>, HealthError> {
        let read = self.store.begin_read()?;
        let mut ids = Vec::new();
        for entry in read.iter(&ALERTS)? {
            if ids.len() as u64 >= count {
                break;
            }
            let (id, alert) = entry?;
            if !alert.is_active() {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}
