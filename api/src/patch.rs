//! Patches as Kubernetes applies them: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
//! strategic merge patch, which merges lists of the built-in types by their merge keys
//! (containers by name, ports by containerPort, ...) and honours kubectl's directives
//! (`$patch`, `$setElementOrder/...`, `$deleteFromPrimitiveList/...`, `$retainKeys`).

use serde_json::{Map, Value};

use crate::registry::Resource;

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("the JSON patch is not a list of operations: {0}")]
    BadJsonPatch(String),
    #[error("the JSON patch could not be applied: {0}")]
    JsonPatch(String),
    #[error("the patch must be a JSON object")]
    NotAnObject,
    #[error("invalid strategic merge patch: {0}")]
    Strategic(String),
}

/// RFC 6902.
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| PatchError::BadJsonPatch(e.to_string()))?;
    let mut d = doc.clone();
    json_patch::patch(&mut d, &p).map_err(|e| PatchError::JsonPatch(e.to_string()))?;
    Ok(d)
}

/// RFC 7386.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::NotAnObject);
    }
    let mut d = doc.clone();
    json_patch::merge(&mut d, patch);
    Ok(d)
}

/// The patch strategy (`merge`, `merge,retainKeys`, `retainKeys`) and merge key of a field of
/// a Kubernetes type, as its Go definition declares them.
pub fn merge_strategy(schema_name: &str, field: &str) -> Option<(&'static str, Option<&'static str>)> {
    let t = schema_name.rsplit('.').next().unwrap_or(schema_name);
    let core = schema_name.starts_with("io.k8s.api.core.v1.");
    let apps = schema_name.starts_with("io.k8s.api.apps.v1.");
    let meta = schema_name.starts_with("io.k8s.apimachinery.pkg.apis.meta.v1.");
    let m = |key: &'static str| Some(("merge", Some(key)));
    match (t, field) {
        ("PodSpec", "volumes") if core => Some(("merge,retainKeys", Some("name"))),
        ("PodSpec", "containers" | "initContainers" | "ephemeralContainers" | "imagePullSecrets" | "schedulingGates") if core => m("name"),
        ("PodSpec", "resourceClaims") if core => Some(("merge,retainKeys", Some("name"))),
        ("PodSpec", "hostAliases") if core => m("ip"),
        ("Container" | "EphemeralContainer", "ports") if core => m("containerPort"),
        ("Container" | "EphemeralContainer", "env") if core => m("name"),
        ("Container" | "EphemeralContainer", "volumeMounts") if core => m("mountPath"),
        ("Container" | "EphemeralContainer", "volumeDevices") if core => m("devicePath"),
        ("PodStatus", "conditions") if core => m("type"),
        ("PodStatus", "podIPs" | "hostIPs") if core => m("ip"),
        ("PodStatus", "resourceClaimStatuses") if core => Some(("merge,retainKeys", Some("name"))),
        ("NodeStatus", "conditions" | "addresses") if core => m("type"),
        ("NodeSpec", "podCIDRs") if core => Some(("merge", None)),
        ("ServiceSpec", "ports") if core => m("port"),
        ("ServiceAccount", "secrets") if core => m("name"),
        ("NamespaceStatus", "conditions") if core => m("type"),
        ("DeploymentSpec", "strategy") if apps => Some(("retainKeys", None)),
        ("DeploymentStatus" | "ReplicaSetStatus", "conditions") if apps => m("type"),
        ("ObjectMeta", "finalizers") if meta => Some(("merge", None)),
        ("ObjectMeta", "ownerReferences") if meta => m("uid"),
        _ => None,
    }
}

/// Applies a strategic merge patch to an object of `resource`.
pub fn apply_strategic_merge_patch(resource: &Resource, doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::NotAnObject);
    }
    Ok(merge_value(Some(doc), patch, Some(resource.schema_name))?.unwrap_or(Value::Object(Map::new())))
}

/// The schema name a field of `type_name` refers to (its items' type for lists, values' for maps).
fn field_type(type_name: Option<&str>, field: &str) -> Option<String> {
    let schema = crate::openapi::schema(type_name?)?;
    let prop = schema.pointer(&format!("/properties/{}", field.replace('~', "~0").replace('/', "~1")))?;
    ref_name(prop)
        .or_else(|| prop.get("items").and_then(ref_name))
        .or_else(|| prop.get("additionalProperties").and_then(ref_name))
}

