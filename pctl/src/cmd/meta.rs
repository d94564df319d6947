//! `label` and `annotate`: add (`k=v`), overwrite (`--overwrite`), remove (`k-`).

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
}

#[derive(Debug, Clone, Copy)]
pub enum Field {
    Labels,
    Annotations,
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
    for (r, name) in resources::targets(what)? {
        let name = name.ok_or_else(|| {
            anyhow!("error: resource(s) were provided, but no name was specified")
        })?;
        let api = resources::dynamic(&conn, r, Some(&conn.namespace));
        let obj = api.get(&name).await?;
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
        let patch = json!({"metadata": {key: m}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let verb = match (field, set.is_empty()) {
            (Field::Labels, true) => "unlabeled",
            (Field::Labels, false) => "labeled",
            // kubectl annotate says "annotated" for removals too.
            (Field::Annotations, _) => "annotated",
        };
        println!("{} {verb}", resources::display_name(r, &name));
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
