//! SelectorSpread: spreads the pods of one controller (ReplicaSet, StatefulSet, ...; the
//! owner reference marked `controller`) across nodes: the fewer of its pods a node already
//! has, the higher it scores. Pods without a controller score every node alike.

use crate::{
    framework::{CycleState, Plugin, Score, Status, MAX_NODE_SCORE},
    nodeinfo::{NodeInfo, PodInfo},
};

pub const NAME: &str = "SelectorSpread";

/// How many pods of `owner` the node has.
pub fn count(node: &NodeInfo, owner: &str) -> i64 {
    node.pods
        .iter()
        .filter(|p| p.owner.as_deref() == Some(owner))
        .count() as i64
}

/// Maps counts to scores: a node with the most pods of the owner gets 0, one with none 100.
pub fn spread(counts: &mut [i64]) {
    let max = counts.iter().copied().max().unwrap_or(0);
    for c in counts.iter_mut() {
        *c = if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max - *c) / max
        };
    }
}

/// The plugin.
pub struct SelectorSpread;

impl Plugin for SelectorSpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl Score for SelectorSpread {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(match &pod.summary.owner {
            Some(owner) => count(node, owner),
            None => 0,
        })
    }
    fn normalize(&self, _: &CycleState, scores: &mut [i64]) {
        spread(scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::testutil::{pod_meta, sized};
    use serde_json::json;

    fn owned(name: &str, uid: &str) -> PodInfo {
        pod_meta(
            json!({"name": name, "namespace": "default", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}]}),
            json!({}),
        )
    }

    #[test]
    fn spreads_one_owner() {
        let mut nodes = [
            sized("a", "1", "1Gi", "9"),
            sized("b", "1", "1Gi", "9"),
            sized("c", "1", "1Gi", "9"),
        ];
        nodes[0].add_pod(owned("x1", "rs1").summary);
        nodes[0].add_pod(owned("x2", "rs1").summary);
        nodes[1].add_pod(owned("x3", "rs1").summary);
        nodes[2].add_pod(owned("y1", "rs2").summary);
        let st = CycleState::default();
        let p = owned("new", "rs1");
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| SelectorSpread.score(&st, &p, n).unwrap())
            .collect();
        assert_eq!(scores, vec![2, 1, 0]);
        SelectorSpread.normalize(&st, &mut scores);
        assert_eq!(scores, vec![0, 50, 100]);
        let loner = crate::nodeinfo::testutil::pod(json!({}));
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| SelectorSpread.score(&st, &loner, n).unwrap())
            .collect();
        SelectorSpread.normalize(&st, &mut scores);
        assert_eq!(scores, vec![100, 100, 100]);
    }
}
