//! Node presence: the body of the retained envelopes on `alicia/nodes/{node}/presence`.
//!
//! The MQTT bridge publishes `online` when it connects and `offline` when it stops, and registers
//! `offline` as its last will, which the broker publishes when the connection is lost. Services
//! that track other nodes, such as the health monitor, subscribe to the same topic. The type
//! lives here, not in the bridge, so that they can decode it without depending on the bridge.

use serde::{Deserialize, Serialize};

use crate::id::NodeId;
use crate::manifest::{self, ManifestError, TopicSpec};
use crate::topic::TopicName;

/// Manifest key of the presence topic.
pub const PRESENCE_TOPIC: &str = "node.presence";

/// The presence of a node.
///
/// In JSON it is the string `"online"` or `"offline"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodePresence {
    /// The node is connected to the broker.
    Online,
    /// The node disconnected cleanly, or the broker published its last will.
    Offline,
}

/// Returns the manifest spec of the presence topic.
pub fn presence_spec() -> &'static TopicSpec {
    manifest::lookup(PRESENCE_TOPIC)
        .expect("the manifest contains node.presence; a test in this module checks it")
}

/// Returns the presence topic of `node`.
///
/// # Errors
///
/// [`ManifestError`] if the id is reserved for the `{node}` level.
pub fn presence_topic(node: &NodeId) -> Result<TopicName, ManifestError> {
    presence_spec().format(&[("node", node.as_str())])
}

/// Returns the node whose presence topic `topic` is, or `None` if it is not a presence topic.
pub fn presence_node(topic: &TopicName) -> Option<NodeId> {
    let params = presence_spec().parse(topic).ok()?;
    NodeId::new(params.get("node")?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_topic_round_trips_node() {
        let node = NodeId::new("hub-1").unwrap();
        let topic = presence_topic(&node).unwrap();
        assert_eq!(topic.as_str(), "alicia/nodes/hub-1/presence");
        assert_eq!(presence_node(&topic), Some(node));
    }

    #[test]
    fn presence_node_rejects_other_topics() {
        let topic = TopicName::new("alicia/nodes/hub-1/state").unwrap();
        assert_eq!(presence_node(&topic), None);
    }

    #[test]
    fn presence_json_is_a_string() {
        assert_eq!(
            serde_json::to_string(&NodePresence::Offline).unwrap(),
            "\"offline\""
        );
        let online: NodePresence = serde_json::from_str("\"online\"").unwrap();
        assert_eq!(online, NodePresence::Online);
    }
}
