//! The topic manifest: every MQTT topic the framework uses, in one list.
//!
//! Each [`TopicSpec`] in [`MANIFEST`] gives a topic's pattern, message type, QoS, retained flag
//! and the roles that may publish and subscribe. Docs ([`markdown_table`]), the broker ACL and
//! tests are built from this list, so they cannot drift from the code.
//!
//! # Patterns
//!
//! A pattern is a topic name in which some levels are parameters, written `{name}`, as in
//! `alicia/devices/status/{device}`. A parameter is always a whole level. [`TopicSpec::format`]
//! fills the parameters in, [`TopicSpec::parse`] reads them back out and [`TopicSpec::filter`]
//! replaces each one with `+`. Every parameter value must be a valid id (see [`crate::id`]), so it
//! is exactly one topic level and never contains `/`, `+`, `#` or a leading `$`.
//!
//! # Reserved ids
//!
//! Some patterns overlap. `alicia/devices/status/heartbeat` fits both
//! `alicia/devices/status/{device}` (the status of device `heartbeat`) and
//! `alicia/devices/{device}/heartbeat` (the heartbeat of device `status`). [`RESERVED_IDS`] lists
//! the values that a parameter of a given name may not take, such as the device ids `status` and
//! `registry`. Formatting and parsing reject them, so every topic name fits at most one spec in
//! [`MANIFEST`], and [`identify`] finds that spec. A test checks that every pair of overlapping
//! patterns differs in a level where one has a reserved value.

mod pattern;
mod spec;

pub use spec::{Access, Direction, ManifestError, QoS, Role, TopicParams, TopicSpec};

use crate::topic::TopicName;

/// A value that a parameter of a given name may not take, because it would make a topic fit a
/// second spec or land in a subtree that another part of the framework owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReservedId {
    /// Name of the parameter, as written in patterns without braces, e.g. `device`.
    pub parameter: &'static str,
    /// The reserved value.
    pub value: &'static str,
    /// Reason the value is reserved, quoted in error messages.
    pub reason: &'static str,
}

/// Parameter values that no spec accepts, whatever pattern the parameter is in.
pub static RESERVED_IDS: &[ReservedId] = &[
    ReservedId {
        parameter: "device",
        value: "status",
        reason: "alicia/devices/status/... holds the device registry's status topics",
    },
    ReservedId {
        parameter: "device",
        value: "registry",
        reason: "alicia/devices/registry/... holds the device registry's events",
    },
    ReservedId {
        parameter: "service",
        value: "alerts",
        reason: "alicia/system/health/alerts is the health monitor's alert topic",
    },
    ReservedId {
        parameter: "service",
        value: "nodes",
        reason: "alicia/nodes/... holds node presence",
    },
    ReservedId {
        parameter: "service",
        value: "devices",
        reason: "alicia/devices/... holds device topics",
    },
    ReservedId {
        parameter: "service",
        value: "system",
        reason: "alicia/system/... holds the framework's own topics",
    },
    ReservedId {
        parameter: "service",
        value: "reply",
        reason: "alicia/reply/... holds the replies to each client",
    },
];

