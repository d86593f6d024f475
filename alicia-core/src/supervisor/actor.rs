//! The supervisor actor: starts, watches, restarts and stops its children.
//!
//! Concurrency contract: all child bookkeeping lives in [`SupervisorState`] and is touched only by
//! the supervisor's own handlers, one at a time. Exits of children arrive as ractor supervision
//! events. Backoff delays run in timer tasks that send [`Request::RestartDue`] back, so the
//! supervisor keeps replying to snapshots and stop requests while a child waits out its backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RactorErr, RpcReplyPort,
    SupervisionEvent,
};
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backoff::{Backoff, unit_sample};
use super::error::{
    AddChildError, ConfigError, EscalationError, RemoveChildError, SupervisorError,
};
use super::handle::Slot;
use super::snapshot::{ChildSnapshot, ChildState, FailureRecord, SupervisorSnapshot};
use super::spec::{ChildId, ChildKind, ErasedChild, Restart, SupervisorSpec};
use super::strategy::{Intensity, RestartWindow, Strategy};
use crate::clock::SharedClock;

/// How long the supervisor waits for a killed child to finish exiting before it moves on.
const KILL_WAIT: Duration = Duration::from_secs(1);

/// The exit reason ractor (0.16) gives an actor stopped by a kill signal.
///
/// NOTE: ractor reports a kill as a normal termination with this reason, so an actor that stops
/// itself with the reason "killed" is also counted as a failure.
const KILLED_REASON: &str = "killed";

/// A request to a supervisor. Build it through [`ChildHandle`](super::ChildHandle)'s supervisor
/// methods ([`snapshot`](super::ChildHandle::snapshot),
/// [`add_child`](super::ChildHandle::add_child), [`remove_child`](super::ChildHandle::remove_child)).
pub struct SupervisorMsg(pub(crate) Request);

pub(crate) enum Request {
    Snapshot(RpcReplyPort<SupervisorSnapshot>),
    AddChild(ErasedChild, RpcReplyPort<Result<(), AddChildError>>),
    RemoveChild(ChildId, RpcReplyPort<Result<(), RemoveChildError>>),
    /// Sent by a backoff timer: start the children waiting for `token`.
    RestartDue {
        token: u64,
    },
}

/// The result a root supervisor ended with, for [`Supervisor::wait`](super::Supervisor::wait).
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    result: Mutex<Option<Result<(), SupervisorError>>>,
}

impl Outcome {
    /// Records `result` unless an earlier one was recorded.
    pub(crate) fn record(&self, result: Result<(), SupervisorError>) {
        let mut slot = self
            .result
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.get_or_insert(result);
    }

