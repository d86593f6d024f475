//! Stable handles: typed references that follow a child across restarts.

use std::fmt;
use std::time::Duration;

use ractor::{ActorId, ActorRef, ActorStatus, Message, MessagingErr, RpcReplyPort};
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::CallError;
use super::spec::ChildId;

/// How long a call waits for a running incarnation unless the handle sets another bound.
pub const DEFAULT_WAIT_BOUND: Duration = Duration::from_secs(5);

/// The state a child's handles read: the running incarnation, if any.
///
/// The supervisor (or, for a root supervisor, [`Supervisor`](super::Supervisor)) is the only
/// writer, so the value changes only when the supervisor has decided what happens to the child.
pub(crate) enum Slot<M> {
    /// No incarnation is running, but one is expected: before the first start, or during a
    /// restart gap.
    Pending,
    /// The current incarnation. It may already have exited if the supervisor has not yet handled
    /// the exit; handles check its status before sending.
    Running(ActorRef<M>),
    /// The child will not run again under this supervisor.
    Stopped,
}

/// A typed reference to a supervised child that always reaches its current incarnation.
///
/// Cloning is cheap. A message is delivered to a running incarnation or, during a restart gap, to
/// the next one once it has started. If none is running within the wait bound, the call fails
/// with [`CallError::Unavailable`]. A message is never handed to an incarnation that has already
/// exited. A message accepted by an incarnation that then fails before handling it is lost: a
/// call reports that as [`CallError::NoReply`], a cast cannot.
pub struct ChildHandle<M> {
    child: ChildId,
    slot: watch::Receiver<Slot<M>>,
    wait_bound: Duration,
}

impl<M> Clone for ChildHandle<M> {
    fn clone(&self) -> Self {
        Self {
            child: self.child.clone(),
            slot: self.slot.clone(),
            wait_bound: self.wait_bound,
        }
    }
}

impl<M> fmt::Debug for ChildHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildHandle")
            .field("child", &self.child)
            .field("wait_bound", &self.wait_bound)
            .finish_non_exhaustive()
    }
}

impl<M: Message> ChildHandle<M> {
    pub(crate) fn new(child: ChildId, slot: watch::Receiver<Slot<M>>) -> Self {
        Self {
            child,
            slot,
            wait_bound: DEFAULT_WAIT_BOUND,
        }
    }

    /// Wraps an actor that no supervisor restarts, so code written against handles also works
    /// with a plain actor: calls reach `actor` while it runs and fail with
    /// [`CallError::Stopped`] once it has exited.
    pub fn unsupervised(actor: ActorRef<M>) -> Self {
        let child = ChildId::new(format!("actor-{}", actor.get_id()))
            .expect("an actor id renders as digits and dots, which the id rule allows");
        // The sender is dropped at once: the slot never changes, and a waiting call sees the
        // closed channel as "stopped".
        let (_sender, slot) = watch::channel(Slot::Running(actor));
        Self::new(child, slot)
    }

    /// Returns the same handle with another bound on how long a call waits for a running
    /// incarnation.
    pub fn with_wait_bound(mut self, bound: Duration) -> Self {
        self.wait_bound = bound;
        self
    }

    /// Returns the child's id.
    pub fn id(&self) -> &ChildId {
        &self.child
    }

    /// Returns the bound on how long a call waits for a running incarnation.
    pub fn wait_bound(&self) -> Duration {
        self.wait_bound
    }

    /// Returns the current incarnation, if one is running now. Prefer [`ChildHandle::call`] and
    /// [`ChildHandle::cast`]: an `ActorRef` kept from here goes stale at the next restart.
    pub fn current(&self) -> Option<ActorRef<M>> {
        match &*self.slot.borrow() {
            Slot::Running(actor) if is_alive(actor) => Some(actor.clone()),
            _ => None,
        }
    }

    /// Waits up to the wait bound for a running incarnation and returns it.
    pub async fn running(&self) -> Result<ActorRef<M>, CallError> {
        let deadline = Instant::now() + self.wait_bound;
        self.wait_running(deadline, None).await
    }

    /// Sends `message` without waiting for a reply.
    ///
    /// Waits up to the wait bound for a running incarnation. Delivery is at most once: the
    /// message is lost if the incarnation that accepted it fails before handling it.
    pub async fn cast(&self, message: M) -> Result<(), CallError> {
        self.deliver(message).await
    }

