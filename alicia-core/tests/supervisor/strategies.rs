//! Each strategy restarts exactly the right children, in the right order.

use alicia_core::supervisor::Strategy;

use crate::common::{Lab, ProbeMsg, await_incarnation, ping, start_probes, wait_for_journal};

/// Starts a, b, c under `strategy`, makes `failing` panic, and returns the journal lines that
/// follow the three initial starts once `expected_lines` of them are there.
async fn lines_after_failure(
    strategy: Strategy,
    failing: usize,
    expected_lines: usize,
) -> Vec<String> {
    let lab = Lab::default();
    let (supervisor, handles) = start_probes(&lab, strategy, &["a", "b", "c"]).await;
    assert_eq!(lab.journal.lines(), ["start a#1", "start b#1", "start c#1"]);

    handles[failing].cast(ProbeMsg::Panic).await.unwrap();
    wait_for_journal(&lab.journal, 3 + expected_lines).await;

    // Every child replies afterwards, and nothing else was restarted meanwhile.
    for handle in &handles {
        ping(handle).await;
    }
    let lines = lab.journal.lines_after(3);
    supervisor.stop().await.unwrap();
    lines
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_failed() {
    let lines = lines_after_failure(Strategy::OneForOne, 1, 1).await;
    assert_eq!(lines, ["start b#2"]);
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_all_in_order() {
    let lines = lines_after_failure(Strategy::OneForAll, 1, 5).await;
    assert_eq!(
        lines,
        [
            "stop c#1",
            "stop a#1",
            "start a#2",
            "start b#2",
            "start c#2"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_later_children() {
    let lines = lines_after_failure(Strategy::RestForOne, 1, 3).await;
    assert_eq!(lines, ["stop c#1", "start b#2", "start c#2"]);
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_last_child_alone() {
    let lines = lines_after_failure(Strategy::RestForOne, 2, 1).await;
    assert_eq!(lines, ["start c#2"]);
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_first_child_all() {
    let lines = lines_after_failure(Strategy::RestForOne, 0, 5).await;
    assert_eq!(
        lines,
        [
            "stop c#1",
            "stop b#1",
            "start a#2",
            "start b#2",
            "start c#2"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn restarted_incarnations_answer() {
    let lab = Lab::default();
    let (supervisor, handles) = start_probes(&lab, Strategy::OneForAll, &["a", "b"]).await;

    handles[0].cast(ProbeMsg::Panic).await.unwrap();
    wait_for_journal(&lab.journal, 2 + 3).await;

    await_incarnation(&handles[0], 2).await;
    await_incarnation(&handles[1], 2).await;
    supervisor.stop().await.unwrap();
}