    pub(crate) fn take(&self) -> Option<Result<(), SupervisorError>> {
        self.result
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

pub(crate) struct SupervisorActor;

pub(crate) struct SupervisorArgs {
    pub(crate) spec: SupervisorSpec,
    /// Present only for a root supervisor, which has no parent to fail to.
    pub(crate) outcome: Option<Arc<Outcome>>,
}

pub(crate) struct SupervisorState {
    id: ChildId,
    strategy: Strategy,
    intensity: Intensity,
    window: RestartWindow,
    backoff: Backoff,
    rng: StdRng,
    max_children: Option<usize>,
    clock: SharedClock,
    /// In start order.
    children: Vec<ChildEntry>,
    /// Pending backoff timers by restart token; aborted when no child waits for them any more.
    timers: HashMap<u64, JoinHandle<()>>,
    next_token: u64,
    outcome: Option<Arc<Outcome>>,
    /// The supervisor's own handle channel; only a root supervisor writes to it here.
    slot: Arc<watch::Sender<Slot<SupervisorMsg>>>,
}

struct ChildEntry {
    spec: ErasedChild,
    status: Status,
    /// Start attempts after the first one.
    restart_count: u64,
    started_once: bool,
    last_failure: Option<FailureRecord>,
    /// Successive restarts since the child last ran stably; the exponent of its backoff.
    backoff_attempt: u32,
}

enum Status {
    Running {
        cell: ActorCell,
        since: Instant,
    },
    /// Waiting for the timer with `token`, due at `due`.
    Restarting {
        token: u64,
        due: Instant,
    },
    Stopped,
}

impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        arguments: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let SupervisorArgs { spec, outcome } = arguments;
        validate(&spec)?;

        let mut state = SupervisorState::new(spec, outcome);
        tracing::info!(
            supervisor = %state.id,
            children = state.children.len(),
            strategy = ?state.strategy,
            "supervisor starting"
        );

        // Every declared child waits for the first token, due now. Starting them takes the same
        // path as a restart, so a child that fails to start is handled by the restart policy.
        let token = state.new_token();
        let now = Instant::now();
        for entry in &mut state.children {
            entry.status = Status::Restarting { token, due: now };
        }
        if let Err(escalation) = state.start_due(&myself, token).await {
            state.escalate(&escalation).await;
            return Err(Box::new(escalation));
        }
        state.remove_exited_temporary();
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let result = match message.0 {
            Request::Snapshot(reply) => {
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send(state.snapshot());
                Ok(())
            }
            Request::AddChild(child, reply) => {
                let result = state.add_child(&myself, child).await;
                let _ = reply.send(result);
                Ok(())
            }
            Request::RemoveChild(id, reply) => {
                let result = state.remove_child(&id).await;
                let _ = reply.send(result);
                Ok(())
            }
            Request::RestartDue { token } => {
                state.timers.remove(&token);
                state.start_due(&myself, token).await
            }
        };
        state.finish_step(result).await
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason, abnormal) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string(), true),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let killed = reason.as_deref() == Some(KILLED_REASON);
                let text = match reason {
                    Some(reason) if killed => {
                        format!("{reason} by a signal the supervisor did not send")
                    }
                    Some(reason) => format!("stopped: {reason}"),
                    None => "stopped normally".to_string(),
                };
                (cell, text, killed)
            }
            _ => return Ok(()),
        };

        // Exits of incarnations the supervisor stopped itself, or already replaced, are stale.
        let Some(index) = state.running_index(cell.get_id()) else {
            return Ok(());
        };
        let result = state.child_exited(&myself, index, reason, abnormal).await;
        state.finish_step(result).await
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        tracing::info!(supervisor = %state.id, "supervisor stopping");
        state.stop_all_children().await;
        state.finish_root(Ok(()));
        tracing::info!(supervisor = %state.id, "supervisor stopped");
        Ok(())
    }
}

fn validate(spec: &SupervisorSpec) -> Result<(), ConfigError> {
    for (position, child) in spec.children.iter().enumerate() {
        let repeated = spec.children[..position]
            .iter()
            .any(|earlier| earlier.id == child.id);
        if repeated {
            return Err(ConfigError::DuplicateChild {
                supervisor: spec.id.clone(),
                child: child.id.clone(),
            });
        }
    }

    if let Some(max) = spec.max_children
        && spec.children.len() > max
    {
        return Err(ConfigError::TooManyChildren {
            supervisor: spec.id.clone(),
            count: spec.children.len(),
            max,
        });
    }
    Ok(())
}

impl SupervisorState {
    fn new(spec: SupervisorSpec, outcome: Option<Arc<Outcome>>) -> Self {
        let children = spec
            .children
            .into_iter()
            .map(|spec| ChildEntry {
                spec,
                status: Status::Stopped,
                restart_count: 0,
                started_once: false,
                last_failure: None,
                backoff_attempt: 0,
            })
            .collect();
        Self {
            id: spec.id,
            strategy: spec.strategy,
            intensity: spec.intensity,
            window: RestartWindow::new(spec.intensity),
            backoff: spec.backoff,
            rng: spec.jitter.rng(),
            max_children: spec.max_children,
            clock: spec.clock,
            children,
            timers: HashMap::new(),
            next_token: 0,
            outcome,
            slot: spec.slot,
        }
    }

    fn new_token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn running_index(&self, actor: ActorId) -> Option<usize> {
        self.children.iter().position(|entry| match &entry.status {
            Status::Running { cell, .. } => cell.get_id() == actor,
            _ => false,
        })
    }

