//! The types of one manifest entry: [`TopicSpec`], its access rules and its errors.

use std::fmt;

use super::RESERVED_IDS;
use super::pattern::{check_key, check_own_parameter, check_pattern};
use crate::id::{IdError, MAX_ID_LEN, validate_id};
use crate::topic::{TopicError, TopicFilter, TopicName};

/// MQTT quality of service: how often the broker and clients deliver a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QoS {
    /// QoS 0: delivered once or not at all.
    AtMostOnce,
    /// QoS 1: delivered at least once, possibly repeated.
    AtLeastOnce,
    /// QoS 2: delivered exactly once.
    ExactlyOnce,
}

impl QoS {
    /// Returns the QoS number used on the wire: 0, 1 or 2.
    pub const fn level(self) -> u8 {
        match self {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => 1,
            QoS::ExactlyOnce => 2,
        }
    }
}

/// A kind of MQTT client, as topic access rules name it.
///
/// A client's own id depends on its role: a node's node id, a device's device id, a service's
/// service id (shared by all instances of that service) and, for the other roles, the client id.
/// No role implies another, so an admin may use a topic only if the spec lists [`Role::Admin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An Alicia node process, which also carries the node's last will.
    Node,
    /// A framework service running on a node: security gateway, device registry, health monitor,
    /// configuration or discovery.
    Service,
    /// A device connected with its own credentials.
    Device,
    /// An application or script that calls services and receives their replies.
    Client,
    /// An operator tool with access to administrative operations.
    Admin,
    /// A read-only consumer such as a dashboard or metrics collector. No spec in the manifest
    /// lists it as a publisher.
    Observer,
}

impl Role {
    /// Returns the role's name as docs and ACL files write it, in lower case.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Service => "service",
            Role::Device => "device",
            Role::Client => "client",
            Role::Admin => "admin",
            Role::Observer => "observer",
        }
    }

    /// Checks whether the role is part of the framework itself: a node or a service.
    pub const fn is_framework(self) -> bool {
        matches!(self, Role::Node | Role::Service)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who publishes on a topic, seen from the framework.
///
/// The framework is its nodes and services. Devices, client applications, operators and
/// observers are outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Only framework nodes and services publish.
    Outbound,
    /// Only parties outside the framework publish.
    Inbound,
    /// Both the framework and parties outside it publish, as with service requests.
    Both,
}

impl Direction {
    /// Returns the direction's name as docs write it, in lower case.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
            Direction::Both => "both",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles allowed to publish, or to subscribe, on one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// Roles that are allowed.
    roles: &'static [Role],
    /// Pattern parameter that must equal the client's own id, if access is limited that way.
    own_parameter: Option<&'static str>,
}

impl Access {
    /// No role is allowed.
    pub const NONE: Access = Access::for_roles(&[]);

    /// Allows every client whose role is in `roles`.
    pub const fn for_roles(roles: &'static [Role]) -> Self {
        Access {
            roles,
            own_parameter: None,
        }
    }

    /// Limits access to topics whose `parameter` level equals the client's own id, so that a
    /// device may publish only its own heartbeat. See [`Role`] for what each role's own id is.
    ///
    /// [`TopicSpec::with_publishers`] and [`TopicSpec::with_subscribers`] panic if the spec's
    /// pattern has no such parameter.
    pub const fn own_only(self, parameter: &'static str) -> Self {
        Access {
            roles: self.roles,
            own_parameter: Some(parameter),
        }
    }

