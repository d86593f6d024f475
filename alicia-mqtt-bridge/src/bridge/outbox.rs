//! The bounded outbox between the bridge actor and the writer task.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alicia_core::bus::{OutboundMessage, PublishClass};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::OutboxCapacity;
use super::stats::Counters;

/// Messages waiting to be handed to rumqttc, one queue per [`PublishClass`].
///
/// Any task may push, and only the writer task pops. The queues share one sequence, and the
/// writer always pops the oldest message of all classes, so messages leave in push order.
///
/// Overflow policy: a request or state change holds a semaphore permit of its class while it is
/// queued, and a push waits for a permit up to a timeout. Telemetry has no permits: a push to a
/// full telemetry queue drops the oldest telemetry and counts it.
#[derive(Debug)]
pub(crate) struct Outbox {
    queues: Mutex<Queues>,
    /// Permits of the request queue; a permit leaves with its message.
    requests: Arc<Semaphore>,
    /// Permits of the state change queue.
    state_changes: Arc<Semaphore>,
    telemetry_capacity: usize,
    /// Wakes the writer after a push. `notify_one` stores a wakeup when the writer is busy, so
    /// no push goes unnoticed.
    wake: Notify,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Queues {
    next_seq: u64,
    requests: VecDeque<Queued>,
    state_changes: VecDeque<Queued>,
    telemetry: VecDeque<Queued>,
    closed: bool,
}

#[derive(Debug)]
struct Queued {
    seq: u64,
    message: OutboundMessage,
    /// The class permit, released when the writer pops the message. `None` for telemetry.
    _permit: Option<OwnedSemaphorePermit>,
}

/// The reason a push failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The class queue stayed full until the timeout.
    Full,
    /// The bridge is shutting down.
    Closed,
}

impl Outbox {
    pub fn new(capacity: OutboxCapacity, counters: Arc<Counters>) -> Self {
        Self {
            queues: Mutex::new(Queues::default()),
            requests: Arc::new(Semaphore::new(capacity.requests)),
            state_changes: Arc::new(Semaphore::new(capacity.state_changes)),
            telemetry_capacity: capacity.telemetry,
            wake: Notify::new(),
            counters,
        }
    }

