//! Backoff delays between restarts follow the schedule and reset after stable running.

use std::time::Duration;

use alicia_core::supervisor::{
    Backoff, Intensity, JitterSource, Strategy, Supervisor, SupervisorSpec,
};
use tokio::time::Instant;

use crate::common::{Behavior, Lab, ProbeMsg, await_incarnation, id, wait_for_journal};

fn millis(value: u64) -> Duration {
    Duration::from_millis(value)
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]))
        .collect()
}

fn spec(backoff: Backoff, jitter: JitterSource) -> SupervisorSpec {
    SupervisorSpec::new(id("root"))
        .strategy(Strategy::OneForOne)
        .intensity(Intensity::new(100, Duration::from_secs(60)))
        .backoff(backoff)
        .jitter(jitter)
}

#[tokio::test(start_paused = true)]
async fn delays_double_then_reset() {
    let lab = Lab::default();
    let backoff = Backoff::new(millis(100), millis(800), Duration::from_secs(5)).unwrap();
    // Five failed starts, then one that succeeds.
    let worker = lab.spec_with("worker", Behavior::failing_starts(5));
    let handle = worker.handle().with_wait_bound(Duration::from_secs(10));
    let supervisor = Supervisor::start(spec(backoff, JitterSource::Seeded(1)).child(worker))
        .await
        .unwrap();
    await_incarnation(&handle, 6).await;

    let attempts = lab.journal.times_of("start");
    assert_eq!(attempts.len(), 6, "{:?}", lab.journal.lines());
    assert_eq!(
        gaps(&attempts),
        [
            millis(100),
            millis(200),
            millis(400),
            millis(800),
            millis(800)
        ]
    );

    // After running longer than `reset_after`, the next restart waits the minimum again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let failed_at = Instant::now();
    handle.cast(ProbeMsg::Panic).await.unwrap();
    await_incarnation(&handle, 7).await;
    let restarted_at = *lab.journal.times_of("start worker#7").first().unwrap();
    assert_eq!(restarted_at.duration_since(failed_at), millis(100));

    // Failing again at once continues the schedule from there.
    handle.cast(ProbeMsg::Panic).await.unwrap();
    await_incarnation(&handle, 8).await;
    let again_at = *lab.journal.times_of("start worker#8").first().unwrap();
    assert_eq!(again_at.duration_since(restarted_at), millis(200));

    supervisor.stop().await.unwrap();
}

async fn jittered_gaps(seed: u64) -> Vec<Duration> {
    let lab = Lab::default();
    let backoff = Backoff::new(millis(100), millis(1_000), Duration::from_secs(5))
        .unwrap()
        .with_jitter(0.5)
        .unwrap();
    let worker = lab.spec_with("worker", Behavior::failing_starts(4));
    let handle = worker.handle().with_wait_bound(Duration::from_secs(10));
    let supervisor = Supervisor::start(spec(backoff, JitterSource::Seeded(seed)).child(worker))
        .await
        .unwrap();
    await_incarnation(&handle, 5).await;
    wait_for_journal(&lab.journal, 5).await;
    supervisor.stop().await.unwrap();
    gaps(&lab.journal.times_of("start"))
}

#[tokio::test(start_paused = true)]
async fn seeded_jitter_is_repeatable() {
    let first = jittered_gaps(7).await;
    let second = jittered_gaps(7).await;
    assert_eq!(first, second);
    assert_ne!(first, jittered_gaps(8).await);

    let bases = [100, 200, 400, 800];
    assert_eq!(first.len(), bases.len());
    for (gap, base) in first.iter().zip(bases) {
        // Sleeps are rounded up to the next millisecond by tokio's timer.
        assert!(*gap >= millis(base / 2), "{gap:?} below range of {base} ms");
        assert!(
            *gap <= millis(base * 3 / 2 + 1).min(millis(1_001)),
            "{gap:?} above range of {base} ms"
        );
    }
}
