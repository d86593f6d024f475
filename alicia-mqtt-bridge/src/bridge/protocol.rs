//! The two MQTT protocol versions behind one interface.
//!
//! rumqttc has a separate client, event loop and packet set per protocol version. The writer and
//! the I/O task use [`Client`] and [`EventLoop`] from here, so they read the same for both, and
//! the version-specific mapping stays in this file.

use std::fmt;
use std::str::FromStr;

use alicia_core::manifest::QoS;
use alicia_core::topic::TopicFilter;
use rumqttc::v5;

/// The MQTT protocol version the bridge speaks to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MqttVersion {
    /// MQTT 3.1.1. The broker alone sets how many QoS 1 messages it sends the bridge before an
    /// acknowledgement (Mosquitto: `max_inflight_messages`, 20 by default) and queues the rest
    /// up to its own limit (`max_queued_messages`, 1000), dropping what is over it. The embedded
    /// broker speaks this version.
    V311,
    /// MQTT 5. The bridge announces its receive maximum in CONNECT, so the broker sends a burst
    /// without waiting for acknowledgements and its per-client queue stays empty. The burst then
    /// waits in the bridge's route queues, which count their overflow.
    #[default]
    V5,
}

impl MqttVersion {
    /// Returns the version as written in settings: `3.1.1` or `5`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V311 => "3.1.1",
            Self::V5 => "5",
        }
    }
}

impl fmt::Display for MqttVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`MqttVersion`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown MQTT version {0:?}; use \"5\" or \"3.1.1\"")]
pub struct UnknownMqttVersion(pub String);

impl FromStr for MqttVersion {
    type Err = UnknownMqttVersion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "5" | "5.0" => Ok(Self::V5),
            "3.1.1" | "4" => Ok(Self::V311),
            other => Err(UnknownMqttVersion(other.to_owned())),
        }
    }
}

