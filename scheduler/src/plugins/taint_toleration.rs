//! TaintToleration: a node's NoSchedule and NoExecute taints keep off pods that do not
//! tolerate them (filter); untolerated PreferNoSchedule taints make a node less preferred
//! (score, fewer is better).

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::{
    framework::{default_normalize, ClusterEvent, CycleState, Filter, Plugin, Score, Status},
    nodeinfo::{NodeInfo, PodInfo},
};

pub const NAME: &str = "TaintToleration";

/// Kubernetes' `Toleration.ToleratesTaint`: the effect matches (or the toleration names
/// none), the key matches (an empty key matches every key, used with Exists), and the
/// operator is Exists or Equal (the default) with the same value.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first NoSchedule/NoExecute taint of `taints` that `tolerations` do not tolerate.
pub fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(tolerations, t))
}

/// The reason for an untolerated taint, as kube-scheduler writes it.
pub fn reason(taint: &Taint) -> String {
    format!(
        "node(s) had untolerated taint {{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or("")
    )
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// How many PreferNoSchedule taints of the node the pod does not tolerate (only tolerations
/// with no effect or PreferNoSchedule count, as in Kubernetes).
pub fn intolerable_prefer_no_schedule(taints: &[Taint], tolerations: &[Toleration]) -> i64 {
    let relevant: Vec<&Toleration> = tolerations
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| !relevant.iter().any(|tol| tolerates(tol, t)))
        .count() as i64
}

/// The plugin.
pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdded, ClusterEvent::NodeTaintsChanged]
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl Filter for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match untolerated(taints(node), tolerations(pod)) {
            None => Status::success(),
            Some(t) => Status::unresolvable(reason(t)),
        }
    }
}

impl Score for TaintToleration {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(intolerable_prefer_no_schedule(
            taints(node),
            tolerations(pod),
        ))
    }
    fn normalize(&self, _: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::testutil::{node, pod};
    use serde_json::{json, Value};

    fn taint(v: Value) -> Taint {
        serde_json::from_value(v).unwrap()
    }
    fn tol(v: Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn toleration_matching() {
        let t = taint(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}));
        let cases = [
            (
                json!({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "dedicated", "value": "gpu"}), true),
            (json!({"key": "dedicated", "value": "cpu"}), false),
            (json!({"key": "dedicated", "operator": "Exists"}), true),
            (
                json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
            (json!({"operator": "Exists"}), true),
            (json!({"operator": "Exists", "effect": "NoSchedule"}), true),
            (
                json!({"operator": "Exists", "effect": "PreferNoSchedule"}),
                false,
            ),
            (
                json!({"key": "dedicated", "operator": "Bogus", "value": "gpu"}),
                false,
            ),
        ];
        for (tv, want) in cases {
            assert_eq!(tolerates(&tol(tv.clone()), &t), want, "{tv}");
        }
        let empty_value = taint(json!({"key": "k", "effect": "NoSchedule"}));
        assert!(tolerates(&tol(json!({"key": "k"})), &empty_value));
        assert!(!tolerates(
            &tol(json!({"key": "k", "value": "v"})),
            &empty_value
        ));
    }

    #[test]
    fn filter() {
        let n = |taints: Value| node("n", json!({}), json!({"taints": taints}), json!({}));
        let cases: Vec<(&str, Value, Value, Option<&str>)> = vec![
            ("no taints", json!([]), json!([]), None),
            (
                "NoSchedule untolerated",
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                json!([]),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "NoExecute untolerated",
                json!([{"key": "k", "effect": "NoExecute"}]),
                json!([]),
                Some("node(s) had untolerated taint {k: }"),
            ),
            (
                "PreferNoSchedule never filters",
                json!([{"key": "k", "effect": "PreferNoSchedule"}]),
                json!([]),
                None,
            ),
            (
                "tolerated",
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
                None,
            ),
            (
                "tolerate everything",
                json!([{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]),
                json!([{"operator": "Exists"}]),
                None,
            ),
            (
                "second taint untolerated",
                json!([{"key": "a", "effect": "NoSchedule"}, {"key": "b", "value": "x", "effect": "NoExecute"}]),
                json!([{"key": "a", "operator": "Exists"}]),
                Some("node(s) had untolerated taint {b: x}"),
            ),
        ];
        for (name, taints, tols, want) in cases {
            let s = TaintToleration.filter(
                &CycleState::default(),
                &pod(json!({"tolerations": tols})),
                &n(taints),
            );
            match want {
                None => assert!(s.is_success(), "{name}: {s:?}"),
                Some(r) => {
                    assert_eq!(
                        s.code,
                        crate::framework::Code::UnschedulableAndUnresolvable,
                        "{name}"
                    );
                    assert_eq!(s.reasons, vec![r.to_string()], "{name}");
                }
            }
        }
    }

    #[test]
    fn score_prefers_fewer_untolerated_prefer_no_schedule_taints() {
        let t = |k: &str| json!({"key": k, "effect": "PreferNoSchedule"});
        let nodes = [
            node(
                "a",
                json!({}),
                json!({"taints": [t("x"), t("y")]}),
                json!({}),
            ),
            node("b", json!({}), json!({"taints": [t("x")]}), json!({})),
            node("c", json!({}), json!({}), json!({})),
            node("d", json!({}), json!({"taints": [t("z")]}), json!({})),
        ];
        // The toleration of z counts; one with effect NoSchedule would not.
        let p = pod(json!({"tolerations": [{"key": "z", "operator": "Exists"},
                                           {"key": "x", "operator": "Exists", "effect": "NoSchedule"}]}));
        let st = CycleState::default();
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| TaintToleration.score(&st, &p, n).unwrap())
            .collect();
        assert_eq!(scores, vec![2, 1, 0, 0]);
        TaintToleration.normalize(&st, &mut scores);
        assert_eq!(scores, vec![0, 50, 100, 100]);
    }
}
