//! `docs/topics.md` is generated from the topic manifest; this test fails when the two differ.
//!
//! To regenerate the page after changing the manifest:
//! `ALICIA_UPDATE_DOCS=1 cargo test --test topics_doc`.

use std::path::Path;

const HEADER: &str = "\
# MQTT topics

<!-- Generated from alicia_core::manifest::MANIFEST by tests/topics_doc.rs; do not edit by hand.
     Regenerate with: ALICIA_UPDATE_DOCS=1 cargo test --test topics_doc -->

Every topic Alicia uses, with its direction, message type, QoS, whether it is retained and which
roles may publish or subscribe. A parameter in braces (`{device}`) is one topic level holding a
valid id: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.

";

fn render() -> String {
    format!("{HEADER}{}", alicia::core::manifest::markdown_table())
}

#[test]
fn topics_doc_matches_manifest() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/topics.md");
    let expected = render();

    if std::env::var_os("ALICIA_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("docs/topics.md is writable");
        return;
    }

    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/topics.md is out of date with the topic manifest; regenerate it with \
         `ALICIA_UPDATE_DOCS=1 cargo test --test topics_doc`"
    );
}
