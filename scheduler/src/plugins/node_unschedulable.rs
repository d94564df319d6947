//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods that tolerate
//! the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::{Pod, Taint};

use crate::{
    framework::{ClusterEvent, CycleState, Filter, Plugin, Status},
    nodeinfo::{NodeInfo, PodInfo},
    plugins::taint_toleration::tolerated,
};

pub const NAME: &str = "NodeUnschedulable";
/// kube-scheduler's `ErrReasonUnschedulable`.
pub const REASON: &str = "node(s) were unschedulable";
/// The taint a cordoned node stands for.
pub const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

/// Whether `pod` may go to a node whose `spec.unschedulable` is `unschedulable`.
pub fn fits(pod: &Pod, unschedulable: bool) -> bool {
    if !unschedulable {
        return true;
    }
    let taint = Taint {
        key: TAINT_KEY.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    tolerated(tolerations, &taint)
}

/// The plugin.
pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdded,
            ClusterEvent::NodeSchedulableChanged,
        ]
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl Filter for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let cordoned = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if fits(&pod.pod, cordoned) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn cordoned_nodes() {
        let cases = [
            ("schedulable", json!({}), json!([]), true),
            ("cordoned", json!({"unschedulable": true}), json!([]), false),
            (
                "explicitly schedulable",
                json!({"unschedulable": false}),
                json!([]),
                true,
            ),
            (
                "tolerates the unschedulable taint",
                json!({"unschedulable": true}),
                json!([{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]),
                true,
            ),
            (
                "tolerates everything",
                json!({"unschedulable": true}),
                json!([{"operator": "Exists"}]),
                true,
            ),
            (
                "tolerates another taint",
                json!({"unschedulable": true}),
                json!([{"key": "x", "operator": "Exists"}]),
                false,
            ),
        ];
        for (name, spec, tols, want) in cases {
            let s = NodeUnschedulable.filter(
                &CycleState::default(),
                &pod(json!({"tolerations": tols})),
                &node("n", json!({}), spec, json!({})),
            );
            assert_eq!(s.is_success(), want, "{name}");
            if !want {
                assert_eq!(s.reasons, vec![REASON.to_string()]);
            }
        }
    }
}