    /// Ends a handler step: on escalation stops everything and fails the supervisor, otherwise
    /// removes exited temporary children.
    async fn finish_step(
        &mut self,
        result: Result<(), EscalationError>,
    ) -> Result<(), ActorProcessingErr> {
        match result {
            Ok(()) => {
                self.remove_exited_temporary();
                Ok(())
            }
            Err(escalation) => {
                self.escalate(&escalation).await;
                Err(Box::new(escalation))
            }
        }
    }

    /// Handles the exit, or failed start, of the child at `index`: records it and restarts the
    /// child (and its strategy's siblings) if its restart type requires it.
    async fn child_exited(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        index: usize,
        reason: String,
        abnormal: bool,
    ) -> Result<(), EscalationError> {
        let backoff_reset_after = self.backoff.reset_after();
        let at = self.clock.now();
        let entry = &mut self.children[index];

        let ran_stably = match &entry.status {
            Status::Running { since, .. } => since.elapsed() >= backoff_reset_after,
            _ => false,
        };
        if ran_stably {
            entry.backoff_attempt = 0;
        }
        entry.status = Status::Stopped;
        if abnormal {
            entry.last_failure = Some(FailureRecord {
                reason: reason.clone(),
                at,
            });
            tracing::warn!(supervisor = %self.id, child = %entry.spec.id, %reason, "child failed");
        } else {
            tracing::info!(supervisor = %self.id, child = %entry.spec.id, %reason, "child exited");
        }

        let restart = match entry.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        };
        if !restart {
            entry.spec.starter.mark_stopped();
            tracing::info!(
                supervisor = %self.id,
                child = %entry.spec.id,
                restart = ?entry.spec.restart,
                "child will not be restarted"
            );
            return Ok(());
        }

