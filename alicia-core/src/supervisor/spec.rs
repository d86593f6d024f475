//! What a supervisor runs: child ids, child specs and supervisor specs.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, Message, SpawnErr};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::watch;

use super::actor::{SupervisorActor, SupervisorArgs, SupervisorMsg};
use super::backoff::{Backoff, JitterSource};
use super::handle::{ChildHandle, Slot};
use super::strategy::{Intensity, Strategy};
use crate::clock::{SharedClock, SystemClock};
use crate::id::{IdError, validate_id};

/// Shutdown budget of a worker unless its spec sets another.
pub const DEFAULT_WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

/// Margin a nested supervisor gets on top of its children's budgets added up.
const NESTED_SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);

/// Identifies a child among the children of one supervisor, and names supervisors in logs and
/// snapshots.
///
/// Ids follow the same rule as every other Alicia id (see [`crate::id`]), because the Health
/// Monitor publishes them in topics. They are local to their supervisor: two nodes in one
/// process may both have a child `"registry"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ChildId(String);

impl ChildId {
    /// What error messages call this kind of id.
    pub const KIND: &'static str = "child";

    /// Validates `value` and wraps it.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        validate_id(Self::KIND, &value)?;
        Ok(Self(value))
    }

    /// Returns the id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ChildId {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::new(value)
    }
}

impl TryFrom<&str> for ChildId {
    type Error = IdError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl AsRef<str> for ChildId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ChildId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::new(value).map_err(serde::de::Error::custom)
    }
}

/// When a child that exited is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always, whether it failed or stopped normally.
    #[default]
    Permanent,
    /// Only after a failure (panic, returned error, or a kill the supervisor did not request).
    Transient,
    /// Never; the child is removed from the supervisor when it exits.
    Temporary,
}

/// Whether a child is a plain actor or a supervisor of its own children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// An actor that does work.
    Worker,
    /// A nested supervisor.
    Supervisor,
}

/// A boxed future, as the type-erased child starter returns it.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts incarnations of one child and publishes them to its handles, without the supervisor
/// knowing the child's actor type.
pub(crate) trait StartChild: Send + Sync + 'static {
    /// Builds a fresh actor with the factory and spawns it linked to `supervisor`. On success the
    /// new incarnation is published to the child's handles before this returns.
    fn start(
        &self,
        name: Option<String>,
        supervisor: ActorCell,
    ) -> BoxFuture<'_, Result<ActorCell, String>>;

    /// Tells handles that no incarnation is running but one is expected.
    fn mark_pending(&self);

    /// Tells handles that the child will not run again. For a nested supervisor this reaches its
    /// own children too, which cannot run again without it.
    fn mark_stopped(&self);

    /// Returns the handle of a nested supervisor, for tree snapshots.
    fn nested_supervisor(&self) -> Option<ChildHandle<SupervisorMsg>>;
}

struct ActorStarter<A: Actor, F> {
    factory: F,
    slot: Arc<watch::Sender<Slot<A::Msg>>>,
    nested: Option<ChildHandle<SupervisorMsg>>,
    /// The children of a nested supervisor; empty for a worker.
    nested_children: Vec<ErasedChild>,
    _actor: PhantomData<fn() -> A>,
}

impl<A, F> StartChild for ActorStarter<A, F>
where
    A: Actor,
    F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
{
    fn start(
        &self,
        name: Option<String>,
        supervisor: ActorCell,
    ) -> BoxFuture<'_, Result<ActorCell, String>> {
        Box::pin(async move {
            // A panicking factory is a failed start of this child, not a crash of the supervisor.
            let built = std::panic::catch_unwind(AssertUnwindSafe(|| (self.factory)()));
            let (actor, arguments) =
                built.map_err(|panic| format!("child factory panicked: {}", panic_text(&panic)))?;

            let (actor_ref, _join) = A::spawn_linked(name, actor, arguments, supervisor)
                .await
                .map_err(describe_spawn_error)?;

            let cell = actor_ref.get_cell();
            self.slot.send_replace(Slot::Running(actor_ref));
            Ok(cell)
        })
    }

    fn mark_pending(&self) {
        self.slot.send_replace(Slot::Pending);
    }

    fn mark_stopped(&self) {
        self.slot.send_replace(Slot::Stopped);
        for child in &self.nested_children {
            child.starter.mark_stopped();
        }
    }

    fn nested_supervisor(&self) -> Option<ChildHandle<SupervisorMsg>> {
        self.nested.clone()
    }
}

fn describe_spawn_error(error: SpawnErr) -> String {
    match error {
        SpawnErr::StartupFailed(reason) => format!("pre_start failed: {reason}"),
        SpawnErr::ActorAlreadyRegistered(name) => format!(
            "the actor name \"{name}\" is already registered in this process; an earlier incarnation may still be stopping"
        ),
        SpawnErr::ActorAlreadyStarted => "the actor was already started".to_string(),
    }
}

/// Extracts the text of a panic payload.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

/// A child as the supervisor keeps it, with the actor type erased.
#[derive(Clone)]
pub(crate) struct ErasedChild {
    pub(crate) id: ChildId,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Duration,
    pub(crate) kind: ChildKind,
    pub(crate) registered_name: Option<String>,
    pub(crate) starter: Arc<dyn StartChild>,
}

impl fmt::Debug for ErasedChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErasedChild")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("registered_name", &self.registered_name)
            .finish_non_exhaustive()
    }
}

/// How to run one child: its id, a factory for fresh incarnations, when to restart it and how
/// long it may take to stop.
///
/// `M` is the child's message type; [`ChildSpec::handle`] returns handles typed with it. A spec
/// belongs to one supervisor: build a new spec (and so new handles) for each node.
pub struct ChildSpec<M: Message> {
    child: ErasedChild,
    slot: Arc<watch::Sender<Slot<M>>>,
}

