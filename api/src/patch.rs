//! The three patch types of PATCH requests: JSON patch (RFC 6902), JSON merge patch (RFC 7386)
//! and Kubernetes' strategic merge patch, which merges lists by key as the types declare.

mod strategic;
mod strategy;

use serde_json::Value;

pub use strategic::apply_strategic_merge_patch;
pub use strategy::merge_strategy;

/// Why a patch could not be applied. The message names the problem and where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The JSON patch body is not a list of operations.
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    #[error("json patch test operation failed at {path}")]
    TestFailed { path: String },
    /// An operation's `path` names no value (or an index out of bounds).
    #[error("json patch operation {index} failed: path {path} does not exist")]
    PathNotFound { index: usize, path: String },
    /// A `move`/`copy` operation's `from` names no value.
    #[error("json patch operation {index} failed: from path of {path} does not exist")]
    FromNotFound { index: usize, path: String },
    #[error("json patch operation {index} failed: cannot move {path} inside itself")]
    MoveInsideItself { index: usize, path: String },
    /// The patch of a merge or strategic merge patch is not a JSON object.
    #[error("{0} must be a JSON object")]
    NotAnObject(&'static str),
    /// A `$patch` directive with an unknown value.
    #[error("unknown patch type {value} at {path}")]
    UnknownPatchType { value: String, path: String },
    /// `$patch: merge` on a list element.
    #[error("merging lists cannot yet be specified in the patch (at {path})")]
    MergeListDirective { path: String },
    /// A list element of a merging list lacks the list's merge key.
    #[error("element of {path} does not contain declared merge key: {key}")]
    MissingMergeKey { path: String, key: String },
    /// Maps were given for a list that merges primitives.
    #[error("cannot merge lists without merge key for {path}")]
    NoMergeKey { path: String },
    /// `$retainKeys` is not a list of strings, or the patch sets a field it does not retain.
    #[error("invalid patch format of retainKeys at {path}")]
    BadRetainKeys { path: String },
    /// A directive (`$setElementOrder/x`, `$deleteFromPrimitiveList/x`) whose value is not a list.
    #[error("{directive} at {path} must be a list")]
    DirectiveNotAList { directive: String, path: String },
    /// A list mixes elements of different JSON types.
    #[error("list {path} mixes elements of different types")]
    MixedList { path: String },
}

/// Applies an RFC 6902 JSON patch (a list of operations) to `doc`.
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| {
        let path = e.path.to_string();
        let index = e.operation;
        match e.kind {
            json_patch::PatchErrorKind::TestFailed => PatchError::TestFailed { path },
            json_patch::PatchErrorKind::InvalidFromPointer => {
                PatchError::FromNotFound { index, path }
            }
            json_patch::PatchErrorKind::CannotMoveInsideItself => {
                PatchError::MoveInsideItself { index, path }
            }
            _ => PatchError::PathNotFound { index, path },
        }
    })?;
    Ok(out)
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes a key, any
/// other value (lists included) replaces. Kubernetes objects are objects, so the patch must be.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::NotAnObject("merge patch"));
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"metadata": {"name": "d", "labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1,
            "paused": false}})
    }

    #[test]
    fn json_patch_operations() {
        let cases = [
            (
                json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
                "/spec/replicas",
                json!(3),
            ),
            (
                json!([{"op": "add", "path": "/metadata/labels/c", "value": "3"}]),
                "/metadata/labels/c",
                json!("3"),
            ),
            (
                json!([{"op": "remove", "path": "/metadata/labels/a"}]),
                "/metadata/labels/a",
                Value::Null,
            ),
            (
                json!([{"op": "test", "path": "/spec/replicas", "value": 1}, {"op": "copy",
                    "from": "/spec/replicas", "path": "/spec/x"}]),
                "/spec/x",
                json!(1),
            ),
            (
                json!([{"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/z"}]),
                "/metadata/labels/z",
                json!("2"),
            ),
        ];
        for (patch, pointer, want) in cases {
            let out = apply_json_patch(&deploy(), &patch).expect("applies");
            assert_eq!(
                out.pointer(pointer).cloned().unwrap_or(Value::Null),
                want,
                "{patch}"
            );
        }
    }

    #[test]
    fn json_patch_errors() {
        let err = apply_json_patch(
            &deploy(),
            &json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "json patch test operation failed at /spec/replicas"
        );
        let err = apply_json_patch(&deploy(), &json!([{"op": "remove", "path": "/spec/nope"}]))
            .unwrap_err();
        assert_eq!(
            err,
            PatchError::PathNotFound {
                index: 0,
                path: "/spec/nope".into()
            }
        );
        let err = apply_json_patch(&deploy(), &json!({"op": "add"})).unwrap_err();
        assert!(matches!(err, PatchError::InvalidJsonPatch(_)));
        let err =
            apply_json_patch(&deploy(), &json!([{"op": "frobnicate", "path": "/a"}])).unwrap_err();
        assert!(matches!(err, PatchError::InvalidJsonPatch(_)));
        let err = apply_json_patch(
            &deploy(),
            &json!([{"op": "copy", "from": "/x", "path": "/y"}]),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::FromNotFound { .. }));
    }

    #[test]
    fn failed_json_patch_leaves_input_untouched() {
        let doc = deploy();
        let patch = json!([{"op": "replace", "path": "/spec/replicas", "value": 5}, {"op": "test",
            "path": "/spec/paused", "value": true}]);
        assert!(apply_json_patch(&doc, &patch).is_err());
        assert_eq!(doc, deploy());
    }

    #[test]
    fn merge_patch_basics() {
        let out = apply_merge_patch(
            &deploy(),
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"replicas": 4}}),
        )
        .expect("applies");
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(out["spec"], json!({"replicas": 4, "paused": false}));
        let lists = apply_merge_patch(&json!({"a": [1, 2]}), &json!({"a": [3]})).expect("applies");
        assert_eq!(lists, json!({"a": [3]}));
        assert_eq!(
            apply_merge_patch(&deploy(), &json!([1]))
                .unwrap_err()
                .to_string(),
            "merge patch must be a JSON object"
        );
    }
}