    /// Returns the roles that are allowed.
    pub const fn roles(&self) -> &'static [Role] {
        self.roles
    }

    /// Returns the parameter that must equal the client's own id, if access is limited that way.
    pub const fn own_parameter(&self) -> Option<&'static str> {
        self.own_parameter
    }

    /// Checks whether `role` is among the allowed roles. The own-id limit is not checked here.
    pub fn includes(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Error from formatting or parsing a topic with a [`TopicSpec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// [`TopicSpec::format`] got no value for one of the pattern's parameters.
    #[error(
        "topic spec \"{spec}\" is missing parameter \"{parameter}\" for pattern \"{pattern}\": pass (\"{parameter}\", <id>)"
    )]
    MissingParameter {
        /// Key of the spec.
        spec: &'static str,
        /// The missing parameter.
        parameter: &'static str,
        /// The spec's pattern.
        pattern: &'static str,
    },

    /// [`TopicSpec::format`] got a parameter that the pattern does not have.
    #[error(
        "topic spec \"{spec}\" has no parameter \"{parameter}\": pattern \"{pattern}\" takes {expected}"
    )]
    UnknownParameter {
        /// Key of the spec.
        spec: &'static str,
        /// The unknown parameter name, escaped.
        parameter: String,
        /// The spec's pattern.
        pattern: &'static str,
        /// The parameters the pattern takes, in words.
        expected: String,
    },

    /// [`TopicSpec::format`] got the same parameter twice.
    #[error(
        "topic spec \"{spec}\" got parameter \"{parameter}\" more than once: pass each parameter once"
    )]
    DuplicateParameter {
        /// Key of the spec.
        spec: &'static str,
        /// The repeated parameter.
        parameter: &'static str,
    },

    /// A parameter value is not a valid id.
    #[error("topic spec \"{spec}\" got an invalid value for parameter \"{parameter}\": {reason}")]
    InvalidParameter {
        /// Key of the spec.
        spec: &'static str,
        /// The parameter.
        parameter: &'static str,
        /// The rejected value, escaped.
        value: String,
        /// The id rule that the value breaks; its message repeats the value.
        reason: IdError,
    },

    /// A parameter value is in [`RESERVED_IDS`].
    #[error(
        "topic spec \"{spec}\" rejects {parameter} id \"{value}\": it is reserved because {reason}; choose another {parameter} id"
    )]
    ReservedParameter {
        /// Key of the spec.
        spec: &'static str,
        /// The parameter.
        parameter: &'static str,
        /// The reserved value.
        value: String,
        /// Why the value is reserved.
        reason: &'static str,
    },

    /// [`TopicSpec::parse`] got a topic whose levels do not fit the pattern.
    #[error(
        "topic \"{topic}\" does not fit topic spec \"{spec}\" with pattern \"{pattern}\": parse it with the spec it belongs to, or find that spec with manifest::identify"
    )]
    TopicMismatch {
        /// Key of the spec.
        spec: &'static str,
        /// The topic, escaped and cut to 256 characters.
        topic: String,
        /// The spec's pattern.
        pattern: &'static str,
    },

    /// The formatted topic is not a valid topic name, which happens only when it is too long.
    #[error(
        "topic spec \"{spec}\" formatted an invalid topic: {reason}; use a shorter pattern or shorter parameter values"
    )]
    InvalidTopic {
        /// Key of the spec.
        spec: &'static str,
        /// Why the topic is invalid.
        reason: TopicError,
    },
}

/// One level of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment {
    /// A level written as is.
    Literal(&'static str),
    /// A `{name}` level, stored as the name without braces.
    Parameter(&'static str),
}

impl Segment {
    fn from_level(level: &'static str) -> Self {
        match level
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
        {
            Some(name) => Segment::Parameter(name),
            None => Segment::Literal(level),
        }
    }
}

/// The parameter values read from a topic by [`TopicSpec::parse`], in pattern order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicParams {
    values: Vec<(&'static str, String)>,
}

impl TopicParams {
    /// Returns the value of parameter `name`, if the pattern has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(parameter, _)| *parameter == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns the parameters and their values in pattern order, in the form that
    /// [`TopicSpec::format`] takes.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.values
            .iter()
            .map(|(parameter, value)| (*parameter, value.as_str()))
            .collect()
    }

    /// Returns the number of parameters.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Checks whether the pattern had no parameters.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// One topic the framework uses: its pattern, message, delivery and access rules.
///
/// Build a spec with [`TopicSpec::new`] and the `with_` methods. All of them are `const`, so a
/// spec in a `static` or `const` is checked at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicSpec {
    key: &'static str,
    pattern: &'static str,
    message: &'static str,
    qos: QoS,
    retained: bool,
    publishers: Access,
    subscribers: Access,
    description: &'static str,
}

impl TopicSpec {
    /// Creates a spec with QoS 1, not retained, no message type, no description and no role
    /// allowed to publish or subscribe.
    ///
    /// # Panics
    ///
    /// Panics, or fails compilation in a const context, if `key` or `pattern` is invalid. A key is
    /// 1 to 64 ASCII letters, digits, `-`, `_` or `.`. A pattern is 1 to 65,535 bytes without NUL,
    /// `+` or `#`. Each of its parameters is a whole level `{name}`, with a distinct name made of
    /// the same characters as a key.
    pub const fn new(key: &'static str, pattern: &'static str) -> Self {
        check_key(key);
        check_pattern(pattern);
        TopicSpec {
            key,
            pattern,
            message: "",
            qos: QoS::AtLeastOnce,
            retained: false,
            publishers: Access::NONE,
            subscribers: Access::NONE,
            description: "",
        }
    }

    /// Sets the name of the message type carried in the envelope body.
    pub const fn with_message(self, message: &'static str) -> Self {
        TopicSpec { message, ..self }
    }

    /// Sets the QoS that publishers and subscribers use.
    pub const fn with_qos(self, qos: QoS) -> Self {
        TopicSpec { qos, ..self }
    }

    /// Sets whether messages are published with the retained flag.
    pub const fn with_retained(self, retained: bool) -> Self {
        TopicSpec { retained, ..self }
    }

    /// Sets who may publish.
    ///
    /// # Panics
    ///
    /// Panics, or fails compilation in a const context, if `publishers` limits access to an own
    /// parameter that the pattern does not have.
    pub const fn with_publishers(self, publishers: Access) -> Self {
        check_own_parameter(self.pattern, publishers);
        TopicSpec { publishers, ..self }
    }

    /// Sets who may subscribe.
    ///
    /// # Panics
    ///
    /// Panics, or fails compilation in a const context, if `subscribers` limits access to an own
    /// parameter that the pattern does not have.
    pub const fn with_subscribers(self, subscribers: Access) -> Self {
        check_own_parameter(self.pattern, subscribers);
        TopicSpec {
            subscribers,
            ..self
        }
    }

    /// Sets the one-line description that docs show.
    pub const fn with_description(self, description: &'static str) -> Self {
        TopicSpec {
            description,
            ..self
        }
    }

    /// Returns the unique key that code uses to look the spec up, e.g. `device.status`.
    pub const fn key(&self) -> &'static str {
        self.key
    }

    /// Returns the pattern, e.g. `alicia/devices/status/{device}`.
    pub const fn pattern(&self) -> &'static str {
        self.pattern
    }

    /// Returns the name of the message type carried in the envelope body.
    pub const fn message(&self) -> &'static str {
        self.message
    }

    /// Returns the QoS that publishers and subscribers use.
    pub const fn qos(&self) -> QoS {
        self.qos
    }

    /// Returns whether messages are published with the retained flag.
    pub const fn retained(&self) -> bool {
        self.retained
    }

    /// Returns who may publish.
    pub const fn publishers(&self) -> Access {
        self.publishers
    }

    /// Returns who may subscribe.
    pub const fn subscribers(&self) -> Access {
        self.subscribers
    }

    /// Returns the one-line description that docs show.
    pub const fn description(&self) -> &'static str {
        self.description
    }

    /// Derives who publishes from the publisher roles. A spec with no publishers counts as
    /// [`Direction::Inbound`].
    pub fn direction(&self) -> Direction {
        let roles = self.publishers.roles();
        let framework_publishes = roles.iter().any(|role| role.is_framework());
        let others_publish = roles.iter().any(|role| !role.is_framework());
        match (framework_publishes, others_publish) {
            (true, true) => Direction::Both,
            (true, false) => Direction::Outbound,
            (false, _) => Direction::Inbound,
        }
    }

    /// Returns the names of the pattern's parameters, in order.
    pub fn parameters(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.segments().filter_map(|segment| match segment {
            Segment::Parameter(name) => Some(name),
            Segment::Literal(_) => None,
        })
    }

    pub(super) fn segments(&self) -> impl Iterator<Item = Segment> + use<> {
        self.pattern.split('/').map(Segment::from_level)
    }

    /// Builds the topic name for the given parameter values.
    ///
    /// `params` contains `(name, value)` pairs in any order. It must give every parameter of the
    /// pattern exactly once and nothing else. Every value must be a valid id that is not in
    /// [`RESERVED_IDS`].
    pub fn format(&self, params: &[(&str, &str)]) -> Result<TopicName, ManifestError> {
        for (index, (name, _)) in params.iter().enumerate() {
            let Some(parameter) = self.parameters().find(|parameter| parameter == name) else {
                return Err(ManifestError::UnknownParameter {
                    spec: self.key,
                    parameter: name.escape_debug().to_string(),
                    pattern: self.pattern,
                    expected: self.describe_parameters(),
                });
            };
            if params[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(ManifestError::DuplicateParameter {
                    spec: self.key,
                    parameter,
                });
            }
        }

        let mut topic = String::with_capacity(self.pattern.len());
        for (index, segment) in self.segments().enumerate() {
            if index > 0 {
                topic.push('/');
            }
            match segment {
                Segment::Literal(text) => topic.push_str(text),
                Segment::Parameter(parameter) => {
                    let value = params
                        .iter()
                        .find(|(name, _)| *name == parameter)
                        .map(|(_, value)| *value)
                        .ok_or(ManifestError::MissingParameter {
                            spec: self.key,
                            parameter,
                            pattern: self.pattern,
                        })?;
                    self.check_value(parameter, value)?;
                    topic.push_str(value);
                }
            }
        }

        TopicName::new(topic).map_err(|reason| ManifestError::InvalidTopic {
            spec: self.key,
            reason,
        })
    }

    /// Reads the parameter values out of `topic`.
    ///
    /// The topic must have the pattern's number of levels and the same text in every literal
    /// level. Every parameter level must be a valid id that is not in [`RESERVED_IDS`].
    pub fn parse(&self, topic: &TopicName) -> Result<TopicParams, ManifestError> {
        let mismatch = || ManifestError::TopicMismatch {
            spec: self.key,
            topic: topic
                .as_str()
                .chars()
                .take(256)
                .flat_map(char::escape_debug)
                .collect(),
            pattern: self.pattern,
        };

        let mut values = Vec::new();
        let mut topic_levels = topic.levels();
        for segment in self.segments() {
            let level = topic_levels.next().ok_or_else(mismatch)?;
            match segment {
                Segment::Literal(text) if text == level => {}
                Segment::Literal(_) => return Err(mismatch()),
                Segment::Parameter(parameter) => values.push((parameter, level.to_owned())),
            }
        }
        if topic_levels.next().is_some() {
            return Err(mismatch());
        }

        // Values are checked only once the shape fits, so a topic of another shape reports a
        // mismatch instead of a bad id.
        for (parameter, value) in &values {
            self.check_value(parameter, value)?;
        }
        Ok(TopicParams { values })
    }

    /// Returns the filter that matches every topic of this spec: each parameter becomes `+`.
    pub fn filter(&self) -> TopicFilter {
        let levels: Vec<&str> = self
            .segments()
            .map(|segment| match segment {
                Segment::Literal(text) => text,
                Segment::Parameter(_) => "+",
            })
            .collect();
        TopicFilter::new(levels.join("/")).expect(
            "TopicSpec::new accepts only non-empty patterns of at most MAX_TOPIC_LEN bytes without \
             NUL or wildcards, so replacing whole-level parameters with '+' gives a valid filter",
        )
    }

    /// Checks that `value` is a valid id and not reserved for `parameter`.
    fn check_value(&self, parameter: &'static str, value: &str) -> Result<(), ManifestError> {
        validate_id(parameter, value).map_err(|reason| ManifestError::InvalidParameter {
            spec: self.key,
            parameter,
            value: value.escape_debug().take(2 * MAX_ID_LEN).collect(),
            reason,
        })?;

        if let Some(reserved) = RESERVED_IDS
            .iter()
            .find(|reserved| reserved.parameter == parameter && reserved.value == value)
        {
            return Err(ManifestError::ReservedParameter {
                spec: self.key,
                parameter,
                value: value.to_owned(),
                reason: reserved.reason,
            });
        }

        Ok(())
    }

    /// Lists the parameter names for an error message, e.g. `"service", "operation"`.
    fn describe_parameters(&self) -> String {
        let names: Vec<String> = self
            .parameters()
            .map(|parameter| format!("\"{parameter}\""))
            .collect();
        if names.is_empty() {
            "no parameters".to_owned()
        } else {
            names.join(", ")
        }
    }
}
