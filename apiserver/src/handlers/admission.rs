//! Admission: decoding to the exact type, server-set metadata, namespace lifecycle, defaulting
//! and validation, shared by create, update and patch.

use api::{registry::Resource, status::StatusError};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::Ctx;
use crate::registry::strategy;

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Unknown-field handling asked by `fieldValidation` (default Warn, as Kubernetes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn from_query(ctx: &Ctx) -> Result<FieldValidation, StatusError> {
        match ctx.query.get("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(StatusError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}. Supported values are: Ignore, \
                    Warn, Strict"
            ))),
        }
    }
}

/// Checks the object's apiVersion/kind against the URL's resource and decodes it through its
/// type. Returns the normalized object and warnings for unknown fields (or 400 when strict).
pub fn decode_object(ctx: &Ctx, raw: Value) -> Result<(Value, Vec<String>), StatusError> {
    let r = ctx.req.resource;
    if let Some(av) = raw.get("apiVersion").and_then(Value::as_str) {
        if av != r.api_version() {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                r.api_version()
            )));
        }
    }
    if let Some(kind) = raw.get("kind").and_then(Value::as_str) {
        if kind != r.kind {
            return Err(StatusError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                r.kind
            )));
        }
    }
    let normalized = api::registry::normalize(r, raw.clone()).map_err(|e| {
        StatusError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            r.kind, r.version, r.kind
        ))
    })?;
    let unknown = api::registry::unknown_fields(&raw, &normalized);
    let mode = FieldValidation::from_query(ctx)?;
    let warnings = match mode {
        FieldValidation::Ignore => Vec::new(),
        FieldValidation::Strict if !unknown.is_empty() => {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            return Err(StatusError::bad_request(format!(
                "strict decoding error: {}",
                list.join(", ")
            )));
        }
        _ => unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect(),
    };
    Ok((normalized, warnings))
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("metadata was just made an object")
}

/// Sets what the server owns on a new object: namespace, name from generateName, uid,
/// creationTimestamp; clears what a client may not set (generation included), then lets the
/// resource's strategy prepare it.
pub fn prepare_create(ctx: &Ctx, obj: &mut Value) -> Result<(), StatusError> {
    let r = ctx.req.resource;
    let url_ns = ctx.namespace().map(str::to_string);
    let meta = meta_mut(obj);
    if r.namespaced {
        let ns = url_ns.unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(StatusError::bad_request(
                    "the namespace of the provided object does not \
                    match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        if let Some(prefix) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            let name = format!("{prefix}{}", random_suffix());
            meta.insert("name".into(), json!(name));
        }
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(k);
    }
    meta.remove("generation");
    strategy(r).prepare_for_create(obj);
    Ok(())
}

/// Kubernetes' generateName suffix: five characters without vowels or look-alikes.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Refuses objects in a namespace that does not exist or is being deleted.
pub async fn check_namespace(ctx: &Ctx, name: &str) -> Result<(), StatusError> {
    let r = ctx.req.resource;
    if !r.namespaced {
        return Ok(());
    }
    let Some(ns) = ctx.namespace() else {
        return Ok(());
    };
    let namespaces =
        api::registry::find("", "v1", "namespaces").expect("namespaces are registered");
    let key = namespaces.key(None, ns);
    let cached = ctx
        .state
        .caches
        .get(namespaces)
        .and_then(|c| c.get(&key))
        .map(|o| o.value());
    let found = match cached {
        Some(o) => Some(o),
        None => ctx
            .state
            .storage
            .get(&key)
            .await
            .map_err(|e| super::storage_error(ctx, e))?
            .map(|s| s.object),
    };
    match found {
        None => Err(StatusError::not_found("namespaces", "", ns)),
        Some(o)
            if o.pointer("/metadata/deletionTimestamp").is_some()
                || o.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") =>
        {
            Err(StatusError::namespace_terminating(
                &r.qualified_plural(),
                name,
                ns,
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Defaults and validates (through the resource's strategy); 422 with every field error.
/// `old`: the stored object, on an update.
pub fn default_and_validate(
    r: &Resource,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<(), StatusError> {
    api::defaults::apply(r, obj);
    let errors = match old {
        None => strategy(r).validate_create(r, obj),
        Some(old) => strategy(r).validate_update(r, obj, old),
    };
    if errors.is_empty() {
        Ok(())
    } else {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        Err(StatusError::invalid(r.kind, r.group, name, &errors))
    }
}

/// Builds the stored form of an update: the server-owned metadata of `old` kept, the status or
/// spec kept according to the subresource, generation bumped on spec changes.
pub fn merge_update(r: &Resource, sub: Option<&str>, new: Value, old: &Value) -> Value {
    let mut out = match sub {
        Some("status") => {
            let mut o = old.clone();
            o["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if o["status"].is_null() {
                if let Some(m) = o.as_object_mut() {
                    m.remove("status");
                }
            }
            o
        }
        Some("finalize") => {
            let mut o = old.clone();
            o["spec"]["finalizers"] = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            o
        }
        _ => {
            let mut n = new;
            if r.has_subresource("status") {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            n
        }
    };
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    let meta = meta_mut(&mut out);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
        "generation",
    ] {
        match old_meta.get(k) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    meta.remove("managedFields");
    out
}

/// True when an object marked for deletion has no finalizers left and nothing else (as its
/// resource's strategy says) holds it, so it can go.
pub fn ready_to_delete(r: &Resource, obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
        && obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
        && !strategy(r).holds_deletion(obj)
}
