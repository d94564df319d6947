//! The ReplicaSet controller's pure decisions: which pods to delete first (Kubernetes'
//! `ActivePods` order), the slow-start batch sizes, and the status from the owned pods.

use std::cmp::Ordering;

use k8s_openapi::{api::apps::v1::ReplicaSetStatus, jiff::Timestamp};

use crate::{pod_view::PodView, pods};

/// At most this many pods are created or deleted by one reconcile (kube's burstReplicas).
pub const BURST_REPLICAS: usize = 500;

fn phase_rank(p: &PodView) -> u8 {
    match p.phase.as_deref() {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn restarts(p: &PodView) -> i32 {
    p.restarts
}

fn created(p: &PodView) -> Option<Timestamp> {
    p.creation_timestamp
}

/// Deletion order: `Less` means `a` goes first. Unscheduled before scheduled, Pending before
/// Unknown before Running, not ready before ready, ready for less time before longer, more
/// restarts before fewer, newer before older.
pub fn deletion_order(a: &PodView, b: &PodView) -> Ordering {
    let bound = |p: &PodView| p.node_name.is_some();
    bound(a)
        .cmp(&bound(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(pods::is_ready(a).cmp(&pods::is_ready(b)))
        .then_with(|| match (pods::ready_since(a), pods::ready_since(b)) {
            // Both ready: the more recently ready goes first.
            (Some(Some(x)), Some(Some(y))) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then(restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
}

/// The pods to delete to go from `pods.len()` to `keep`, first in deletion order.
pub fn pick_for_deletion(mut pods: Vec<&PodView>, keep: usize) -> Vec<&PodView> {
    if pods.len() <= keep {
        return Vec::new();
    }
    pods.sort_by(|a, b| deletion_order(a, b));
    let n = (pods.len() - keep).min(BURST_REPLICAS);
    pods.truncate(n);
    pods
}

/// Slow-start batch sizes for `total` creations: 1, 2, 4, ... (the last one cut to fit).
pub fn slow_start_batches(total: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut left, mut size) = (total, 1usize);
    while left > 0 {
        let n = size.min(left);
        out.push(n);
        left -= n;
        size = size.saturating_mul(2);
    }
    out
}

/// The status a ReplicaSet's active owned pods give it.
pub fn status(
    pods: &[&PodView],
    template_labels: Option<&std::collections::BTreeMap<String, String>>,
    min_ready_seconds: i32,
    generation: Option<i64>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let count = |f: &dyn Fn(&PodView) -> bool| pods.iter().filter(|p| f(p)).count() as i32;
    let nonzero = |n: i32| (n > 0).then_some(n);
    let labelled = count(&|p| template_labels.is_none_or(|want| pods::has_labels(want, &p.labels)));
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: nonzero(labelled),
        ready_replicas: nonzero(count(&pods::is_ready)),
        available_replicas: nonzero(count(&|p| pods::is_available(p, min_ready_seconds, now))),
        observed_generation: generation,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(
        name: &str,
        node: Option<&str>,
        phase: &str,
        ready: Option<&str>,
        created: &str,
    ) -> PodView {
        let mut v = json!({"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"containers": []}, "status": {"phase": phase}});
        if let Some(n) = node {
            v["spec"]["nodeName"] = json!(n);
        }
        if let Some(t) = ready {
            v["status"]["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deletes_unscheduled_then_pending_then_not_ready_then_newest() {
        let t0 = "2026-01-01T00:00:00Z";
        let t1 = "2026-01-01T00:01:00Z";
        let pods = [
            pod("ready-old", Some("n"), "Running", Some(t0), t0),
            pod("ready-new", Some("n"), "Running", Some(t1), t0),
            pod("running-not-ready", Some("n"), "Running", None, t0),
            pod("pending-bound", Some("n"), "Pending", None, t0),
            pod("unscheduled", None, "Pending", None, t0),
            pod(
                "older-not-ready",
                Some("n"),
                "Running",
                None,
                "2025-01-01T00:00:00Z",
            ),
        ];
        let picked = pick_for_deletion(pods.iter().collect(), 1);
        let names: Vec<&str> = picked.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending-bound",
                "running-not-ready",
                "older-not-ready",
                "ready-new"
            ]
        );
        assert!(pick_for_deletion(pods.iter().collect(), 6).is_empty());
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), [1]);
        assert_eq!(slow_start_batches(10), [1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15), [1, 2, 4, 8]);
    }

    #[test]
    fn status_counts() {
        let t0 = "2026-01-01T00:00:00Z";
        let pods = [
            pod("a", Some("n"), "Running", Some(t0), t0),
            pod("b", Some("n"), "Running", None, t0),
        ];
        let refs: Vec<&PodView> = pods.iter().collect();
        let now: Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
        let s = status(&refs, None, 0, Some(3), now);
        assert_eq!(s.replicas, 2);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(1));
        assert_eq!(s.available_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(3));
        let s = status(&refs, None, 10, Some(3), now);
        assert_eq!(s.available_replicas, None);
    }
}
