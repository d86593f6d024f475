//! MQTT topic names and topic filters, validated per MQTT 3.1.1 and 5.
//!
//! A [`TopicName`] is what a message is published to: no wildcards. A [`TopicFilter`] is what a
//! client subscribes to: `+` matches exactly one level and `#` matches the rest, including the
//! parent level. Both are non-empty UTF-8 strings of at most [`MAX_TOPIC_LEN`] bytes without NUL.
//! Empty levels are real levels (`a//b` has three).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Maximum length of a topic name or filter in bytes, fixed by the MQTT length prefix.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Why a string is not a valid topic name or filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The string is empty; MQTT requires at least one character.
    #[error("topic is empty: a topic name or filter needs at least one character")]
    Empty,

    /// The string is longer than MQTT allows.
    #[error(
        "topic starting \"{prefix}\" is invalid: it is {len} bytes long, over the MQTT maximum of {MAX_TOPIC_LEN}"
    )]
    TooLong {
        /// The first characters of the rejected topic.
        prefix: String,
        /// Its length in bytes.
        len: usize,
    },

    /// The string contains a NUL character, which MQTT forbids in topics.
    #[error("topic \"{topic}\" is invalid: NUL at byte {position} is not allowed in MQTT topics")]
    Nul {
        /// The rejected topic, escaped.
        topic: String,
        /// Byte offset of the first NUL, counted from 0.
        position: usize,
    },

    /// A topic name (as opposed to a filter) contains `+` or `#`.
    #[error(
        "topic name \"{topic}\" is invalid: wildcard '{wildcard}' in level {level} is only allowed in subscription filters"
    )]
    WildcardInName {
        /// The rejected topic, escaped.
        topic: String,
        /// The wildcard found.
        wildcard: char,
        /// The level that holds it, counted from 1.
        level: usize,
    },

    /// A wildcard shares its level with other characters, as in `a/b+` or `a/#b`.
    #[error(
        "topic filter \"{topic}\" is invalid: level {level} \"{level_text}\" mixes wildcard '{wildcard}' with text (a wildcard must be a whole level, e.g. \"a/+/c\")"
    )]
    WildcardNotWholeLevel {
        /// The rejected filter, escaped.
        topic: String,
        /// The offending level's text.
        level_text: String,
        /// The wildcard found.
        wildcard: char,
        /// The level that holds it, counted from 1.
        level: usize,
    },

    /// A `#` is followed by more levels.
    #[error(
        "topic filter \"{topic}\" is invalid: '#' in level {level} must be the last level (e.g. \"a/b/#\")"
    )]
    MultiLevelNotLast {
        /// The rejected filter, escaped.
        topic: String,
        /// The level that holds `#`, counted from 1.
        level: usize,
    },
}

/// Checks the rules shared by names and filters: non-empty, length, no NUL.
fn validate_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }

    if topic.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong {
            prefix: escape(&topic.chars().take(64).collect::<String>()),
            len: topic.len(),
        });
    }

    if let Some(position) = topic.bytes().position(|b| b == 0) {
        return Err(TopicError::Nul {
            topic: escape(topic),
            position,
        });
    }

    Ok(())
}

/// Escapes control characters and cuts very long topics so an error message stays one readable line.
fn escape(topic: &str) -> String {
    const SHOWN: usize = 256;
    let mut escaped: String = topic
        .chars()
        .take(SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if topic.chars().nth(SHOWN).is_some() {
        escaped.push_str("...");
    }
    escaped
}

/// Checks that `topic` is a valid topic name: the common rules and no wildcard.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    validate_common(topic)?;

    for (index, level) in topic.split('/').enumerate() {
        if let Some(wildcard) = level.chars().find(|c| matches!(c, '+' | '#')) {
            return Err(TopicError::WildcardInName {
                topic: escape(topic),
                wildcard,
                level: index + 1,
            });
        }
    }

    Ok(())
}

/// Checks that `filter` is a valid topic filter: the common rules, wildcards as whole levels and
/// `#` only as the last level.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    validate_common(filter)?;

    let level_count = filter.split('/').count();
    for (index, level) in filter.split('/').enumerate() {
        let is_wildcard_level = level == "+" || level == "#";
        if !is_wildcard_level && let Some(wildcard) = level.chars().find(|c| matches!(c, '+' | '#'))
        {
            return Err(TopicError::WildcardNotWholeLevel {
                topic: escape(filter),
                level_text: escape(level),
                wildcard,
                level: index + 1,
            });
        }
        if level == "#" && index + 1 != level_count {
            return Err(TopicError::MultiLevelNotLast {
                topic: escape(filter),
                level: index + 1,
            });
        }
    }

    Ok(())
}