    /// Sends the request built by `build` and waits for the reply.
    ///
    /// Waits up to the wait bound for a running incarnation, then up to `reply_timeout` (if set)
    /// for the reply. The request reaches exactly one incarnation; if that one stops before
    /// replying, the call fails with [`CallError::NoReply`] instead of sending the request again.
    pub async fn call<R, F>(
        &self,
        build: F,
        reply_timeout: Option<Duration>,
    ) -> Result<R, CallError>
    where
        F: FnOnce(RpcReplyPort<R>) -> M,
        R: Send + 'static,
    {
        let (sender, receiver) = ractor::concurrency::oneshot();
        let port: RpcReplyPort<R> = match reply_timeout {
            Some(timeout) => (sender, timeout).into(),
            None => sender.into(),
        };
        self.deliver(build(port)).await?;

        let reply =
            match reply_timeout {
                Some(timeout) => tokio::time::timeout(timeout, receiver).await.map_err(|_| {
                    CallError::Timeout {
                        child: self.child.clone(),
                        timeout,
                    }
                })?,
                None => receiver.await,
            };
        reply.map_err(|_| CallError::NoReply {
            child: self.child.clone(),
        })
    }

    /// Hands `message` to a live incarnation, waiting for one up to the wait bound.
    async fn deliver(&self, message: M) -> Result<(), CallError> {
        // Fast path: the current incarnation is alive and accepts the message.
        let current = match &*self.slot.borrow() {
            Slot::Running(actor) => Some(actor.clone()),
            Slot::Pending => None,
            Slot::Stopped => return Err(self.stopped()),
        };
        let (mut message, mut rejected_by) = match current {
            Some(actor) if is_alive(&actor) => match actor.send_message(message) {
                Ok(()) => return Ok(()),
                Err(error) => (self.take_back(error)?, Some(actor.get_id())),
            },
            Some(actor) => (message, Some(actor.get_id())),
            None => (message, None),
        };

        // Slow path: wait for the supervisor to publish a live incarnation.
        let deadline = Instant::now() + self.wait_bound;
        loop {
            let actor = self.wait_running(deadline, rejected_by).await?;
            match actor.send_message(message) {
                Ok(()) => return Ok(()),
                Err(error) => {
                    message = self.take_back(error)?;
                    rejected_by = Some(actor.get_id());
                }
            }
        }
    }

    /// Waits until the slot contains a live incarnation other than `rejected_by`, or the child is
    /// stopped, or `deadline` passes.
    async fn wait_running(
        &self,
        deadline: Instant,
        rejected_by: Option<ActorId>,
    ) -> Result<ActorRef<M>, CallError> {
        let started = Instant::now();
        let mut slot = self.slot.clone();
        let ready = |value: &Slot<M>| match value {
            Slot::Running(actor) => is_alive(actor) && Some(actor.get_id()) != rejected_by,
            Slot::Pending => false,
            Slot::Stopped => true,
        };

        let waited = tokio::time::timeout_at(deadline, slot.wait_for(ready)).await;
        let value = match waited {
            Err(_elapsed) => {
                return Err(CallError::Unavailable {
                    child: self.child.clone(),
                    waited: Instant::now().saturating_duration_since(started),
                });
            }
            // Every sender is gone: the supervisor and its spec no longer exist.
            Ok(Err(_closed)) => return Err(self.stopped()),
            Ok(Ok(value)) => value,
        };

        match &*value {
            Slot::Running(actor) => Ok(actor.clone()),
            Slot::Pending | Slot::Stopped => Err(self.stopped()),
        }
    }

    /// Recovers the message from a failed send, which happens when the incarnation exited
    /// between the status check and the send.
    fn take_back(&self, error: MessagingErr<M>) -> Result<M, CallError> {
        match error {
            MessagingErr::SendErr(message) => Ok(message),
            MessagingErr::ChannelClosed | MessagingErr::InvalidActorType => {
                Err(CallError::NoReply {
                    child: self.child.clone(),
                })
            }
        }
    }

    fn stopped(&self) -> CallError {
        CallError::Stopped {
            child: self.child.clone(),
        }
    }
}

fn is_alive<M>(actor: &ActorRef<M>) -> bool {
    actor.get_status() < ActorStatus::Stopping
}
