//! Stable handles across restarts, restart gaps, stopped children and several nodes.

use std::time::Duration;

use alicia_core::supervisor::{
    Backoff, CallError, ChildSpec, Intensity, JitterSource, Strategy, Supervisor, SupervisorSpec,
};
use tokio::time::Instant;

use crate::common::{Lab, ProbeMsg, await_incarnation, fast_spec, id, ping};

/// Starts a supervisor whose child waits exactly `gap` before each restart.
async fn start_with_gap(
    lab: &Lab,
    gap: Duration,
) -> (Supervisor, alicia_core::ChildHandle<ProbeMsg>) {
    let backoff = Backoff::new(gap, gap, Duration::from_secs(60)).unwrap();
    let worker = lab.spec("worker");
    let handle = worker.handle();
    let spec = SupervisorSpec::new(id("root"))
        .intensity(Intensity::new(10, Duration::from_secs(10)))
        .backoff(backoff)
        .jitter(JitterSource::Seeded(0))
        .child(worker);
    (Supervisor::start(spec).await.unwrap(), handle)
}

#[tokio::test(start_paused = true)]
async fn call_in_gap_reaches_new_incarnation() {
    let lab = Lab::default();
    let gap = Duration::from_millis(500);
    let (supervisor, handle) = start_with_gap(&lab, gap).await;
    let handle = handle.with_wait_bound(Duration::from_secs(1));
    assert_eq!(ping(&handle).await, 1);

    let old = handle.current().expect("running");
    handle.cast(ProbeMsg::Panic).await.unwrap();
    old.wait(None).await.unwrap();

    // The call is made in the gap, and the next incarnation replies once it starts.
    let called = Instant::now();
    let answer = handle.call(ProbeMsg::Ping, None).await;
    assert_eq!(answer, Ok(2));
    assert!(
        called.elapsed() <= gap,
        "answered after {:?}",
        called.elapsed()
    );
    supervisor.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn call_in_gap_fails_within_bound() {
    let lab = Lab::default();
    let (supervisor, handle) = start_with_gap(&lab, Duration::from_secs(2)).await;
    let bound = Duration::from_millis(100);
    let handle = handle.with_wait_bound(bound);

    let old = handle.current().expect("running");
    handle.cast(ProbeMsg::Panic).await.unwrap();
    old.wait(None).await.unwrap();

    let called = Instant::now();
    let answer = handle.call(ProbeMsg::Ping, None).await;
    let took = called.elapsed();

    assert_eq!(
        answer,
        Err(CallError::Unavailable {
            child: id("worker"),
            waited: bound
        })
    );
    assert_eq!(took, bound);
    let message = answer.unwrap_err().to_string();
    assert!(message.contains("\"worker\" is unavailable"), "{message}");

    // After the gap the same handle works again.
    await_incarnation(&handle.with_wait_bound(Duration::from_secs(3)), 2).await;
    supervisor.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn calls_racing_failure_never_hang() {
    let lab = Lab::default();
    let (supervisor, handle) = start_with_gap(&lab, Duration::from_millis(50)).await;
    let handle = handle.with_wait_bound(Duration::from_millis(200));

    // Requests queued behind the panic are lost with the incarnation; each call still ends,
    // with a reply from either incarnation or an explicit error.
    handle.cast(ProbeMsg::Panic).await.unwrap();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move {
                handle
                    .call(ProbeMsg::Ping, Some(Duration::from_secs(1)))
                    .await
            })
        })
        .collect();
    for call in calls {
        let answer = call.await.unwrap();
        assert!(
            matches!(answer, Ok(2) | Err(CallError::NoReply { .. })),
            "{answer:?}"
        );
    }
    supervisor.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn handle_fails_fast_after_stop() {
    let lab = Lab::default();
    let worker = lab.spec("worker");
    let handle = worker.handle();
    let supervisor = Supervisor::start(fast_spec("root", Strategy::OneForOne).child(worker))
        .await
        .unwrap();
    let root_handle = supervisor.handle();
    supervisor.stop().await.unwrap();

    let called = Instant::now();
    assert_eq!(
        handle.call(ProbeMsg::Ping, None).await,
        Err(CallError::Stopped {
            child: id("worker")
        })
    );
    assert_eq!(called.elapsed(), Duration::ZERO);
    assert_eq!(
        root_handle.snapshot().await,
        Err(CallError::Stopped { child: id("root") })
    );
}