/// The rumqttc client of either version. Only the writer task sends through it.
pub(crate) enum Client {
    V311(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// The error of a request that rumqttc could not take because its event loop has stopped.
#[derive(Debug)]
pub(crate) struct ClientClosed(String);

impl fmt::Display for ClientClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn client_closed(error: impl fmt::Display) -> ClientClosed {
    ClientClosed(error.to_string())
}

impl Client {
    pub async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), ClientClosed> {
        match self {
            Self::V311(client) => client
                .publish(topic, qos_v311(qos), retain, payload)
                .await
                .map_err(client_closed),
            Self::V5(client) => client
                .publish(topic, qos_v5(qos), retain, payload)
                .await
                .map_err(client_closed),
        }
    }

    /// Subscribes every filter at QoS 1 in one SUBSCRIBE packet.
    pub async fn subscribe_many(&self, filters: Vec<TopicFilter>) -> Result<(), ClientClosed> {
        match self {
            Self::V311(client) => {
                let filters = filters.into_iter().map(|filter| {
                    rumqttc::SubscribeFilter::new(filter.into_string(), rumqttc::QoS::AtLeastOnce)
                });
                client.subscribe_many(filters).await.map_err(client_closed)
            }
            Self::V5(client) => {
                let filters = filters.into_iter().map(|filter| {
                    v5::mqttbytes::v5::Filter::new(
                        filter.into_string(),
                        v5::mqttbytes::QoS::AtLeastOnce,
                    )
                });
                client.subscribe_many(filters).await.map_err(client_closed)
            }
        }
    }

    /// Subscribes one filter at QoS 1.
    pub async fn subscribe(&self, filter: &TopicFilter) -> Result<(), ClientClosed> {
        self.subscribe_many(vec![filter.clone()]).await
    }

    pub async fn unsubscribe(&self, filter: &TopicFilter) -> Result<(), ClientClosed> {
        match self {
            Self::V311(client) => client
                .unsubscribe(filter.as_str())
                .await
                .map_err(client_closed),
            Self::V5(client) => client
                .unsubscribe(filter.as_str())
                .await
                .map_err(client_closed),
        }
    }

    pub async fn disconnect(&self) -> Result<(), ClientClosed> {
        match self {
            Self::V311(client) => client.disconnect().await.map_err(client_closed),
            Self::V5(client) => client.disconnect().await.map_err(client_closed),
        }
    }
}

fn qos_v311(qos: QoS) -> rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos_v5(qos: QoS) -> v5::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn qos_from_v311(qos: rumqttc::QoS) -> QoS {
    match qos {
        rumqttc::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn qos_from_v5(qos: v5::mqttbytes::QoS) -> QoS {
    match qos {
        v5::mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        v5::mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        v5::mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// The outcome of one poll of the event loop, reduced to what the bridge uses.
#[derive(Debug)]
pub(crate) enum Event {
    /// The broker accepted the connection.
    ConnAck { session_present: bool },
    /// An inbound publish. MQTT 5 carries the topic as bytes, so it is checked here.
    Publish(Inbound),
    /// The broker acknowledged the SUBSCRIBE with this packet id.
    SubAck { pkid: u16 },
    /// A SUBSCRIBE left with this packet id.
    SubscribeSent { pkid: u16 },
    /// The DISCONNECT packet left; the connection is closing cleanly.
    DisconnectSent,
    /// Anything else: pings, acknowledgements, outgoing publishes.
    Other,
}

/// An inbound publish.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// The topic, or the bytes that are not UTF-8.
    pub topic: Result<String, Vec<u8>>,
    pub payload: bytes::Bytes,
    pub retain: bool,
}

/// A publish that rumqttc held unacknowledged or unsent when a connection broke.
#[derive(Debug, Clone)]
pub(crate) struct Unsent {
    pub topic: String,
    pub qos: QoS,
    pub retain: bool,
    pub payload: bytes::Bytes,
}

/// A failed poll: the connection is gone or could not be made.
#[derive(Debug)]
pub(crate) struct PollError {
    /// Whether the TLS handshake failed, which gets its own hint in the log.
    pub tls: bool,
    /// Whether the broker closed the connection without a DISCONNECT packet.
    pub closed_by_broker: bool,
    message: String,
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The rumqttc event loop of either version. Only the I/O task polls it.
pub(crate) enum EventLoop {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

impl EventLoop {
    pub fn version(&self) -> MqttVersion {
        match self {
            Self::V311(_) => MqttVersion::V311,
            Self::V5(_) => MqttVersion::V5,
        }
    }

    /// Polls once: reads and writes the socket, connecting first when there is no connection.
    pub async fn poll(&mut self) -> Result<Event, PollError> {
        match self {
            Self::V311(eventloop) => match eventloop.poll().await {
                Ok(event) => Ok(event_v311(event)),
                Err(error) => Err(PollError {
                    tls: matches!(error, rumqttc::ConnectionError::Tls(_)),
                    closed_by_broker: matches!(
                        error,
                        rumqttc::ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted)
                    ),
                    message: error.to_string(),
                }),
            },
            Self::V5(eventloop) => match eventloop.poll().await {
                Ok(event) => Ok(event_v5(event)),
                Err(error) => Err(PollError {
                    tls: matches!(error, v5::ConnectionError::Tls(_)),
                    closed_by_broker: matches!(
                        error,
                        v5::ConnectionError::MqttState(v5::StateError::ConnectionAborted)
                    ),
                    message: error.to_string(),
                }),
            },
        }
    }

    /// Takes the requests rumqttc kept after a failed poll: the publishes, to send again after
    /// the next session replay, and the number of subscribes, which the replay covers.
    ///
    /// rumqttc moves unacknowledged publishes and unsent requests into its `pending` list after
    /// an error, and clears that list when the next CONNACK reports no session.
    pub fn take_pending(&mut self) -> (Vec<Unsent>, usize) {
        let mut publishes = Vec::new();
        let mut subscribes = 0;
        match self {
            Self::V311(eventloop) => {
                for request in eventloop.pending.drain(..) {
                    match request {
                        rumqttc::Request::Publish(publish) => publishes.push(Unsent {
                            topic: publish.topic,
                            qos: qos_from_v311(publish.qos),
                            retain: publish.retain,
                            payload: publish.payload,
                        }),
                        rumqttc::Request::Subscribe(_) => subscribes += 1,
                        _ => {}
                    }
                }
            }
            Self::V5(eventloop) => {
                for request in eventloop.pending.drain(..) {
                    match request {
                        v5::Request::Publish(publish) => {
                            // The bridge publishes only valid topic names, which are UTF-8.
                            let Ok(topic) = String::from_utf8(publish.topic.to_vec()) else {
                                continue;
                            };
                            publishes.push(Unsent {
                                topic,
                                qos: qos_from_v5(publish.qos),
                                retain: publish.retain,
                                payload: publish.payload,
                            });
                        }
                        v5::Request::Subscribe(_) => subscribes += 1,
                        _ => {}
                    }
                }
            }
        }
        (publishes, subscribes)
    }
}

fn event_v311(event: rumqttc::Event) -> Event {
    use rumqttc::{Incoming, Outgoing};
    match event {
        rumqttc::Event::Incoming(Incoming::ConnAck(ack)) => Event::ConnAck {
            session_present: ack.session_present,
        },
        rumqttc::Event::Incoming(Incoming::Publish(publish)) => Event::Publish(Inbound {
            topic: Ok(publish.topic),
            payload: publish.payload,
            retain: publish.retain,
        }),
        rumqttc::Event::Incoming(Incoming::SubAck(ack)) => Event::SubAck { pkid: ack.pkid },
        rumqttc::Event::Outgoing(Outgoing::Subscribe(pkid)) => Event::SubscribeSent { pkid },
        rumqttc::Event::Outgoing(Outgoing::Disconnect) => Event::DisconnectSent,
        _ => Event::Other,
    }
}

fn event_v5(event: v5::Event) -> Event {
    use rumqttc::Outgoing;
    use v5::mqttbytes::v5::Packet;
    match event {
        v5::Event::Incoming(Packet::ConnAck(ack)) => Event::ConnAck {
            session_present: ack.session_present,
        },
        v5::Event::Incoming(Packet::Publish(publish)) => Event::Publish(Inbound {
            topic: String::from_utf8(publish.topic.to_vec()).map_err(|error| error.into_bytes()),
            payload: publish.payload,
            retain: publish.retain,
        }),
        v5::Event::Incoming(Packet::SubAck(ack)) => Event::SubAck { pkid: ack.pkid },
        v5::Event::Outgoing(Outgoing::Subscribe(pkid)) => Event::SubscribeSent { pkid },
        v5::Event::Outgoing(Outgoing::Disconnect) => Event::DisconnectSent,
        _ => Event::Other,
    }
}
