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

/// The reason a string is not a valid topic name or filter.
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
        /// The level that contains it, counted from 1.
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
        /// The level that contains it, counted from 1.
        level: usize,
    },

    /// A `#` is followed by more levels.
    #[error(
        "topic filter \"{topic}\" is invalid: '#' in level {level} must be the last level (e.g. \"a/b/#\")"
    )]
    MultiLevelNotLast {
        /// The rejected filter, escaped.
        topic: String,
        /// The level that contains `#`, counted from 1.
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

    /// Returns the topic as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the topic's levels, split at `/`, empty levels included.
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

    /// Returns the filter as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the filter's levels, split at `/`, empty levels included.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// Returns whether the filter contains `+` or `#`.
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
    /// The result is exact: `false` means some topic name matches this filter but not `acl`.
    pub fn is_covered_by(&self, acl: &TopicFilter) -> bool {
        let own_first_is_dollar = self.as_str().starts_with('$');
        if own_first_is_dollar && starts_with_wildcard(acl.as_str()) {
            return false;
        }

        let mut own_levels = self.levels();
        let mut acl_levels = acl.levels();
        // Whether the levels before the current one join to the empty string, which is not a
        // valid topic name: no level yet, or one empty level (the filter starts with `/`).
        let mut prefix_is_empty = true;
        let mut at_start = true;
        loop {
            let own_level = own_levels.next();
            match (own_level, acl_levels.next()) {
                // `#` in the ACL matches whatever this filter has left, including nothing.
                (_, Some("#")) => return true,
                // `#` here may match no further level, which `+` rejects, unless the levels
                // before it join to an empty topic, which no valid topic name is. `#` is always
                // the last level, so `acl` must end with `#` right after this `+`.
                (Some("#"), Some("+")) => {
                    return prefix_is_empty && acl_levels.next() == Some("#");
                }
                (Some("#"), _) => return false,
                (Some("+"), Some("+")) => {}
                (Some("+"), _) => return false,
                (Some(_), Some("+")) => {}
                (Some(own), Some(acl_level)) if own == acl_level => {}
                (None, None) => return true,
                _ => return false,
            }
            prefix_is_empty = prefix_is_empty && at_start && own_level == Some("");
            at_start = false;
        }
    }
}

/// Checks whether the first level of a valid filter is `+` or `#`.
fn starts_with_wildcard(filter: &str) -> bool {
    matches!(filter.split('/').next(), Some("+" | "#"))
}

impl From<TopicName> for TopicFilter {
    /// Converts a topic name into the filter that matches exactly that topic.
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

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    fn name(topic: &str) -> TopicName {
        TopicName::new(topic).expect("test topic names are valid")
    }

    fn filter(topic: &str) -> TopicFilter {
        TopicFilter::new(topic).expect("test topic filters are valid")
    }

