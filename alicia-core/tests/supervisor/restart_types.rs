//! Permanent, transient and temporary children on normal exit, panic, error and kill.

use std::time::Duration;

use alicia_core::supervisor::{CallError, ChildState, Restart, Strategy, Supervisor};

use crate::common::{Lab, ProbeMsg, fast_spec, id, ping, wait_for_snapshot};

#[derive(Debug, Clone, Copy)]
enum Exit {
    Normal,
    Panic,
    Error,
    Kill,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Restarted,
    Stopped,
    Removed,
}

async fn outcome_of(restart: Restart, exit: Exit) -> Outcome {
    let lab = Lab::default();
    let child = lab.spec("worker").restart(restart);
    let handle = child.handle().with_wait_bound(Duration::from_millis(200));
    let supervisor = Supervisor::start(fast_spec("root", Strategy::OneForOne).child(child))
        .await
        .unwrap();
    assert_eq!(ping(&handle).await, 1);

    match exit {
        Exit::Normal => handle.cast(ProbeMsg::Exit).await.unwrap(),
        Exit::Panic => handle.cast(ProbeMsg::Panic).await.unwrap(),
        Exit::Error => handle.cast(ProbeMsg::Fail).await.unwrap(),
        Exit::Kill => handle.current().expect("running").kill(),
    }

    // Settles once the supervisor has handled the exit one way or the other.
    let snapshot = wait_for_snapshot(&supervisor, |snapshot| match snapshot.child("worker") {
        None => true,
        Some(child) => child.state == ChildState::Stopped || child.restart_count == 1,
    })
    .await;

    let outcome = match snapshot.child("worker") {
        None => Outcome::Removed,
        Some(child) if child.state == ChildState::Stopped => Outcome::Stopped,
        Some(_) => Outcome::Restarted,
    };

    // The handle agrees with the snapshot.
    let answer = handle.call(ProbeMsg::Ping, None).await;
    match outcome {
        Outcome::Restarted => assert_eq!(answer, Ok(2), "{restart:?} after {exit:?}"),
        Outcome::Stopped | Outcome::Removed => assert_eq!(
            answer,
            Err(CallError::Stopped {
                child: id("worker")
            }),
            "{restart:?} after {exit:?}"
        ),
    }
    supervisor.stop().await.unwrap();
    outcome
}

#[tokio::test(start_paused = true)]
async fn restart_type_table() {
    let cases = [
        (Restart::Permanent, Exit::Normal, Outcome::Restarted),
        (Restart::Permanent, Exit::Panic, Outcome::Restarted),
        (Restart::Permanent, Exit::Error, Outcome::Restarted),
        (Restart::Permanent, Exit::Kill, Outcome::Restarted),
        (Restart::Transient, Exit::Normal, Outcome::Stopped),
        (Restart::Transient, Exit::Panic, Outcome::Restarted),
        (Restart::Transient, Exit::Error, Outcome::Restarted),
        (Restart::Transient, Exit::Kill, Outcome::Restarted),
        (Restart::Temporary, Exit::Normal, Outcome::Removed),
        (Restart::Temporary, Exit::Panic, Outcome::Removed),
        (Restart::Temporary, Exit::Error, Outcome::Removed),
    ];
    for (restart, exit, expected) in cases {
        assert_eq!(
            outcome_of(restart, exit).await,
            expected,
            "{restart:?} child after {exit:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn normal_exit_is_not_failure() {
    let lab = Lab::default();
    let child = lab.spec("worker").restart(Restart::Permanent);
    let handle = child.handle();
    let supervisor = Supervisor::start(fast_spec("root", Strategy::OneForOne).child(child))
        .await
        .unwrap();

    handle.cast(ProbeMsg::Exit).await.unwrap();
    let snapshot = wait_for_snapshot(&supervisor, |snapshot| {
        snapshot
            .child("worker")
            .is_some_and(|child| child.restart_count == 1)
    })
    .await;

    let worker = snapshot.child("worker").unwrap();
    assert_eq!(worker.last_failure, None);
    supervisor.stop().await.unwrap();
}