        entry.spec.starter.mark_pending();
        self.plan_restart(myself, index, reason).await
    }

    /// Counts a restart against the intensity, stops the siblings the strategy restarts along
    /// with the child at `index`, and schedules all of them after the child's backoff delay.
    async fn plan_restart(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        index: usize,
        last_error: String,
    ) -> Result<(), EscalationError> {
        let now = Instant::now();
        if let Err(exceeded) = self.window.record(now) {
            return Err(EscalationError {
                supervisor: self.id.clone(),
                child: self.children[index].spec.id.clone(),
                restarts: exceeded.restarts,
                max_restarts: self.intensity.max_restarts,
                period: self.intensity.period,
                last_error,
            });
        }

        let attempt = self.children[index].backoff_attempt;
        self.children[index].backoff_attempt = attempt.saturating_add(1);
        let delay = self.backoff.delay(attempt, unit_sample(&mut self.rng));

        let token = self.new_token();
        let due = now + delay;
        self.children[index].status = Status::Restarting { token, due };

        let set = self.strategy.restart_set(index, self.children.len());
        for &sibling in set.iter().rev() {
            if sibling != index {
                self.stop_for_restart(sibling).await;
            }
        }
        for &member in &set {
            let entry = &mut self.children[member];
            if !matches!(entry.status, Status::Stopped) {
                entry.status = Status::Restarting { token, due };
            }
        }

        tracing::info!(
            supervisor = %self.id,
            child = %self.children[index].spec.id,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            attempt,
            restarting = set.len(),
            "restart scheduled"
        );
        self.schedule(myself, token, delay);
        self.abort_unused_timers();
        Ok(())
    }

    /// Stops a sibling that its strategy restarts along with a failed child. A temporary sibling
    /// is stopped for good, as it is never restarted.
    async fn stop_for_restart(&mut self, index: usize) {
        let entry = &mut self.children[index];
        if let Status::Running { cell, .. } = &entry.status {
            let cell = cell.clone();
            entry.spec.starter.mark_pending();
            shutdown_child(&self.id, &entry.spec, &cell, "sibling restart").await;
        }

        if entry.spec.restart == Restart::Temporary {
            entry.status = Status::Stopped;
            entry.spec.starter.mark_stopped();
        } else if matches!(entry.status, Status::Running { .. }) {
            // Placeholder until `plan_restart` assigns the new token.
            entry.status = Status::Restarting {
                token: 0,
                due: Instant::now(),
            };
        }
    }

    fn schedule(&mut self, myself: &ActorRef<SupervisorMsg>, token: u64, delay: Duration) {
        let message = SupervisorMsg(Request::RestartDue { token });
        if delay.is_zero() {
            // Through the mailbox rather than inline, so exits already queued are handled first.
            if myself.cast(message).is_err() {
                tracing::debug!(supervisor = %self.id, "supervisor is stopping; restart dropped");
            }
            return;
        }

        let target = myself.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // A stopped supervisor no longer restarts anything.
            let _ = target.cast(message);
        });
        self.timers.insert(token, timer);
    }

    fn abort_unused_timers(&mut self) {
        let children = &self.children;
        self.timers.retain(|token, timer| {
            let used = children.iter().any(|entry| {
                matches!(entry.status, Status::Restarting { token: waiting, .. } if waiting == *token)
            });
            if !used {
                timer.abort();
            }
            used
        });
    }

    /// Starts, in start order, every child waiting for `token`.
    async fn start_due(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        token: u64,
    ) -> Result<(), EscalationError> {
        for index in 0..self.children.len() {
            let waiting = matches!(
                self.children[index].status,
                Status::Restarting { token: waiting, .. } if waiting == token
            );
            if !waiting {
                continue;
            }

            if let Err(reason) = self.start_child(myself, index).await {
                // A failed start is a failure like any other. The policy may re-plan children
                // later in this loop, and those then wait for a new token and are skipped here.
                self.child_exited(myself, index, reason, true).await?;
            }
        }
        Ok(())
    }

    async fn start_child(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        index: usize,
    ) -> Result<(), String> {
        let entry = &mut self.children[index];
        if entry.started_once {
            entry.restart_count += 1;
        }
        entry.started_once = true;

        // NOTE: a start has no time limit. A child whose `pre_start` never returns blocks this
        // supervisor, which then handles no snapshot or stop request until it does.
        let started = entry
            .spec
            .starter
            .start(entry.spec.registered_name.clone(), myself.get_cell())
            .await;
        match started {
            Ok(cell) => {
                tracing::info!(
                    supervisor = %self.id,
                    child = %entry.spec.id,
                    restart_count = entry.restart_count,
                    "child started"
                );
                entry.status = Status::Running {
                    cell,
                    since: Instant::now(),
                };
                Ok(())
            }
            Err(reason) => {
                entry.status = Status::Stopped;
                tracing::warn!(supervisor = %self.id, child = %entry.spec.id, %reason, "child failed to start");
                Err(reason)
            }
        }
    }

    async fn add_child(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        child: ErasedChild,
    ) -> Result<(), AddChildError> {
        if self.children.iter().any(|entry| entry.spec.id == child.id) {
            return Err(AddChildError::DuplicateId {
                supervisor: self.id.clone(),
                child: child.id,
            });
        }
        if let Some(max) = self.max_children
            && self.children.len() >= max
        {
            return Err(AddChildError::Full {
                supervisor: self.id.clone(),
                child: child.id,
                max,
            });
        }

        self.children.push(ChildEntry {
            spec: child,
            status: Status::Stopped,
            restart_count: 0,
            started_once: false,
            last_failure: None,
            backoff_attempt: 0,
        });
        let index = self.children.len() - 1;
        match self.start_child(myself, index).await {
            Ok(()) => Ok(()),
            Err(reason) => {
                // A child that cannot start is not kept, so the caller can fix it and add again.
                let entry = self.children.remove(index);
                entry.spec.starter.mark_stopped();
                Err(AddChildError::StartFailed {
                    supervisor: self.id.clone(),
                    child: entry.spec.id,
                    reason,
                })
            }
        }
    }

    async fn remove_child(&mut self, id: &ChildId) -> Result<(), RemoveChildError> {
        let Some(index) = self.children.iter().position(|entry| &entry.spec.id == id) else {
            return Err(RemoveChildError::NotFound {
                supervisor: self.id.clone(),
                child: id.clone(),
            });
        };

        let entry = self.children.remove(index);
        if let Status::Running { cell, .. } = &entry.status {
            shutdown_child(&self.id, &entry.spec, cell, "removed").await;
        }
        entry.spec.starter.mark_stopped();
        self.abort_unused_timers();
        tracing::info!(supervisor = %self.id, child = %id, "child removed");
        Ok(())
    }

    fn remove_exited_temporary(&mut self) {
        self.children.retain(|entry| {
            !(entry.spec.restart == Restart::Temporary && matches!(entry.status, Status::Stopped))
        });
    }

    /// Stops every child in reverse start order, each within its shutdown budget, and cancels
    /// pending restarts.
    ///
    /// A root supervisor marks its children's handles stopped. A nested one marks them pending,
    /// because its parent may restart it and them with it. If the parent does not, it marks the
    /// whole subtree stopped itself.
    async fn stop_all_children(&mut self) {
        for timer in self.timers.values() {
            timer.abort();
        }
        self.timers.clear();

        let root = self.outcome.is_some();
        for entry in self.children.iter_mut().rev() {
            if let Status::Running { cell, .. } = &entry.status {
                let cell = cell.clone();
                shutdown_child(&self.id, &entry.spec, &cell, "supervisor stopping").await;
            }
            entry.status = Status::Stopped;
            if root {
                entry.spec.starter.mark_stopped();
            } else {
                entry.spec.starter.mark_pending();
            }
        }
    }

    async fn escalate(&mut self, escalation: &EscalationError) {
        tracing::error!(
            supervisor = %self.id,
            child = %escalation.child,
            error = %escalation,
            "restart intensity exceeded; stopping all children and escalating"
        );
        self.stop_all_children().await;
        self.finish_root(Err(SupervisorError::Escalated(escalation.clone())));
    }

    /// Records how a root supervisor ended and marks its handles stopped.
    fn finish_root(&self, result: Result<(), SupervisorError>) {
        if let Some(outcome) = &self.outcome {
            outcome.record(result);
            self.slot.send_replace(Slot::Stopped);
        }
    }

    fn snapshot(&mut self) -> SupervisorSnapshot {
        let now = Instant::now();
        let children = self
            .children
            .iter()
            .map(|entry| {
                let state = match &entry.status {
                    Status::Running { since, .. } => ChildState::Running {
                        uptime: now.saturating_duration_since(*since),
                    },
                    Status::Restarting { due, .. } => ChildState::Restarting {
                        backoff_remaining: due.saturating_duration_since(now),
                    },
                    Status::Stopped => ChildState::Stopped,
                };
                let nested = match (&entry.status, entry.spec.kind) {
                    (Status::Running { .. }, ChildKind::Supervisor) => {
                        entry.spec.starter.nested_supervisor()
                    }
                    _ => None,
                };
                ChildSnapshot {
                    id: entry.spec.id.clone(),
                    kind: entry.spec.kind,
                    restart: entry.spec.restart,
                    state,
                    restart_count: entry.restart_count,
                    last_failure: entry.last_failure.clone(),
                    supervisor: None,
                    nested,
                }
            })
            .collect();

        SupervisorSnapshot {
            id: self.id.clone(),
            strategy: self.strategy,
            restarts_in_window: self.window.count(now),
            children,
        }
    }
}

/// Stops one child gracefully within its shutdown budget, then kills it if it is still running.
async fn shutdown_child(supervisor: &ChildId, child: &ErasedChild, cell: &ActorCell, why: &str) {
    let budget = child.shutdown;
    let graceful = if budget.is_zero() {
        false
    } else {
        match cell
            .stop_and_wait(Some(why.to_string()), Some(budget))
            .await
        {
            Ok(()) => true,
            Err(RactorErr::Timeout) => {
                tracing::warn!(
                    supervisor = %supervisor,
                    child = %child.id,
                    budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
                    "child did not stop within its shutdown budget; killing it"
                );
                false
            }
            // The incarnation had already exited.
            Err(_) => true,
        }
    };

    if !graceful {
        // Any error other than a timeout means the incarnation had already exited.
        if let Err(RactorErr::Timeout) = cell.kill_and_wait(Some(KILL_WAIT)).await {
            tracing::error!(
                supervisor = %supervisor,
                child = %child.id,
                "killed child did not exit within {KILL_WAIT:?}; continuing without it"
            );
        }
    }
    tracing::info!(supervisor = %supervisor, child = %child.id, reason = why, "child stopped");
}
