//! The typed client of a bus actor.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, MessagingErr, RpcReplyPort};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::SharedClock;
use crate::envelope::{DecodedHeader, Envelope, MessageId, SourceId};
use crate::manifest;
use crate::topic::{TopicFilter, TopicName};

use crate::supervisor::{CallError, ChildHandle};

use super::{
    BusCommand, BusError, BusInfo, Delivery, ErrorBody, InboundReply, OutboundMessage,
    PublishOptions, Reply, Route, RouteId, RouteStats,
};

/// Key of the manifest spec for reply topics, `alicia/reply/{client}/{request}`.
const REPLY_SPEC: &str = "client.reply";

/// A typed handle to a bus actor: the local bus or the MQTT bridge.
///
/// Clones share the same bus. Every method sends one [`BusCommand`] and waits for the bus's
/// reply, so calls from one task reach the bus in call order. A `Bus` keeps no state of its own
/// besides what [`BusCommand::Describe`] returned when it connected.
#[derive(Debug, Clone)]
pub struct Bus {
    /// The bus actor's current incarnation. A plain actor is wrapped with
    /// [`ChildHandle::unsupervised`], so calls fail once it stops; a supervised one is followed
    /// across restarts, with calls waiting up to the handle's wait bound during a restart.
    actor: ChildHandle<BusCommand>,
    info: BusInfo,
}

impl Bus {
    /// Connects to a running bus actor and reads its client id, clock and decode limits.
    pub async fn connect(actor: ActorRef<BusCommand>) -> Result<Self, BusError> {
        Self::connect_supervised(ChildHandle::unsupervised(actor)).await
    }

    /// Connects to a supervised bus actor through its stable handle, so the `Bus` keeps working
    /// after the bus actor restarts. Routes belong to the incarnation that accepted them: when
    /// the bus actor restarts, its subscribers must subscribe again, which a rest-for-one
    /// supervisor with the bus started first arranges by restarting them too.
    pub async fn connect_supervised(actor: ChildHandle<BusCommand>) -> Result<Self, BusError> {
        let current = resolve(&actor, || "describing the bus".to_owned()).await?;
        let info = call(
            &current,
            |reply| BusCommand::Describe { reply },
            || "describing the bus".to_owned(),
        )
        .await?;
        Ok(Self { actor, info })
    }

    /// Returns the bus actor's current incarnation, for stopping it; `None` while a supervised
    /// bus actor is between incarnations or stopped.
    pub fn actor(&self) -> Option<ActorRef<BusCommand>> {
        self.actor.current()
    }

    /// Returns the bus's client id, which names its reply namespace.
    pub fn client(&self) -> &SourceId {
        &self.info.client
    }

    /// Returns the bus's clock, for stamping envelopes.
    pub fn clock(&self) -> &SharedClock {
        &self.info.clock
    }

    /// Subscribes `target` to the messages on topics that match `filter`.
    ///
    /// Each matching payload is decoded into `Envelope<T>`, passed through the bus's authorizer,
    /// turned into an `M` by `convert` and cast to `target`. A payload that does not decode or is
    /// rejected never reaches `target`: the bus counts it in the route's [`RouteStats`] and
    /// sends an error reply when it names a reply topic. Retained messages that match are
    /// in `target`'s mailbox by the time this returns.
    pub async fn subscribe<T, M, F>(
        &self,
        filter: TopicFilter,
        target: &ActorRef<M>,
        convert: F,
    ) -> Result<RouteId, BusError>
    where
        T: DeserializeOwned + Send + 'static,
        M: Message,
        F: Fn(Delivery<T>) -> M + Send + Sync + 'static,
    {
        self.subscribe_excluding(filter, Vec::new(), target, convert)
            .await
    }

    /// Subscribes like [`Bus::subscribe`], except that messages on the `excluded` topics are
    /// neither delivered nor counted. A filter such as `alicia/system/health/+` uses this to
    /// leave out a sibling topic of another type (`alicia/system/health/alerts`).
    pub async fn subscribe_excluding<T, M, F>(
        &self,
        filter: TopicFilter,
        excluded: Vec<TopicName>,
        target: &ActorRef<M>,
        convert: F,
    ) -> Result<RouteId, BusError>
    where
        T: DeserializeOwned + Send + 'static,
        M: Message,
        F: Fn(Delivery<T>) -> M + Send + Sync + 'static,
    {
        let operation = || format!("subscribing to \"{filter}\"");
        let route = Route::new(filter.clone(), target.clone(), convert).excluding(excluded);
        self.call(|reply| BusCommand::Subscribe { route, reply }, operation)
            .await?
    }

