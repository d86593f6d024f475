//! Errors of the supervisor, one enum per concern.

use std::time::Duration;

use super::spec::ChildId;

/// An invalid supervisor or backoff setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The backoff minimum is longer than its maximum.
    #[error(
        "backoff minimum {min:?} is longer than its maximum {max:?}: set the minimum to at most the maximum"
    )]
    BackoffMinAboveMax {
        /// The rejected minimum.
        min: Duration,
        /// The rejected maximum.
        max: Duration,
    },

    /// The jitter fraction is outside 0.0 to 1.0.
    #[error("backoff jitter {fraction} is invalid: use a fraction from 0.0 to 1.0")]
    JitterOutOfRange {
        /// The rejected fraction.
        fraction: f64,
    },

    /// Two children of one supervisor have the same id.
    #[error(
        "supervisor \"{supervisor}\" has two children with id \"{child}\": give each child a unique id"
    )]
    DuplicateChild {
        /// The supervisor being configured.
        supervisor: ChildId,
        /// The repeated id.
        child: ChildId,
    },

    /// More children were declared than the supervisor's maximum.
    #[error(
        "supervisor \"{supervisor}\" declares {count} children, over its maximum of {max}: raise the maximum or declare fewer children"
    )]
    TooManyChildren {
        /// The supervisor being configured.
        supervisor: ChildId,
        /// Children declared.
        count: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// A supervisor gave up because its restart intensity was exceeded.
///
/// It stopped its remaining children in reverse start order before failing with this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "supervisor \"{supervisor}\" gave up: child \"{child}\" needed restart number {restarts} within {period:?}, over the restart intensity of {max_restarts}; its last error: {last_error}. Fix the cause of the failures or raise the restart intensity"
)]
pub struct EscalationError {
    /// The supervisor that gave up.
    pub supervisor: ChildId,
    /// The child whose restart exceeded the intensity.
    pub child: ChildId,
    /// Restarts counted within the period, including the rejected one.
    pub restarts: usize,
    /// The configured maximum restarts within the period.
    pub max_restarts: u32,
    /// The intensity period.
    pub period: Duration,
    /// The child's last error, as text.
    pub last_error: String,
}

/// Failure of a root supervisor to start, or to end cleanly.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SupervisorError {
    /// The supervisor's settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The restart intensity was exceeded, during start-up or later.
    #[error(transparent)]
    Escalated(#[from] EscalationError),

    /// The supervisor actor failed for another reason, for example a panic inside it.
    #[error(
        "supervisor \"{supervisor}\" failed: {reason}. This is a bug in the supervisor or in a child factory"
    )]
    Failed {
        /// The supervisor that failed.
        supervisor: ChildId,
        /// The failure, as text.
        reason: String,
    },

    /// The supervisor did not finish stopping within the time allowed.
    #[error(
        "supervisor \"{supervisor}\" did not stop within {timeout:?}: a child ignores its shutdown budget"
    )]
    StopTimedOut {
        /// The supervisor being stopped.
        supervisor: ChildId,
        /// The time allowed.
        timeout: Duration,
    },
}

/// Failure of a call or cast through a [`ChildHandle`](super::ChildHandle).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No running incarnation of the child appeared within the wait bound, for example because it
    /// is waiting out its restart backoff.
    #[error(
        "child \"{child}\" is unavailable: no running incarnation within {waited:?}; retry later or raise the handle's wait bound"
    )]
    Unavailable {
        /// The child called.
        child: ChildId,
        /// How long the call waited.
        waited: Duration,
    },

    /// The child is stopped and will not be restarted, or its supervisor has stopped.
    #[error(
        "child \"{child}\" is stopped and will not be restarted; add it to a supervisor again to use it"
    )]
    Stopped {
        /// The child called.
        child: ChildId,
    },

    /// The incarnation that accepted the request stopped before replying; the request may or may
    /// not have been processed.
    #[error(
        "child \"{child}\" stopped before replying; the request may or may not have been processed, so retry it only if it is idempotent"
    )]
    NoReply {
        /// The child called.
        child: ChildId,
    },

    /// The child accepted the request but did not reply in time.
    #[error(
        "child \"{child}\" did not reply within {timeout:?}; raise the reply timeout or find what slows its handler"
    )]
    Timeout {
        /// The child called.
        child: ChildId,
        /// The reply timeout.
        timeout: Duration,
    },
}

/// Failure to add a child at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddChildError {
    /// The supervisor already has a child with this id.
    #[error(
        "supervisor \"{supervisor}\" already has a child \"{child}\": remove it first or choose another id"
    )]
    DuplicateId {
        /// The supervisor asked.
        supervisor: ChildId,
        /// The id already in use.
        child: ChildId,
    },

    /// The supervisor has reached its maximum number of children.
    #[error(
        "supervisor \"{supervisor}\" is full: it has its maximum of {max} children; remove one before adding \"{child}\""
    )]
    Full {
        /// The supervisor asked.
        supervisor: ChildId,
        /// The child that was not added.
        child: ChildId,
        /// The configured maximum.
        max: usize,
    },

    /// The child failed to start; it was not added.
    #[error(
        "child \"{child}\" failed to start under supervisor \"{supervisor}\": {reason}; it was not added, so fix the cause and add it again"
    )]
    StartFailed {
        /// The supervisor asked.
        supervisor: ChildId,
        /// The child that failed.
        child: ChildId,
        /// The start error or panic, as text.
        reason: String,
    },

    /// The supervisor could not be reached.
    #[error(transparent)]
    Supervisor(#[from] CallError),
}

/// Failure to remove a child at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoveChildError {
    /// The supervisor has no child with this id.
    #[error(
        "supervisor \"{supervisor}\" has no child \"{child}\"; a snapshot lists the ids it has"
    )]
    NotFound {
        /// The supervisor asked.
        supervisor: ChildId,
        /// The missing id.
        child: ChildId,
    },

    /// The supervisor could not be reached.
    #[error(transparent)]
    Supervisor(#[from] CallError),
}
