//! Pods: graceful deletion. A pod bound to a node and still running is only marked, with a
//! deadline its agent works to; it stays until the agent confirms with a zero-second delete.

use serde_json::{json, Value};

use super::{DeleteRequest, Deletion, Strategy};

/// terminationGracePeriodSeconds when the pod does not say.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The strategy of `pods`.
pub struct Pod;

impl Strategy for Pod {
    fn begin_delete(&self, obj: &mut Value, req: &DeleteRequest) -> Deletion {
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let default_grace = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        let mut grace = req.grace.unwrap_or(default_grace);
        if !bound || finished {
            grace = 0;
        }
        let current_grace = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        if grace > 0 {
            // Graceful: only shorten an already running grace period.
            if current_grace.is_some_and(|c| c <= grace) {
                return Deletion::Unchanged;
            }
            let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
            obj["metadata"]["deletionTimestamp"] =
                json!(deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            Deletion::Mark
        } else if req.has_finalizers {
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            Deletion::Mark
        } else {
            Deletion::Remove
        }
    }

    fn holds_deletion(&self, obj: &Value) -> bool {
        // In graceful deletion until the agent confirms with a zero-second delete.
        obj.pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|g| g > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(grace: Option<i64>) -> DeleteRequest {
        DeleteRequest {
            grace,
            has_finalizers: false,
        }
    }

    #[test]
    fn a_bound_running_pod_is_deleted_gracefully() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        assert_eq!(Pod.begin_delete(&mut pod, &req(None)), Deletion::Mark);
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
        assert!(Pod.holds_deletion(&pod));
        // A longer period does not extend the running one; a shorter one replaces it.
        assert_eq!(
            Pod.begin_delete(&mut pod, &req(Some(60))),
            Deletion::Unchanged
        );
        assert_eq!(Pod.begin_delete(&mut pod, &req(Some(5))), Deletion::Mark);
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 5);
    }

    #[test]
    fn unbound_or_finished_pods_go_at_once() {
        let mut unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(Pod.begin_delete(&mut unbound, &req(None)), Deletion::Remove);
        let mut done = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"},
            "status": {"phase": "Succeeded"}});
        assert_eq!(Pod.begin_delete(&mut done, &req(None)), Deletion::Remove);
        let mut held = json!({"metadata": {"name": "p", "finalizers": ["f"]}, "spec": {}});
        let with_finalizers = DeleteRequest {
            grace: None,
            has_finalizers: true,
        };
        assert_eq!(
            Pod.begin_delete(&mut held, &with_finalizers),
            Deletion::Mark
        );
        assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 0);
        assert!(!Pod.holds_deletion(&held));
    }
}