fn ref_name(v: &Value) -> Option<String> {
    let r = v.get("$ref").and_then(Value::as_str).or_else(|| v.pointer("/allOf/0/$ref").and_then(Value::as_str))?;
    r.strip_prefix("#/components/schemas/").map(str::to_string)
}

/// Merges `patch` into `orig`. `Ok(None)`: the patch deletes the value (`$patch: delete`).
fn merge_value(orig: Option<&Value>, patch: &Value, type_name: Option<&str>) -> Result<Option<Value>, PatchError> {
    let Value::Object(p) = patch else { return Ok(Some(patch.clone())) };
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut out = p.clone();
            out.remove("$patch");
            return Ok(Some(Value::Object(out)));
        }
        Some("merge") | None => {}
        Some(other) => return Err(PatchError::Strategic(format!("unknown patch type {other:?} in $patch"))),
    }
    let mut out = match orig {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    let mut retain: Option<Vec<String>> = None;
    for (key, pv) in p {
        if key == "$patch" {
            continue;
        }
        if key == "$retainKeys" {
            let keys = pv.as_array().ok_or_else(|| PatchError::Strategic("$retainKeys must be a list".into()))?;
            retain = Some(keys.iter().filter_map(|k| k.as_str().map(str::to_string)).collect());
            continue;
        }
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            let order = pv.as_array().ok_or_else(|| PatchError::Strategic(format!("{key} must be a list")))?;
            orders.push((field.to_string(), order.clone()));
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = pv.as_array().ok_or_else(|| PatchError::Strategic(format!("{key} must be a list")))?;
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if pv.is_null() {
            out.remove(key);
            continue;
        }
        let child_type = field_type(type_name, key);
        let strategy = type_name.and_then(|t| merge_strategy(t, key));
        match (pv, strategy) {
            (Value::Array(items), Some((s, merge_key))) if s.contains("merge") => {
                let current = out.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
                let merged = merge_list(&current, items, merge_key, child_type.as_deref())?;
                out.insert(key.clone(), Value::Array(merged));
            }
            (Value::Object(_), _) => match merge_value(out.get(key), pv, child_type.as_deref())? {
                Some(v) => {
                    out.insert(key.clone(), v);
                }
                None => {
                    out.remove(key);
                }
            },
            _ => {
                out.insert(key.clone(), strip_directives(pv));
            }
        }
    }
    for (field, order) in orders {
        let merge_key = type_name.and_then(|t| merge_strategy(t, &field)).and_then(|(_, k)| k);
        if let Some(Value::Array(list)) = out.get_mut(&field) {
            reorder(list, &order, merge_key);
        }
    }
    if let Some(keep) = retain {
        out.retain(|k, _| keep.contains(k));
    }
    Ok(Some(Value::Object(out)))
}

/// Removes directives from a value that replaces (rather than merges into) the original.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k.clone(), strip_directives(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn merge_list(orig: &[Value], patch: &[Value], merge_key: Option<&str>, item_type: Option<&str>) -> Result<Vec<Value>, PatchError> {
    // `{"$patch": "replace"}` anywhere in the list: the rest of the list replaces the original.
    if patch.iter().any(|x| x.get("$patch").and_then(Value::as_str) == Some("replace")) {
        return Ok(patch.iter().filter(|x| x.get("$patch").is_none()).map(strip_directives).collect());
    }
    let Some(key) = merge_key else {
        // A list of primitives merged as a set.
        let mut out = orig.to_vec();
        for x in patch {
            if !out.contains(x) {
                out.push(x.clone());
            }
        }
        return Ok(out);
    };
    let mut out = orig.to_vec();
    for item in patch {
        let Some(id) = item.get(key) else {
            return Err(PatchError::Strategic(format!("an element of a list merged on {key:?} has no {key:?}: {item}")));
        };
        let pos = out.iter().position(|o| o.get(key) == Some(id));
        match (pos, merge_value(pos.map(|i| &out[i]), item, item_type)?) {
            (Some(i), Some(v)) => out[i] = v,
            (Some(i), None) => {
                out.remove(i);
            }
            (None, Some(v)) => out.push(v),
            (None, None) => {}
        }
    }
    Ok(out)
}