    /// Removes a route. No message reaches its actor through this bus afterwards, though messages
    /// already in the actor's mailbox stay there.
    pub async fn unsubscribe(&self, route: RouteId) -> Result<(), BusError> {
        self.call(
            |reply| BusCommand::Unsubscribe { route, reply },
            || format!("unsubscribing {route}"),
        )
        .await?
    }

    /// Encodes `envelope` with `options.codec` and publishes it to `topic`.
    pub async fn publish<T: Serialize>(
        &self,
        topic: &TopicName,
        envelope: &Envelope<T>,
        options: PublishOptions,
    ) -> Result<(), BusError> {
        let payload = options
            .codec
            .encode(envelope)
            .map_err(|source| BusError::Encode {
                topic: topic.clone(),
                source,
            })?;
        self.publish_raw(topic, payload, options).await
    }

    /// Publishes bytes as they are, without encoding.
    ///
    /// Receivers decode them with `options.codec` like any other payload. This is for payloads
    /// that come from outside (a bridge, a test of bad input) and for an empty retained payload,
    /// which clears the retained message of `topic`.
    pub async fn publish_raw(
        &self,
        topic: &TopicName,
        payload: impl Into<Arc<[u8]>>,
        options: PublishOptions,
    ) -> Result<(), BusError> {
        let message = OutboundMessage {
            topic: topic.clone(),
            payload: payload.into(),
            options,
        };
        self.call(
            |reply| BusCommand::Publish { message, reply },
            || format!("publishing to \"{topic}\""),
        )
        .await?
    }

    /// Publishes already encoded messages in order with one bus command, and returns one result
    /// per message, in the same order.
    ///
    /// Use it to publish several messages that are ready at once: the bus handles them in one
    /// turn and keeps their order. An empty `messages` returns at once.
    pub async fn publish_batch(
        &self,
        messages: Vec<OutboundMessage>,
    ) -> Result<Vec<Result<(), BusError>>, BusError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let count = messages.len();
        self.call(
            |reply| BusCommand::PublishBatch { messages, reply },
            || format!("publishing a batch of {count} messages"),
        )
        .await
    }

    /// Clears the retained message of `topic` by publishing an empty retained payload.
    pub async fn clear_retained(&self, topic: &TopicName) -> Result<(), BusError> {
        let options = PublishOptions::state_change().with_retained(true);
        self.publish_raw(topic, Vec::new(), options).await
    }

    /// Sends a request to `topic` and waits up to `timeout` for the reply.
    ///
    /// The reply topic is `alicia/reply/{client}/{message id}` under this bus's own client id, and
    /// the request's envelope names it. The reply must carry the request's message id as its
    /// correlation id. An error reply becomes [`BusError::Remote`], and no reply within `timeout`
    /// becomes [`BusError::Timeout`].
    pub async fn request<Req, Resp>(
        &self,
        topic: &TopicName,
        request: Envelope<Req>,
        timeout: Duration,
    ) -> Result<Envelope<Resp>, BusError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let request_id = request.message_id();
        let reply_topic = self.reply_topic(topic, request_id)?;
        let request = request.with_reply_to(reply_topic.clone());

        let options = PublishOptions::request();
        let payload = options
            .codec
            .encode(&request)
            .map_err(|source| BusError::Encode {
                topic: topic.clone(),
                source,
            })?;
        let message = OutboundMessage {
            topic: topic.clone(),
            payload: payload.into(),
            options,
        };

        let operation = || format!("request to \"{topic}\"");
        let actor = resolve(&self.actor, operation).await?;
        let outcome = actor
            .call(
                |reply| BusCommand::Request {
                    message,
                    reply_topic: reply_topic.clone(),
                    reply,
                },
                Some(timeout),
            )
            .await;

        let reply = match outcome {
            Ok(CallResult::Success(reply)) => reply?,
            Ok(CallResult::Timeout) => {
                return Err(BusError::Timeout {
                    topic: topic.clone(),
                    reply_topic,
                    timeout,
                });
            }
            Ok(CallResult::SenderError) => return Err(stopped(operation())),
            Err(error) => return Err(unavailable(operation(), &error)),
        };

        self.decode_reply(topic, request_id, &reply)
    }

    /// Publishes `result` as the reply to `request`, on the reply topic that the request names.
    pub async fn respond<Req, Resp: Serialize>(
        &self,
        request: &Delivery<Req>,
        result: Result<Resp, ErrorBody>,
    ) -> Result<(), BusError> {
        let message = self.reply_message(request, result)?;
        self.publish_raw(&message.topic, message.payload, message.options)
            .await
    }

    /// Encodes `result` as the reply to `request` without publishing it, for a caller that
    /// publishes many replies with [`Bus::publish_batch`]. [`Bus::respond`] publishes the same
    /// message.
    pub fn reply_message<Req, Resp: Serialize>(
        &self,
        request: &Delivery<Req>,
        result: Result<Resp, ErrorBody>,
    ) -> Result<OutboundMessage, BusError> {
        let reply_topic = request
            .envelope
            .reply_to()
            .ok_or_else(|| BusError::NoReplyTopic {
                topic: request.topic.clone(),
            })?;
        let reply = request.envelope.reply(
            self.info.client.clone(),
            Reply::from(result),
            &*self.info.clock,
        );
        let options = PublishOptions::request();
        let payload = options
            .codec
            .encode(&reply)
            .map_err(|source| BusError::Encode {
                topic: reply_topic.clone(),
                source,
            })?;
        Ok(OutboundMessage {
            topic: reply_topic.clone(),
            payload: payload.into(),
            options,
        })
    }

    /// Reads the counters of one route.
    pub async fn route_stats(&self, route: RouteId) -> Result<RouteStats, BusError> {
        self.call(
            |reply| BusCommand::RouteStats { route, reply },
            || format!("reading the counters of {route}"),
        )
        .await?
        .ok_or(BusError::UnknownRoute { route })
    }

    /// Formats `alicia/reply/{client}/{request id}` from the manifest.
    fn reply_topic(&self, topic: &TopicName, request_id: MessageId) -> Result<TopicName, BusError> {
        let spec = manifest::lookup(REPLY_SPEC)
            .expect("MANIFEST contains the client.reply spec, as the bus tests check");
        let request = request_id.to_string();
        spec.format(&[
            ("client", self.info.client.as_str()),
            ("request", request.as_str()),
        ])
        .map_err(|source| BusError::ReplyTopic {
            topic: topic.clone(),
            source: Box::new(source),
        })
    }

    /// Decodes a raw reply, checks its correlation id and unwraps its status.
    fn decode_reply<Resp: DeserializeOwned>(
        &self,
        topic: &TopicName,
        request_id: MessageId,
        reply: &InboundReply,
    ) -> Result<Envelope<Resp>, BusError> {
        let envelope = reply
            .codec
            .decode::<Reply<Resp>>(&reply.payload, &self.info.limits)
            .map_err(|source| BusError::ReplyDecode {
                topic: topic.clone(),
                source,
            })?;

        if envelope.correlation_id() != Some(request_id) {
            return Err(BusError::ReplyMismatch {
                topic: topic.clone(),
                expected: request_id,
                found: envelope.correlation_id(),
            });
        }

        let header = DecodedHeader {
            message_id: envelope.message_id(),
            timestamp: envelope.timestamp(),
            source: envelope.source().clone(),
            correlation_id: envelope.correlation_id(),
            reply_to: envelope.reply_to().cloned(),
            auth_token: envelope.auth_token().cloned(),
        };
        match envelope.into_body() {
            Reply::Ok { value } => Ok(Envelope::from_decoded_parts(header, value)),
            Reply::Error { error } => Err(BusError::Remote {
                topic: topic.clone(),
                code: error.code,
                message: error.message,
            }),
        }
    }
}