/// Every topic the framework uses.
///
/// NOTE: the message types named here are defined by the services that own the topics. Nothing
/// checks yet that a type of that name exists.
pub static MANIFEST: &[TopicSpec] = &[
    TopicSpec::new("node.presence", "alicia/nodes/{node}/presence")
        .with_message("NodePresence")
        .with_qos(QoS::AtLeastOnce)
        .with_retained(true)
        .with_publishers(Access::for_roles(&[Role::Node]).own_only("node"))
        .with_subscribers(Access::for_roles(&[
            Role::Node,
            Role::Service,
            Role::Client,
            Role::Admin,
            Role::Observer,
        ]))
        .with_description(
            "Whether a node is online or offline; the broker publishes offline as the node's last will.",
        ),
    TopicSpec::new("device.heartbeat", "alicia/devices/{device}/heartbeat")
        .with_message("DeviceHeartbeat")
        // A lost heartbeat is replaced by the next one, so at-most-once delivery is enough.
        .with_qos(QoS::AtMostOnce)
        .with_publishers(Access::for_roles(&[Role::Device]).own_only("device"))
        .with_subscribers(Access::for_roles(&[Role::Service, Role::Admin, Role::Observer]))
        .with_description(
            "Periodic sign of life from one device, from which the device registry derives availability.",
        ),
    TopicSpec::new("device.status", "alicia/devices/status/{device}")
        .with_message("DeviceStatus")
        .with_qos(QoS::AtLeastOnce)
        .with_retained(true)
        .with_publishers(Access::for_roles(&[Role::Service]))
        .with_subscribers(Access::for_roles(&[
            Role::Service,
            Role::Client,
            Role::Admin,
            Role::Observer,
        ]))
        .with_description(
            "Availability and last_seen of one device, published by the device registry.",
        ),
    TopicSpec::new("registry.registered", "alicia/devices/registry/registered")
        .with_message("DeviceRegistered")
        .with_qos(QoS::AtLeastOnce)
        .with_publishers(Access::for_roles(&[Role::Service]))
        .with_subscribers(Access::for_roles(&[
            Role::Service,
            Role::Client,
            Role::Admin,
            Role::Observer,
        ]))
        .with_description("A device was added to the device registry."),
    TopicSpec::new("registry.deregistered", "alicia/devices/registry/deregistered")
        .with_message("DeviceDeregistered")
        .with_qos(QoS::AtLeastOnce)
        .with_publishers(Access::for_roles(&[Role::Service]))
        .with_subscribers(Access::for_roles(&[
            Role::Service,
            Role::Client,
            Role::Admin,
            Role::Observer,
        ]))
        .with_description("A device was removed from the device registry."),
    TopicSpec::new("registry.updated", "alicia/devices/registry/updated")
        .with_message("DeviceUpdated")
        .with_qos(QoS::AtLeastOnce)
        .with_publishers(Access::for_roles(&[Role::Service]))
        .with_subscribers(Access::for_roles(&[
            Role::Service,
            Role::Client,
            Role::Admin,
            Role::Observer,
        ]))
        .with_description("The record of a registered device changed."),
    TopicSpec::new("health.heartbeat", "alicia/system/health/{service}")
        .with_message("ServiceHeartbeat")
        // A lost heartbeat is replaced by the next one, so at-most-once delivery is enough.
        .with_qos(QoS::AtMostOnce)
        .with_publishers(Access::for_roles(&[Role::Service]).own_only("service"))
        .with_subscribers(Access::for_roles(&[Role::Service, Role::Admin, Role::Observer]))
        .with_description("Periodic heartbeat of one service with its process metrics."),
    TopicSpec::new("health.alerts", "alicia/system/health/alerts")
        .with_message("HealthAlert")
        .with_qos(QoS::AtLeastOnce)
        .with_publishers(Access::for_roles(&[Role::Service]))
        .with_subscribers(Access::for_roles(&[
            Role::Service,
            Role::Client,
            Role::Admin,
            Role::Observer,
        ]))
        .with_description("An alert raised or resolved by the health monitor."),
    TopicSpec::new("service.request", "alicia/{service}/request/{operation}")
        .with_message("ServiceRequest")
        .with_qos(QoS::AtLeastOnce)
        .with_publishers(Access::for_roles(&[
            Role::Service,
            Role::Client,
            Role::Admin,
        ]))
        .with_subscribers(Access::for_roles(&[Role::Service]).own_only("service"))
        .with_description(
            "A request to one operation of a service; the envelope names the reply topic and correlation id.",
        ),
    TopicSpec::new("client.reply", "alicia/reply/{client}/{request}")
        .with_message("ServiceReply")
        .with_qos(QoS::AtLeastOnce)
        .with_publishers(Access::for_roles(&[Role::Service]))
        .with_subscribers(
            Access::for_roles(&[Role::Service, Role::Client, Role::Admin]).own_only("client"),
        )
        .with_description(
            "The reply to one request, on the requester's own reply topic; only that client subscribes.",
        ),
];

/// Finds the spec in [`MANIFEST`] with the given key.
pub fn lookup(key: &str) -> Option<&'static TopicSpec> {
    MANIFEST.iter().find(|spec| spec.key() == key)
}

/// Finds the spec in [`MANIFEST`] that `topic` fits and reads its parameters.
///
/// Returns `None` when no spec fits, which includes a parameter level that is not a valid id or
/// is reserved. [`RESERVED_IDS`] makes the result unique.
pub fn identify(topic: &TopicName) -> Option<(&'static TopicSpec, TopicParams)> {
    MANIFEST
        .iter()
        .find_map(|spec| spec.parse(topic).ok().map(|params| (spec, params)))
}

/// Renders [`MANIFEST`] as a Markdown table with one row per spec, in manifest order.
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| Key | Pattern | Message | Direction | QoS | Retained | Publishers | Subscribers | Description |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for spec in MANIFEST {
        let cells = [
            format!("`{}`", spec.key()),
            format!("`{}`", spec.pattern()),
            format!("`{}`", spec.message()),
            spec.direction().to_string(),
            spec.qos().level().to_string(),
            if spec.retained() { "yes" } else { "no" }.to_owned(),
            describe_access(spec.publishers()),
            describe_access(spec.subscribers()),
            spec.description().to_owned(),
        ];
        table.push('|');
        for cell in cells {
            table.push(' ');
            table.push_str(&cell.replace('|', "\\|"));
            table.push_str(" |");
        }
        table.push('\n');
    }
    table
}

/// Describes an access rule for the Markdown table, e.g. "device, own `{device}` only".
fn describe_access(access: Access) -> String {
    let roles: Vec<&str> = access.roles().iter().map(|role| role.as_str()).collect();
    let mut text = if roles.is_empty() {
        "none".to_owned()
    } else {
        roles.join(", ")
    };
    if let Some(parameter) = access.own_parameter() {
        text.push_str(&format!(", own `{{{parameter}}}` only"));
    }
    text
}

