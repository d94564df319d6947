//! NodeAffinity: the pod's `nodeSelector` (every label must match) and its required node
//! affinity (terms ORed, a term's expressions and fields ANDed; operators In, NotIn, Exists,
//! DoesNotExist, Gt, Lt; `matchFields` on `metadata.name`) filter nodes; the weights of the
//! preferred terms a node matches score it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeAffinity as Affinity, NodeSelectorRequirement, NodeSelectorTerm,
};

use crate::{
    framework::{
        default_normalize, ClusterEvent, CycleState, Filter, Plugin, PreFilter, PreScore, Score,
        Status,
    },
    labels::{self, Sym},
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

/// One requirement compiled against the label symbols (see [`crate::labels`]): a key or value
/// no node ever had has no symbol, which decides the requirement without looking at nodes.
#[derive(Debug, Clone)]
struct Requirement {
    /// The key's symbol; None: no node has this label.
    key: Option<Sym>,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    /// The value is one of these (values no node has are left out).
    In(Vec<Sym>),
    NotIn(Vec<Sym>),
    Exists,
    DoesNotExist,
    /// Gt and Lt compare the value as an integer: they keep the original requirement and key.
    Compare(NodeSelectorRequirement),
    /// An unknown operator matches nothing.
    Never,
}

impl Requirement {
    fn compile(r: &NodeSelectorRequirement) -> Requirement {
        let values = || -> Vec<Sym> {
            r.values
                .iter()
                .flatten()
                .filter_map(|v| labels::lookup(v))
                .collect()
        };
        let op = match r.operator.as_str() {
            "In" => Op::In(values()),
            "NotIn" => Op::NotIn(values()),
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" | "Lt" => Op::Compare(r.clone()),
            _ => Op::Never,
        };
        Requirement {
            key: labels::lookup(&r.key),
            op,
        }
    }

    fn matches(&self, node: &NodeInfo) -> bool {
        let value = self.key.and_then(|k| node.label_syms.get(k));
        match &self.op {
            Op::In(values) => value.is_some_and(|v| values.contains(&v)),
            Op::NotIn(values) => value.is_none_or(|v| !values.contains(&v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Compare(r) => {
                let labels = node.labels().unwrap_or(&NO_LABELS);
                requirement_matches(r, labels.get(&r.key).map(String::as_str))
            }
            Op::Never => false,
        }
    }
}

/// A node selector term, compiled. A term with no requirement at all matches nothing, as in
/// Kubernetes. `matchFields` supports only `metadata.name` with In and NotIn.
#[derive(Debug, Clone)]
struct Term {
    exprs: Vec<Requirement>,
    fields: Vec<NodeSelectorRequirement>,
}

impl Term {
    fn compile(t: &NodeSelectorTerm) -> Term {
        Term {
            exprs: t
                .match_expressions
                .iter()
                .flatten()
                .map(Requirement::compile)
                .collect(),
            fields: t.match_fields.clone().unwrap_or_default(),
        }
    }

    fn matches(&self, node: &NodeInfo) -> bool {
        if self.exprs.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.exprs.iter().all(|r| r.matches(node))
            && self.fields.iter().all(|r| {
                r.key == "metadata.name"
                    && matches!(r.operator.as_str(), "In" | "NotIn")
                    && requirement_matches(r, Some(&node.name))
            })
    }
}

/// A pod's node selector and node affinity, compiled once per scheduling cycle.
#[derive(Debug, Clone)]
struct Compiled {
    /// nodeSelector: every (key, value) must be on the node; None: a key or value no node
    /// has, so no node fits.
    selector: Option<Vec<(Sym, Sym)>>,
    /// Required terms (ORed); None: no requirement.
    required: Option<Vec<Term>>,
    /// Preferred terms with their weights.
    preferred: Vec<(i64, Term)>,
}

impl Compiled {
    fn of(selector: Option<&BTreeMap<String, String>>, affinity: Option<&Affinity>) -> Compiled {
        let selector = selector
            .into_iter()
            .flatten()
            .map(|(k, v)| Some((labels::lookup(k)?, labels::lookup(v)?)))
            .collect();
        let required = affinity
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|r| r.node_selector_terms.iter().map(Term::compile).collect());
        let preferred = affinity
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0)
            .map(|p| (p.weight as i64, Term::compile(&p.preference)))
            .collect();
        Compiled {
            selector,
            required,
            preferred,
        }
    }

    fn of_pod(pod: &PodInfo) -> Compiled {
        let selector = pod.pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
        Compiled::of(selector, pod_affinity(pod))
    }

    fn fits(&self, node: &NodeInfo) -> bool {
        let Some(selector) = &self.selector else {
            return false;
        };
        selector
            .iter()
            .all(|(k, v)| node.label_syms.get(*k) == Some(*v))
            && self
                .required
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| t.matches(node)))
    }

    fn preferred_score(&self, node: &NodeInfo) -> i64 {
        self.preferred
            .iter()
            .filter(|(_, t)| t.matches(node))
            .map(|(w, _)| *w)
            .sum()
    }
}

