//! A crash storm: a child that panics on every 10th message gets 10,000 messages.
//!
//! This binary contains one test only, because it counts the process's heap bytes with its own
//! global allocator and other tests running at the same time would disturb the count. It runs on
//! a multi-thread runtime with real time, so that callers, supervisor and child really race.

#[path = "supervisor/common.rs"]
#[allow(dead_code)]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use alicia_core::supervisor::{
    Backoff, CallError, ChildHandle, Intensity, Strategy, Supervisor, SupervisorSpec,
};

use common::{Behavior, Lab, ProbeMsg, id};

/// Heap bytes currently allocated by the whole process.
static HEAP_BYTES: AtomicIsize = AtomicIsize::new(0);

struct CountingAllocator;

// SAFETY: every method forwards to the system allocator unchanged and only adds bookkeeping.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        HEAP_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `pointer` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which `System` shares.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const MESSAGES: usize = 10_000;
const CALLERS: usize = 4;
const PANIC_EVERY: u64 = 10;

/// How the calls of one storm ended.
#[derive(Debug, Default)]
struct Tally {
    answered: usize,
    no_reply: usize,
    other: Vec<CallError>,
}

/// Sends `messages` Work requests from `CALLERS` concurrent tasks through `handle`.
async fn storm(handle: &ChildHandle<ProbeMsg>, messages: usize) -> Tally {
    let per_caller = messages / CALLERS;
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                for _ in 0..per_caller {
                    match handle
                        .call(ProbeMsg::Work, Some(Duration::from_secs(5)))
                        .await
                    {
                        Ok(_) => tally.answered += 1,
                        Err(CallError::NoReply { .. }) => tally.no_reply += 1,
                        Err(other) => tally.other.push(other),
                    }
                }
                tally
            })
        })
        .collect();

    let mut total = Tally::default();
    for caller in callers {
        let tally = caller.await.expect("caller task does not panic");
        total.answered += tally.answered;
        total.no_reply += tally.no_reply;
        total.other.extend(tally.other);
    }
    total
}

/// Polls `read` every 10 ms, at most 1,000 times, until it returns `expected`; returns the last value.
async fn settle<T: PartialEq + Copy>(expected: T, read: impl Fn() -> T) -> T {
    for _ in 0..1_000 {
        if read() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    read()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Keeps the 1,000 expected panic messages off stderr and lets every other panic through.
fn silence_storm_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !text.contains("failed on message") {
            default_hook(info);
        }
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_storm_leaves_no_residue() {
    silence_storm_panics();
    let lab = Lab::default();
    let behavior = Behavior {
        panic_every: PANIC_EVERY,
        unjournaled: true,
        ..Behavior::default()
    };
    let worker = lab.spec_with("worker", behavior);
    // A bound far above the few milliseconds a restart takes, so that only a lost handle fails
    // a call as unavailable, not a slow machine.
    let handle = worker.handle().with_wait_bound(Duration::from_secs(30));
    // Backoff keeps restarts at most every millisecond or so; the intensity, generous for
    // that rate, still bounds a child that fails at every start.
    let backoff = Backoff::new(
        Duration::from_millis(1),
        Duration::from_millis(4),
        Duration::from_millis(50),
    )
    .unwrap();
    let spec = SupervisorSpec::new(id("node"))
        .strategy(Strategy::OneForOne)
        .intensity(Intensity::new(1_000, Duration::from_secs(1)))
        .backoff(backoff)
        .child(worker);
    let tasks_idle = alive_tasks();
    let supervisor = Supervisor::start(spec).await.unwrap();

    // A short warm-up storm lets lazily allocated runtime and tracing state settle.
    let warm_up = storm(&handle, 1_000).await;
    assert!(warm_up.other.is_empty(), "{:?}", warm_up.other);
    let restarts_before = supervisor.snapshot().await.unwrap().children[0].restart_count;
    let heap_before = HEAP_BYTES.load(Ordering::SeqCst);

    let tally = storm(&handle, MESSAGES).await;

    // Every call ended with a reply, or with the explicit error for a request lost with a failed
    // incarnation. The handle never lost track of the child.
    assert!(
        tally.other.is_empty(),
        "unexpected errors: {:?}",
        tally.other
    );
    assert_eq!(tally.answered + tally.no_reply, MESSAGES);
    let snapshot = supervisor.snapshot().await.unwrap();
    let restarts = snapshot.children[0].restart_count - restarts_before;
    assert!(
        restarts as usize >= tally.answered / PANIC_EVERY as usize,
        "{restarts} restarts for {} answers",
        tally.answered
    );
    assert!(tally.answered >= MESSAGES / 2, "{tally:?}");

    // The service still replies.
    let answer = handle
        .call(ProbeMsg::Ping, Some(Duration::from_secs(1)))
        .await;
    assert!(answer.is_ok(), "{answer:?}");

    // One live incarnation, one linked child, and two tasks: one per actor (ractor runs each
    // actor as one task), none left from failed incarnations or backoff timers.
    assert_eq!(settle(1, || lab.live()).await, 1);
    assert_eq!(supervisor.actor().get_children().len(), 1);
    assert_eq!(settle(tasks_idle + 2, alive_tasks).await, tasks_idle + 2);

    // The heap is back within 64 KiB of where it was: about 64 bytes per restart, far below
    // what one leaked incarnation (its mailbox, state and task) would cost.
    let heap_growth = HEAP_BYTES.load(Ordering::SeqCst) - heap_before;
    assert!(
        heap_growth < 64 * 1024,
        "heap grew by {heap_growth} bytes over {restarts} restarts"
    );

    supervisor.stop().await.unwrap();
    assert_eq!(lab.live(), 0);
    assert_eq!(settle(tasks_idle, alive_tasks).await, tasks_idle);
}
