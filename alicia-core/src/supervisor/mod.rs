//! Supervision of ractor actors: restart policies, restart intensity, backoff and stable handles.
//!
//! ractor links a child to its parent and reports its exit, but restarts nothing. A
//! [`Supervisor`] adds the policy:
//!
//! - each child has a [`ChildSpec`]: an id, a factory that builds a fresh actor and its
//!   arguments for every start, a [`Restart`] type and a shutdown budget;
//! - a [`Strategy`] picks which children restart together (one-for-one, one-for-all,
//!   rest-for-one);
//! - an [`Intensity`] bounds restarts to N within a period. One more stops the remaining children
//!   in reverse start order and fails the supervisor to its parent, with an error that names the
//!   child and its last error;
//! - a [`Backoff`] spaces successive restarts of one child exponentially, with jitter;
//! - a [`ChildHandle`] reaches whichever incarnation is running, waits a bounded time across a
//!   restart gap and then fails with [`CallError::Unavailable`];
//! - [`SupervisorSnapshot`] shows every child's state, restart count and last failure.
//!
//! A panic in `pre_start`, `post_start` or a handler, and an error returned from a handler, are
//! failures. A normal stop is not. No supervisor or child registers a process-global name unless
//! its spec requests one, so several nodes can run the same tree side by side in one process.
//!
//! Times: backoff, intensity and shutdown budgets use tokio's clock, so tests can pause it;
//! failure times in snapshots come from the spec's [`Clock`](crate::clock::Clock).
//!
//! # Example
//!
//! A supervisor with one counter child, called through its stable handle:
//!
//! ```
//! use alicia_core::supervisor::{ChildId, ChildSpec, Supervisor, SupervisorSpec};
//! use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
//!
//! struct Counter;
//!
//! enum CounterMsg {
//!     Add(u64, RpcReplyPort<u64>),
//! }
//!
//! impl Actor for Counter {
//!     type Msg = CounterMsg;
//!     type State = u64;
//!     type Arguments = u64;
//!
//!     async fn pre_start(&self, _: ActorRef<CounterMsg>, start: u64) -> Result<u64, ActorProcessingErr> {
//!         Ok(start)
//!     }
//!
//!     async fn handle(
//!         &self,
//!         _: ActorRef<CounterMsg>,
//!         message: CounterMsg,
//!         total: &mut u64,
//!     ) -> Result<(), ActorProcessingErr> {
//!         let CounterMsg::Add(amount, reply) = message;
//!         *total += amount;
//!         let _ = reply.send(*total);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let counter = ChildSpec::new(ChildId::new("counter")?, || (Counter, 0));
//! let handle = counter.handle();
//! let supervisor = Supervisor::start(SupervisorSpec::new(ChildId::new("root")?).child(counter)).await?;
//!
//! let total = handle.call(|reply| CounterMsg::Add(2, reply), None).await?;
//! assert_eq!(total, 2);
//!
//! supervisor.stop().await?;
//! # Ok(())
//! # }
//! ```

mod actor;
mod backoff;
mod error;
mod handle;
mod root;
mod snapshot;
mod spec;
mod strategy;

pub use actor::SupervisorMsg;
pub use backoff::{Backoff, JitterSource};
pub use error::{
    AddChildError, CallError, ConfigError, EscalationError, RemoveChildError, SupervisorError,
};
pub use handle::{ChildHandle, DEFAULT_WAIT_BOUND};
pub use root::Supervisor;
pub use snapshot::{ChildSnapshot, ChildState, FailureRecord, SupervisorSnapshot};
pub use spec::{ChildId, ChildKind, ChildSpec, DEFAULT_WORKER_SHUTDOWN, Restart, SupervisorSpec};
pub use strategy::{Intensity, Strategy};