/// Where the cycle keeps the pod's compiled affinity.
const STATE_KEY: &str = "NodeAffinity";

/// The pod's compiled affinity: from the cycle's state, or compiled now.
fn compiled<'a>(
    state: &'a CycleState,
    pod: &PodInfo,
    local: &'a mut Option<Compiled>,
) -> &'a Compiled {
    match state.read::<Compiled>(STATE_KEY) {
        Some(c) => c,
        None => local.insert(Compiled::of_pod(pod)),
    }
}

/// A node with `labels` and `name`, for the functions below.
fn node_with(labels: &BTreeMap<String, String>, name: &str) -> NodeInfo {
    let mut n = NodeInfo::new(std::sync::Arc::new(k8s_openapi::api::core::v1::Node {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        ..Default::default()
    }));
    n.name = name.to_string();
    n
}

/// Whether a node with `labels` and `name` fits the pod's nodeSelector and required node
/// affinity.
pub fn fits(
    selector: Option<&BTreeMap<String, String>>,
    affinity: Option<&Affinity>,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    // The node first: its labels get their symbols before the pod's terms are compiled.
    let node = node_with(labels, name);
    Compiled::of(selector, affinity).fits(&node)
}

/// Sum of the weights of the preferred terms a node with `labels` and `name` matches.
pub fn preferred_score(
    affinity: Option<&Affinity>,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> i64 {
    let node = node_with(labels, name);
    Compiled::of(None, affinity).preferred_score(&node)
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
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl PreFilter for NodeAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _: &[NodeInfo]) -> Status {
        state.write(STATE_KEY, Compiled::of_pod(pod));
        Status::success()
    }
}

impl Filter for NodeAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let mut local = None;
        if compiled(state, pod, &mut local).fits(node) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

impl PreScore for NodeAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        _: &[NodeInfo],
    ) -> Status {
        if state.read::<Compiled>(STATE_KEY).is_none() {
            state.write(STATE_KEY, Compiled::of_pod(pod));
        }
        Status::success()
    }
}

impl Score for NodeAffinity {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let mut local = None;
        Ok(compiled(state, pod, &mut local).preferred_score(node))
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

    #[test]
    fn the_cycle_compiles_once_and_unknown_labels_match_nothing() {
        use crate::nodeinfo::testutil::{node, pod};
        let ssd = node("a", json!({"disk": "ssd"}), json!({}), json!({}));
        let hdd = node("b", json!({"disk": "hdd"}), json!({}), json!({}));
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "disk", "operator": "In", "values": ["ssd", "never-on-any-node"]}]}]}}}}),
        );
        let mut st = CycleState::default();
        assert!(NodeAffinity.pre_filter(&mut st, &p, &[]).is_success());
        assert!(NodeAffinity.filter(&st, &p, &ssd).is_success());
        assert!(!NodeAffinity.filter(&st, &p, &hdd).is_success());
        // A selector on a label no node has: nothing fits; NotIn of it: everything does.
        let p = pod(json!({"nodeSelector": {"never-a-label-key": "x"}}));
        assert!(!NodeAffinity
            .filter(&CycleState::default(), &p, &ssd)
            .is_success());
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "never-a-label-key", "operator": "NotIn", "values": ["x"]}]}]}}}}),
        );
        assert!(NodeAffinity
            .filter(&CycleState::default(), &p, &ssd)
            .is_success());
    }
}
