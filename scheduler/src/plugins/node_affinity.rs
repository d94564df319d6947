//! NodeAffinity: the pod's `nodeSelector` (every label must match) and its required node
//! affinity (terms ORed, a term's expressions and fields ANDed; operators In, NotIn, Exists,
//! DoesNotExist, Gt, Lt; `matchFields` on `metadata.name`) filter nodes; the weights of the
//! preferred terms a node matches score it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeAffinity as Affinity, NodeSelectorRequirement, NodeSelectorTerm,
};

use crate::{
    framework::{default_normalize, ClusterEvent, CycleState, Filter, Plugin, Score, Status},
    nodeinfo::{NodeInfo, PodInfo},
};

pub const NAME: &str = "NodeAffinity";
/// kube-scheduler's `ErrReasonPod`.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// Whether one requirement holds for a value that is present (`Some`) or absent.
pub fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) if r.operator == "Gt" => v > b,
                (Ok(v), Ok(b)) => v < b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether a term matches a node with `labels` and `name`. A term with no requirement at all
/// matches nothing, as in Kubernetes. `matchFields` supports only `metadata.name`.
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(name))
        })
}

/// Whether the node fits the pod's nodeSelector and required node affinity.
pub fn fits(
    selector: Option<&BTreeMap<String, String>>,
    affinity: Option<&Affinity>,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let selector_ok = selector
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = affinity.and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    });
    selector_ok
        && required.is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| term_matches(t, labels, name))
        })
}

/// Sum of the weights of the preferred terms the node matches.
pub fn preferred_score(
    affinity: Option<&Affinity>,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> i64 {
    affinity
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|p| p.weight != 0 && term_matches(&p.preference, labels, name))
        .map(|p| p.weight as i64)
        .sum()
}

fn pod_affinity(pod: &PodInfo) -> Option<&Affinity> {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The plugin.
pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdded, ClusterEvent::NodeLabelsChanged]
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl Filter for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let selector = pod.pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
        let labels = node.labels().unwrap_or(&NO_LABELS);
        if fits(selector, pod_affinity(pod), labels, &node.name) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

