//! Ordered start, reverse-order stop, shutdown budgets and failed starts.

use std::time::Duration;

use alicia_core::supervisor::{
    Backoff, Intensity, JitterSource, Strategy, Supervisor, SupervisorError, SupervisorSpec,
};
use tokio::time::Instant;

use crate::common::{Behavior, Lab, await_incarnation, fast_spec, id, start_probes};

#[tokio::test(start_paused = true)]
async fn stop_runs_in_reverse_start_order() {
    let lab = Lab::default();
    let (supervisor, _handles) = start_probes(&lab, Strategy::OneForOne, &["a", "b", "c"]).await;
    assert_eq!(lab.live(), 3);

    supervisor.stop().await.unwrap();
    assert_eq!(
        lab.journal.lines(),
        [
            "start a#1",
            "start b#1",
            "start c#1",
            "stop c#1",
            "stop b#1",
            "stop a#1"
        ]
    );
    assert_eq!(lab.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn stuck_child_killed_after_budget() {
    let lab = Lab::default();
    let budget = Duration::from_millis(300);
    let stuck = Behavior {
        stuck_in_post_stop: true,
        ..Behavior::default()
    };
    let spec = fast_spec("root", Strategy::OneForOne)
        .child(lab.spec("a"))
        .child(lab.spec_with("b", stuck).shutdown(budget))
        .child(lab.spec("c"));
    let supervisor = Supervisor::start(spec).await.unwrap();

    let started = Instant::now();
    supervisor.stop().await.unwrap();
    let took = started.elapsed();

    assert!(took >= budget, "stopped after {took:?}, before the budget");
    assert!(
        took < budget + Duration::from_millis(100),
        "stopped after {took:?}"
    );
    // b never finished post_stop; a was still stopped after it.
    assert_eq!(
        lab.journal.lines_after(3),
        ["stop c#1", "stopping b#1", "stop a#1"]
    );
    assert_eq!(lab.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn failed_start_follows_policy() {
    let lab = Lab::default();
    let spec = SupervisorSpec::new(id("root"))
        .strategy(Strategy::RestForOne)
        .intensity(Intensity::new(10, Duration::from_secs(10)))
        .backoff(
            Backoff::new(
                Duration::from_millis(50),
                Duration::from_secs(1),
                Duration::from_secs(5),
            )
            .unwrap(),
        )
        .jitter(JitterSource::Seeded(3))
        .child(lab.spec("a"))
        .child(lab.spec_with("b", Behavior::failing_starts(2)))
        .child(lab.spec("c"));
    let supervisor = Supervisor::start(spec).await.unwrap();

    // c depends on b under rest-for-one, so it starts only once b has.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        lab.journal.lines(),
        [
            "start a#1",
            "start-failed b#1",
            "start-failed b#2",
            "start b#3",
            "start c#1"
        ]
    );

    let snapshot = supervisor.snapshot().await.unwrap();
    let b = snapshot.child("b").unwrap();
    assert_eq!(b.restart_count, 2);
    let failure = b
        .last_failure
        .as_ref()
        .expect("b's failed start is recorded");
    assert!(
        failure.reason.contains("pre_start failed"),
        "{}",
        failure.reason
    );
    assert!(
        failure.reason.contains("b cannot open its device"),
        "{}",
        failure.reason
    );
    supervisor.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failing_start_escalates_later() {
    let lab = Lab::default();
    let spec = SupervisorSpec::new(id("root"))
        .intensity(Intensity::new(2, Duration::from_secs(10)))
        .backoff(Backoff::none())
        .child(lab.spec("a"))
        .child(lab.spec_with("b", Behavior::failing_starts(u32::MAX)))
        .child(lab.spec("c"));

    // The first failed start is scheduled for a restart, so the start itself succeeds.
    let supervisor = Supervisor::start(spec).await.unwrap();
    let error = supervisor.wait().await.unwrap_err();

    let SupervisorError::Escalated(escalation) = &error else {
        panic!("expected an escalation, got {error:?}");
    };
    assert_eq!(escalation.child, id("b"));
    assert!(
        escalation.last_error.contains("b cannot open its device"),
        "{escalation}"
    );
    // a and c were started (one-for-one goes on past b) and stopped again in reverse order.
    assert_eq!(
        lab.journal.lines(),
        [
            "start a#1",
            "start-failed b#1",
            "start c#1",
            "start-failed b#2",
            "start-failed b#3",
            "stop c#1",
            "stop a#1"
        ]
    );
    assert_eq!(lab.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn start_escalation_fails_start() {
    let lab = Lab::default();
    let spec = SupervisorSpec::new(id("root"))
        .intensity(Intensity::new(0, Duration::from_secs(10)))
        .child(lab.spec("a"))
        .child(lab.spec_with("b", Behavior::failing_starts(1)))
        .child(lab.spec("c"));

    let error = Supervisor::start(spec).await.unwrap_err();

    let SupervisorError::Escalated(escalation) = &error else {
        panic!("expected an escalation, got {error:?}");
    };
    assert_eq!(escalation.child, id("b"));
    assert_eq!(
        lab.journal.lines(),
        ["start a#1", "start-failed b#1", "stop a#1"]
    );
    assert_eq!(lab.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn named_child_restarts_after_failed_start() {
    let lab = Lab::default();
    let name = "alicia-supervisor-test-named-probe";
    let worker = lab
        .spec_with("worker", Behavior::failing_starts(1))
        .registered_name(name);
    let handle = worker.handle();
    let supervisor = Supervisor::start(fast_spec("root", Strategy::OneForOne).child(worker))
        .await
        .unwrap();

    await_incarnation(&handle, 2).await;
    let registered = ractor::registry::where_is(name).expect("name is registered");
    let current = handle.current().expect("worker is running");
    assert_eq!(registered.get_id(), current.get_id());

    supervisor.stop().await.unwrap();
    assert!(ractor::registry::where_is(name).is_none());
}

#[tokio::test(start_paused = true)]
async fn duplicate_child_ids_rejected() {
    let lab = Lab::default();
    let spec = fast_spec("root", Strategy::OneForOne)
        .child(lab.spec("a"))
        .child(lab.spec("a"));
    let error = Supervisor::start(spec).await.unwrap_err();
    assert!(matches!(error, SupervisorError::Config(_)), "{error:?}");
    assert!(
        error.to_string().contains("two children with id \"a\""),
        "{error}"
    );
    assert!(lab.journal.lines().is_empty());
}
