//! Kubernetes' strategic merge patch: a merge patch whose lists merge element by element on the
//! merge key the type declares, with the `$patch`, `$setElementOrder`, `$retainKeys` and
//! `$deleteFromPrimitiveList` directives kubectl sends.

use serde_json::{Map, Value};

use super::strategy::{is_merge, merge_strategy};
use super::PatchError;
use crate::openapi::{self, REF_PREFIX};
use crate::registry::Resource;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Where the merge is in the object's type: the named type (if known) and its schema.
#[derive(Clone, Copy, Default)]
struct Schema {
    name: Option<&'static str>,
    node: Option<&'static Value>,
}

impl Schema {
    fn named(name: &str) -> Schema {
        match openapi::schema_entry(name) {
            Some((name, node)) => Schema {
                name: Some(name),
                node: Some(node),
            },
            None => Schema::default(),
        }
    }

    /// A schema node, following `$ref` or a single-element `allOf` to the named definition.
    fn resolve(node: Option<&'static Value>) -> Schema {
        let Some(node) = node else {
            return Schema::default();
        };
        let target = node
            .get("$ref")
            .or_else(|| {
                node.get("allOf")
                    .and_then(|a| a.get(0))
                    .and_then(|a| a.get("$ref"))
            })
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(REF_PREFIX));
        match target {
            Some(name) => Schema::named(name),
            None => Schema {
                name: None,
                node: Some(node),
            },
        }
    }

    /// The schema of field `key` (or of a map value) and the field's strategy and merge key.
    fn field(&self, key: &str) -> (Schema, Option<(&'static str, Option<&'static str>)>) {
        let Some(node) = self.node else {
            return (Schema::default(), None);
        };
        let child = node
            .get("properties")
            .and_then(|p| p.get(key))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()));
        let strategy = self.name.and_then(|n| merge_strategy(n, key));
        (Schema::resolve(child), strategy)
    }

    /// The schema of the elements of a list schema.
    fn items(&self) -> Schema {
        Schema::resolve(self.node.and_then(|n| n.get("items")))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Applies a strategic merge patch to `doc`, an object of `resource`'s kind: maps merge, `null`
/// deletes a key, lists with a merge strategy merge on their merge key (or as sets of
/// primitives) and other lists are replaced.
pub fn apply_strategic_merge_patch(
    resource: &Resource,
    doc: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject("strategic merge patch"));
    };
    let original = doc.as_object().cloned().unwrap_or_default();
    let schema = Schema::named(resource.schema_name);
    merge_map(original, patch.clone(), schema, "").map(Value::Object)
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.remove(PATCH) {
        match directive.as_str() {
            Some("replace") => return merge_map(Map::new(), patch, schema, path),
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                return Err(PatchError::UnknownPatchType {
                    value: directive.to_string(),
                    path: path.to_string(),
                })
            }
        }
    }
    apply_retain_keys(&mut original, &mut patch, path)?;
    apply_element_orders(&mut original, &mut patch, schema, path)?;

    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Value::Array(remove) = value else {
                return Err(PatchError::DirectiveNotAList {
                    directive: key.clone(),
                    path: path.to_string(),
                });
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let child_path = join(path, &key);
        let (child, strategy) = schema.field(&key);
        let merged = match (original.remove(&key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                Value::Object(merge_map(o, p, child, &child_path)?)
            }
            (None, Value::Object(p)) => {
                Value::Object(merge_map(Map::new(), p, child, &child_path)?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                merge_list_field(o, p, child, strategy, &child_path)?
            }
            (None, Value::Array(p)) => {
                merge_list_field(Vec::new(), p, child, strategy, &child_path)?
            }
            (_, value) => value,
        };
        original.insert(key, merged);
    }
    Ok(original)
}

fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    strategy: Option<(&'static str, Option<&'static str>)>,
    path: &str,
) -> Result<Value, PatchError> {
    match strategy {
        Some((s, key)) if is_merge(s) => {
            merge_list(original, patch, schema.items(), key, path).map(Value::Array)
        }
        _ => Ok(Value::Array(patch)),
    }
}