/// Orders `list` as `order` says; elements it does not name keep their relative order after.
fn reorder(list: &mut Vec<Value>, order: &[Value], merge_key: Option<&str>) {
    let id = |v: &Value| -> Value {
        match merge_key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let mut sorted = Vec::with_capacity(list.len());
    for o in order {
        let want = id(o);
        if let Some(i) = list.iter().position(|x| id(x) == want) {
            sorted.push(list.remove(i));
        }
    }
    sorted.append(list);
    *list = sorted;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> &'static Resource {
        crate::registry::find("", "v1", "pods").unwrap()
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
               "spec": {"containers": [{"name": "c1", "image": "i1", "env": [{"name": "A", "value": "1"}]},
                                       {"name": "c2", "image": "i2"}],
                        "tolerations": [{"key": "k"}]}})
    }

    #[test]
    fn containers_merge_by_name() {
        let out = apply_strategic_merge_patch(pods(), &pod(), &json!({"spec": {"containers": [{"name": "c2", "image": "new"}, {"name": "c3", "image": "i3"}]}})).unwrap();
        let c = out["spec"]["containers"].as_array().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0]["env"][0]["name"], "A");
        assert_eq!(c[1]["image"], "new");
        assert_eq!(c[2]["name"], "c3");
    }

    #[test]
    fn delete_directive_and_null() {
        let out = apply_strategic_merge_patch(pods(), &pod(), &json!({"metadata": {"labels": {"a": null}}, "spec": {"containers": [{"name": "c1", "$patch": "delete"}]}})).unwrap();
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
        assert!(out["metadata"]["labels"].get("a").is_none());
        assert_eq!(out["metadata"]["labels"]["b"], "2");
    }

    #[test]
    fn primitive_set_and_delete_from_primitive_list() {
        let out = apply_strategic_merge_patch(pods(), &pod(), &json!({"metadata": {"finalizers": ["y", "x"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        let out = apply_strategic_merge_patch(pods(), &out, &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
    }

    #[test]
    fn set_element_order_and_plain_lists_replace() {
        let out = apply_strategic_merge_patch(pods(), &pod(), &json!({"spec": {"$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}], "containers": [{"name": "c1", "image": "z"}], "tolerations": [{"key": "other"}]}})).unwrap();
        let c = out["spec"]["containers"].as_array().unwrap();
        assert_eq!((c[0]["name"].as_str(), c[1]["image"].as_str()), (Some("c2"), Some("z")));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "other"}]));
    }

    #[test]
    fn env_merges_inside_container_and_replace_directive() {
        let out = apply_strategic_merge_patch(pods(), &pod(), &json!({"spec": {"containers": [{"name": "c1", "env": [{"name": "B", "value": "2"}]}]}})).unwrap();
        assert_eq!(out["spec"]["containers"][0]["env"].as_array().unwrap().len(), 2);
        let out = apply_strategic_merge_patch(pods(), &pod(), &json!({"spec": {"$patch": "replace", "containers": [{"name": "only", "image": "x"}]}})).unwrap();
        assert_eq!(out["spec"], json!({"containers": [{"name": "only", "image": "x"}]}));
    }

    #[test]
    fn retain_keys_on_deployment_strategy() {
        let d = crate::registry::find("apps", "v1", "deployments").unwrap();
        let doc = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = apply_strategic_merge_patch(d, &doc, &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn json_and_merge_patches() {
        let out = apply_json_patch(&json!({"a": 1}), &json!([{"op": "replace", "path": "/a", "value": 2}])).unwrap();
        assert_eq!(out, json!({"a": 2}));
        assert!(apply_json_patch(&json!({"a": 1}), &json!([{"op": "test", "path": "/a", "value": 3}])).is_err());
        assert!(apply_json_patch(&json!({}), &json!({"op": "add"})).is_err());
        assert_eq!(apply_merge_patch(&json!({"a": 1, "b": 2}), &json!({"a": null})).unwrap(), json!({"b": 2}));
    }
}
