//! Tests of the scheduling cycle with the default plugins over small snapshots.

use super::*;
use crate::{
    config::FileConfig,
    nodeinfo::testutil::{node, pod, sized},
};
use rand::{rngs::StdRng, SeedableRng};
use serde_json::json;

fn default_fw() -> Framework {
    FileConfig::default().framework().unwrap()
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn unschedulable(r: Result<Placement, CycleError>) -> FitError {
    match r {
        Err(CycleError::Unschedulable(e)) => e,
        other => panic!("expected unschedulable, got {other:?}"),
    }
}

#[test]
fn message_shape() {
    let cases: Vec<(usize, Vec<(&str, usize)>, Option<&str>, &str)> = vec![
        (
            3,
            vec![("Insufficient cpu", 1), ("node(s) had untolerated taint {dedicated: gpu}", 2)],
            None,
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}.",
        ),
        // Sorted as strings, counts included, as kube-scheduler does.
        (
            12,
            vec![("node(s) were unschedulable", 10), ("Insufficient memory", 2)],
            None,
            "0/12 nodes are available: 10 node(s) were unschedulable, 2 Insufficient memory.",
        ),
        (
            2,
            vec![("Insufficient cpu", 2), ("Insufficient memory", 1), ("Too many pods", 1)],
            None,
            "0/2 nodes are available: 1 Insufficient memory, 1 Too many pods, 2 Insufficient cpu.",
        ),
        (4, vec![], Some("pod has unbound PVCs"), "0/4 nodes are available: pod has unbound PVCs."),
        (0, vec![], None, "no nodes available to schedule pods"),
    ];
    for (n, reasons, pre, want) in cases {
        let e = FitError {
            num_nodes: n,
            pre_filter_message: pre.map(String::from),
            reasons: reasons
                .into_iter()
                .map(|(r, c)| (r.to_string(), c))
                .collect(),
            plugins: BTreeSet::new(),
        };
        assert_eq!(e.to_string(), want);
    }
}

#[test]
fn counts_reasons_per_node_and_names_the_plugins() {
    let gpu = node(
        "gpu",
        json!({}),
        json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
        json!({"allocatable": {"cpu": "8", "memory": "8Gi", "pods": "10"}}),
    );
    let mut gpu2 = gpu.clone();
    gpu2.name = "gpu2".into();
    let small = sized("small", "500m", "8Gi", "10");
    let p = pod(json!({"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "1"}}}]}));
    let e = unschedulable(schedule(
        &default_fw(),
        &p,
        &[gpu, small, gpu2],
        0,
        &mut rng(),
    ));
    assert_eq!(
        e.to_string(),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}."
    );
    assert_eq!(
        e.plugins,
        BTreeSet::from(["NodeResourcesFit", "TaintToleration"])
    );
    assert_eq!(
        unschedulable(schedule(&default_fw(), &p, &[], 0, &mut rng())).num_nodes,
        0
    );
}

#[test]
fn picks_the_labelled_node_and_prefers_free_ones() {
    let mut nodes: Vec<NodeInfo> = (0..5)
        .map(|i| sized(&format!("n{i}"), "4", "8Gi", "110"))
        .collect();
    nodes.push(node(
        "ssd",
        json!({"disk": "ssd"}),
        json!({}),
        json!({"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}),
    ));
    let p = pod(json!({"nodeSelector": {"disk": "ssd"}}));
    let got = schedule(&default_fw(), &p, &nodes, 3, &mut rng()).unwrap();
    assert_eq!(got.node, "ssd");
    assert_eq!((got.evaluated, got.feasible), (6, 1));

    // Every node but n2 is half full: the least allocated wins.
    let busy = pod(json!({"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}]}));
    for (i, n) in nodes.iter_mut().enumerate() {
        if i != 2 {
            n.add_pod(busy.summary.clone());
        }
    }
    let got = schedule(&default_fw(), &pod(json!({})), &nodes, 0, &mut rng()).unwrap();
    assert_eq!(got.node, "n2");
}

#[test]
fn ties_are_broken_at_random() {
    let nodes: Vec<NodeInfo> = (0..4)
        .map(|i| sized(&format!("n{i}"), "4", "8Gi", "110"))
        .collect();
    let mut seen = BTreeSet::new();
    let mut r = rng();
    for _ in 0..200 {
        seen.insert(
            schedule(&default_fw(), &pod(json!({})), &nodes, 0, &mut r)
                .unwrap()
                .node,
        );
    }
    assert_eq!(seen.len(), 4);
    let mut counts = [0; 3];
    for _ in 0..3000 {
        counts[select(&[5, 9, 9, 9, 1][1..4], &mut r)] += 1;
    }
    assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
}

#[test]
fn stops_after_enough_feasible_nodes_and_rotates() {
    let fw = default_fw();
    assert_eq!(fw.feasible_nodes_to_find(50), 50);
    assert_eq!(fw.feasible_nodes_to_find(1000), 420);
    assert_eq!(fw.feasible_nodes_to_find(5000), 500);
    let mut fixed = fw.clone();
    fixed.percentage_of_nodes_to_score = 100;
    assert_eq!(fixed.feasible_nodes_to_find(5000), 5000);
    let nodes: Vec<NodeInfo> = (0..1000)
        .map(|i| sized(&format!("n{i}"), "4", "8Gi", "110"))
        .collect();
    let got = schedule(&fw, &pod(json!({})), &nodes, 900, &mut rng()).unwrap();
    assert_eq!((got.evaluated, got.feasible), (420, 420));
    assert_eq!(got.next_start, (900 + 420) % 1000);
}
