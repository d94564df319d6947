//! NodeResourcesFit: the pod's effective requests (see [`crate::resources::pod_requests`])
//! must fit in what the node's allocatable leaves beside the pods already placed (assumed ones
//! included), and the node must take one more pod.

use crate::{
    framework::{ClusterEvent, CycleState, Filter, Plugin, Status},
    nodeinfo::{NodeInfo, PodInfo},
    resources::Resources,
};

pub const NAME: &str = "NodeResourcesFit";

/// The reasons the pod does not fit, in kube-scheduler's order and wording (empty: it fits).
pub fn insufficient(
    pod: &Resources,
    allocatable: &Resources,
    requested: &Resources,
    allowed_pods: i64,
    pods: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    if pods as i64 + 1 > allowed_pods {
        out.push("Too many pods".to_string());
    }
    let check = [
        (
            pod.milli_cpu,
            allocatable.milli_cpu,
            requested.milli_cpu,
            "cpu",
        ),
        (pod.memory, allocatable.memory, requested.memory, "memory"),
        (
            pod.ephemeral_storage,
            allocatable.ephemeral_storage,
            requested.ephemeral_storage,
            "ephemeral-storage",
        ),
    ];
    for (want, alloc, used, name) in check {
        if want > 0 && want > alloc - used {
            out.push(format!("Insufficient {name}"));
        }
    }
    out
}

/// The plugin.
pub struct NodeResourcesFit;

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdded,
            ClusterEvent::NodeAllocatableChanged,
            ClusterEvent::AssignedPodDeleted,
        ]
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl Filter for NodeResourcesFit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient(
            &pod.summary.requests,
            &node.allocatable,
            &node.requested,
            node.allowed_pods,
            node.pods.len(),
        );
        if reasons.is_empty() {
            Status::success()
        } else {
            Status::new(crate::framework::Code::Unschedulable, reasons)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::testutil::{pod, sized};
    use serde_json::{json, Value};

    fn requesting(init: Value, app: Value) -> PodInfo {
        let c = |(i, r): (usize, &Value)| json!({"name": format!("c{i}"), "image": "i", "resources": {"requests": r}});
        let init: Vec<Value> = init.as_array().unwrap().iter().enumerate().map(c).collect();
        let app: Vec<Value> = app.as_array().unwrap().iter().enumerate().map(c).collect();
        pod(json!({"initContainers": init, "containers": app}))
    }

    #[test]
    fn fit() {
        // Node: 2 cpu, 4Gi, 1Gi storage, 3 pods; already running 1 cpu / 1Gi in one pod.
        let base = || {
            let mut n = sized("n", "2", "4Gi", "3");
            let mut alloc = n.allocatable;
            alloc.ephemeral_storage = 1 << 30;
            n.allocatable = alloc;
            n.add_pod(requesting(json!([]), json!([{"cpu": "1", "memory": "1Gi"}])).summary);
            n
        };
        let cases: Vec<(&str, Value, Value, usize, Vec<&str>)> = vec![
            (
                "fits",
                json!([]),
                json!([{"cpu": "1", "memory": "3Gi"}]),
                0,
                vec![],
            ),
            ("no requests", json!([]), json!([{}]), 0, vec![]),
            (
                "cpu",
                json!([]),
                json!([{"cpu": "1001m"}]),
                0,
                vec!["Insufficient cpu"],
            ),
            (
                "cpu and memory",
                json!([]),
                json!([{"cpu": "2", "memory": "4Gi"}]),
                0,
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            (
                "storage",
                json!([]),
                json!([{"ephemeral-storage": "2Gi"}]),
                0,
                vec!["Insufficient ephemeral-storage"],
            ),
            (
                "init container larger than the app",
                json!([{"cpu": "1500m"}]),
                json!([{"cpu": "100m"}]),
                0,
                vec!["Insufficient cpu"],
            ),
            (
                "init containers are not summed",
                json!([{"cpu": "600m"}, {"cpu": "600m"}]),
                json!([{"cpu": "100m"}]),
                0,
                vec![],
            ),
            (
                "app containers are summed",
                json!([]),
                json!([{"cpu": "600m"}, {"cpu": "600m"}]),
                0,
                vec!["Insufficient cpu"],
            ),
            (
                "too many pods",
                json!([]),
                json!([{}]),
                2,
                vec!["Too many pods"],
            ),
            (
                "too many pods and cpu",
                json!([]),
                json!([{"cpu": "3"}]),
                2,
                vec!["Too many pods", "Insufficient cpu"],
            ),
        ];
        for (name, init, app, extra_pods, want) in cases {
            let mut n = base();
            for _ in 0..extra_pods {
                n.add_pod(requesting(json!([]), json!([{}])).summary);
            }
            let s = NodeResourcesFit.filter(&CycleState::default(), &requesting(init, app), &n);
            let want: Vec<String> = want.into_iter().map(String::from).collect();
            assert_eq!(s.reasons, want, "{name}");
            assert_eq!(s.is_success(), want.is_empty(), "{name}");
        }
    }
}
