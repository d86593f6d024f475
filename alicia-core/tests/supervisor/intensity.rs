//! Restart intensity: the (N+1)-th restart within the period escalates; spaced ones never do.

use std::time::Duration;

use alicia_core::supervisor::{
    Backoff, ChildSpec, ChildState, Intensity, Strategy, Supervisor, SupervisorError,
    SupervisorSpec,
};

use crate::common::{
    Lab, ProbeMsg, await_incarnation, id, ping, wait_for_journal, wait_for_snapshot,
};

fn spec_with_intensity(max_restarts: u32, period: Duration) -> SupervisorSpec {
    SupervisorSpec::new(id("root"))
        .strategy(Strategy::OneForOne)
        .intensity(Intensity::new(max_restarts, period))
        .backoff(Backoff::none())
}

#[tokio::test(start_paused = true)]
async fn restart_over_intensity_escalates() {
    let lab = Lab::default();
    let worker = lab.spec("worker");
    let handle = worker.handle();
    let spec = spec_with_intensity(3, Duration::from_secs(10))
        .child(lab.spec("first"))
        .child(worker)
        .child(lab.spec("last"));
    let supervisor = Supervisor::start(spec).await.unwrap();

    // Three failures are within the intensity: each is restarted.
    for incarnation in 1..=3 {
        await_incarnation(&handle, incarnation).await;
        handle.cast(ProbeMsg::Panic).await.unwrap();
    }
    await_incarnation(&handle, 4).await;
    let before = lab.journal.len();

    // The fourth within ten seconds is one too many.
    handle.cast(ProbeMsg::Panic).await.unwrap();
    let error = supervisor.wait().await.unwrap_err();

    let SupervisorError::Escalated(escalation) = &error else {
        panic!("expected an escalation, got {error:?}");
    };
    assert_eq!(escalation.supervisor, id("root"));
    assert_eq!(escalation.child, id("worker"));
    assert_eq!(escalation.restarts, 4);
    assert!(
        escalation.last_error.contains("worker hit a bad reading"),
        "{escalation}"
    );
    assert!(error.to_string().contains("\"worker\""), "{error}");

    // The remaining children were stopped in reverse start order.
    assert_eq!(
        lab.journal.lines_after(before),
        ["stop last#1", "stop first#1"]
    );
    assert_eq!(lab.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn spaced_failures_never_escalate() {
    let lab = Lab::default();
    let worker = lab.spec("worker");
    let handle = worker.handle();
    let supervisor =
        Supervisor::start(spec_with_intensity(2, Duration::from_secs(1)).child(worker))
            .await
            .unwrap();

    // Two restarts per second are allowed; one every 600 ms never puts three in one second.
    for incarnation in 1..=20 {
        await_incarnation(&handle, incarnation).await;
        handle.cast(ProbeMsg::Panic).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
    }

    let snapshot = supervisor.snapshot().await.unwrap();
    assert_eq!(snapshot.child("worker").unwrap().restart_count, 20);
    supervisor.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn zero_intensity_escalates_first_failure() {
    let lab = Lab::default();
    let worker = lab.spec("worker");
    let handle = worker.handle();
    let supervisor =
        Supervisor::start(spec_with_intensity(0, Duration::from_secs(5)).child(worker))
            .await
            .unwrap();

    handle.cast(ProbeMsg::Fail).await.unwrap();
    let error = supervisor.wait().await.unwrap_err();
    assert!(
        error.to_string().contains("worker lost its connection"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn nested_escalation_reaches_parent() {
    let lab = Lab::default();
    let broker = lab.spec("broker");
    let broker_handle = broker.handle();
    let bus = SupervisorSpec::new(id("bus"))
        .intensity(Intensity::new(1, Duration::from_secs(10)))
        .backoff(Backoff::none())
        .child(broker)
        .child(lab.spec("bridge"));
    let root = spec_with_intensity(5, Duration::from_secs(10))
        .child(ChildSpec::supervisor(bus))
        .child(lab.spec("security"));
    let supervisor = Supervisor::start(root).await.unwrap();
    assert_eq!(ping(&broker_handle).await, 1);

    // The bus allows one restart; the second failure makes it give up.
    broker_handle.cast(ProbeMsg::Panic).await.unwrap();
    await_incarnation(&broker_handle, 2).await;
    broker_handle.cast(ProbeMsg::Panic).await.unwrap();

    // The root restarts the bus, which starts a fresh broker; the handle follows it.
    await_incarnation(&broker_handle, 3).await;
    let snapshot = wait_for_snapshot(&supervisor, |snapshot| {
        snapshot
            .child("bus")
            .is_some_and(|bus| bus.restart_count == 1 && bus.supervisor.is_some())
    })
    .await;

    let bus = snapshot.child("bus").unwrap();
    let failure = bus.last_failure.as_ref().expect("bus failure recorded");
    assert!(
        failure.reason.contains("\"bus\" gave up"),
        "{}",
        failure.reason
    );
    assert!(failure.reason.contains("\"broker\""), "{}", failure.reason);
    assert!(
        matches!(bus.state, ChildState::Running { .. }),
        "{:?}",
        bus.state
    );

    // The sibling outside the bus was not touched.
    assert_eq!(snapshot.child("security").unwrap().restart_count, 0);
    let nested = bus.supervisor.as_ref().unwrap();
    assert_eq!(nested.child("broker").unwrap().restart_count, 0);

    wait_for_journal(&lab.journal, 7).await;
    supervisor.stop().await.unwrap();
    assert_eq!(lab.live(), 0);
}