    /// Names the variant of `error`, so a table can state the expected one as text.
    fn error_kind(error: &TopicError) -> &'static str {
        match error {
            TopicError::Empty => "Empty",
            TopicError::TooLong { .. } => "TooLong",
            TopicError::Nul { .. } => "Nul",
            TopicError::WildcardInName { .. } => "WildcardInName",
            TopicError::WildcardNotWholeLevel { .. } => "WildcardNotWholeLevel",
            TopicError::MultiLevelNotLast { .. } => "MultiLevelNotLast",
        }
    }

    /// Returns a string of exactly `len` bytes made of ASCII letters.
    fn ascii_of_len(len: usize) -> String {
        "a".repeat(len)
    }

    /// Returns a string of `len` bytes made of two-byte characters, plus one ASCII byte if `len`
    /// is odd.
    fn two_byte_of_len(len: usize) -> String {
        let mut text = "é".repeat(len / 2);
        if len % 2 == 1 {
            text.push('a');
        }
        text
    }

    #[test]
    fn name_accepts_valid_names() {
        let max_ascii = ascii_of_len(MAX_TOPIC_LEN);
        let max_two_byte = two_byte_of_len(MAX_TOPIC_LEN);
        let cases: &[(&str, &str)] = &[
            ("single level", "a"),
            ("nested levels", "alicia/devices/status/lamp-1"),
            ("leading slash", "/a"),
            ("trailing slash", "a/"),
            ("slash only", "/"),
            ("empty middle level", "a//b"),
            ("dollar prefix", "$SYS/broker/uptime"),
            ("dollar in later level", "a/$b"),
            ("non-ascii latin", "küche/lámpara"),
            ("non-ascii cjk", "家/灯"),
            ("space inside level", "living room/lamp"),
            ("max length ascii", &max_ascii),
            ("max length two-byte chars", &max_two_byte),
        ];
        for (label, topic) in cases {
            let result = TopicName::new(*topic);
            assert!(result.is_ok(), "{label}: expected valid, got {result:?}");
        }
    }

    #[test]
    fn name_rejects_invalid_names() {
        let over_ascii = ascii_of_len(MAX_TOPIC_LEN + 1);
        let over_two_byte = two_byte_of_len(MAX_TOPIC_LEN + 1);
        let cases: &[(&str, &str, &str)] = &[
            ("empty", "", "Empty"),
            ("nul", "a\0b", "Nul"),
            ("nul only", "\0", "Nul"),
            ("one byte over max ascii", &over_ascii, "TooLong"),
            (
                "one byte over max two-byte chars",
                &over_two_byte,
                "TooLong",
            ),
            ("plus level", "a/+", "WildcardInName"),
            ("hash level", "a/#", "WildcardInName"),
            ("hash only", "#", "WildcardInName"),
            ("plus glued to text", "a/b+", "WildcardInName"),
            ("hash glued to text", "a/#b", "WildcardInName"),
        ];
        for (label, topic, expected) in cases {
            match TopicName::new(*topic) {
                Ok(_) => panic!("{label}: expected {expected}, got a valid name"),
                Err(error) => assert_eq!(error_kind(&error), *expected, "{label}: {error}"),
            }
        }
    }

    #[test]
    fn filter_accepts_valid_filters() {
        let max_ascii = ascii_of_len(MAX_TOPIC_LEN);
        let cases: &[(&str, &str)] = &[
            ("literal", "a/b"),
            ("plus only", "+"),
            ("hash only", "#"),
            ("plus last", "a/+"),
            ("hash last", "a/#"),
            ("plus twice", "+/+"),
            ("plus then hash", "+/#"),
            ("plus in middle", "a/+/b"),
            ("hash after empty level", "/#"),
            ("plus after empty level", "a//+"),
            ("dollar then hash", "$SYS/#"),
            ("slash only", "/"),
            ("non-ascii with plus", "küche/+"),
            ("max length", &max_ascii),
        ];
        for (label, topic) in cases {
            let result = TopicFilter::new(*topic);
            assert!(result.is_ok(), "{label}: expected valid, got {result:?}");
        }
    }

    #[test]
    fn filter_rejects_invalid_filters() {
        let over_ascii = ascii_of_len(MAX_TOPIC_LEN + 1);
        let cases: &[(&str, &str, &str)] = &[
            ("empty", "", "Empty"),
            ("nul", "a/\0/#", "Nul"),
            ("one byte over max", &over_ascii, "TooLong"),
            ("plus glued after text", "a/b+", "WildcardNotWholeLevel"),
            ("plus glued before text", "+a/b", "WildcardNotWholeLevel"),
            ("hash glued after text", "a/b#", "WildcardNotWholeLevel"),
            ("hash glued before text", "a/#b", "WildcardNotWholeLevel"),
            ("double plus", "++", "WildcardNotWholeLevel"),
            ("double hash", "##", "WildcardNotWholeLevel"),
            ("hash first", "#/a", "MultiLevelNotLast"),
            ("hash in middle", "a/#/b", "MultiLevelNotLast"),
            ("hash before empty level", "a/#/", "MultiLevelNotLast"),
        ];
        for (label, topic, expected) in cases {
            match TopicFilter::new(*topic) {
                Ok(_) => panic!("{label}: expected {expected}, got a valid filter"),
                Err(error) => assert_eq!(error_kind(&error), *expected, "{label}: {error}"),
            }
        }
    }

    #[test]
    fn filter_error_names_level_and_text() {
        let message = TopicFilter::new("a/b+/c").unwrap_err().to_string();
        assert!(message.contains("\"a/b+/c\""), "{message}");
        assert!(message.contains("level 2 \"b+\""), "{message}");
    }

    #[test]
    fn too_long_error_stays_short() {
        let message = TopicName::new(ascii_of_len(MAX_TOPIC_LEN + 1))
            .unwrap_err()
            .to_string();
        assert!(message.contains("65536 bytes"), "{message}");
        assert!(message.len() < 300, "message is {} bytes", message.len());
    }

    #[test]
    fn nul_error_is_escaped() {
        let message = TopicName::new("a\0b").unwrap_err().to_string();
        assert!(message.contains("a\\0b"), "{message}");
        assert!(!message.contains('\0'), "{message}");
    }

    #[test]
    fn filter_matches_topics() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("literal equal", "a/b", "a/b", true),
            ("literal differs", "a/b", "a/c", false),
            ("literal topic shorter", "a/b", "a", false),
            ("literal topic longer", "a", "a/b", false),
            ("literal is case-sensitive", "Küche/+", "küche/x", false),
            ("non-ascii literal", "küche/+", "küche/lámpara", true),
            ("plus one level", "a/+", "a/b", true),
            ("plus needs a level", "a/+", "a", false),
            ("plus is only one level", "a/+", "a/b/c", false),
            ("plus matches empty level", "a/+", "a/", true),
            ("plus in middle", "a/+/c", "a/b/c", true),
            ("plus in middle empty", "a/+/b", "a//b", true),
            ("plus alone one level", "+", "a", true),
            ("plus alone not two levels", "+", "/", false),
            ("two plus match slash", "+/+", "/", true),
            ("two plus need two levels", "+/+", "a", false),
            ("hash matches parent", "a/#", "a", true),
            ("hash matches one level", "a/#", "a/b", true),
            ("hash matches many levels", "a/#", "a/b/c", true),
            ("hash matches empty level", "a/#", "a/", true),
            ("hash needs whole first level", "a/#", "ab", false),
            ("hash prefix differs", "a/#", "b/a", false),
            ("hash alone one level", "#", "a", true),
            ("hash alone many levels", "#", "a/b/c", true),
            ("hash alone slash", "#", "/", true),
            ("plus hash one level", "+/#", "a", true),
            ("plus plus hash needs two", "a/+/#", "a", false),
            ("plus plus hash two levels", "a/+/#", "a/b", true),
            ("empty levels equal", "a//b", "a//b", true),
            ("empty level missing", "a//b", "a/b", false),
            ("empty level extra", "a/b", "a//b", false),
            ("trailing slash in filter", "a/b/", "a/b", false),
            ("trailing slash in topic", "a/b", "a/b/", false),
            ("plus matches trailing empty", "a/b/+", "a/b/", true),
            ("leading slash in filter", "/a", "a", false),
            ("leading slash in topic", "a", "/a", false),
            ("plus matches leading empty", "+/a", "/a", true),
            ("hash after empty level", "/#", "/a", true),
            ("hash after empty level no match", "/#", "a", false),
            ("hash skips dollar", "#", "$SYS/x", false),
            ("hash skips lone dollar", "#", "$", false),
            ("plus skips dollar", "+/x", "$SYS/x", false),
            ("plus alone skips dollar", "+", "$SYS", false),
            ("plus hash skips dollar", "+/#", "$x/a", false),
            ("dollar literal then hash", "$SYS/#", "$SYS/x", true),
            ("dollar literal hash parent", "$SYS/#", "$SYS", true),
            ("dollar literal then plus", "$SYS/+", "$SYS/x", true),
            ("dollar literal exact", "$SYS/x", "$SYS/x", true),
            ("dollar in later level", "a/+", "a/$b", true),
            ("dollar not first char", "#", "a$/b", true),
        ];
        for (label, filter_text, topic_text, expected) in cases {
            let actual = filter(filter_text).matches(&name(topic_text));
            assert_eq!(
                actual, *expected,
                "{label}: {filter_text:?} matches {topic_text:?}"
            );
        }
    }

    #[test]
    fn filter_coverage_by_acl() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("literal by same literal", "a/b", "a/b", true),
            ("literal by plus", "a", "+", true),
            ("literal by hash", "a", "#", true),
            ("literal by hash parent", "a", "a/#", true),
            ("literal by other literal", "a/b", "a/c", false),
            ("literal by shorter acl", "a/b", "a", false),
            ("literal by longer acl", "a", "a/b", false),
            ("literal by plus needing level", "a", "a/+", false),
            ("plus by hash", "a/+", "a/#", true),
            ("plus by plus", "a/+", "+/+", true),
            ("plus alone by plus", "+", "+", true),
            ("plus alone by hash", "+", "#", true),
            ("plus by literal", "+", "a", false),
            ("plus by dollar literal", "+", "$s", false),
            ("plus by partial literal", "a/+", "a/b", false),
            ("two levels by one plus", "+/+", "+", false),
            ("hash by same", "a/#", "a/#", true),
            ("hash by root hash", "a/#", "#", true),
            ("hash by plus", "a/#", "a/+", false),
            ("hash by plus hash", "a/#", "+/#", true),
            ("hash needs parent in acl", "a/#", "a/+/#", false),
            ("root hash by prefixed hash", "#", "a/#", false),
            ("root hash by root hash", "#", "#", true),
            ("root hash by plus hash", "#", "+/#", true),
            ("empty-level hash by two levels", "/#", "+/+/#", true),
            ("empty-level hash by exact two", "/#", "+/+", false),
            ("root hash by plus", "#", "+", false),
            ("root hash by two plus hash", "#", "+/+/#", false),
            ("plus hash by root hash", "+/#", "#", true),
            ("plus hash by two plus hash", "+/#", "+/+/#", false),
            ("plus hash needs parent", "a/+/#", "a/+/+/#", false),
            ("plus hash by hash", "a/+/#", "a/#", true),
            ("empty level by plus", "a//b", "a/+/b", true),
            ("literal by empty level", "a/b", "a//b", false),
            ("leading empty by plus", "/a", "+/a", true),
            ("leading empty by literal", "/a", "a", false),
            ("dollar hash by root hash", "$SYS/#", "#", false),
            ("dollar plus by plus plus", "$SYS/+", "+/+", false),
            ("dollar literal by plus", "$foo", "+", false),
            ("dollar literal by plus hash", "$foo/a", "+/#", false),
            ("dollar literal by itself", "$foo", "$foo", true),
            ("dollar literal by its hash", "$foo", "$foo/#", true),
            ("dollar plus by dollar hash", "$SYS/+", "$SYS/#", true),
            ("dollar literal by dollar plus", "$SYS/x", "$SYS/+", true),
            ("plus first by same", "+/x", "+/x", true),
            ("root hash by dollar hash", "#", "$SYS/#", false),
            ("dollar in later level by plus", "a/$b", "a/+", true),
        ];
        for (label, own, acl, expected) in cases {
            let actual = filter(own).is_covered_by(&filter(acl));
            assert_eq!(actual, *expected, "{label}: {own:?} covered by {acl:?}");
        }
    }

    /// Levels for generated filters and names. The set is small so that generated filters and
    /// names share levels often, and it contains an empty level and a `$` level.
    const LEVELS: [&str; 4] = ["", "a", "b", "$s"];

    /// A level that no generated filter contains, standing for "any other text".
    const OTHER_LEVEL: &str = "c";

    /// Maximum levels of a generated filter before an optional trailing `#`.
    const MAX_BODY_LEVELS: usize = 4;

    fn level_strategy() -> impl Strategy<Value = &'static str> {
        prop::sample::select(&LEVELS[..])
    }

    fn name_strategy() -> impl Strategy<Value = TopicName> {
        let levels = prop::sample::select(vec!["", "a", "b", "$s", OTHER_LEVEL]);
        prop::collection::vec(levels, 1..=MAX_BODY_LEVELS + 1)
            .prop_filter_map("an empty topic is invalid", |levels| {
                TopicName::new(levels.join("/")).ok()
            })
    }

    fn filter_strategy() -> impl Strategy<Value = TopicFilter> {
        let body_level = prop_oneof![level_strategy(), Just("+")];
        (
            prop::collection::vec(body_level, 0..=MAX_BODY_LEVELS),
            any::<bool>(),
        )
            .prop_filter_map(
                "an empty filter is invalid",
                |(mut levels, ends_with_hash)| {
                    if ends_with_hash {
                        levels.push("#");
                    }
                    TopicFilter::new(levels.join("/")).ok()
                },
            )
    }

    /// Generates a filter and an ACL filter. Half the time the ACL filter is a widened copy of the
    /// filter, so that covered pairs are frequent, and otherwise the two are independent.
    fn filter_pair_strategy() -> impl Strategy<Value = (TopicFilter, TopicFilter)> {
        let independent = (filter_strategy(), filter_strategy());
        let widened = filter_strategy().prop_flat_map(|own| {
            let level_count = own.levels().count();
            (
                Just(own),
                prop::collection::vec(any::<bool>(), level_count),
                0..=level_count + 1,
            )
                .prop_map(|(own, widen_level, cut_at)| {
                    let acl = widen(&own, &widen_level, cut_at);
                    (own, acl)
                })
        });
        prop_oneof![independent, widened]
    }

    /// Replaces the levels of `own` marked in `widen_level` with `+`, and, when `cut_at` is
    /// inside the filter, replaces every level from `cut_at` on with `#`.
    fn widen(own: &TopicFilter, widen_level: &[bool], cut_at: usize) -> TopicFilter {
        let mut levels: Vec<&str> = own
            .levels()
            .zip(widen_level)
            .map(|(level, &widen)| if widen && level != "#" { "+" } else { level })
            .collect();
        if cut_at < levels.len() {
            levels.truncate(cut_at);
            levels.push("#");
        }
        TopicFilter::new(levels.join("/")).expect("widening keeps a filter valid")
    }

    /// Lists every topic name of 1 to 5 levels over the generated levels plus [`OTHER_LEVEL`].
    ///
    /// When a generated filter is not covered, one of these names is a counterexample. The
    /// shortest counterexample has at most one level more than the filter's levels before `#`
    /// (two for `#` alone), so at most five. It needs no text other than the filters' own levels
    /// and one level that neither filter contains.
    fn small_names() -> &'static [TopicName] {
        static NAMES: OnceLock<Vec<TopicName>> = OnceLock::new();
        NAMES.get_or_init(|| {
            let alphabet: Vec<&str> = LEVELS.iter().copied().chain([OTHER_LEVEL]).collect();
            let mut prefixes: Vec<String> = vec![String::new()];
            let mut names = Vec::new();
            for level_count in 1..=MAX_BODY_LEVELS + 1 {
                let mut longer = Vec::new();
                for prefix in &prefixes {
                    for level in &alphabet {
                        let topic = if level_count == 1 {
                            (*level).to_owned()
                        } else {
                            format!("{prefix}/{level}")
                        };
                        if let Ok(name) = TopicName::new(topic.clone()) {
                            names.push(name);
                        }
                        longer.push(topic);
                    }
                }
                prefixes = longer;
            }
            names
        })
    }

    proptest! {
        #[test]
        fn coverage_is_sound(
            (own, acl) in filter_pair_strategy(),
            topics in prop::collection::vec(name_strategy(), 1..32),
        ) {
            if own.is_covered_by(&acl) {
                for topic in &topics {
                    prop_assert!(
                        !own.matches(topic) || acl.matches(topic),
                        "{own} is covered by {acl}, but {topic} matches only {own}"
                    );
                }
            }
        }

        #[test]
        fn coverage_agrees_with_small_names((own, acl) in filter_pair_strategy()) {
            let counterexample = small_names()
                .iter()
                .find(|topic| own.matches(topic) && !acl.matches(topic));
            prop_assert_eq!(
                own.is_covered_by(&acl),
                counterexample.is_none(),
                "{} covered by {}; counterexample {:?}",
                own,
                acl,
                counterexample
            );
        }

        #[test]
        fn coverage_is_reflexive(own in filter_strategy()) {
            prop_assert!(own.is_covered_by(&own), "{own} is not covered by itself");
        }

        #[test]
        fn name_as_filter_matches_itself(topic in name_strategy()) {
            prop_assert!(TopicFilter::from(topic.clone()).matches(&topic), "{topic}");
        }

        #[test]
        fn name_covered_iff_acl_matches(topic in name_strategy(), acl in filter_strategy()) {
            let as_filter = TopicFilter::from(topic.clone());
            prop_assert_eq!(
                as_filter.is_covered_by(&acl),
                acl.matches(&topic),
                "{} against {}",
                topic,
                acl
            );
        }
    }
}
