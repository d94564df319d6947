//! `apply -f` and the manifest reading shared with `create -f` and `delete -f`: files,
//! directories, `-` for stdin, multi-document YAML or JSON.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Map, Value};

use crate::{output, resources, Global};

/// The annotation client-side apply keeps the applied configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// Files, directories or `-` (stdin) holding manifests.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

/// An object read from a manifest, with where it came from (`STDIN` or the file's path), which
/// kubectl names in the server's errors.
pub struct Manifest {
    pub source: String,
    pub object: Value,
    /// Plain values read as YAML 1.1 booleans, named in the server's refusal.
    pub booleans: Vec<crate::yaml::Boolean>,
}

impl Manifest {
    /// The server's error in kubectl's words (`error when creating "FILE": ...`), with a note
    /// naming each value YAML 1.1 read as a boolean when the server refused the object.
    pub fn refused(&self, e: kube::Error, verb: &str) -> kube::Error {
        let mut e = output::with_source(e, verb, &self.source);
        if let kube::Error::Api(s) = &mut e {
            if s.code == 400 {
                for b in &self.booleans {
                    s.message.push_str(&format!(
                        "\nnote: {}: {} is a boolean in YAML 1.1 (as kubectl reads it); \
                         write \"{}\" for the string",
                        b.path, b.text, b.text
                    ));
                }
            }
        }
        e
    }
}

/// Every object in the given files (YAML documents or JSON), in order.
pub fn read_manifests(files: &[String]) -> Result<Vec<Value>> {
    Ok(read_sourced(files)?.into_iter().map(|m| m.object).collect())
}

/// [`read_manifests`] with each object's source.
pub fn read_sourced(files: &[String]) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    let mut add = |text: &str, source: String| -> Result<()> {
        for (object, booleans) in parse_documents_noting(text, &source)? {
            out.push(Manifest {
                source: source.clone(),
                object,
                booleans,
            });
        }
        Ok(())
    };
    for f in files {
        if f == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading stdin")?;
            add(&s, "STDIN".into())?;
        } else if Path::new(f).is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(f)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            entries.sort();
            for p in entries {
                let s = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?;
                add(&s, p.display().to_string())?;
            }
        } else {
            let s = std::fs::read_to_string(f)
                .map_err(|e| anyhow!("error: the path \"{f}\" does not exist ({e})"))?;
            add(&s, f.clone())?;
        }
    }
    Ok(out)
}

/// Splits multi-document YAML (or one JSON document), dropping empty documents; with the
/// YAML 1.1 booleans of each document.
fn parse_documents_noting(
    text: &str,
    source: &str,
) -> Result<Vec<(Value, Vec<crate::yaml::Boolean>)>> {
    let docs = crate::yaml::documents_noting(text).map_err(|e| {
        anyhow!("error: error parsing {source}: error converting YAML to JSON: {e}")
    })?;
    let mut out = Vec::new();
    for (v, booleans) in docs {
        match v {
            Value::Null => {}
            Value::Object(_) => out.push((v, booleans)),
            _ => {
                return Err(anyhow!(
                    "error: error parsing {source}: a manifest must be an object"
                ))
            }
        }
    }
    Ok(out)
}

/// Removes keys of `last` that `new` no longer has (as null), recursively through maps: the
/// deletions part of a three-way merge.
pub fn deletions(last: &Value, new: &Value) -> Value {
    let mut out = Map::new();
    if let (Value::Object(l), Value::Object(n)) = (last, new) {
        for (k, lv) in l {
            match n.get(k) {
                None => {
                    out.insert(k.clone(), Value::Null);
                }
                Some(nv) if lv.is_object() && nv.is_object() => {
                    let d = deletions(lv, nv);
                    if d.as_object().is_some_and(|m| !m.is_empty()) {
                        out.insert(k.clone(), d);
                    }
                }
                _ => {}
            }
        }
    }
    Value::Object(out)
}

/// Merges `b` into `a` (maps recursively; other values replaced).
fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(av) if av.is_object() && v.is_object() => merge(av, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn name_of(obj: &Value) -> Result<String> {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("error: resource name may not be empty"))
}

/// What applying one manifest does: the object to create (with the last-applied annotation)
/// and, for a live object, the merge patch.
pub struct Planned {
    pub r: &'static api::registry::Resource,
    pub name: String,
    pub api: kube::Api<DynamicObject>,
    /// The manifest with the last-applied annotation set.
    pub object: Value,
    /// The manifest with its annotations minus that one (what the annotation records).
    pub applied: Value,
    /// The manifest exactly as read.
    pub manifest: Value,
}

impl Planned {
    pub fn new(conn: &resources::Conn, mut obj: Value) -> Result<Planned> {
        let manifest = obj.clone();
        let av = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let r = resources::resolve_kind(&av, &kind)?;
        let name = name_of(&obj)?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| conn.namespace.clone());
        let api = resources::dynamic(conn, r, Some(&ns));
        // As kubectl: the manifest with its annotations (an empty map if it had none) minus
        // this one, as JSON with a final newline.
        let mut applied = obj.clone();
        if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = annotations.as_object_mut() {
                m.remove(LAST_APPLIED);
            }
        }
        let config = serde_json::to_string(&applied)? + "\n";
        merge(
            &mut obj,
            &serde_json::json!({"metadata": {"annotations": {LAST_APPLIED: config}}}),
        );
        Ok(Planned {
            r,
            name,
            api,
            object: obj,
            applied,
            manifest,
        })
    }

    /// The three-way merge patch for `live`: what the manifest sets, and nulls for what the
    /// last applied configuration had and the manifest no longer has.
    pub fn patch(&self, live: &DynamicObject) -> Value {
        self.three_way(live, &self.object)
    }

    /// The patch without updating the last-applied annotation (what `diff` shows, as kubectl).
    pub fn patch_keeping_annotation(&self, live: &DynamicObject) -> Value {
        self.three_way(live, &self.manifest)
    }

    fn three_way(&self, live: &DynamicObject, new: &Value) -> Value {
        let last: Value = live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let mut patch = deletions(&last, &self.applied);
        merge(&mut patch, new);
        patch
    }
}

pub async fn apply(g: &Global, a: FileArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    for m in read_sourced(&a.files)? {
        let p = Planned::new(&conn, m.object.clone())?;
        let display = resources::display_name(p.r, &p.name);
        match p.api.get_opt(&p.name).await? {
            None => {
                let d: DynamicObject = serde_json::from_value(p.object.clone())?;
                p.api
                    .create(&PostParams::default(), &d)
                    .await
                    .map_err(|e| m.refused(e, "creating"))?;
                outln!("{display} created");
            }
            Some(live) => {
                let before = live.metadata.resource_version.clone();
                let after = p
                    .api
                    .patch(
                        &p.name,
                        &PatchParams::default(),
                        &Patch::Merge(&p.patch(&live)),
                    )
                    .await?;
                let verb = if after.metadata.resource_version == before {
                    "unchanged"
                } else {
                    "configured"
                };
                outln!("{display} {verb}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_and_deletions() {
        let docs = parse_documents_noting("a: 1\n---\n---\nb: 2\n", "x").unwrap();
        assert_eq!(docs.len(), 2);
        assert!(parse_documents_noting("a: [", "x").is_err());
        let d = deletions(
            &json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}}),
            &json!({"metadata": {"labels": {"a": "1"}}}),
        );
        assert_eq!(
            d,
            json!({"metadata": {"labels": {"b": null}}, "spec": null})
        );
    }
}
