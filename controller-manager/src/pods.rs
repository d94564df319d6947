//! Pod and owner-reference helpers shared by the controllers: activity, readiness and
//! availability as Kubernetes' `podutil` judges them, controller references, selectors.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Container, ContainerStatus, Pod, PodSpec, PodStatus},
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
    jiff::Timestamp,
};

/// Drops from a pod what no controller reads, before the pod informer caches it (issue 17:
/// 150,000 cached pods). What stays is what the controllers read: all metadata but
/// annotations and managedFields (labels, owners, uid, deletion, finalizers, creation time),
/// of the spec the node, tolerations, hostname, subdomain and each container's name and
/// ports, of the status the phase, conditions, IPs, start time and each container's name,
/// readiness and restart count. Controllers patch pods, never replace them, so nothing
/// dropped here is ever written back.
pub fn strip(pod: &mut Pod) {
    pod.metadata.annotations = None;
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.as_mut() {
        *spec = PodSpec {
            node_name: spec.node_name.take(),
            tolerations: spec.tolerations.take(),
            hostname: spec.hostname.take(),
            subdomain: spec.subdomain.take(),
            containers: std::mem::take(&mut spec.containers)
                .into_iter()
                .map(|c| Container {
                    name: c.name,
                    ports: c.ports,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
    }
    if let Some(status) = pod.status.as_mut() {
        *status = PodStatus {
            phase: status.phase.take(),
            conditions: status.conditions.take(),
            pod_ip: status.pod_ip.take(),
            pod_ips: status.pod_ips.take(),
            host_ip: status.host_ip.take(),
            start_time: status.start_time.take(),
            container_statuses: status.container_statuses.take().map(|cs| {
                cs.into_iter()
                    .map(|c| ContainerStatus {
                        name: c.name,
                        ready: c.ready,
                        restart_count: c.restart_count,
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        };
    }
}

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
    fn strip_keeps_what_controllers_read() {
        let full = pod(serde_json::json!({
            "metadata": {"name": "a", "namespace": "ns", "uid": "u1", "resourceVersion": "9",
                "labels": {"app": "web"}, "annotations": {"note": "x"},
                "finalizers": ["f"], "deletionTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "rs", "uid": "u0", "controller": true}]},
            "spec": {"nodeName": "n1", "hostname": "h", "subdomain": "s",
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "containers": [{"name": "c", "image": "i", "command": ["sleep"],
                    "env": [{"name": "E", "value": "v"}],
                    "ports": [{"name": "http", "containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                "hostIP": "10.1.0.1",
                "conditions": [{"type": "Ready", "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 3,
                    "image": "i", "imageID": "sha", "state": {"running": {}}}]}}));
        let mut p = full.clone();
        strip(&mut p);
        assert_eq!(p.metadata.annotations, None);
        let mut meta = full.metadata.clone();
        meta.annotations = None;
        assert_eq!(p.metadata, meta);
        let spec = p.spec.as_ref().unwrap();
        let fs = full.spec.as_ref().unwrap();
        assert_eq!(spec.node_name, fs.node_name);
        assert_eq!(spec.tolerations, fs.tolerations);
        assert_eq!(
            (&spec.hostname, &spec.subdomain),
            (&fs.hostname, &fs.subdomain)
        );
        assert_eq!(spec.volumes, None);
        assert_eq!(spec.containers[0].name, "c");
        assert_eq!(spec.containers[0].ports, fs.containers[0].ports);
        assert_eq!(
            (&spec.containers[0].image, &spec.containers[0].env),
            (&None, &None)
        );
        let st = p.status.as_ref().unwrap();
        let fst = full.status.as_ref().unwrap();
        assert_eq!(st.conditions, fst.conditions);
        assert_eq!(
            (&st.pod_ip, &st.pod_ips, &st.host_ip),
            (&fst.pod_ip, &fst.pod_ips, &fst.host_ip)
        );
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            (cs.name.as_str(), cs.ready, cs.restart_count),
            ("c", true, 3)
        );
        assert_eq!(cs.state, None);
        assert_eq!(is_active(&p), is_active(&full));
        assert_eq!(is_ready(&p), is_ready(&full));
        assert_eq!(ready_since(&p), ready_since(&full));
        assert_eq!(controller_of(&p.metadata), controller_of(&full.metadata));
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
