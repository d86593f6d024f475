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
    TopicSpec::new("node.supervision", "alicia/nodes/{node}/supervision")
        .with_message("SupervisorSnapshot")
        // Retained and replaced every heartbeat interval, so a lost snapshot costs one interval.
        .with_qos(QoS::AtMostOnce)
        .with_retained(true)
        .with_publishers(Access::for_roles(&[Role::Node]).own_only("node"))
        .with_subscribers(Access::for_roles(&[
            Role::Service,
            Role::Client,
            Role::Admin,
            Role::Observer,
        ]))
        .with_description(
            "The node's supervision tree (children, states, restart counts, last failures), republished every heartbeat interval.",
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::panic::catch_unwind;

    use super::spec::Segment;
    use super::*;
    use crate::id::{MAX_ID_LEN, validate_id};
    use crate::topic::{MAX_TOPIC_LEN, TopicError};

    fn name(topic: &str) -> TopicName {
        TopicName::new(topic).expect("test topic names are valid")
    }

    fn spec(key: &str) -> &'static TopicSpec {
        lookup(key).expect("the key is in MANIFEST")
    }

    /// Returns one valid, unreserved value per parameter, different for each parameter name.
    fn sample_params(spec: &TopicSpec) -> Vec<(&'static str, String)> {
        spec.parameters()
            .map(|parameter| (parameter, format!("{parameter}-1")))
            .collect()
    }

    fn as_pairs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        params
            .iter()
            .map(|(parameter, value)| (*parameter, value.as_str()))
            .collect()
    }

    fn reserved_for(parameter: &str, value: &str) -> bool {
        RESERVED_IDS
            .iter()
            .any(|reserved| reserved.parameter == parameter && reserved.value == value)
    }

    #[test]
    fn manifest_keys_are_unique() {
        let mut seen = HashSet::new();
        for spec in MANIFEST {
            assert!(
                seen.insert(spec.key()),
                "key {:?} appears twice",
                spec.key()
            );
        }
    }

    #[test]
    fn manifest_filters_are_unique() {
        let mut seen = HashSet::new();
        for spec in MANIFEST {
            let filter = spec.filter();
            assert!(
                seen.insert(filter.clone()),
                "{}: filter {filter} appears twice",
                spec.key()
            );
        }
    }

    #[test]
    fn manifest_filters_replace_each_parameter() {
        for spec in MANIFEST {
            let filter = spec.filter();
            let pattern_levels: Vec<&str> = spec.pattern().split('/').collect();
            let filter_levels: Vec<&str> = filter.levels().collect();
            assert_eq!(
                filter_levels.len(),
                pattern_levels.len(),
                "{}: level count of {filter}",
                spec.key()
            );
            for (pattern_level, filter_level) in pattern_levels.iter().zip(&filter_levels) {
                let expected = if pattern_level.starts_with('{') {
                    "+"
                } else {
                    pattern_level
                };
                assert_eq!(*filter_level, expected, "{}: {filter}", spec.key());
            }
        }
    }

    #[test]
    fn manifest_format_parse_round_trip() {
        for spec in MANIFEST {
            let params = sample_params(spec);
            let topic = spec
                .format(&as_pairs(&params))
                .unwrap_or_else(|error| panic!("{}: format failed: {error}", spec.key()));
            assert!(
                spec.filter().matches(&topic),
                "{}: {topic} does not match its filter",
                spec.key()
            );

            let parsed = spec
                .parse(&topic)
                .unwrap_or_else(|error| panic!("{}: parse failed: {error}", spec.key()));
            assert_eq!(parsed.pairs(), as_pairs(&params), "{}", spec.key());
        }
    }

    #[test]
    fn manifest_identify_finds_each_spec() {
        for spec in MANIFEST {
            let topic = spec
                .format(&as_pairs(&sample_params(spec)))
                .unwrap_or_else(|error| panic!("{}: format failed: {error}", spec.key()));
            let found = identify(&topic).map(|(found, _)| found.key());
            assert_eq!(found, Some(spec.key()), "{topic}");
        }
    }

    #[test]
    fn manifest_fields_are_filled() {
        for spec in MANIFEST {
            let key = spec.key();
            assert!(!spec.message().is_empty(), "{key}: no message type");
            assert!(!spec.description().is_empty(), "{key}: no description");
            assert!(
                !spec.description().contains('\n'),
                "{key}: description is not one line"
            );
            assert!(
                !spec.publishers().roles().is_empty(),
                "{key}: no publishers"
            );
            assert!(
                !spec.subscribers().roles().is_empty(),
                "{key}: no subscribers"
            );
            assert!(
                !spec.publishers().includes(Role::Observer),
                "{key}: observers never publish"
            );
        }
    }

    #[test]
    fn manifest_presence_is_retained_qos1() {
        let presence = spec("node.presence");
        assert!(presence.retained());
        assert_eq!(presence.qos(), QoS::AtLeastOnce);
        assert_eq!(presence.publishers().own_parameter(), Some("node"));
    }

    #[test]
    fn manifest_requests_are_never_retained() {
        // A retained request would run again for every new subscriber.
        assert!(!spec("service.request").retained());
        assert!(!spec("client.reply").retained());
    }

    #[test]
    fn reply_subscribers_are_limited_to_own_client() {
        let reply = spec("client.reply");
        assert_eq!(reply.subscribers().own_parameter(), Some("client"));
        assert_eq!(reply.filter().as_str(), "alicia/reply/+/+");
    }

    #[test]
    fn direction_follows_publishers() {
        let cases = [
            ("device.heartbeat", Direction::Inbound),
            ("device.status", Direction::Outbound),
            ("node.presence", Direction::Outbound),
            ("service.request", Direction::Both),
            ("client.reply", Direction::Outbound),
        ];
        for (key, expected) in cases {
            assert_eq!(spec(key).direction(), expected, "{key}");
        }
    }

    #[test]
    fn reserved_ids_name_real_parameters() {
        for reserved in RESERVED_IDS {
            let used = MANIFEST
                .iter()
                .any(|spec| spec.parameters().any(|p| p == reserved.parameter));
            assert!(used, "no pattern has parameter {:?}", reserved.parameter);
            assert!(
                validate_id(reserved.parameter, reserved.value).is_ok(),
                "reserved value {:?} is not even a valid id",
                reserved.value
            );
        }
    }

    /// Checks whether some topic name could fit both patterns, ignoring parameter values.
    fn patterns_overlap(first: &TopicSpec, second: &TopicSpec) -> bool {
        let first_segments: Vec<Segment> = first.segments().collect();
        let second_segments: Vec<Segment> = second.segments().collect();
        first_segments.len() == second_segments.len()
            && first_segments
                .iter()
                .zip(&second_segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    _ => true,
                })
    }

    /// Checks whether, in some level, one pattern has a parameter and the other a literal that
    /// is reserved for that parameter, so no topic fits both.
    fn separated_by_reserved_id(first: &TopicSpec, second: &TopicSpec) -> bool {
        first
            .segments()
            .zip(second.segments())
            .any(|pair| match pair {
                (Segment::Parameter(parameter), Segment::Literal(text))
                | (Segment::Literal(text), Segment::Parameter(parameter)) => {
                    reserved_for(parameter, text)
                }
                _ => false,
            })
    }

    #[test]
    fn manifest_overlaps_are_reserved() {
        for (index, first) in MANIFEST.iter().enumerate() {
            for second in &MANIFEST[index + 1..] {
                if patterns_overlap(first, second) {
                    assert!(
                        separated_by_reserved_id(first, second),
                        "{} ({}) and {} ({}) can fit the same topic: reserve the literal level \
                         for the parameter in RESERVED_IDS",
                        first.key(),
                        first.pattern(),
                        second.key(),
                        second.pattern()
                    );
                }
            }
        }
    }

    #[test]
    fn every_topic_fits_at_most_one_spec() {
        // Try every literal level of the manifest as a value, since those are the values that
        // could make a topic fit a second pattern.
        let mut values: Vec<&str> = MANIFEST
            .iter()
            .flat_map(|spec| spec.pattern().split('/'))
            .filter(|level| !level.starts_with('{'))
            .collect();
        values.push("x-1");
        values.sort_unstable();
        values.dedup();

        let mut checked = 0;
        for spec in MANIFEST {
            let parameters: Vec<&str> = spec.parameters().collect();
            let combinations = values.len().pow(parameters.len() as u32);
            for combination in 0..combinations {
                let mut rest = combination;
                let params: Vec<(&str, &str)> = parameters
                    .iter()
                    .map(|parameter| {
                        let value = values[rest % values.len()];
                        rest /= values.len();
                        (*parameter, value)
                    })
                    .collect();
                let Ok(topic) = spec.format(&params) else {
                    continue;
                };
                let fitting: Vec<&str> = MANIFEST
                    .iter()
                    .filter(|candidate| candidate.parse(&topic).is_ok())
                    .map(|candidate| candidate.key())
                    .collect();
                assert_eq!(fitting, vec![spec.key()], "{topic}");
                checked += 1;
            }
        }
        assert!(checked > MANIFEST.len(), "only {checked} topics checked");
    }

    #[test]
    fn heartbeat_rejects_reserved_device_status() {
        let error = spec("device.heartbeat")
            .format(&[("device", "status")])
            .unwrap_err();
        assert!(
            matches!(
                error,
                ManifestError::ReservedParameter {
                    parameter: "device",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn overlapping_topic_identifies_as_status() {
        let topic = name("alicia/devices/status/heartbeat");
        let (found, params) = identify(&topic).expect("the topic fits device.status");
        assert_eq!(found.key(), "device.status");
        assert_eq!(params.get("device"), Some("heartbeat"));
        assert!(spec("device.heartbeat").parse(&topic).is_err());
    }

    #[test]
    fn request_rejects_reserved_service_names() {
        let request = spec("service.request");
        for service in ["nodes", "devices", "system", "reply", "alerts"] {
            let result = request.format(&[("service", service), ("operation", "get")]);
            assert!(
                matches!(result, Err(ManifestError::ReservedParameter { .. })),
                "{service}: {result:?}"
            );
        }
    }

    #[test]
    fn format_fills_parameters_in_any_order() {
        let topic = spec("service.request")
            .format(&[("operation", "register"), ("service", "registry")])
            .unwrap();
        assert_eq!(topic.as_str(), "alicia/registry/request/register");
    }

    #[test]
    fn format_without_parameters() {
        let topic = spec("health.alerts").format(&[]).unwrap();
        assert_eq!(topic.as_str(), "alicia/system/health/alerts");
    }

    #[test]
    fn format_rejects_missing_parameter() {
        let error = spec("service.request")
            .format(&[("service", "registry")])
            .unwrap_err();
        assert_eq!(
            error,
            ManifestError::MissingParameter {
                spec: "service.request",
                parameter: "operation",
                pattern: "alicia/{service}/request/{operation}",
            }
        );
    }

    #[test]
    fn format_rejects_unknown_parameter() {
        let error = spec("device.status")
            .format(&[("device", "lamp"), ("node", "hub")])
            .unwrap_err();
        assert!(
            matches!(&error, ManifestError::UnknownParameter { parameter, .. } if parameter == "node"),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("\"device.status\""), "{message}");
        assert!(message.contains("takes \"device\""), "{message}");
    }

    #[test]
    fn format_rejects_duplicate_parameter() {
        let error = spec("device.status")
            .format(&[("device", "lamp"), ("device", "lamp")])
            .unwrap_err();
        assert_eq!(
            error,
            ManifestError::DuplicateParameter {
                spec: "device.status",
                parameter: "device",
            }
        );
    }

    #[test]
    fn format_rejects_invalid_values() {
        let status = spec("device.status");
        let cases = [
            ("slash", "kitchen/lamp"),
            ("plus", "+"),
            ("hash", "#"),
            ("empty", ""),
            ("dollar", "$SYS"),
            ("space", "a b"),
            ("nul", "a\0b"),
            ("non-ascii", "lámpara"),
            ("too long", &"a".repeat(MAX_ID_LEN + 1)),
        ];
        for (label, value) in cases {
            let result = status.format(&[("device", value)]);
            assert!(
                matches!(
                    result,
                    Err(ManifestError::InvalidParameter {
                        parameter: "device",
                        ..
                    })
                ),
                "{label}: {result:?}"
            );
        }
    }

    #[test]
    fn parse_rejects_invalid_id_levels() {
        let status = spec("device.status");
        let cases = [
            ("empty level", "alicia/devices/status/"),
            ("space", "alicia/devices/status/a b"),
            ("dollar", "alicia/devices/status/$x"),
            ("non-ascii", "alicia/devices/status/lámpara"),
            ("reserved", "alicia/devices/status/registry"),
        ];
        for (label, topic) in cases {
            let result = status.parse(&name(topic));
            assert!(
                matches!(
                    result,
                    Err(ManifestError::InvalidParameter { .. }
                        | ManifestError::ReservedParameter { .. })
                ),
                "{label}: {result:?}"
            );
        }
    }

    #[test]
    fn parse_rejects_topics_that_do_not_fit() {
        let status = spec("device.status");
        let cases = [
            ("extra level", "alicia/devices/status/lamp/x"),
            ("missing level", "alicia/devices/status"),
            ("other literal", "alicia/devices/state/lamp"),
            ("leading slash", "/alicia/devices/status/lamp"),
            ("trailing slash", "alicia/devices/status/lamp/"),
            ("other prefix", "home/devices/status/lamp"),
        ];
        for (label, topic) in cases {
            let result = status.parse(&name(topic));
            assert!(
                matches!(result, Err(ManifestError::TopicMismatch { .. })),
                "{label}: {result:?}"
            );
        }
    }

    #[test]
    fn identify_returns_none_for_foreign_topic() {
        assert!(identify(&name("zigbee2mqtt/lamp/set")).is_none());
        assert!(identify(&name("alicia/devices/kitchen/lamp/heartbeat")).is_none());
    }

    #[test]
    fn invalid_parameter_error_names_spec_value_and_rule() {
        let message = spec("device.status")
            .format(&[("device", "kitchen/lamp")])
            .unwrap_err()
            .to_string();
        assert!(message.contains("\"device.status\""), "{message}");
        assert!(message.contains("parameter \"device\""), "{message}");
        assert!(message.contains("\"kitchen/lamp\""), "{message}");
        assert!(message.contains(crate::id::ID_RULE), "{message}");
    }

    #[test]
    fn reserved_error_names_value_and_fix() {
        let message = spec("device.heartbeat")
            .format(&[("device", "registry")])
            .unwrap_err()
            .to_string();
        assert!(message.contains("device id \"registry\""), "{message}");
        assert!(message.contains("alicia/devices/registry/"), "{message}");
        assert!(message.contains("choose another device id"), "{message}");
    }

    #[test]
    fn mismatch_error_names_topic_and_pattern() {
        let message = spec("device.status")
            .parse(&name("alicia/devices/lamp"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("\"alicia/devices/lamp\""), "{message}");
        assert!(
            message.contains("\"alicia/devices/status/{device}\""),
            "{message}"
        );
    }

    #[test]
    fn format_rejects_topic_over_max_length() {
        // A pattern of exactly the maximum topic length, so any value longer than the
        // parameter's own 8 bytes makes the topic too long.
        let literal = "a".repeat(MAX_TOPIC_LEN - "/{device}".len());
        let pattern: &'static str = Box::leak(format!("{literal}/{{device}}").into_boxed_str());
        let long = TopicSpec::new("long", pattern);

        let result = long.format(&[("device", &"a".repeat(MAX_ID_LEN))]);
        assert!(
            matches!(
                result,
                Err(ManifestError::InvalidTopic {
                    reason: TopicError::TooLong { .. },
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn lookup_finds_known_keys() {
        for spec in MANIFEST {
            assert_eq!(lookup(spec.key()).map(TopicSpec::key), Some(spec.key()));
        }
        assert!(lookup("device.unknown").is_none());
    }

    #[test]
    fn markdown_table_lists_every_spec() {
        let table = markdown_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), MANIFEST.len() + 2, "{table}");
        for (spec, line) in MANIFEST.iter().zip(&lines[2..]) {
            assert!(line.starts_with(&format!("| `{}` |", spec.key())), "{line}");
            assert!(line.contains(&format!("`{}`", spec.pattern())), "{line}");
        }
    }

    #[test]
    fn markdown_table_shows_own_only_access() {
        let table = markdown_table();
        let heartbeat = table
            .lines()
            .find(|line| line.starts_with("| `device.heartbeat` |"))
            .expect("the table has a device.heartbeat row");
        assert!(
            heartbeat.contains("| device, own `{device}` only |"),
            "{heartbeat}"
        );
        assert!(heartbeat.contains("| inbound | 0 | no |"), "{heartbeat}");
    }

    #[test]
    fn new_rejects_invalid_patterns() {
        let cases = [
            ("empty", ""),
            ("nul", "a/\0"),
            ("plus", "a/+"),
            ("hash", "a/#"),
            ("unclosed brace", "a/{device"),
            ("unopened brace", "a/device}"),
            ("parameter glued to text", "a/x{device}"),
            ("empty parameter name", "a/{}"),
            ("slash in parameter", "a/{de/vice}"),
            ("space in parameter name", "a/{de vice}"),
            ("duplicate parameter", "{device}/x/{device}"),
        ];
        for (label, pattern) in cases {
            let result = catch_unwind(|| TopicSpec::new("key", pattern));
            assert!(result.is_err(), "{label}: {pattern:?} was accepted");
        }
    }

    #[test]
    fn new_rejects_invalid_keys() {
        for key in ["", "device status", "device/status", "ключ"] {
            let result = catch_unwind(|| TopicSpec::new(key, "a"));
            assert!(result.is_err(), "{key:?} was accepted");
        }
    }

    #[test]
    fn own_only_needs_pattern_parameter() {
        let result = catch_unwind(|| {
            TopicSpec::new("key", "a/{device}")
                .with_publishers(Access::for_roles(&[Role::Device]).own_only("node"))
        });
        assert!(result.is_err());
    }

    #[test]
    fn new_accepts_edge_patterns() {
        let cases = [
            ("slash only", "/"),
            ("parameter first", "{device}/x"),
            ("empty levels", "a//{device}/"),
            ("dollar first", "$alicia/{device}"),
            ("non-ascii literal", "küche/{device}"),
        ];
        for (label, pattern) in cases {
            let result = catch_unwind(|| TopicSpec::new("key", pattern));
            assert!(result.is_ok(), "{label}: {pattern:?} was rejected");
        }
    }
}
