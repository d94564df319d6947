//! Pod and owner-reference helpers shared by the controllers: activity, readiness and
//! availability as Kubernetes' `podutil` judges them, controller references, selectors.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
    jiff::Timestamp,
};

/// Neither finished (Succeeded/Failed) nor being deleted: counts toward replicas.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// Finished: phase Succeeded or Failed.
pub fn is_terminated(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod's Ready condition became True (None: not ready).
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Ready condition True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
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

/// Whether `labels` match a compiled selector (None matches nothing).
pub fn matches(
    selector: Option<&api::selectors::LabelSelector>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector.is_some_and(|s| s.matches_btree(labels.unwrap_or(&BTreeMap::new())))
}

/// Whether `labels` match a label selector (see [`compile`]).
pub fn selects(
    selector: Option<&LabelSelector>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    matches(compile(selector).as_ref(), labels)
}

/// Whether every `want` label is in `labels` with the same value (a Service selector).
pub fn has_labels(
    want: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    want.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
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
