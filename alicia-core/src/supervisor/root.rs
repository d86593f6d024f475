//! The root of a supervision tree, and the requests every supervisor handle can make.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{Actor, ActorRef, Message, SpawnErr};
use tokio::task::JoinHandle;

use super::actor::{Outcome, Request, SupervisorActor, SupervisorArgs, SupervisorMsg};
use super::error::{
    AddChildError, CallError, ConfigError, EscalationError, RemoveChildError, SupervisorError,
};
use super::handle::{ChildHandle, Slot};
use super::snapshot::SupervisorSnapshot;
use super::spec::{ChildId, ChildSpec, SupervisorSpec};

/// A running root supervisor: the top of one node's supervision tree.
///
/// It has no parent, so when its restart intensity is exceeded it stops all its children and
/// [`Supervisor::wait`] returns the [`EscalationError`]. Several roots, even with the same child
/// ids, can run side by side in one process; none of them registers a process-global name.
/// Dropping this value does not stop the tree; call [`Supervisor::stop`].
#[derive(Debug)]
pub struct Supervisor {
    id: ChildId,
    actor: ActorRef<SupervisorMsg>,
    join: JoinHandle<()>,
    outcome: Arc<Outcome>,
    handle: ChildHandle<SupervisorMsg>,
}

impl Supervisor {
    /// Starts a root supervisor and its children in declared order.
    ///
    /// Returns once every child has started or been scheduled for a restart under the policy.
    /// Fails if the spec is invalid or the restart intensity is exceeded during start-up; the
    /// error names the child and its last error.
    pub async fn start(spec: SupervisorSpec) -> Result<Self, SupervisorError> {
        let id = spec.id.clone();
        let slot = Arc::clone(&spec.slot);
        let handle = spec.handle();
        let outcome = Arc::new(Outcome::default());
        let arguments = SupervisorArgs {
            spec,
            outcome: Some(Arc::clone(&outcome)),
        };

        let (actor, join) = SupervisorActor::spawn(None, SupervisorActor, arguments)
            .await
            .map_err(|error| start_error(&id, error))?;
        slot.send_replace(Slot::Running(actor.clone()));

        Ok(Self {
            id,
            actor,
            join,
            outcome,
            handle,
        })
    }

    /// Returns the root supervisor's id.
    pub fn id(&self) -> &ChildId {
        &self.id
    }

    /// Returns a handle to this supervisor, for snapshots and dynamic children from other tasks.
    pub fn handle(&self) -> ChildHandle<SupervisorMsg> {
        self.handle.clone()
    }

    /// Returns the supervisor actor, for linking it into a ractor tree or monitoring it.
    pub fn actor(&self) -> &ActorRef<SupervisorMsg> {
        &self.actor
    }

    /// Takes a snapshot of the whole tree, nested supervisors included.
    pub async fn snapshot(&self) -> Result<SupervisorSnapshot, CallError> {
        self.handle.tree_snapshot().await
    }

    /// Starts `child` and adds it after the existing children.
    pub async fn add_child<M: Message>(&self, child: ChildSpec<M>) -> Result<(), AddChildError> {
        self.handle.add_child(child).await
    }

    /// Stops the child `id` within its shutdown budget and removes it.
    pub async fn remove_child(&self, id: &ChildId) -> Result<(), RemoveChildError> {
        self.handle.remove_child(id).await
    }

    /// Stops every child in reverse start order, each within its shutdown budget, then the
    /// supervisor, and returns how it ended.
    pub async fn stop(self) -> Result<(), SupervisorError> {
        self.actor.stop(None);
        self.wait().await
    }

    /// Waits until the supervisor ends: `Ok` after a requested stop, the escalation error if its
    /// restart intensity was exceeded.
    pub async fn wait(self) -> Result<(), SupervisorError> {
        let joined = self.join.await;
        let outcome = self.outcome.take();
        match (outcome, joined) {
            (Some(result), _) => result,
            (None, Err(error)) => Err(SupervisorError::Failed {
                supervisor: self.id,
                reason: error.to_string(),
            }),
            (None, Ok(())) => Err(SupervisorError::Failed {
                supervisor: self.id,
                reason: "the supervisor actor exited without recording a result, which happens when it panics or is killed".to_string(),
            }),
        }
    }
}

fn start_error(supervisor: &ChildId, error: SpawnErr) -> SupervisorError {
    let reason = match error {
        SpawnErr::StartupFailed(reason) => reason,
        other => {
            return SupervisorError::Failed {
                supervisor: supervisor.clone(),
                reason: other.to_string(),
            };
        }
    };
    let reason = match reason.downcast::<EscalationError>() {
        Ok(escalation) => return SupervisorError::Escalated(*escalation),
        Err(reason) => reason,
    };
    match reason.downcast::<ConfigError>() {
        Ok(config) => SupervisorError::Config(*config),
        Err(reason) => SupervisorError::Failed {
            supervisor: supervisor.clone(),
            reason: reason.to_string(),
        },
    }
}

/// Requests to a supervisor, through a handle that follows it across restarts.
impl ChildHandle<SupervisorMsg> {
    /// Takes a snapshot of this supervisor's children, without descending into nested
    /// supervisors.
    pub async fn snapshot(&self) -> Result<SupervisorSnapshot, CallError> {
        let timeout = Some(self.wait_bound());
        self.call(|reply| SupervisorMsg(Request::Snapshot(reply)), timeout)
            .await
    }

    /// Takes a snapshot of this supervisor and, recursively, of every running nested supervisor.
    ///
    /// A nested supervisor that does not answer (for example because it is restarting right
    /// then) is shown without its own snapshot.
    pub fn tree_snapshot(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<SupervisorSnapshot, CallError>> + Send + '_>> {
        Box::pin(async move {
            let mut snapshot = self.snapshot().await?;
            for child in &mut snapshot.children {
                if let Some(nested) = child.nested.take() {
                    child.supervisor = nested.tree_snapshot().await.ok().map(Box::new);
                }
            }
            Ok(snapshot)
        })
    }

    /// Starts `child` under this supervisor, after its existing children.
    ///
    /// Fails if the id is taken, the supervisor is at its maximum, or the child fails to start.
    /// A child that fails to start is not kept.
    pub async fn add_child<M: Message>(&self, child: ChildSpec<M>) -> Result<(), AddChildError> {
        let child = child.into_erased();
        self.call(|reply| SupervisorMsg(Request::AddChild(child, reply)), None)
            .await?
    }

    /// Stops the child `id` within its shutdown budget and removes it from this supervisor.
    pub async fn remove_child(&self, id: &ChildId) -> Result<(), RemoveChildError> {
        let id = id.clone();
        self.call(|reply| SupervisorMsg(Request::RemoveChild(id, reply)), None)
            .await?
    }
}
