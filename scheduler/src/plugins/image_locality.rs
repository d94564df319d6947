//! ImageLocality: prefers nodes that already have the pod's images (`status.images`), each
//! image's size scaled by the share of nodes having it (so images everywhere do not weigh),
//! with kube-scheduler's thresholds: below 23 MiB in total counts as nothing, 1000 MiB per
//! container as everything.

use std::collections::HashMap;

use crate::{
    framework::{CycleState, Plugin, PreScore, Score, Status, MAX_NODE_SCORE},
    nodeinfo::{NodeInfo, PodInfo},
};

pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// An image reference as nodes report it: `:latest` added when there is no tag or digest.
pub fn normalized(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The score from the sum of scaled image sizes on a node and the pod's container count.
pub fn priority(sum: i64, containers: usize) -> i64 {
    let max = MAX_CONTAINER_THRESHOLD * containers.max(1) as i64;
    let sum = sum.clamp(MIN_THRESHOLD, max);
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

/// Per cycle: the pod's images and how many nodes of the snapshot have each.
struct State {
    images: Vec<String>,
    spread: HashMap<String, usize>,
    total: usize,
}

/// The plugin.
pub struct ImageLocality;

fn pod_images(pod: &PodInfo) -> Vec<String> {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter_map(|c| c.image.as_deref())
        .map(normalized)
        .collect()
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl PreScore for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _feasible: &[&NodeInfo],
        all: &[NodeInfo],
    ) -> Status {
        let images = pod_images(pod);
        let mut spread = HashMap::new();
        if all.iter().any(|n| !n.images.is_empty()) {
            for image in &images {
                let count = all.iter().filter(|n| n.images.contains_key(image)).count();
                spread.insert(image.clone(), count);
            }
        }
        state.write(
            NAME,
            State {
                images,
                spread,
                total: all.len(),
            },
        );
        Status::success()
    }
}

impl Score for ImageLocality {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<State>(NAME) else {
            return Err(Status::error("ImageLocality: no pre-score state"));
        };
        let sum: i64 = s
            .images
            .iter()
            .filter_map(|i| node.images.get(i).map(|size| (i, *size)))
            .map(|(i, size)| {
                let have = s.spread.get(i).copied().unwrap_or(0) as f64;
                (size as f64 * have / s.total.max(1) as f64) as i64
            })
            .sum();
        Ok(priority(sum, s.images.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn names() {
        let cases = [
            ("busybox", "busybox:latest"),
            ("localhost/busybox:1.36", "localhost/busybox:1.36"),
            ("localhost:5000/busybox", "localhost:5000/busybox:latest"),
            ("img@sha256:abc", "img@sha256:abc"),
        ];
        for (i, want) in cases {
            assert_eq!(normalized(i), want);
        }
    }

    #[test]
    fn scores() {
        let big = 500 * MB;
        let with = |name: &str, images: serde_json::Value| {
            node(name, json!({}), json!({}), json!({"images": images}))
        };
        let nodes = vec![
            with(
                "a",
                json!([{"names": ["localhost/app:1"], "sizeBytes": big}]),
            ),
            with(
                "b",
                json!([{"names": ["localhost/app:1"], "sizeBytes": big},
                             {"names": ["localhost/side:1"], "sizeBytes": big}]),
            ),
            with("c", json!([])),
            with(
                "d",
                json!([{"names": ["localhost/side:1"], "sizeBytes": 10 * MB}]),
            ),
        ];
        let p = pod(
            json!({"containers": [{"name": "a", "image": "localhost/app:1"},
                                          {"name": "b", "image": "localhost/side:1"}]}),
        );
        let mut st = CycleState::default();
        let feasible: Vec<&NodeInfo> = nodes.iter().collect();
        assert!(ImageLocality
            .pre_score(&mut st, &p, &feasible, &nodes)
            .is_success());
        let scores: Vec<i64> = nodes
            .iter()
            .map(|n| ImageLocality.score(&st, &p, n).unwrap())
            .collect();
        // a: 500Mi * 2/4 = 250Mi; b: 250Mi + 250Mi; max 2000Mi; min 23Mi.
        let want = |sum: i64| {
            MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (2 * MAX_CONTAINER_THRESHOLD - MIN_THRESHOLD)
        };
        assert_eq!(scores, vec![want(250 * MB), want(500 * MB), 0, 0]);
        assert_eq!(priority(0, 1), 0);
        assert_eq!(priority(5000 * MB, 1), 100);
    }
}
