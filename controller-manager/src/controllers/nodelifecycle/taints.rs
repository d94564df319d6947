//! Pure taint and toleration logic of node lifecycle and taint-based eviction: which
//! NoExecute taint a Ready condition calls for, whether a toleration tolerates a taint, and
//! when a pod on a tainted node must go.

use k8s_openapi::{
    api::core::v1::{Node, Taint, Toleration},
    jiff::Timestamp,
};

use crate::pod_view::{PodView, Tol};

/// Taint of a node whose Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// The node's Ready condition status ("True", "False", "Unknown"; None: no condition).
pub fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// The lifecycle taint keys a Ready status calls for (at most one).
pub fn wanted_key(ready: Option<&str>) -> Option<&'static str> {
    match ready {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    }
}

/// The node's taints with the lifecycle taints (NoExecute and NoSchedule) set for `ready`
/// and the others kept. None when nothing changes.
pub fn with_lifecycle_taints(
    current: &[Taint],
    ready: Option<&str>,
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let want = wanted_key(ready);
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !matches!(t.key.as_str(), UNREACHABLE | NOT_READY) || Some(t.key.as_str()) == want
        })
        .cloned()
        .collect();
    if let Some(key) = want {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == key && t.effect == effect) {
                out.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    value: None,
                    time_added: (effect == "NoExecute")
                        .then_some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
                });
            }
        }
    }
    (out != current).then_some(out)
}

/// Whether `t` tolerates `taint` (Kubernetes' `ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// When a pod must be evicted from a node with these NoExecute taints (each with the time it
/// was added): `Some(now-or-earlier)` for an untolerated taint, the earliest
/// added + tolerationSeconds over the tolerated ones otherwise, None when it may stay forever.
pub fn eviction_time(
    pod: &PodView,
    taints: &[(Taint, Timestamp)],
    now: Timestamp,
) -> Option<Timestamp> {
    let tolerations: Vec<Toleration> = pod.tolerations.iter().map(Tol::to_k8s).collect();
    let mut when: Option<Timestamp> = None;
    for (taint, added) in taints.iter().filter(|(t, _)| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(now);
        }
        // The shortest tolerationSeconds among the matching tolerations; none means forever.
        let secs = matching.iter().filter_map(|t| t.toleration_seconds).min();
        if let Some(s) = secs {
            let at = *added + std::time::Duration::from_secs(s.max(0) as u64);
            when = Some(when.map_or(at, |w| w.min(at)));
        }
    }
    when
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn toleration_matching() {
        let t = taint("dedicated", Some("gpu"), "NoExecute");
        assert!(tolerates(
            &tol(json!({"key": "dedicated", "operator": "Equal", "value": "gpu"})),
            &t
        ));
        assert!(!tolerates(
            &tol(json!({"key": "dedicated", "value": "cpu"})),
            &t
        ));
        assert!(tolerates(
            &tol(json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"})),
            &t
        ));
        assert!(!tolerates(
            &tol(json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"})),
            &t
        ));
        assert!(tolerates(&tol(json!({"operator": "Exists"})), &t));
        assert!(!tolerates(
            &tol(json!({"key": "other", "operator": "Exists"})),
            &t
        ));
    }

    #[test]
    fn eviction_times() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let added: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let unreachable = [(taint(UNREACHABLE, None, "NoExecute"), added)];
        let pod = |tols: serde_json::Value| -> PodView {
            serde_json::from_value(
                json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tols}}),
            )
            .unwrap()
        };
        // The default toleration: 300 s after the taint.
        let p = pod(
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
        assert_eq!(
            eviction_time(&p, &unreachable, now),
            Some(added + std::time::Duration::from_secs(300))
        );
        // No toleration: at once.
        assert_eq!(eviction_time(&pod(json!([])), &unreachable, now), Some(now));
        // Tolerated forever.
        let p = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_time(&p, &unreachable, now), None);
    }

    #[test]
    fn lifecycle_taints_follow_readiness() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let user = taint("dedicated", Some("gpu"), "NoSchedule");
        let t = with_lifecycle_taints(std::slice::from_ref(&user), Some("Unknown"), now).unwrap();
        let keys: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("dedicated", "NoSchedule"),
                (UNREACHABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute")
            ]
        );
        assert!(with_lifecycle_taints(&t, Some("Unknown"), now).is_none());
        let t = with_lifecycle_taints(&t, Some("False"), now).unwrap();
        assert!(t.iter().any(|t| t.key == NOT_READY) && !t.iter().any(|t| t.key == UNREACHABLE));
        let t = with_lifecycle_taints(&t, Some("True"), now).unwrap();
        assert_eq!(t, [user]);
    }
}