#[tokio::test(start_paused = true)]
async fn handle_before_start_unavailable() {
    let lab = Lab::default();
    let spec = lab.spec("worker");
    let handle = spec.handle().with_wait_bound(Duration::from_millis(50));
    assert_eq!(
        handle.cast(ProbeMsg::Exit).await,
        Err(CallError::Unavailable {
            child: id("worker"),
            waited: Duration::from_millis(50)
        })
    );

    // Once the spec itself is gone, nothing can start the child any more.
    drop(spec);
    assert_eq!(
        handle.cast(ProbeMsg::Exit).await,
        Err(CallError::Stopped {
            child: id("worker")
        })
    );
}

#[tokio::test(start_paused = true)]
async fn nodes_run_side_by_side() {
    let lab_a = Lab::default();
    let lab_b = Lab::default();
    let mut handles = Vec::new();
    let mut supervisors = Vec::new();
    for (node, lab) in [("node-a", &lab_a), ("node-b", &lab_b)] {
        let registry = lab.spec("registry");
        let health = lab.spec("health");
        handles.push((registry.handle(), health.handle()));
        let spec = fast_spec(node, Strategy::OneForAll)
            .child(registry)
            .child(health);
        supervisors.push(Supervisor::start(spec).await.unwrap());
    }

    // Same child ids in both trees; a failure in one node leaves the other alone.
    handles[0].0.cast(ProbeMsg::Panic).await.unwrap();
    await_incarnation(&handles[0].0, 2).await;
    await_incarnation(&handles[0].1, 2).await;
    assert_eq!(ping(&handles[1].0).await, 1);
    assert_eq!(ping(&handles[1].1).await, 1);

    let snapshot_a = supervisors[0].snapshot().await.unwrap();
    let snapshot_b = supervisors[1].snapshot().await.unwrap();
    assert_eq!(snapshot_a.child("registry").unwrap().restart_count, 1);
    assert_eq!(snapshot_b.child("registry").unwrap().restart_count, 0);
    assert_eq!(
        lab_b.journal.lines(),
        ["start registry#1", "start health#1"]
    );

    for supervisor in supervisors {
        supervisor.stop().await.unwrap();
    }
    assert_eq!(lab_a.live() + lab_b.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn nested_restart_gap_is_not_stop() {
    let lab = Lab::default();
    let broker = lab.spec("broker");
    let handle = broker.handle();
    // The bus gives up at the first failure; the root restarts it after 500 ms.
    let bus = SupervisorSpec::new(id("bus"))
        .intensity(Intensity::new(0, Duration::from_secs(10)))
        .child(broker);
    let gap = Duration::from_millis(500);
    let spec = SupervisorSpec::new(id("node"))
        .intensity(Intensity::new(10, Duration::from_secs(10)))
        .backoff(Backoff::new(gap, gap, Duration::from_secs(60)).unwrap())
        .jitter(JitterSource::Seeded(0))
        .child(ChildSpec::supervisor(bus));
    let supervisor = Supervisor::start(spec).await.unwrap();

    let old = handle.current().expect("broker running");
    handle.cast(ProbeMsg::Panic).await.unwrap();
    old.wait(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // In the gap the broker is unavailable, not stopped: it comes back with the bus.
    let short = handle.clone().with_wait_bound(Duration::from_millis(100));
    assert_eq!(
        short.call(ProbeMsg::Ping, None).await,
        Err(CallError::Unavailable {
            child: id("broker"),
            waited: Duration::from_millis(100)
        })
    );
    let long = handle.clone().with_wait_bound(Duration::from_secs(1));
    assert_eq!(long.call(ProbeMsg::Ping, None).await, Ok(2));

    // Once the whole tree stops, the broker is stopped for good.
    supervisor.stop().await.unwrap();
    assert_eq!(
        handle.call(ProbeMsg::Ping, None).await,
        Err(CallError::Stopped {
            child: id("broker")
        })
    );
}
