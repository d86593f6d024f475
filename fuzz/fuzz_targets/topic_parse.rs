//! Topic name and filter parsing, matching and coverage on arbitrary input.

#![no_main]

use alicia_core::topic::{TopicFilter, TopicName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // The first NUL-free half and the second half form a pair, so matching and coverage run on
    // two independent values; splitting at a character boundary keeps both halves valid UTF-8.
    let middle = (0..=text.len() / 2)
        .rev()
        .find(|index| text.is_char_boundary(*index))
        .unwrap_or(0);
    let (left, right) = text.split_at(middle);

    let _ = TopicName::new(text);
    let _ = TopicFilter::new(text);

    let (Ok(filter), Ok(other)) = (TopicFilter::new(left), TopicFilter::new(right)) else {
        return;
    };
    let covered = filter.is_covered_by(&other);
    assert!(filter.is_covered_by(&filter), "a filter always covers itself");

    if let Ok(name) = TopicName::new(left) {
        // A name matched by `filter` must be matched by every filter that covers `filter`.
        if covered && filter.matches(&name) {
            assert!(other.matches(&name), "coverage is sound");
        }
        assert!(TopicFilter::from(name.clone()).matches(&name), "a name matches itself");
    }
});