/// A validated MQTT topic name: where a message is published; contains no wildcard.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TopicName(String);

/// A validated MQTT topic filter: what a subscription or an ACL rule matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TopicFilter(String);

impl TopicName {
    /// Validates `topic` as a topic name and wraps it.
    pub fn new(topic: impl Into<String>) -> Result<Self, TopicError> {
        let topic = topic.into();
        validate_topic_name(&topic)?;
        Ok(Self(topic))
    }

    /// The topic as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The topic's levels, split at `/`; empty levels included.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// Unwraps the topic into its string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TopicFilter {
    /// Validates `filter` as a topic filter and wraps it.
    pub fn new(filter: impl Into<String>) -> Result<Self, TopicError> {
        let filter = filter.into();
        validate_topic_filter(&filter)?;
        Ok(Self(filter))
    }

    /// The filter as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The filter's levels, split at `/`; empty levels included.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// Whether the filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.levels().any(|level| level == "+" || level == "#")
    }

    /// Unwraps the filter into its string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Checks whether `topic` matches this filter under the MQTT 3.1.1 and 5 rules.
    ///
    /// `+` matches exactly one level, which may be empty. `#` matches the remaining levels,
    /// including none, so `a/#` matches `a`. A filter whose first level is `+` or `#` matches no
    /// topic whose first level starts with `$` (such as `$SYS/uptime`), but a literal first level
    /// like `$SYS` does.
    pub fn matches(&self, topic: &TopicName) -> bool {
        if starts_with_wildcard(self.as_str()) && topic.as_str().starts_with('$') {
            return false;
        }

        let mut filter_levels = self.levels();
        let mut topic_levels = topic.levels();
        loop {
            match (filter_levels.next(), topic_levels.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(expected), Some(actual)) if expected == actual => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// Checks whether every topic name that this filter matches is also matched by `acl`.
    ///
    /// This decides whether a subscription with this filter stays inside what an ACL filter
    /// allows. The two filters are compared level by level:
    ///
    /// - A literal level is covered by the same literal, by `+` or by `#`.
    /// - `+` is covered by `+` or `#`, never by a literal, because `+` matches any text.
    /// - `#` matches any number of further levels, including none, so it is covered only by `#`
    ///   at the same level. The exception is `#` as the first level: every topic name has at
    ///   least one level, so `#` and `+/#` match the same topics and `+/#` covers `#`.
    /// - Where this filter ends, `acl` must end too, or continue with only `#`, which matches the
    ///   parent level. Where `acl` ends first, it is not a cover.
    /// - A literal first level that starts with `$` (as in `$SYS/#`) is not covered by a `+` or
    ///   `#` first level in `acl`, because those never match `$` topics. A `+` or `#` first level
    ///   in this filter matches no `$` topic either, so it needs no extra check.
    ///
    /// The answer is exact: `false` means some topic name matches this filter but not `acl`.
    pub fn is_covered_by(&self, acl: &TopicFilter) -> bool {
        let own_first_is_dollar = self.as_str().starts_with('$');
        if own_first_is_dollar && starts_with_wildcard(acl.as_str()) {
            return false;
        }

        let mut own_levels = self.levels();
        let mut acl_levels = acl.levels();
        let mut is_first_level = true;
        loop {
            match (own_levels.next(), acl_levels.next()) {
                // `#` in the ACL matches whatever this filter has left, including nothing.
                (_, Some("#")) => return true,
                // `#` here may match no further level, which `+` rejects, except at the first
                // level because a topic name is never empty. `#` is always the last level, so
                // `acl` must end with `#` right after this `+`.
                (Some("#"), Some("+")) => {
                    return is_first_level && acl_levels.next() == Some("#");
                }
                (Some("#"), _) => return false,
                (Some("+"), Some("+")) => {}
                (Some("+"), _) => return false,
                (Some(_), Some("+")) => {}
                (Some(own), Some(acl_level)) if own == acl_level => {}
                (None, None) => return true,
                _ => return false,
            }
            is_first_level = false;
        }
    }
}

/// Checks whether the first level of a valid filter is `+` or `#`.
fn starts_with_wildcard(filter: &str) -> bool {
    matches!(filter.split('/').next(), Some("+" | "#"))
}

impl From<TopicName> for TopicFilter {
    /// A topic name is a filter that matches exactly itself.
    fn from(name: TopicName) -> Self {
        TopicFilter(name.0)
    }
}

macro_rules! impl_topic_string_traits {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = TopicError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = TopicError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = TopicError;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

impl_topic_string_traits!(TopicName);
impl_topic_string_traits!(TopicFilter);
