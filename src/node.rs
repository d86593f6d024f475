//! The node: one process's store, bus and services under one root supervisor.
//!
//! ```text
//! root supervisor (rest-for-one)
//!  ├── bus              the MQTT bridge, or the in-process bus
//!  ├── registry         device registry actor
//!  ├── registry-routes  the registry's MQTT requests and device heartbeats
//!  └── health           health monitor (subscribes to heartbeats and node presence itself)
//! ```
//!
//! The root supervisor restarts a child that fails and, because it is rest-for-one, every child
//! started after it. A restart of the bus therefore restarts the services too, and they subscribe
//! again on the new bus incarnation. State that must survive a restart lives in the store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use alicia_actors::health::{
    HealthArgs, HealthClient, HealthConfig, HealthMonitor, HeartbeatSettings, HeartbeatSink,
    MetricsRegistry, MetricsServer, ServiceNaming, SupervisorHeartbeats,
};
use alicia_actors::registry::{
    RegistryActor, RegistryArgs, RegistryClient, RegistryConfig, RegistryRoutes, RoutesArgs,
    spawn_event_publisher,
};
use alicia_core::bus::{Bus, BusCommand, LocalBus, LocalBusConfig};
use alicia_core::store::{Recovery, Store, StoreOptions};
use alicia_core::supervisor::{
    ChildId, ChildSpec, Intensity, Strategy, Supervisor, SupervisorSpec,
};
use alicia_core::{NodeId, SharedClock, SourceId, SystemClock};
#[cfg(feature = "embedded-broker")]
use alicia_mqtt_bridge::broker::{EmbeddedBroker, EmbeddedBrokerConfig};
use alicia_mqtt_bridge::{BridgeConfig, BridgeHandle, BrokerUrl, MqttBridge, MqttVersion};
use std::sync::Arc;

use alicia_actors::health::spawn_alert_publisher;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{BrokerChoice, NodeConfig};
use crate::metrics::BridgeMetrics;

/// Requests the registry routes run at once; enough for bursts to share durable commits.
const REGISTRY_MAX_IN_FLIGHT: usize = 256;

/// Registry events that may wait for the bus before the registry itself waits.
const REGISTRY_EVENT_QUEUE: usize = 4_096;

/// Messages that may wait for one route's decoder in the node's bridge. The bridge's I/O task
/// drops a message whose route queue is full, and a 10,000-registration burst outruns the
/// registration route's decoder by more than the bridge's default of 1024. Tokio allocates a
/// bounded channel's buffer as messages arrive, so an idle route costs nothing for this bound.
const NODE_ROUTE_QUEUE: usize = 65_536;

/// How long shutdown waits for the event publishers to send their last events.
const PUBLISHER_DRAIN: Duration = Duration::from_secs(2);

/// Default time between the heartbeats the node publishes for each of its services.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// How long an external broker keeps a node's MQTT session while the node is away. It is long
/// enough for a restart or an upgrade, and short enough that the broker soon stops queueing
/// messages for a node removed for good.
pub const DEFAULT_SESSION_EXPIRY: Duration = Duration::from_secs(3600);