/// `$retainKeys`: keys of the original map not listed are cleared; the patch may only set
/// listed keys.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &str,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || PatchError::BadRetainKeys {
        path: path.to_string(),
    };
    let Value::Array(retain) = retain else {
        return Err(bad());
    };
    let keys: Vec<&str> = retain
        .iter()
        .map(|v| v.as_str().ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    for (k, v) in patch.iter() {
        let directive = k.starts_with(SET_ELEMENT_ORDER)
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k == PATCH;
        if !v.is_null() && !directive && !keys.contains(&k.as_str()) {
            return Err(bad());
        }
    }
    original.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the field's patch list now and orders the result as the
/// directive lists, keeping elements only the server has near their old neighbours.
fn apply_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Schema,
    path: &str,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let field = &key[SET_ELEMENT_ORDER.len()..];
        let Value::Array(order) = order else {
            return Err(PatchError::DirectiveNotAList {
                directive: key.clone(),
                path: path.to_string(),
            });
        };
        let child_path = join(path, field);
        let server = match original.get(field) {
            Some(Value::Array(list)) => list.clone(),
            _ => Vec::new(),
        };
        let patch_list = match patch.remove(field) {
            Some(Value::Array(list)) => list,
            Some(Value::Null) => {
                original.remove(field);
                continue;
            }
            Some(other) => {
                original.insert(field.to_string(), other);
                continue;
            }
            None => Vec::new(),
        };
        if server.is_empty() && patch_list.is_empty() {
            continue;
        }
        let (child, strategy) = schema.field(field);
        let merge_key = strategy.and_then(|(_, k)| k);
        let merged =
            match merge_list_field(server.clone(), patch_list, child, strategy, &child_path)? {
                Value::Array(list) => list,
                _ => Vec::new(),
            };
        let ordered = order_elements(merged, &order, &server, merge_key, &child_path)?;
        original.insert(field.to_string(), Value::Array(ordered));
    }
    Ok(())
}

/// Merges a list with a merge strategy: primitives as a set, maps on `merge_key`.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Schema,
    merge_key: Option<&str>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let maps = element_kind_is_map(&original, &patch, path)?;
    if !maps {
        let mut merged = original.clone();
        for v in &patch {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        return order_elements(merged, &patch, &original, None, path);
    }
    let Some(key) = merge_key else {
        return Err(PatchError::NoMergeKey {
            path: path.to_string(),
        });
    };
    let (mut original, patch) = special_elements(original, patch, key, path)?;
    // The server's order is the list before patch elements are appended.
    let server = original.clone();
    for element in &patch {
        let Value::Object(p) = element else { continue };
        let id = p.get(key).ok_or_else(|| PatchError::MissingMergeKey {
            path: path.to_string(),
            key: key.to_string(),
        })?;
        match original.iter_mut().find(|o| o.get(key) == Some(id)) {
            Some(Value::Object(o)) => *o = merge_map(std::mem::take(o), p.clone(), items, path)?,
            Some(other) => *other = element.clone(),
            None => original.push(Value::Object(merge_map(
                Map::new(),
                p.clone(),
                items,
                path,
            )?)),
        }
    }
    order_elements(original, &patch, &server, Some(key), path)
}

/// Whether the lists hold maps (true) or primitives (false); mixed lists are errors.
fn element_kind_is_map(
    original: &[Value],
    patch: &[Value],
    path: &str,
) -> Result<bool, PatchError> {
    let mut kind = None;
    for v in original.iter().chain(patch) {
        let is_map = v.is_object();
        match kind {
            None => kind = Some(is_map),
            Some(k) if k != is_map => {
                return Err(PatchError::MixedList {
                    path: path.to_string(),
                })
            }
            _ => {}
        }
    }
    Ok(kind.unwrap_or(false))
}

/// Applies `$patch` elements of a map list: `delete` removes the original element with the same
/// key, `replace` makes the rest of the patch list the whole list.
fn special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for element in patch {
        let Some(directive) = element.get(PATCH) else {
            plain.push(element);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let id = element
                    .get(key)
                    .ok_or_else(|| PatchError::MissingMergeKey {
                        path: path.to_string(),
                        key: key.to_string(),
                    })?;
                original.retain(|o| o.get(key) != Some(id));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::MergeListDirective {
                    path: path.to_string(),
                })
            }
            _ => {
                return Err(PatchError::UnknownPatchType {
                    value: directive.to_string(),
                    path: path.to_string(),
                })
            }
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    Ok((original, plain))
}

/// The identity of an element for ordering: its merge key's value, or itself.
fn identity<'a>(v: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(k) => v.get(k),
        None => Some(v),
    }
}

fn position(list: &[Value], v: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(v, key)?;
    list.iter().position(|o| identity(o, key) == Some(id))
}

/// Orders `merged` as Kubernetes does: elements named in `patch_order` follow that order,
/// the others (server-only) keep their order in `server_order` and are interleaved before the
/// first patch element that comes after them on the server.
fn order_elements(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if let Some(k) = key {
        if merged.iter().chain(patch_order).any(|v| v.get(k).is_none()) {
            return Err(PatchError::MissingMergeKey {
                path: path.to_string(),
                key: k.to_string(),
            });
        }
    }
    let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position(patch_order, v, key).is_some());
    from_patch.sort_by_key(|v| position(patch_order, v, key));
    server_only.sort_by_key(|v| position(server_order, v, key).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
            (Some(l), Some(r)) => match (
                position(server_order, l, key),
                position(server_order, r, key),
            ) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
