//! Node commands: `cordon`, `uncordon`, `taint`.

use anyhow::{anyhow, Result};
use clap::Args;
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};

use crate::{resources, Global};

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node.
    pub node: String,
}

pub async fn cordon(g: &Global, a: NodeArgs, on: bool) -> Result<()> {
    let conn = resources::connect(g).await?;
    let r = resources::resolve("nodes")?;
    let api = resources::dynamic(&conn, r, None);
    let node = api.get(&a.node).await?;
    let already = node.data.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false) == on;
    if !already {
        api.patch(&a.node, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"unschedulable": if on { json!(true) } else { Value::Null }}}))).await?;
    }
    let verb = match (on, already) {
        (true, false) => "cordoned",
        (false, false) => "uncordoned",
        (true, true) => "already cordoned",
        (false, true) => "already uncordoned",
    };
    println!("node/{} {verb}", a.node);
    Ok(())
}

#[derive(Debug, Args)]
pub struct TaintArgs {
    /// `nodes`, then NODE, then taints: `key=value:Effect`, `key:Effect`, `key:Effect-`, `key-`.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Replace an existing taint with the same key and effect.
    #[arg(long)]
    pub overwrite: bool,
}

/// One taint change.
#[derive(Debug, PartialEq)]
pub enum TaintChange {
    Add { key: String, value: Option<String>, effect: String },
    Remove { key: String, effect: Option<String> },
}

pub fn parse_taint(s: &str) -> Result<TaintChange> {
    if let Some(rest) = s.strip_suffix('-') {
        let (key, effect) = match rest.split_once(':') {
            Some((k, e)) => (k.to_string(), Some(e.to_string())),
            None => (rest.to_string(), None),
        };
        return Ok(TaintChange::Remove { key, effect });
    }
    let (kv, effect) = s.split_once(':').ok_or_else(|| anyhow!("error: invalid taint spec: {s}, unknown taint effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(anyhow!("error: invalid taint effect: {effect}, unsupported taint effect"));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (kv.to_string(), None),
    };
    Ok(TaintChange::Add { key, value, effect: effect.to_string() })
}

pub async fn taint(g: &Global, a: TaintArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    let mut args = a.args.clone();
    if args.first().is_some_and(|t| matches!(t.as_str(), "nodes" | "node" | "no")) {
        args.remove(0);
    }
    let node = args.first().cloned().ok_or_else(|| anyhow!("error: at least one taint update is required"))?;
    let changes: Vec<TaintChange> = args[1..].iter().map(|s| parse_taint(s)).collect::<Result<_>>()?;
    let r = resources::resolve("nodes")?;
    let api = resources::dynamic(&conn, r, None);
    let obj = api.get(&node).await?;
    let mut taints: Vec<Value> = obj.data.pointer("/spec/taints").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut removed = false;
    for c in changes {
        match c {
            TaintChange::Add { key, value, effect } => {
                if let Some(existing) = taints.iter_mut().find(|t| t["key"] == json!(key) && t["effect"] == json!(effect)) {
                    if !a.overwrite {
                        return Err(anyhow!("error: node {node} already has {key} taint(s) with same effect(s) and --overwrite is false"));
                    }
                    *existing = json!({"key": key, "value": value, "effect": effect});
                } else {
                    let mut t = json!({"key": key, "effect": effect});
                    if let Some(v) = value {
                        t["value"] = json!(v);
                    }
                    taints.push(t);
                }
            }
            TaintChange::Remove { key, effect } => {
                let before = taints.len();
                taints.retain(|t| !(t["key"] == json!(key) && effect.as_ref().is_none_or(|e| t["effect"] == json!(e))));
                if taints.len() == before {
                    return Err(anyhow!("error: taint {key:?} not found"));
                }
                removed = true;
            }
        }
    }
    api.patch(&node, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"taints": taints}}))).await?;
    println!("node/{node} {}", if removed { "untainted" } else { "tainted" });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taint_specs() {
        assert_eq!(parse_taint("dedicated=batch:NoSchedule").unwrap(), TaintChange::Add { key: "dedicated".into(), value: Some("batch".into()), effect: "NoSchedule".into() });
        assert_eq!(parse_taint("dedicated:NoSchedule-").unwrap(), TaintChange::Remove { key: "dedicated".into(), effect: Some("NoSchedule".into()) });
        assert_eq!(parse_taint("dedicated-").unwrap(), TaintChange::Remove { key: "dedicated".into(), effect: None });
        assert!(parse_taint("x=y:Sometimes").is_err());
    }
}