/// A failure to start or stop a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store could not be opened.
    #[error("opening the node's store in {data_dir} failed: {source}")]
    Store {
        /// The data directory.
        data_dir: PathBuf,
        /// The underlying error.
        source: alicia_core::StoreError,
    },

    /// The embedded broker could not start, or is not built in.
    #[error("{0}")]
    Broker(String),

    /// The root supervisor failed to start.
    #[error("starting the node's supervisor failed: {0}")]
    Start(#[from] alicia_core::supervisor::SupervisorError),

    /// A service failed to start under the root supervisor.
    #[error("starting a service failed: {0}")]
    Service(#[from] alicia_core::supervisor::AddChildError),

    /// The bus could not be reached after it started.
    #[error("connecting to the node's bus failed: {0}")]
    Bus(#[from] alicia_core::bus::BusError),

    /// A configuration value was rejected.
    #[error("invalid node setting: {0}")]
    Config(String),

    /// The metrics endpoint could not start.
    #[error("starting the metrics endpoint failed: {0}")]
    Metrics(#[from] alicia_actors::health::MetricsError),
}

/// Builds and starts a [`Node`].
#[derive(Debug)]
pub struct NodeBuilder {
    config: NodeConfig,
    clock: SharedClock,
    registry: Option<RegistryConfig>,
    health: Option<HealthConfig>,
    heartbeat_interval: Duration,
    keepalive: Duration,
    session_expiry: Option<Duration>,
    metrics_listen: Option<SocketAddr>,
    store: StoreOptions,
}

/// A running node. Call [`Node::shutdown`] to stop it cleanly.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    data_dir: PathBuf,
    store: Store,
    recovery: Option<Recovery>,
    supervisor: Supervisor,
    bus: Bus,
    registry: Option<RegistryClient>,
    health: Option<HealthClient>,
    metrics: Option<MetricsServer>,
    heartbeats: Option<SupervisorHeartbeats>,
    /// Counters and connection state of the MQTT bridge, when the node uses one.
    bridge: Option<BridgeHandle>,
    /// The embedded broker, stopped after everything else so the bridge can publish its offline
    /// presence first.
    #[cfg(feature = "embedded-broker")]
    broker: Option<EmbeddedBroker>,
    /// Tasks that publish service events on the bus; they end when their services stop.
    publishers: Vec<JoinHandle<()>>,
}

impl Node {
    /// Starts building a node from `config`.
    pub fn builder(config: NodeConfig) -> NodeBuilder {
        NodeBuilder {
            config,
            clock: SystemClock::shared(),
            registry: Some(RegistryConfig::default()),
            health: Some(HealthConfig::default()),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            keepalive: BridgeConfig::DEFAULT_KEEPALIVE,
            session_expiry: Some(DEFAULT_SESSION_EXPIRY),
            metrics_listen: None,
            store: StoreOptions::default(),
        }
    }

    /// Returns the node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// Returns the directory of the node's database.
    pub fn data_dir(&self) -> &PathBuf {
        &self.data_dir
    }

    /// Returns the node's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Returns the recovery report when the database file was corrupt at start and was replaced
    /// by an empty one.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// Returns the node's bus client.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Returns the device registry, unless it was turned off.
    pub fn registry(&self) -> Option<&RegistryClient> {
        self.registry.as_ref()
    }

    /// Returns the health monitor, unless it was turned off.
    pub fn health(&self) -> Option<&HealthClient> {
        self.health.as_ref()
    }

    /// Returns the address of the metrics endpoint, when it was turned on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::address)
    }

    /// Returns the address the embedded broker listens on, when the node runs one.
    pub fn broker_addr(&self) -> Option<SocketAddr> {
        #[cfg(feature = "embedded-broker")]
        {
            self.broker.as_ref().map(EmbeddedBroker::local_addr)
        }
        #[cfg(not(feature = "embedded-broker"))]
        {
            None
        }
    }

    /// Returns the MQTT bridge's counters and connection state, when the node uses MQTT.
    pub fn bridge(&self) -> Option<&BridgeHandle> {
        self.bridge.as_ref()
    }

    /// Returns the root supervisor, for snapshots of the supervision tree.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Stops the services in reverse start order, then the bus, and waits for the event
    /// publishers to send what their services committed.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        drop(self.heartbeats);
        drop(self.metrics);
        // The clients hold the senders of the event channels; the publishers end only once
        // every sender is gone.
        drop(self.registry);
        drop(self.health);
        tracing::info!(node = %self.id, "node stopping");
        // The services remove their routes as they stop. With an MQTT session the broker keeps
        // their subscriptions for the next start, so the removal stays local.
        if let Some(bridge) = &self.bridge {
            bridge.keep_broker_subscriptions();
        }

        let stopped = self.supervisor.stop().await;
        // The publishers end once their services' channels close; the bound covers a bus that
        // cannot take the last events.
        for mut publisher in self.publishers {
            if tokio::time::timeout(PUBLISHER_DRAIN, &mut publisher)
                .await
                .is_err()
            {
                publisher.abort();
            }
        }
        if let Err(error) = self.store.sync() {
            tracing::error!(node = %self.id, %error, "flushing the store at shutdown failed");
        }
        #[cfg(feature = "embedded-broker")]
        if let Some(broker) = self.broker {
            let stopped = tokio::task::spawn_blocking(move || broker.shutdown()).await;
            match stopped {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(node = %self.id, %error, "stopping the embedded broker failed")
                }
                Err(error) => {
                    tracing::error!(node = %self.id, %error, "stopping the embedded broker failed")
                }
            }
        }
        stopped?;

        tracing::info!(node = %self.id, "node stopped");
        Ok(())
    }
}

