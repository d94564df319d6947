//! Pod and owner-reference helpers shared by the controllers: activity, readiness and
//! availability as Kubernetes' `podutil` judges them (on the informer's [`PodView`]s),
//! controller references, selectors.

use std::collections::BTreeMap;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
    jiff::Timestamp,
};

use crate::pod_view::{Labels, PodView};

/// Neither finished (Succeeded/Failed) nor being deleted: counts toward replicas.
pub fn is_active(pod: &PodView) -> bool {
    !is_terminated(pod) && !pod.deleting()
}

/// Finished: phase Succeeded or Failed.
pub fn is_terminated(pod: &PodView) -> bool {
    matches!(pod.phase.as_deref(), Some("Succeeded" | "Failed"))
}

/// When the pod's Ready condition became True (None: not ready).
pub fn ready_since(pod: &PodView) -> Option<Option<Timestamp>> {
    pod.ready
        .as_ref()
        .filter(|r| r.status == "True")
        .map(|r| r.last_transition_time)
}

/// Ready condition True.
pub fn is_ready(pod: &PodView) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &PodView, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => now.as_second() - t.as_second() >= i64::from(min_ready_seconds),
    }
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller reference to an owner (controller and blockOwnerDeletion true).
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A selector ready to match: None for a missing, invalid or empty one, which controllers
/// treat as matching nothing.
pub fn compile(selector: Option<&LabelSelector>) -> Option<api::selectors::LabelSelector> {
    let s = api::selectors::LabelSelector::from_k8s(selector?).ok()?;
    (!s.is_empty()).then_some(s)
}

/// Something with labels: an object's `metadata.labels` or a [`PodView`]'s.
pub trait Labelled {
    /// The value of label `key`.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labelled for Option<&BTreeMap<String, String>> {
    fn label(&self, key: &str) -> Option<&str> {
        self.and_then(|m| m.get(key)).map(String::as_str)
    }
}

impl Labelled for &Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// Whether `labels` match a compiled selector (None matches nothing).
pub fn matches(selector: Option<&api::selectors::LabelSelector>, labels: impl Labelled) -> bool {
    selector.is_some_and(|s| s.matches_by(&|k| labels.label(k)))
}

/// Whether `labels` match a label selector (see [`compile`]).
pub fn selects(selector: Option<&LabelSelector>, labels: impl Labelled) -> bool {
    matches(compile(selector).as_ref(), labels)
}

/// Whether every `want` label is in `labels` with the same value (a Service selector).
pub fn has_labels(want: &BTreeMap<String, String>, labels: impl Labelled) -> bool {
    want.iter()
        .all(|(k, v)| labels.label(k) == Some(v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> PodView {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn availability_counts_min_ready_seconds() {
        let p = pod(
            serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        );
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_ready(&p));
        assert!(is_available(&p, 0, at("2026-01-01T00:00:00Z")));
        assert!(!is_available(&p, 10, at("2026-01-01T00:00:09Z")));
        assert!(is_available(&p, 10, at("2026-01-01T00:00:10Z")));
        let not = pod(
            serde_json::json!({"metadata": {"name": "b"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        assert!(!is_ready(&not) && !is_available(&not, 0, at("2026-01-01T00:00:00Z")));
    }

    #[test]
    fn selectors_and_activity() {
        let sel: LabelSelector =
            serde_json::from_value(serde_json::json!({"matchLabels": {"app": "web"}})).unwrap();
        let l: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        assert!(selects(Some(&sel), Some(&l)));
        assert!(!selects(Some(&LabelSelector::default()), Some(&l)));
        assert!(!selects(None, Some(&l)));
        let done =
            pod(serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Succeeded"}}));
        assert!(!is_active(&done) && is_terminated(&done));
    }
}
