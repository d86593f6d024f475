//! Snapshots of a supervision tree, for introspection and the Health Monitor.

use std::time::Duration;

use serde::Serialize;

use super::actor::SupervisorMsg;
use super::handle::ChildHandle;
use super::spec::{ChildId, ChildKind, Restart};
use super::strategy::Strategy;
use crate::clock::Timestamp;

/// One supervisor and its children at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupervisorSnapshot {
    /// The supervisor's id.
    pub id: ChildId,
    /// Its restart strategy.
    pub strategy: Strategy,
    /// Restarts counted in the current intensity window.
    pub restarts_in_window: usize,
    /// Its children, in start order.
    pub children: Vec<ChildSnapshot>,
}

impl SupervisorSnapshot {
    /// Returns the child with `id`, if this supervisor has one.
    pub fn child(&self, id: &str) -> Option<&ChildSnapshot> {
        self.children.iter().find(|child| child.id.as_str() == id)
    }
}

/// One child at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct ChildSnapshot {
    /// The child's id.
    pub id: ChildId,
    /// Worker or nested supervisor.
    pub kind: ChildKind,
    /// When it is restarted.
    pub restart: Restart,
    /// Running, restarting or stopped.
    pub state: ChildState,
    /// Times the child was started again after its first start.
    pub restart_count: u64,
    /// Its most recent failure, if it ever failed.
    pub last_failure: Option<FailureRecord>,
    /// The nested supervisor's own snapshot, when the child is a running supervisor and the
    /// snapshot was taken with [`ChildHandle::tree_snapshot`].
    pub supervisor: Option<Box<SupervisorSnapshot>>,
    /// Reaches the nested supervisor to fill `supervisor`.
    #[serde(skip)]
    pub(crate) nested: Option<ChildHandle<SupervisorMsg>>,
}

impl PartialEq for ChildSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.kind == other.kind
            && self.restart == other.restart
            && self.state == other.state
            && self.restart_count == other.restart_count
            && self.last_failure == other.last_failure
            && self.supervisor == other.supervisor
    }
}

/// The state of a child: running, restarting or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ChildState {
    /// An incarnation is running.
    Running {
        /// Time since this incarnation started.
        #[serde(with = "millis")]
        uptime: Duration,
    },
    /// The child exited and is waiting out its backoff before the next start.
    Restarting {
        /// Time left until the next start.
        #[serde(with = "millis")]
        backoff_remaining: Duration,
    },
    /// The child exited and will not be restarted.
    Stopped,
}

/// A child's failure: what went wrong and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureRecord {
    /// The panic message, the returned error or the start error, as text.
    pub reason: String,
    /// When the supervisor handled the failure, from the supervisor's clock.
    pub at: Timestamp,
}

/// Serializes durations as whole milliseconds, as the rest of Alicia's messages do.
mod millis {
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }
}