impl NodeBuilder {
    /// Uses `clock` for every expiry decision instead of the system clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs the device registry with `config` (it runs with defaults unless turned off).
    pub fn registry(mut self, config: RegistryConfig) -> Self {
        self.registry = Some(config);
        self
    }

    /// Leaves the device registry out.
    pub fn without_registry(mut self) -> Self {
        self.registry = None;
        self
    }

    /// Runs the health monitor with `config` (it runs with defaults unless turned off).
    pub fn health(mut self, config: HealthConfig) -> Self {
        self.health = Some(config);
        self
    }

    /// Leaves the health monitor out.
    pub fn without_health(mut self) -> Self {
        self.health = None;
        self
    }

    /// Sets how long an external broker keeps the node's MQTT session while the node is away, or
    /// `None` for a clean session (default [`DEFAULT_SESSION_EXPIRY`]). With a session the broker
    /// queues the node's QoS 1 messages while it restarts, up to the broker's own limit, and the
    /// node handles them after its services start. The embedded broker always has clean sessions.
    pub fn session_expiry(mut self, expiry: Option<Duration>) -> Self {
        self.session_expiry = expiry;
        self
    }

    /// Sets the maximum memory, in bytes, of the database's page cache (default
    /// [`StoreOptions::DEFAULT_CACHE_SIZE`], 16 MiB).
    pub fn store_cache_size(mut self, bytes: usize) -> Self {
        self.store.cache_size = bytes;
        self
    }

    /// Sets the time between the heartbeats published for each service.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets the MQTT keepalive interval of the node's bridge (at least 1 s).
    ///
    /// When the node goes silent without closing its connection, MQTT lets the broker wait 1.5
    /// times this interval after the node's last packet before it publishes the node's presence
    /// `offline`, and health monitors then mark its services down. Mosquitto 2.0 checks
    /// keepalives only every few seconds, so it can take longer. The in-process bus ignores it.
    pub fn keepalive(mut self, keepalive: Duration) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Serves Prometheus metrics on `address`, which must be a loopback address.
    pub fn metrics(mut self, address: SocketAddr) -> Self {
        self.metrics_listen = Some(address);
        self
    }

