//! A probe actor that records its starts and stops and fails on request.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alicia_core::supervisor::{
    Backoff, ChildHandle, ChildId, ChildSpec, Intensity, Strategy, Supervisor, SupervisorSnapshot,
    SupervisorSpec,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;

/// Lines like `start a#1`, `stop a#1`, `start-failed b#2`, in the order they happened.
#[derive(Clone, Default)]
pub struct Journal {
    entries: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Journal {
    pub fn record(&self, line: String) {
        self.entries
            .lock()
            .expect("journal lock is never poisoned: no holder panics")
            .push((Instant::now(), line));
    }

    pub fn lines(&self) -> Vec<String> {
        self.entries
            .lock()
            .expect("journal lock is never poisoned: no holder panics")
            .iter()
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Lines recorded after the first `skip` lines.
    pub fn lines_after(&self, skip: usize) -> Vec<String> {
        self.lines().into_iter().skip(skip).collect()
    }

    /// Times of the lines that start with `prefix`.
    pub fn times_of(&self, prefix: &str) -> Vec<Instant> {
        self.entries
            .lock()
            .expect("journal lock is never poisoned: no holder panics")
            .iter()
            .filter(|(_, line)| line.starts_with(prefix))
            .map(|(time, _)| *time)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .expect("journal lock is never poisoned: no holder panics")
            .len()
    }
}

/// How a probe misbehaves.
#[derive(Clone, Default)]
pub struct Behavior {
    /// Starts that fail (panic in `pre_start`) before one succeeds; `u32::MAX` fails forever.
    pub start_failures: Arc<AtomicU32>,
    /// `post_stop` never returns.
    pub stuck_in_post_stop: bool,
    /// `Work` panics on every n-th message of an incarnation; zero never panics.
    pub panic_every: u64,
    /// Writes nothing to the journal, so that the journal does not grow the heap.
    pub unjournaled: bool,
}

impl Behavior {
    pub fn failing_starts(count: u32) -> Self {
        Self {
            start_failures: Arc::new(AtomicU32::new(count)),
            ..Self::default()
        }
    }
}

pub enum ProbeMsg {
    /// Replies with the incarnation number.
    Ping(RpcReplyPort<u64>),
    /// Panics in the handler.
    Panic,
    /// Returns an error from the handler.
    Fail,
    /// Stops itself normally.
    Exit,
    /// Replies with the count of `Work` messages this incarnation handled.
    #[allow(dead_code, reason = "only the crash-storm test binary sends it")]
    Work(RpcReplyPort<u64>),
}

pub struct Probe {
    name: String,
    journal: Journal,
    behavior: Behavior,
    live: Arc<AtomicUsize>,
}

pub struct ProbeState {
    incarnation: u64,
    handled: u64,
    _live: LiveGuard,
}

impl Probe {
    fn record(&self, line: String) {
        if !self.behavior.unjournaled {
            self.journal.record(line);
        }
    }
}

/// Counts a live incarnation until its state is dropped.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Actor for Probe {
    type Msg = ProbeMsg;
    type State = ProbeState;
    type Arguments = u64;

    async fn pre_start(
        &self,
        _myself: ActorRef<ProbeMsg>,
        incarnation: u64,
    ) -> Result<ProbeState, ActorProcessingErr> {
        let failures = &self.behavior.start_failures;
        let left = failures.load(Ordering::SeqCst);
        if left > 0 {
            if left != u32::MAX {
                failures.store(left - 1, Ordering::SeqCst);
            }
            self.record(format!("start-failed {}#{incarnation}", self.name));
            panic!("{} cannot open its device", self.name);
        }

        self.record(format!("start {}#{incarnation}", self.name));
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(ProbeState {
            incarnation,
            handled: 0,
            _live: LiveGuard(Arc::clone(&self.live)),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        message: ProbeMsg,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProbeMsg::Ping(reply) => {
                let _ = reply.send(state.incarnation);
            }
            ProbeMsg::Panic => panic!("{} hit a bad reading", self.name),
            ProbeMsg::Fail => return Err(format!("{} lost its connection", self.name).into()),
            ProbeMsg::Exit => myself.stop(None),
            ProbeMsg::Work(reply) => {
                state.handled += 1;
                if self.behavior.panic_every > 0
                    && state.handled.is_multiple_of(self.behavior.panic_every)
                {
                    panic!("{} failed on message {}", self.name, state.handled);
                }
                let _ = reply.send(state.handled);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ProbeMsg>,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        if self.behavior.stuck_in_post_stop {
            self.record(format!("stopping {}#{}", self.name, state.incarnation));
            std::future::pending::<()>().await;
        }
        self.record(format!("stop {}#{}", self.name, state.incarnation));
        Ok(())
    }
}

/// Builds probes for one test and counts their live incarnations.
#[derive(Clone, Default)]
pub struct Lab {
    pub journal: Journal,
    pub live: Arc<AtomicUsize>,
}

impl Lab {
    pub fn spec(&self, name: &str) -> ChildSpec<ProbeMsg> {
        self.spec_with(name, Behavior::default())
    }

    pub fn spec_with(&self, name: &str, behavior: Behavior) -> ChildSpec<ProbeMsg> {
        let incarnations = Arc::new(AtomicU64::new(0));
        let name = name.to_string();
        let journal = self.journal.clone();
        let live = Arc::clone(&self.live);
        ChildSpec::new(id(&name), move || {
            let incarnation = incarnations.fetch_add(1, Ordering::SeqCst) + 1;
            let probe = Probe {
                name: name.clone(),
                journal: journal.clone(),
                behavior: behavior.clone(),
                live: Arc::clone(&live),
            };
            (probe, incarnation)
        })
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

pub fn id(value: &str) -> ChildId {
    ChildId::new(value).expect("test ids are valid")
}

/// Builds a supervisor spec that restarts at once and tolerates many restarts.
pub fn fast_spec(name: &str, strategy: Strategy) -> SupervisorSpec {
    SupervisorSpec::new(id(name))
        .strategy(strategy)
        .intensity(Intensity::new(1_000, Duration::from_secs(1)))
        .backoff(Backoff::none())
}

/// Starts probes `names` under a fast supervisor and returns their handles.
pub async fn start_probes(
    lab: &Lab,
    strategy: Strategy,
    names: &[&str],
) -> (Supervisor, Vec<ChildHandle<ProbeMsg>>) {
    let mut spec = fast_spec("root", strategy);
    let mut handles = Vec::new();
    for name in names {
        let child = lab.spec(name);
        handles.push(child.handle());
        spec = spec.child(child);
    }
    let supervisor = Supervisor::start(spec).await.expect("supervisor starts");
    (supervisor, handles)
}

pub async fn ping(handle: &ChildHandle<ProbeMsg>) -> u64 {
    handle
        .call(ProbeMsg::Ping, Some(Duration::from_secs(1)))
        .await
        .expect("child answers")
}

/// Polls the supervisor until `done` holds for its snapshot, at most 200 times.
pub async fn wait_for_snapshot(
    supervisor: &Supervisor,
    done: impl Fn(&SupervisorSnapshot) -> bool,
) -> SupervisorSnapshot {
    let mut last = None;
    for _ in 0..200 {
        let snapshot = supervisor.snapshot().await.expect("snapshot");
        if done(&snapshot) {
            return snapshot;
        }
        last = Some(snapshot);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("snapshot never reached the expected state; last: {last:#?}");
}

/// Polls the journal until it has at least `count` lines, at most 200 times.
pub async fn wait_for_journal(journal: &Journal, count: usize) {
    for _ in 0..200 {
        if journal.len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "journal has {} lines, expected {count}: {:?}",
        journal.len(),
        journal.lines()
    );
}

/// Pings until the child replies as incarnation `expected`, at most 200 times. Pings that reach
/// the previous incarnation before it fails get no reply and are retried.
pub async fn await_incarnation(handle: &ChildHandle<ProbeMsg>, expected: u64) {
    let mut last = None;
    for _ in 0..200 {
        let answer = handle
            .call(ProbeMsg::Ping, Some(Duration::from_secs(1)))
            .await;
        if answer == Ok(expected) {
            return;
        }
        last = Some(answer);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("child never answered as incarnation {expected}; last answer: {last:?}");
}
