//! Batched publishes: [`BusCommand::PublishBatch`](alicia_core::bus::BusCommand::PublishBatch).

use std::sync::Arc;
use std::time::Instant;

use alicia_core::bus::{BusError, OutboundMessage};
use ractor::RpcReplyPort;

use super::outbox::PushError;
use super::{BridgeState, closed, push_error};

/// One message of a batch: its result when it is decided, or the message still to be queued.
enum Step {
    Done(Result<(), BusError>),
    Push(OutboundMessage),
}

impl BridgeState {
    /// Checks, records and queues each message in order, as [`BridgeState::publish`] does for
    /// one.
    ///
    /// From the first message that finds its outbox class full, the rest of the batch waits for
    /// room in a separate task, in order, so that no message of the batch overtakes an earlier
    /// one. The whole batch shares one outbox timeout.
    pub(super) fn publish_batch(
        &mut self,
        messages: Vec<OutboundMessage>,
        reply: RpcReplyPort<Vec<Result<(), BusError>>>,
    ) {
        let mut results = Vec::with_capacity(messages.len());
        let mut waiting: Vec<Step> = Vec::new();

        for message in messages {
            let step = match self.check(&message) {
                Err(error) => Step::Done(Err(error)),
                Ok(()) => {
                    self.record_retained(&message);
                    Step::Push(message)
                }
            };
            if !waiting.is_empty() {
                waiting.push(step);
                continue;
            }
            match step {
                Step::Done(result) => results.push(result),
                Step::Push(message) => match self.shared.outbox.try_push(message) {
                    Ok(()) => results.push(Ok(())),
                    Err((PushError::Closed, message)) => results.push(Err(closed(&message.topic))),
                    Err((PushError::Full, message)) => waiting.push(Step::Push(message)),
                },
            }
        }

        if waiting.is_empty() {
            let _ = reply.send(results);
            return;
        }

        let shared = Arc::clone(&self.shared);
        let timeout = self.outbox_timeout;
        tokio::spawn(async move {
            let deadline = Instant::now() + timeout;
            for step in waiting {
                let message = match step {
                    Step::Done(result) => {
                        results.push(result);
                        continue;
                    }
                    Step::Push(message) => message,
                };
                let topic = message.topic.clone();
                let left = deadline.saturating_duration_since(Instant::now());
                let outcome = shared
                    .outbox
                    .push(message, left)
                    .await
                    .map_err(|error| push_error(error, &topic, timeout));
                results.push(outcome);
            }
            let _ = reply.send(results);
        });
    }
}