impl<M: Message> fmt::Debug for ChildSpec<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("child", &self.child)
            .finish_non_exhaustive()
    }
}

impl<M: Message> ChildSpec<M> {
    /// Creates a permanent worker whose every incarnation is built by `factory`: the actor and the
    /// arguments its `pre_start` receives.
    pub fn new<A, F>(id: ChildId, factory: F) -> Self
    where
        A: Actor<Msg = M>,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let (sender, _) = watch::channel(Slot::Pending);
        let slot = Arc::new(sender);
        let starter = ActorStarter::<A, F> {
            factory,
            slot: Arc::clone(&slot),
            nested: None,
            nested_children: Vec::new(),
            _actor: PhantomData,
        };
        Self {
            child: ErasedChild {
                id,
                restart: Restart::Permanent,
                shutdown: DEFAULT_WORKER_SHUTDOWN,
                kind: ChildKind::Worker,
                registered_name: None,
                starter: Arc::new(starter),
            },
            slot,
        }
    }

    /// Sets when the child is restarted (permanent unless set).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.child.restart = restart;
        self
    }

    /// Sets how long the child may take to stop gracefully before it is killed. Zero kills it at
    /// once.
    pub fn shutdown(mut self, budget: Duration) -> Self {
        self.child.shutdown = budget;
        self
    }

    /// Registers every incarnation under `name` in ractor's process-global registry.
    ///
    /// Leave it unset unless other code looks the actor up by name: two nodes in one process
    /// that register the same name collide, and the second start fails.
    pub fn registered_name(mut self, name: impl Into<String>) -> Self {
        self.child.registered_name = Some(name.into());
        self
    }

    /// Returns the child's id.
    pub fn id(&self) -> &ChildId {
        &self.child.id
    }

    /// Returns a handle that reaches whichever incarnation of this child is running.
    pub fn handle(&self) -> ChildHandle<M> {
        ChildHandle::new(self.child.id.clone(), self.slot.subscribe())
    }

    pub(crate) fn into_erased(self) -> ErasedChild {
        self.child
    }
}

impl ChildSpec<SupervisorMsg> {
    /// Creates a permanent nested supervisor running `spec`.
    ///
    /// Its shutdown budget is its children's budgets added up plus one second, so that it can
    /// stop them one after another before it is killed. The child handle and
    /// [`SupervisorSpec::handle`] share one channel, so both reach every incarnation.
    pub fn supervisor(spec: SupervisorSpec) -> Self {
        let shutdown = spec
            .children
            .iter()
            .fold(NESTED_SHUTDOWN_MARGIN, |total, child| {
                total.saturating_add(child.shutdown)
            });
        let id = spec.id.clone();
        let slot = Arc::clone(&spec.slot);
        let nested = ChildHandle::new(id.clone(), slot.subscribe());
        let nested_children = spec.children.clone();

        let factory = move || {
            let arguments = SupervisorArgs {
                spec: spec.clone(),
                outcome: None,
            };
            (SupervisorActor, arguments)
        };
        let starter = ActorStarter::<SupervisorActor, _> {
            factory,
            slot: Arc::clone(&slot),
            nested: Some(nested),
            nested_children,
            _actor: PhantomData,
        };

        Self {
            child: ErasedChild {
                id,
                restart: Restart::Permanent,
                shutdown,
                kind: ChildKind::Supervisor,
                registered_name: None,
                starter: Arc::new(starter),
            },
            slot,
        }
    }
}

/// How a supervisor runs its children: its id, strategy, restart intensity, backoff and the
/// children in start order.
#[derive(Clone)]
pub struct SupervisorSpec {
    pub(crate) id: ChildId,
    pub(crate) strategy: Strategy,
    pub(crate) intensity: Intensity,
    pub(crate) backoff: Backoff,
    pub(crate) jitter: JitterSource,
    pub(crate) max_children: Option<usize>,
    pub(crate) children: Vec<ErasedChild>,
    pub(crate) clock: SharedClock,
    /// Publishes the supervisor's running incarnation to its handles.
    pub(crate) slot: Arc<watch::Sender<Slot<SupervisorMsg>>>,
}

impl fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorSpec")
            .field("id", &self.id)
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .field("max_children", &self.max_children)
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

impl SupervisorSpec {
    /// Creates a one-for-one supervisor with the default intensity and backoff and no children.
    pub fn new(id: ChildId) -> Self {
        let (sender, _) = watch::channel(Slot::Pending);
        Self {
            id,
            strategy: Strategy::OneForOne,
            intensity: Intensity::default(),
            backoff: Backoff::default(),
            jitter: JitterSource::default(),
            max_children: None,
            children: Vec::new(),
            clock: SystemClock::shared(),
            slot: Arc::new(sender),
        }
    }

    /// Sets the restart strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the restart intensity.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Sets the backoff schedule between successive restarts of one child.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets where backoff jitter comes from; a fixed seed makes the delays repeatable.
    pub fn jitter(mut self, source: JitterSource) -> Self {
        self.jitter = source;
        self
    }

    /// Limits how many children the supervisor may have, declared and added at run time together.
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Sets the clock that failure times in snapshots are read from.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Appends a child; children start in the order they are added.
    pub fn child<M: Message>(mut self, child: ChildSpec<M>) -> Self {
        self.children.push(child.into_erased());
        self
    }

    /// Returns the supervisor's id.
    pub fn id(&self) -> &ChildId {
        &self.id
    }

    /// Returns a handle that reaches whichever incarnation of this supervisor is running, for
    /// snapshots and dynamic children.
    pub fn handle(&self) -> ChildHandle<SupervisorMsg> {
        ChildHandle::new(self.id.clone(), self.slot.subscribe())
    }
}