    /// Queues `message` if its class has room now, without waiting.
    ///
    /// Telemetry always has room, because the oldest telemetry makes way for it.
    pub fn try_push(&self, message: OutboundMessage) -> Result<(), (PushError, OutboundMessage)> {
        let permit = match self.semaphore(message.options.class) {
            None => None,
            Some(semaphore) => match Arc::clone(semaphore).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => return Err((PushError::Full, message)),
            },
        };
        self.enqueue(message, permit)
            .map_err(|message| (PushError::Closed, message))
    }

    /// Queues `message`, waiting up to `timeout` for room in its class.
    pub async fn push(&self, message: OutboundMessage, timeout: Duration) -> Result<(), PushError> {
        let permit = match self.semaphore(message.options.class) {
            None => None,
            Some(semaphore) => {
                let acquire = Arc::clone(semaphore).acquire_owned();
                match tokio::time::timeout(timeout, acquire).await {
                    Ok(Ok(permit)) => Some(permit),
                    Ok(Err(_)) => return Err(PushError::Closed),
                    Err(_) => {
                        Counters::add(&self.counters.publish_timeouts);
                        return Err(PushError::Full);
                    }
                }
            }
        };
        self.enqueue(message, permit).map_err(|_| PushError::Closed)
    }

    /// Removes and returns the oldest queued message of any class.
    pub fn pop(&self) -> Option<OutboundMessage> {
        let mut queues = self.lock();
        let oldest = [
            queues.requests.front().map(|queued| queued.seq),
            queues.state_changes.front().map(|queued| queued.seq),
            queues.telemetry.front().map(|queued| queued.seq),
        ]
        .into_iter()
        .enumerate()
        .filter_map(|(index, seq)| seq.map(|seq| (seq, index)))
        .min()?;

        let queued = match oldest.1 {
            0 => queues.requests.pop_front(),
            1 => queues.state_changes.pop_front(),
            _ => queues.telemetry.pop_front(),
        };
        queued.map(|queued| queued.message)
    }

    /// Waits until a push has happened since the last call, or returns at once when one did.
    pub async fn pushed(&self) {
        self.wake.notified().await;
    }

    /// Returns the number of queued messages.
    pub fn len(&self) -> usize {
        let queues = self.lock();
        queues.requests.len() + queues.state_changes.len() + queues.telemetry.len()
    }

    /// Rejects every later push, and wakes waiting pushers so they fail with
    /// [`PushError::Closed`].
    pub fn close(&self) {
        self.lock().closed = true;
        self.requests.close();
        self.state_changes.close();
        self.wake.notify_one();
    }

    fn semaphore(&self, class: PublishClass) -> Option<&Arc<Semaphore>> {
        match class {
            PublishClass::Request => Some(&self.requests),
            PublishClass::StateChange => Some(&self.state_changes),
            PublishClass::Telemetry => None,
        }
    }

    fn enqueue(
        &self,
        message: OutboundMessage,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), OutboundMessage> {
        let mut queues = self.lock();
        if queues.closed {
            return Err(message);
        }

        queues.next_seq += 1;
        let class = message.options.class;
        let queued = Queued {
            seq: queues.next_seq,
            message,
            _permit: permit,
        };
        match class {
            PublishClass::Request => queues.requests.push_back(queued),
            PublishClass::StateChange => queues.state_changes.push_back(queued),
            PublishClass::Telemetry => {
                while queues.telemetry.len() >= self.telemetry_capacity {
                    queues.telemetry.pop_front();
                    Counters::add(&self.counters.telemetry_dropped);
                }
                queues.telemetry.push_back(queued);
            }
        }
        drop(queues);

        self.wake.notify_one();
        Ok(())
    }

    /// Locks the queues. A panic while the lock is held cannot leave them inconsistent, because
    /// every change is a single push or pop, so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alicia_core::bus::PublishOptions;
    use alicia_core::topic::TopicName;

    fn message(topic: &str, options: PublishOptions) -> OutboundMessage {
        OutboundMessage {
            topic: TopicName::new(topic).expect("test topics are valid"),
            payload: Arc::from(&b"{}"[..]),
            options,
        }
    }

    fn outbox(capacity: usize) -> (Outbox, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let capacity = OutboxCapacity {
            requests: capacity,
            state_changes: capacity,
            telemetry: capacity,
        };
        (Outbox::new(capacity, Arc::clone(&counters)), counters)
    }

    #[test]
    fn outbox_pops_in_push_order_across_classes() {
        let (outbox, _) = outbox(4);
        for (topic, options) in [
            ("a", PublishOptions::telemetry()),
            ("b", PublishOptions::request()),
            ("c", PublishOptions::state_change()),
            ("d", PublishOptions::telemetry()),
        ] {
            assert!(outbox.try_push(message(topic, options)).is_ok());
        }
        let order: Vec<String> = std::iter::from_fn(|| outbox.pop())
            .map(|popped| popped.topic.to_string())
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }

    #[test]
    fn outbox_telemetry_drops_oldest() {
        let (outbox, counters) = outbox(2);
        for topic in ["t1", "t2", "t3"] {
            assert!(
                outbox
                    .try_push(message(topic, PublishOptions::telemetry()))
                    .is_ok()
            );
        }
        assert_eq!(counters.snapshot().telemetry_dropped, 1);
        assert_eq!(
            outbox
                .pop()
                .map(|popped| popped.topic.to_string())
                .as_deref(),
            Some("t2")
        );
    }

    #[test]
    fn outbox_full_request_is_rejected_without_wait() {
        let (outbox, _) = outbox(1);
        assert!(
            outbox
                .try_push(message("r1", PublishOptions::request()))
                .is_ok()
        );
        let second = outbox.try_push(message("r2", PublishOptions::request()));
        assert!(matches!(second, Err((PushError::Full, _))));
    }

    #[tokio::test]
    async fn outbox_full_state_change_times_out() {
        let (outbox, counters) = outbox(1);
        assert!(
            outbox
                .try_push(message("s1", PublishOptions::state_change()))
                .is_ok()
        );
        let second = outbox
            .push(
                message("s2", PublishOptions::state_change()),
                Duration::from_millis(20),
            )
            .await;
        assert_eq!(second, Err(PushError::Full));
        assert_eq!(counters.snapshot().publish_timeouts, 1);
    }

    #[tokio::test]
    async fn outbox_waiting_push_succeeds_after_pop() {
        let (outbox, _) = outbox(1);
        let outbox = Arc::new(outbox);
        assert!(
            outbox
                .try_push(message("s1", PublishOptions::state_change()))
                .is_ok()
        );

        let pusher = {
            let outbox = Arc::clone(&outbox);
            tokio::spawn(async move {
                outbox
                    .push(
                        message("s2", PublishOptions::state_change()),
                        Duration::from_secs(5),
                    )
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(outbox.pop().is_some());
        assert_eq!(pusher.await.ok(), Some(Ok(())));
    }
}
