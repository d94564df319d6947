//! `label` and `annotate`: add (`k=v`), overwrite (`--overwrite`), remove (`k-`), on named
//! objects or on every object of a type (`-l SELECTOR`, `--all`).

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use clap::Args;
use kube::api::{Patch, PatchParams};
use serde_json::{json, Map, Value};

use crate::{resources, Global};

#[derive(Debug, Args)]
pub struct MetaArgs {
    /// TYPE NAME KEY=VALUE... (or TYPE/NAME KEY=VALUE...); `KEY-` removes.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Allow replacing existing values.
    #[arg(long)]
    pub overwrite: bool,
    /// Update every object of TYPE that matches this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Update every object of TYPE in the namespace.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum Field {
    Labels,
    Annotations,
}

impl Field {
    fn noun(self) -> &'static str {
        match self {
            Field::Labels => "label",
            Field::Annotations => "annotation",
        }
    }
}

/// Splits `k=v` and `k-` arguments into (set, remove).
pub fn parse_changes(args: &[String]) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for a in args {
        if let Some((k, v)) = a.split_once('=') {
            set.insert(k.to_string(), v.to_string());
        } else if let Some(k) = a.strip_suffix('-') {
            remove.push(k.to_string());
        } else {
            return Err(anyhow!(
                "error: at least one label update is required \
                 (\"{a}\" is neither key=value nor key-)"
            ));
        }
    }
    Ok((set, remove))
}

pub async fn update(g: &Global, a: MetaArgs, field: Field) -> Result<()> {
    let conn = resources::connect(g).await?;
    let split = a
        .args
        .iter()
        .position(|x| x.contains('=') || x.ends_with('-'))
        .unwrap_or(a.args.len());
    let (what, changes) = a.args.split_at(split);
    let (set, remove) = parse_changes(changes)?;
    let key = match field {
        Field::Labels => "labels",
        Field::Annotations => "annotations",
    };
    if set.is_empty() && remove.is_empty() {
        return Err(anyhow!(
            "error: at least one {} update is required",
            field.noun()
        ));
    }
    let mut objects = Vec::new();
    for (r, name) in resources::targets(what)? {
        let api = resources::dynamic(&conn, r, Some(&conn.namespace));
        match name {
            Some(n) => objects.push((r, api.get(&n).await?)),
            None if a.selector.is_some() || a.all => {
                let mut lp = kube::api::ListParams::default();
                if let Some(l) = &a.selector {
                    lp = lp.labels(l);
                }
                objects.extend(api.list(&lp).await?.items.into_iter().map(|o| (r, o)));
            }
            None => {
                return Err(anyhow!(
                    "error: resource(s) were provided, but no name was specified"
                ))
            }
        }
    }
    for (r, obj) in objects {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let api = resources::dynamic(&conn, r, Some(&conn.namespace));
        let current = match field {
            Field::Labels => obj.metadata.labels.clone().unwrap_or_default(),
            Field::Annotations => obj.metadata.annotations.clone().unwrap_or_default(),
        };
        if !a.overwrite {
            for (k, v) in &set {
                if let Some(old) = current.get(k) {
                    if old != v {
                        return Err(anyhow!(
                            "error: '{k}' already has a value ({old}), and --overwrite is false"
                        ));
                    }
                }
            }
        }
        let mut m = Map::new();
        for (k, v) in &set {
            m.insert(k.clone(), json!(v));
        }
        for k in &remove {
            m.insert(k.clone(), Value::Null);
        }
        let unchanged = set.iter().all(|(k, v)| current.get(k) == Some(v))
            && remove.iter().all(|k| !current.contains_key(k));
        if !unchanged {
            let patch = json!({"metadata": {key: m}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        let verb = match (field, set.is_empty(), unchanged) {
            (Field::Labels, _, true) => "not labeled",
            (Field::Labels, true, false) => "unlabeled",
            (Field::Labels, false, false) => "labeled",
            (Field::Annotations, _, true) => "not annotated",
            // kubectl annotate says "annotated" for removals too.
            (Field::Annotations, _, false) => "annotated",
        };
        outln!("{} {verb}", resources::display_name(r, &name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes() {
        let (set, remove) = parse_changes(&["a=1".into(), "b-".into()]).unwrap();
        assert_eq!(set.get("a").map(String::as_str), Some("1"));
        assert_eq!(remove, vec!["b"]);
        assert!(parse_changes(&["oops".into()]).is_err());
    }
}