impl Bus {
    /// Sends one command to the current bus actor and waits for the reply.
    async fn call<R, B, O>(&self, build: B, operation: O) -> Result<R, BusError>
    where
        R: Send + 'static,
        B: FnOnce(RpcReplyPort<R>) -> BusCommand,
        O: Fn() -> String,
    {
        let actor = resolve(&self.actor, &operation).await?;
        call(&actor, build, operation).await
    }
}

/// Finds the bus actor to send to, waiting for a supervised one within its handle's bound.
async fn resolve<O: Fn() -> String>(
    actor: &ChildHandle<BusCommand>,
    operation: O,
) -> Result<ActorRef<BusCommand>, BusError> {
    actor
        .running()
        .await
        .map_err(|error: CallError| BusError::Unavailable {
            operation: operation(),
            reason: error.to_string(),
        })
}

/// Sends one command and waits for the reply without a timeout, because the bus replies to every
/// command except [`BusCommand::Request`] as soon as it has handled it.
async fn call<R, B, O>(actor: &ActorRef<BusCommand>, build: B, operation: O) -> Result<R, BusError>
where
    R: Send + 'static,
    B: FnOnce(RpcReplyPort<R>) -> BusCommand,
    O: FnOnce() -> String,
{
    match actor.call(build, None).await {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout | CallResult::SenderError) => Err(stopped(operation())),
        Err(error) => Err(unavailable(operation(), &error)),
    }
}

fn unavailable(operation: String, error: &MessagingErr<BusCommand>) -> BusError {
    BusError::Unavailable {
        operation,
        reason: format!("{error:?}"),
    }
}

fn stopped(operation: String) -> BusError {
    BusError::Unavailable {
        operation,
        reason: "it stopped before it replied".to_owned(),
    }
}