    /// Opens the store, starts the bus and every service under the root supervisor, and returns
    /// once all of them run.
    pub async fn start(self) -> Result<Node, NodeError> {
        let NodeBuilder {
            config,
            clock,
            registry: registry_config,
            health: health_config,
            heartbeat_interval,
            keepalive,
            session_expiry,
            metrics_listen,
            store: store_options,
        } = self;
        let node = config.node_id.clone();

        let opened =
            Store::open_with(&config.data_dir, clock.clone(), store_options).map_err(|source| {
                NodeError::Store {
                    data_dir: config.data_dir.clone(),
                    source,
                }
            })?;
        if let Some(recovery) = &opened.recovery {
            tracing::error!(%node, %recovery, "the node's database was corrupt and has been replaced by an empty one");
        }
        let store = opened.store;

        #[cfg(feature = "embedded-broker")]
        let broker = match &config.broker {
            BrokerChoice::Embedded { listen } => Some(start_embedded_broker(*listen).await?),
            _ => None,
        };
        #[cfg(feature = "embedded-broker")]
        let broker_url = broker
            .as_ref()
            .map(|broker| loopback_url(broker.local_addr()));
        #[cfg(not(feature = "embedded-broker"))]
        let broker_url: Option<BrokerUrl> = None;

        // The bus starts first and alone, so that the services can be given a Bus that follows
        // the bus child's incarnations. They are added after it, in start order, which is the
        // order the rest-for-one strategy restarts them in.
        let client = SourceId::from(node.clone());
        let bus_settings = BusSettings {
            embedded_url: broker_url,
            client: client.clone(),
            clock: clock.clone(),
            keepalive,
            session_expiry,
        };
        let (bus_child, bridge) = bus_child(&config, bus_settings)?;
        let bus_handle = bus_child.handle();
        let root = SupervisorSpec::new(child_id("root"))
            .strategy(Strategy::RestForOne)
            .intensity(Intensity::new(5, Duration::from_secs(60)))
            .clock(clock.clone())
            .child(bus_child);
        let supervisor = Supervisor::start(root).await?;
        let bus = Bus::connect_supervised(bus_handle).await?;

        let mut publishers = Vec::new();
        let registry = match registry_config {
            Some(registry_config) => {
                let started =
                    start_registry(&supervisor, &bus, &client, &store, &clock, registry_config)
                        .await?;
                publishers.push(started.1);
                Some(started.0)
            }
            None => None,
        };
        let health = match health_config {
            Some(health_config) => {
                let started =
                    start_health(&supervisor, &bus, &store, &clock, health_config).await?;
                publishers.push(started.1);
                Some(started.0)
            }
            None => None,
        };

        let heartbeats = SupervisorHeartbeats::start(
            supervisor.handle(),
            HeartbeatSink::Bus(bus.clone()),
            HeartbeatSettings {
                node: node.clone(),
                interval: heartbeat_interval,
                clock: clock.clone(),
                // Other nodes run children of the same ids, and one monitor may hear them all.
                naming: ServiceNaming::NodeQualified,
                publish_tree: true,
            },
            HashMap::new(),
        );

        let metrics = match metrics_listen {
            Some(address) => {
                let sources = MetricsRegistry::new();
                if let Some(health) = &health {
                    sources.register(Arc::new(health.clone()));
                }
                if let Some(registry) = &registry {
                    sources.register(Arc::new(registry.clone()));
                }
                if let Some(bridge) = &bridge {
                    sources.register(Arc::new(BridgeMetrics(bridge.clone())));
                }
                Some(MetricsServer::bind(address, sources).await?)
            }
            None => None,
        };

        // Every service has subscribed its routes, so messages the broker kept for the node while
        // it was away can go to them now.
        // NOTE: a bridge that its supervisor restarts keeps inbound messages back for the whole
        // `BridgeConfig::start_hold` (5 s), because nothing tells it when the services that
        // restart after it have subscribed again.
        if let Some(bridge) = &bridge {
            bridge.release_held();
        }
        tracing::info!(%node, data_dir = %config.data_dir.display(), "node started");
        Ok(Node {
            id: node,
            data_dir: config.data_dir,
            store,
            recovery: opened.recovery,
            supervisor,
            bus,
            registry,
            health,
            metrics,
            heartbeats: Some(heartbeats),
            bridge,
            #[cfg(feature = "embedded-broker")]
            broker,
            publishers,
        })
    }
}

/// Settings of the bus child besides the node's configuration.
struct BusSettings {
    /// The URL of the embedded broker, when the node runs one.
    embedded_url: Option<BrokerUrl>,
    client: SourceId,
    clock: SharedClock,
    /// The bridge's MQTT keepalive interval.
    keepalive: Duration,
    /// The bridge's MQTT session expiry for an external broker.
    session_expiry: Option<Duration>,
}

/// The bus child: the in-process bus, or the MQTT bridge to the chosen broker.
fn bus_child(
    config: &NodeConfig,
    settings: BusSettings,
) -> Result<(ChildSpec<BusCommand>, Option<BridgeHandle>), NodeError> {
    let BusSettings {
        embedded_url,
        client,
        clock,
        keepalive,
        session_expiry,
    } = settings;
    let (url, protocol) = match (&config.broker, embedded_url) {
        (BrokerChoice::InProcess, _) => {
            let child = ChildSpec::new(child_id("bus"), move || {
                let config = LocalBusConfig::new(client.clone()).with_clock(clock.clone());
                (LocalBus, config)
            });
            return Ok((child, None));
        }
        (BrokerChoice::External { url, protocol }, _) => (url.clone(), *protocol),
        // rumqttd's listener speaks MQTT 3.1.1 only.
        (BrokerChoice::Embedded { .. }, Some(url)) => (url, MqttVersion::V311),
        (BrokerChoice::Embedded { listen }, None) => {
            return Err(NodeError::Broker(format!(
                "cannot run the embedded broker on {listen}: this build of alicia has no \
                 embedded broker (cargo feature `embedded-broker`); connect to an external \
                 broker instead"
            )));
        }
    };

    let mut bridge_config = BridgeConfig::new(url, config.node_id.clone()).with_protocol(protocol);
    bridge_config.clock = clock;
    bridge_config.keepalive = keepalive;
    bridge_config.tls = config.tls.clone();
    bridge_config.route_queue = NODE_ROUTE_QUEUE;
    // NOTE: the embedded broker keeps clean sessions: rumqttd's handling of persistent sessions
    // is not tested here, and the broker runs in the node's own process, so it is down whenever
    // the node is.
    if matches!(config.broker, BrokerChoice::External { .. }) {
        bridge_config.session_expiry = session_expiry;
    }
    bridge_config
        .validate()
        .map_err(|error| NodeError::Config(error.to_string()))?;
    let bridge = MqttBridge::default();
    let handle = bridge.handle();
    let child = ChildSpec::new(child_id("bus"), move || {
        (bridge.clone(), bridge_config.clone())
    });
    Ok((child, Some(handle)))
}

