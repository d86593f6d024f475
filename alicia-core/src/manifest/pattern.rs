//! Checks of spec keys and patterns that run in const context, where no formatting is
//! available. Their panics become compile errors when the spec is a `static` or `const`.

use super::spec::Access;
use crate::id::MAX_ID_LEN;
use crate::topic::MAX_TOPIC_LEN;

const fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || byte == b'.'
}

/// Returns the index of the `/` that ends the level starting at `start`, or the pattern length.
const fn level_end(bytes: &[u8], start: usize) -> usize {
    let mut index = start;
    while index < bytes.len() && bytes[index] != b'/' {
        index += 1;
    }
    index
}

/// Checks whether `bytes[start..end]` is `{name}` with a non-empty name of id characters.
const fn is_parameter_level(bytes: &[u8], start: usize, end: usize) -> bool {
    if end < start + 3 || bytes[start] != b'{' || bytes[end - 1] != b'}' {
        return false;
    }
    let mut index = start + 1;
    while index < end - 1 {
        if !is_id_byte(bytes[index]) {
            return false;
        }
        index += 1;
    }
    true
}

/// Checks whether `a[a_start..a_end]` and `b[b_start..b_end]` hold the same bytes.
const fn same_bytes(
    a: &[u8],
    a_start: usize,
    a_end: usize,
    b: &[u8],
    b_start: usize,
    b_end: usize,
) -> bool {
    if a_end - a_start != b_end - b_start {
        return false;
    }
    let mut offset = 0;
    while a_start + offset < a_end {
        if a[a_start + offset] != b[b_start + offset] {
            return false;
        }
        offset += 1;
    }
    true
}

pub(super) const fn check_key(key: &str) {
    let bytes = key.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_ID_LEN {
        panic!("invalid topic spec key: a key is 1 to 64 ASCII letters, digits, '-', '_' or '.'");
    }
    let mut index = 0;
    while index < bytes.len() {
        if !is_id_byte(bytes[index]) {
            panic!(
                "invalid topic spec key: a key is 1 to 64 ASCII letters, digits, '-', '_' or '.'"
            );
        }
        index += 1;
    }
}

pub(super) const fn check_pattern(pattern: &str) {
    let bytes = pattern.as_bytes();
    if bytes.is_empty() {
        panic!("invalid topic pattern: it is empty; write at least one level");
    }
    if bytes.len() > MAX_TOPIC_LEN {
        panic!(
            "invalid topic pattern: it is longer than the MQTT maximum of 65,535 bytes; shorten it"
        );
    }

    let mut start = 0;
    while start <= bytes.len() {
        let end = level_end(bytes, start);
        check_pattern_level(bytes, start, end);

        if is_parameter_level(bytes, start, end) {
            let mut other_start = end + 1;
            while other_start <= bytes.len() {
                let other_end = level_end(bytes, other_start);
                if is_parameter_level(bytes, other_start, other_end)
                    && same_bytes(bytes, start, end, bytes, other_start, other_end)
                {
                    panic!(
                        "invalid topic pattern: a parameter name appears twice; give each parameter its own name"
                    );
                }
                other_start = other_end + 1;
            }
        }

        start = end + 1;
    }
}

const fn check_pattern_level(bytes: &[u8], start: usize, end: usize) {
    let mut has_brace = false;
    let mut index = start;
    while index < end {
        let byte = bytes[index];
        if byte == 0 {
            panic!(
                "invalid topic pattern: it contains NUL, which MQTT forbids in topics; remove it"
            );
        }
        if byte == b'+' || byte == b'#' {
            panic!(
                "invalid topic pattern: '+' and '#' are not allowed; write a parameter as a whole level {{name}}"
            );
        }
        if byte == b'{' || byte == b'}' {
            has_brace = true;
        }
        index += 1;
    }
    if has_brace && !is_parameter_level(bytes, start, end) {
        panic!(
            "invalid topic pattern: a parameter must be a whole level {{name}}, with a name of ASCII letters, digits, '-', '_' or '.'"
        );
    }
}

pub(super) const fn check_own_parameter(pattern: &str, access: Access) {
    let Some(parameter) = access.own_parameter() else {
        return;
    };
    let bytes = pattern.as_bytes();
    let parameter_bytes = parameter.as_bytes();
    let mut start = 0;
    while start <= bytes.len() {
        let end = level_end(bytes, start);
        if is_parameter_level(bytes, start, end)
            && same_bytes(
                bytes,
                start + 1,
                end - 1,
                parameter_bytes,
                0,
                parameter_bytes.len(),
            )
        {
            return;
        }
        start = end + 1;
    }
    panic!(
        "invalid topic access: own_only names a parameter that the pattern does not have; name one of its {{name}} levels"
    );
}
