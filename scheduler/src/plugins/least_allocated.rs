//! NodeResourcesLeastAllocated: prefers nodes with the most CPU and memory left after placing
//! the pod: per resource `(allocatable - requested) * 100 / allocatable`, averaged (equal
//! weights), counting containers that request nothing as 100m CPU / 200 MiB.

use crate::{
    framework::{CycleState, Plugin, Score, Status, MAX_NODE_SCORE},
    nodeinfo::{NodeInfo, PodInfo},
};

pub const NAME: &str = "NodeResourcesLeastAllocated";

/// Score of one resource: the share left free, 0 when it does not fit or the node has none.
pub fn least_requested(requested: i64, allocatable: i64) -> i64 {
    if allocatable <= 0 || requested > allocatable {
        return 0;
    }
    (allocatable - requested) * MAX_NODE_SCORE / allocatable
}

/// The plugin.
pub struct LeastAllocated;

impl Plugin for LeastAllocated {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl Score for LeastAllocated {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let cpu = least_requested(
            node.non_zero_requested.milli_cpu + pod.summary.non_zero.milli_cpu,
            node.allocatable.milli_cpu,
        );
        let mem = least_requested(
            node.non_zero_requested.memory + pod.summary.non_zero.memory,
            node.allocatable.memory,
        );
        Ok((cpu + mem) / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::testutil::{pod, sized};
    use serde_json::json;

    #[test]
    fn scores() {
        let cases = [
            (0, 100, 100),
            (25, 100, 75),
            (100, 100, 0),
            (150, 100, 0),
            (10, 0, 0),
        ];
        for (req, alloc, want) in cases {
            assert_eq!(least_requested(req, alloc), want, "{req}/{alloc}");
        }
        // 4 cpu / 8Gi node running nothing; pod 1 cpu, 2Gi → (75 + 75) / 2.
        let p = pod(json!({"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}));
        let n = sized("n", "4", "8Gi", "10");
        assert_eq!(LeastAllocated.score(&CycleState::default(), &p, &n), Ok(75));
        // A pod requesting nothing counts as 100m and 200Mi: (97 + 97) / 2.
        let empty = pod(json!({}));
        assert_eq!(
            LeastAllocated.score(&CycleState::default(), &empty, &n),
            Ok(97)
        );
    }
}