impl Score for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(preferred_score(
            pod_affinity(pod),
            node.labels().unwrap_or(&NO_LABELS),
            &node.name,
        ))
    }
    fn normalize(&self, _: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn labels(v: Value) -> BTreeMap<String, String> {
        serde_json::from_value(v).unwrap()
    }
    fn req(v: Value) -> NodeSelectorRequirement {
        serde_json::from_value(v).unwrap()
    }
    fn aff(v: Value) -> Affinity {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn operators() {
        let cases = [
            (
                json!({"key": "k", "operator": "In", "values": ["a", "b"]}),
                Some("b"),
                true,
            ),
            (
                json!({"key": "k", "operator": "In", "values": ["a", "b"]}),
                Some("c"),
                false,
            ),
            (
                json!({"key": "k", "operator": "In", "values": ["a"]}),
                None,
                false,
            ),
            (
                json!({"key": "k", "operator": "NotIn", "values": ["a"]}),
                Some("b"),
                true,
            ),
            (
                json!({"key": "k", "operator": "NotIn", "values": ["a"]}),
                Some("a"),
                false,
            ),
            (
                json!({"key": "k", "operator": "NotIn", "values": ["a"]}),
                None,
                true,
            ),
            (json!({"key": "k", "operator": "Exists"}), Some(""), true),
            (json!({"key": "k", "operator": "Exists"}), None, false),
            (json!({"key": "k", "operator": "DoesNotExist"}), None, true),
            (
                json!({"key": "k", "operator": "DoesNotExist"}),
                Some("x"),
                false,
            ),
            (
                json!({"key": "k", "operator": "Gt", "values": ["5"]}),
                Some("6"),
                true,
            ),
            (
                json!({"key": "k", "operator": "Gt", "values": ["5"]}),
                Some("5"),
                false,
            ),
            (
                json!({"key": "k", "operator": "Gt", "values": ["5"]}),
                Some("x"),
                false,
            ),
            (
                json!({"key": "k", "operator": "Gt", "values": ["5"]}),
                None,
                false,
            ),
            (
                json!({"key": "k", "operator": "Gt", "values": ["5", "6"]}),
                Some("9"),
                false,
            ),
            (
                json!({"key": "k", "operator": "Lt", "values": ["5"]}),
                Some("-1"),
                true,
            ),
            (
                json!({"key": "k", "operator": "Lt", "values": ["5"]}),
                Some("5"),
                false,
            ),
            (
                json!({"key": "k", "operator": "Bogus", "values": ["5"]}),
                Some("5"),
                false,
            ),
        ];
        for (r, value, want) in cases {
            assert_eq!(
                requirement_matches(&req(r.clone()), value),
                want,
                "{r} on {value:?}"
            );
        }
    }

    #[test]
    fn required_terms_and_selector() {
        let node = labels(json!({"zone": "a", "disk": "ssd", "cores": "8"}));
        let term = |exprs: Value| json!({"matchExpressions": exprs});
        let required = |terms: Vec<Value>| json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}});
        let cases: Vec<(&str, Value, Option<Value>, bool)> = vec![
            ("nothing asked", json!({}), None, true),
            ("selector matches", json!({"disk": "ssd"}), None, true),
            ("selector mismatch", json!({"disk": "hdd"}), None, false),
            ("selector missing label", json!({"gpu": "yes"}), None, false),
            (
                "expressions ANDed: all hold",
                json!({}),
                Some(required(vec![term(json!([
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "cores", "operator": "Gt", "values": ["4"]}]))])),
                true,
            ),
            (
                "expressions ANDed: one fails",
                json!({}),
                Some(required(vec![term(json!([
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "cores", "operator": "Lt", "values": ["4"]}]))])),
                false,
            ),
            (
                "terms ORed",
                json!({}),
                Some(required(vec![
                    term(json!([{"key": "zone", "operator": "In", "values": ["b"]}])),
                    term(json!([{"key": "disk", "operator": "Exists"}])),
                ])),
                true,
            ),
            (
                "empty term matches nothing",
                json!({}),
                Some(required(vec![json!({})])),
                false,
            ),
            (
                "no terms match nothing",
                json!({}),
                Some(required(vec![])),
                false,
            ),
            (
                "selector and affinity both needed",
                json!({"disk": "hdd"}),
                Some(required(vec![term(
                    json!([{"key": "zone", "operator": "Exists"}]),
                )])),
                false,
            ),
            (
                "matchFields metadata.name",
                json!({}),
                Some(required(vec![json!({"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["n1"]}]})])),
                true,
            ),
            (
                "matchFields other name",
                json!({}),
                Some(required(vec![json!({"matchFields": [
                {"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]})])),
                false,
            ),
            (
                "matchFields unsupported field",
                json!({}),
                Some(required(vec![json!({"matchFields": [
                {"key": "metadata.uid", "operator": "In", "values": ["n1"]}]})])),
                false,
            ),
        ];
        for (name, selector, affinity, want) in cases {
            let selector: BTreeMap<String, String> = serde_json::from_value(selector).unwrap();
            let affinity = affinity.map(aff);
            assert_eq!(
                fits(Some(&selector), affinity.as_ref(), &node, "n1"),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn preferred_weights_normalised() {
        let a = aff(json!({"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
            {"weight": 30, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 50, "preference": {}}
        ]}));
        let nodes = [
            labels(json!({"disk": "ssd", "zone": "a"})),
            labels(json!({"zone": "a"})),
            labels(json!({"disk": "ssd"})),
            labels(json!({})),
        ];
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|l| preferred_score(Some(&a), l, "n"))
            .collect();
        assert_eq!(scores, vec![40, 30, 10, 0]);
        NodeAffinity.normalize(&CycleState::default(), &mut scores);
        assert_eq!(scores, vec![100, 75, 25, 0]);
    }

    #[test]
    fn filter_gives_the_reason() {
        let p = crate::nodeinfo::testutil::pod(json!({"nodeSelector": {"disk": "ssd"}}));
        let n = crate::nodeinfo::testutil::node("n", json!({"disk": "hdd"}), json!({}), json!({}));
        let s = NodeAffinity.filter(&CycleState::default(), &p, &n);
        assert_eq!(s.code, crate::framework::Code::UnschedulableAndUnresolvable);
        assert_eq!(s.reasons, vec![REASON.to_string()]);
    }
}
