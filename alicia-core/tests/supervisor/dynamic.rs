//! Adding and removing children at run time, with a maximum count.

use alicia_core::supervisor::{AddChildError, CallError, RemoveChildError, Strategy, Supervisor};

use crate::common::{Behavior, Lab, ProbeMsg, fast_spec, id, ping};

#[tokio::test(start_paused = true)]
async fn add_and_remove_children() {
    let lab = Lab::default();
    let supervisor = Supervisor::start(fast_spec("root", Strategy::OneForOne).max_children(2))
        .await
        .unwrap();

    let x = lab.spec("x");
    let x_handle = x.handle();
    supervisor.add_child(x).await.unwrap();
    assert_eq!(ping(&x_handle).await, 1);

    assert_eq!(
        supervisor.add_child(lab.spec("x")).await,
        Err(AddChildError::DuplicateId {
            supervisor: id("root"),
            child: id("x")
        })
    );

    supervisor.add_child(lab.spec("y")).await.unwrap();
    assert_eq!(
        supervisor.add_child(lab.spec("z")).await,
        Err(AddChildError::Full {
            supervisor: id("root"),
            child: id("z"),
            max: 2
        })
    );

    supervisor.remove_child(&id("x")).await.unwrap();
    assert_eq!(
        x_handle.call(ProbeMsg::Ping, None).await,
        Err(CallError::Stopped { child: id("x") })
    );
    assert_eq!(
        supervisor.remove_child(&id("x")).await,
        Err(RemoveChildError::NotFound {
            supervisor: id("root"),
            child: id("x")
        })
    );

    // Removing made room again.
    supervisor.add_child(lab.spec("z")).await.unwrap();
    let snapshot = supervisor.snapshot().await.unwrap();
    let ids: Vec<_> = snapshot
        .children
        .iter()
        .map(|child| child.id.as_str())
        .collect();
    assert_eq!(ids, ["y", "z"]);
    assert_eq!(
        lab.journal.lines(),
        ["start x#1", "start y#1", "stop x#1", "start z#1"]
    );

    supervisor.stop().await.unwrap();
    assert_eq!(lab.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn failed_add_is_not_kept() {
    let lab = Lab::default();
    let supervisor = Supervisor::start(fast_spec("root", Strategy::OneForOne))
        .await
        .unwrap();

    let broken = lab.spec_with("broken", Behavior::failing_starts(1));
    let handle = broken.handle();
    let error = supervisor.add_child(broken).await.unwrap_err();

    let AddChildError::StartFailed { child, reason, .. } = &error else {
        panic!("expected a failed start, got {error:?}");
    };
    assert_eq!(child, &id("broken"));
    assert!(reason.contains("broken cannot open its device"), "{reason}");
    assert!(supervisor.snapshot().await.unwrap().children.is_empty());
    assert_eq!(
        handle.cast(ProbeMsg::Exit).await,
        Err(CallError::Stopped {
            child: id("broken")
        })
    );
    supervisor.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn added_child_is_supervised() {
    let lab = Lab::default();
    let supervisor = Supervisor::start(fast_spec("root", Strategy::OneForOne))
        .await
        .unwrap();
    let child = lab.spec("late");
    let handle = child.handle();
    supervisor.handle().add_child(child).await.unwrap();

    handle.cast(ProbeMsg::Panic).await.unwrap();
    crate::common::await_incarnation(&handle, 2).await;
    supervisor.stop().await.unwrap();
}
