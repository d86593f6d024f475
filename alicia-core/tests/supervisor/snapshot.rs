//! Snapshots: state, restart count, last failure and nested supervisors.

use std::time::Duration;

use alicia_core::clock::{ManualClock, Timestamp};
use alicia_core::supervisor::{
    Backoff, ChildKind, ChildSpec, ChildState, Intensity, JitterSource, Restart, Strategy,
    Supervisor, SupervisorSpec,
};

use crate::common::{Lab, ProbeMsg, fast_spec, id, wait_for_snapshot};

#[tokio::test(start_paused = true)]
async fn snapshot_shows_restarting_and_failure() {
    let lab = Lab::default();
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    let worker = lab.spec("worker");
    let handle = worker.handle();
    let transient = lab.spec("once").restart(Restart::Transient);
    let once = transient.handle();
    let spec = SupervisorSpec::new(id("root"))
        .intensity(Intensity::new(10, Duration::from_secs(10)))
        .backoff(
            Backoff::new(
                Duration::from_secs(1),
                Duration::from_secs(1),
                Duration::from_secs(5),
            )
            .unwrap(),
        )
        .jitter(JitterSource::Seeded(0))
        .clock(clock.shared())
        .child(worker)
        .child(transient);
    let supervisor = Supervisor::start(spec).await.unwrap();

    clock.advance(Duration::from_secs(30));
    handle.cast(ProbeMsg::Panic).await.unwrap();
    once.cast(ProbeMsg::Exit).await.unwrap();
    let snapshot = wait_for_snapshot(&supervisor, |snapshot| {
        matches!(
            snapshot.child("worker").unwrap().state,
            ChildState::Restarting { .. }
        ) && snapshot.child("once").unwrap().state == ChildState::Stopped
    })
    .await;

    let worker = snapshot.child("worker").unwrap();
    let ChildState::Restarting { backoff_remaining } = worker.state else {
        panic!("worker is not restarting: {:?}", worker.state);
    };
    assert!(
        backoff_remaining <= Duration::from_secs(1),
        "{backoff_remaining:?}"
    );
    assert!(
        backoff_remaining >= Duration::from_millis(900),
        "{backoff_remaining:?}"
    );
    let failure = worker.last_failure.as_ref().expect("failure recorded");
    assert!(
        failure.reason.contains("worker hit a bad reading"),
        "{}",
        failure.reason
    );
    assert_eq!(failure.at, Timestamp(1_700_000_030_000));
    assert_eq!(snapshot.restarts_in_window, 1);

    // A normal exit of a transient child is not a failure.
    assert_eq!(snapshot.child("once").unwrap().last_failure, None);

    tokio::time::sleep(backoff_remaining).await;
    let snapshot = wait_for_snapshot(&supervisor, |snapshot| {
        matches!(
            snapshot.child("worker").unwrap().state,
            ChildState::Running { .. }
        )
    })
    .await;
    assert_eq!(snapshot.child("worker").unwrap().restart_count, 1);
    supervisor.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn tree_snapshot_includes_nested() {
    let lab = Lab::default();
    let bus = fast_spec("bus", Strategy::RestForOne)
        .child(lab.spec("broker"))
        .child(lab.spec("bridge"));
    let services = fast_spec("services", Strategy::OneForOne)
        .child(lab.spec("security"))
        .child(lab.spec("registry"));
    let spec = fast_spec("node", Strategy::RestForOne)
        .child(ChildSpec::supervisor(bus))
        .child(ChildSpec::supervisor(services));
    let supervisor = Supervisor::start(spec).await.unwrap();

    let snapshot = supervisor.snapshot().await.unwrap();
    assert_eq!(snapshot.id, id("node"));
    let bus = snapshot.child("bus").unwrap();
    assert_eq!(bus.kind, ChildKind::Supervisor);
    let nested = bus.supervisor.as_ref().expect("bus snapshot included");
    let ids: Vec<_> = nested
        .children
        .iter()
        .map(|child| child.id.as_str())
        .collect();
    assert_eq!(ids, ["broker", "bridge"]);
    assert_eq!(nested.strategy, Strategy::RestForOne);
    let services = snapshot.child("services").unwrap();
    assert!(
        services
            .supervisor
            .as_ref()
            .unwrap()
            .child("registry")
            .is_some()
    );

    // Serializes for the Health Monitor, with durations in milliseconds.
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(
        json["children"][0]["supervisor"]["children"][1]["id"],
        "bridge"
    );
    assert_eq!(json["children"][0]["state"]["state"], "running");

    supervisor.stop().await.unwrap();
    assert_eq!(
        lab.journal.lines_after(4),
        [
            "stop registry#1",
            "stop security#1",
            "stop bridge#1",
            "stop broker#1"
        ]
    );
}