/// Starts the embedded broker on `listen`; rumqttd's start-up blocks, so it runs off the async
/// threads.
#[cfg(feature = "embedded-broker")]
async fn start_embedded_broker(listen: SocketAddr) -> Result<EmbeddedBroker, NodeError> {
    let config = EmbeddedBrokerConfig::with_listen(listen);
    tokio::task::spawn_blocking(move || EmbeddedBroker::start(config))
        .await
        .map_err(|error| {
            NodeError::Broker(format!("starting the embedded broker failed: {error}"))
        })?
        .map_err(|error| NodeError::Broker(error.to_string()))
}

/// Returns the URL the node's own bridge uses to reach a broker listening on `address`. An
/// unspecified address (`0.0.0.0`, `::`) is reached on loopback.
#[cfg(feature = "embedded-broker")]
fn loopback_url(address: SocketAddr) -> BrokerUrl {
    let host = match address.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    let url = format!("mqtt://{}", SocketAddr::new(host, address.port()));
    BrokerUrl::parse(&url).expect("a socket address formats as a valid broker URL")
}

/// Adds the registry and its routes to the root supervisor and starts its event publisher.
async fn start_registry(
    supervisor: &Supervisor,
    bus: &Bus,
    client: &SourceId,
    store: &Store,
    clock: &SharedClock,
    config: RegistryConfig,
) -> Result<(RegistryClient, JoinHandle<()>), NodeError> {
    let (events, receiver) = mpsc::channel(REGISTRY_EVENT_QUEUE);
    let publisher = spawn_event_publisher(bus.clone(), client.clone(), receiver);

    let (store, clock) = (store.clone(), clock.clone());
    let registry_child = ChildSpec::new(child_id("registry"), move || {
        let args = RegistryArgs {
            store: store.clone(),
            clock: clock.clone(),
            config: config.clone(),
            events: Some(events.clone()),
        };
        (RegistryActor, args)
    });
    let registry = RegistryClient::supervised(registry_child.handle());
    supervisor.add_child(registry_child).await?;

    let (bus, routes_registry) = (bus.clone(), registry.clone());
    let routes_child = ChildSpec::new(child_id("registry-routes"), move || {
        let args = RoutesArgs {
            bus: bus.clone(),
            registry: routes_registry.clone(),
            max_in_flight: REGISTRY_MAX_IN_FLIGHT,
        };
        (RegistryRoutes, args)
    });
    supervisor.add_child(routes_child).await?;

    Ok((registry, publisher))
}

/// Adds the health monitor to the root supervisor and starts its alert publisher.
async fn start_health(
    supervisor: &Supervisor,
    bus: &Bus,
    store: &Store,
    clock: &SharedClock,
    config: HealthConfig,
) -> Result<(HealthClient, JoinHandle<()>), NodeError> {
    config
        .validate()
        .map_err(|error| NodeError::Config(error.to_string()))?;
    let alerts = HealthMonitor::alert_channel();
    let publisher = spawn_alert_publisher(bus.clone(), alerts.subscribe())
        .map_err(|error| NodeError::Config(error.to_string()))?;

    let (store, clock, bus, sender) = (store.clone(), clock.clone(), bus.clone(), alerts.clone());
    let health_child = ChildSpec::new(child_id("health"), move || {
        let args = HealthArgs {
            config: config.clone(),
            store: store.clone(),
            clock: clock.clone(),
            alerts: sender.clone(),
            bus: Some(bus.clone()),
        };
        (HealthMonitor, args)
    });
    let health = HealthClient::supervised(health_child.handle(), alerts);
    supervisor.add_child(health_child).await?;

    Ok((health, publisher))
}

fn child_id(id: &str) -> ChildId {
    ChildId::new(id).expect("child ids written in this module satisfy the id rule")
}
