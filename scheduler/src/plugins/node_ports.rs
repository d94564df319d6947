//! NodePorts: a pod's host ports must be free on the node (same protocol and port conflict
//! when the IPs are equal or either is the wildcard `0.0.0.0`).

use crate::{
    framework::{ClusterEvent, CycleState, Filter, Plugin, Status},
    nodeinfo::{HostPort, NodeInfo, PodInfo},
};

pub const NAME: &str = "NodePorts";
/// kube-scheduler's `ErrReason`.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// Whether `wanted` ports are all free beside `used`.
pub fn fits<'a>(wanted: &[HostPort], mut used: impl Iterator<Item = &'a HostPort>) -> bool {
    wanted.is_empty() || !used.any(|u| wanted.iter().any(|w| w.conflicts(u)))
}

/// The plugin.
pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdded, ClusterEvent::AssignedPodDeleted]
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl Filter for NodePorts {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let used = node.pods.iter().flat_map(|p| p.host_ports.iter());
        if fits(&pod.summary.host_ports, used) {
            Status::success()
        } else {
            Status::unschedulable(REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::testutil::{pod, sized};
    use serde_json::{json, Value};

    fn with_ports(ports: Value) -> crate::nodeinfo::PodInfo {
        pod(json!({"containers": [{"name": "c", "image": "i", "ports": ports}]}))
    }

    #[test]
    fn host_ports() {
        let cases: Vec<(&str, Value, Value, bool)> = vec![
            (
                "no host ports",
                json!([{"containerPort": 80}]),
                json!([{"containerPort": 80, "hostPort": 80}]),
                true,
            ),
            (
                "same port",
                json!([{"containerPort": 80, "hostPort": 80}]),
                json!([{"containerPort": 8, "hostPort": 80}]),
                false,
            ),
            (
                "other port",
                json!([{"containerPort": 80, "hostPort": 81}]),
                json!([{"containerPort": 8, "hostPort": 80}]),
                true,
            ),
            (
                "other protocol",
                json!([{"containerPort": 80, "hostPort": 80, "protocol": "UDP"}]),
                json!([{"containerPort": 8, "hostPort": 80}]),
                true,
            ),
            (
                "distinct IPs",
                json!([{"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.1"}]),
                json!([{"containerPort": 8, "hostPort": 80, "hostIP": "10.0.0.2"}]),
                true,
            ),
            (
                "wildcard against an IP",
                json!([{"containerPort": 80, "hostPort": 80}]),
                json!([{"containerPort": 8, "hostPort": 80, "hostIP": "10.0.0.2"}]),
                false,
            ),
        ];
        for (name, wanted, used, want) in cases {
            let mut n = sized("n", "1", "1Gi", "10");
            n.add_pod(with_ports(used).summary);
            let s = NodePorts.filter(&CycleState::default(), &with_ports(wanted), &n);
            assert_eq!(s.is_success(), want, "{name}");
            if !want {
                assert_eq!(s.code, crate::framework::Code::Unschedulable);
                assert_eq!(s.reasons, vec![REASON.to_string()]);
            }
        }
    }
}
