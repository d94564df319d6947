//! NodeName: a pod that names a node (`spec.nodeName`) fits only that node.

use crate::{
    framework::{ClusterEvent, CycleState, Filter, Plugin, Status},
    nodeinfo::{NodeInfo, PodInfo},
};

pub const NAME: &str = "NodeName";
/// kube-scheduler's `ErrReason`.
pub const REASON: &str = "node(s) didn't match the requested node name";

/// Whether a pod asking for `wanted` (empty: any) fits the node `node`.
pub fn fits(wanted: Option<&str>, node: &str) -> bool {
    match wanted {
        None | Some("") => true,
        Some(w) => w == node,
    }
}

/// The plugin.
pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdded]
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl Filter for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let wanted = pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if fits(wanted, &node.name) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases = [
            (None, "n1", true),
            (Some(""), "n1", true),
            (Some("n1"), "n1", true),
            (Some("n2"), "n1", false),
        ];
        for (wanted, node, want) in cases {
            assert_eq!(fits(wanted, node), want, "{wanted:?} on {node}");
        }
    }
}
