//! Namespaces: the built-in ones cannot be deleted, and a deleted namespace turns Terminating
//! and stays until the namespace controller has emptied it and cleared spec.finalizers.

use api::status::StatusError;
use serde_json::{json, Value};

use super::{DeleteRequest, Deletion, Strategy};

/// Namespaces that always exist.
pub const BUILTIN_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The strategy of `namespaces`.
pub struct Namespace;

impl Strategy for Namespace {
    fn check_delete(&self, name: &str) -> Result<(), StatusError> {
        if BUILTIN_NAMESPACES.contains(&name) {
            return Err(StatusError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        Ok(())
    }

    fn begin_delete(&self, obj: &mut Value, req: &DeleteRequest) -> Deletion {
        if has_spec_finalizers(obj) || req.has_finalizers {
            obj["status"]["phase"] = json!("Terminating");
            Deletion::Mark
        } else {
            Deletion::Remove
        }
    }

    fn holds_deletion(&self, obj: &Value) -> bool {
        has_spec_finalizers(obj)
    }
}

/// spec.finalizers is not empty: the namespace controller has work left.
fn has_spec_finalizers(obj: &Value) -> bool {
    obj.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_namespaces_cannot_be_deleted() {
        assert_eq!(Namespace.check_delete("kube-system").unwrap_err().code, 403);
        assert!(Namespace.check_delete("team").is_ok());
    }

    #[test]
    fn a_namespace_with_finalizers_turns_terminating() {
        let mut ns = json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes"]}});
        let req = DeleteRequest::default();
        assert_eq!(Namespace.begin_delete(&mut ns, &req), Deletion::Mark);
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert!(Namespace.holds_deletion(&ns));
        let mut empty = json!({"metadata": {"name": "team"}, "spec": {}});
        assert_eq!(Namespace.begin_delete(&mut empty, &req), Deletion::Remove);
        assert!(empty.get("status").is_none());
    }
}
