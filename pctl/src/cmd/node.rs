//! Node commands: `cordon`, `uncordon`, `drain`, `taint`.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{json, Value};

use crate::{resources, Global};

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node.
    pub node: String,
}

pub async fn cordon(g: &Global, a: NodeArgs, on: bool) -> Result<()> {
    set_unschedulable(&resources::connect(g).await?, &a.node, on).await
}

/// Marks `name` unschedulable (`on`) or schedulable, printing kubectl's line.
async fn set_unschedulable(conn: &resources::Conn, name: &str, on: bool) -> Result<()> {
    let r = resources::resolve("nodes")?;
    let api = resources::dynamic(conn, r, None);
    let node = api.get(name).await?;
    let already = node
        .data
        .pointer("/spec/unschedulable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        == on;
    if !already {
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"unschedulable": if on { json!(true) } else { Value::Null }}}),
            ),
        )
        .await?;
    }
    let verb = match (on, already) {
        (true, false) => "cordoned",
        (false, false) => "uncordoned",
        (true, true) => "already cordoned",
        (false, true) => "already uncordoned",
    };
    outln!("node/{name} {verb}");
    Ok(())
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The node.
    pub node: String,
    /// Also delete pods that no controller manages (they are not recreated elsewhere).
    #[arg(long)]
    pub force: bool,
    /// Ignore DaemonSet-managed pods (accepted for kubectl compatibility; this API has no
    /// DaemonSets).
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Also delete pods with emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Seconds each pod is given to terminate (-1: the pod's own).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// How long to wait for the pods to go, e.g. 60s or 5m (0: forever).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Delete the pods instead of evicting them.
    #[arg(long)]
    pub disable_eviction: bool,
    /// Only select pods with these labels.
    #[arg(long = "pod-selector")]
    pub pod_selector: Option<String>,
}

/// Parses kubectl's durations: `30s`, `5m`, `1h30m`, or bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    api::duration::parse(s).map_err(|e| anyhow!("error: {e}"))
}

/// Why drain may not remove a pod without an override flag.
fn drain_blocker(pod: &Value, a: &DrainArgs) -> Option<&'static str> {
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    let controlled = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| o.iter().any(|r| r["controller"] == json!(true)));
    let empty_dir = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .is_some_and(|v| v.iter().any(|v| v.get("emptyDir").is_some()));
    if !finished && !controlled && !a.force {
        return Some("cannot delete Pods declare no controller (use --force to override)");
    }
    if !finished && empty_dir && !a.delete_emptydir_data {
        return Some(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override)",
        );
    }
    None
}

/// `drain NODE`: cordons it, then evicts (or deletes) its pods and waits for them to go.
pub async fn drain(g: &Global, a: DrainArgs) -> Result<()> {
    let timeout = parse_duration(&a.timeout)?;
    let conn = resources::connect(g).await?;
    set_unschedulable(&conn, &a.node, true).await?;
    let pods_r = resources::resolve("pods")?;
    let all = resources::dynamic(&conn, pods_r, None);
    let mut lp = ListParams::default().fields(&format!("spec.nodeName={}", a.node));
    if let Some(sel) = &a.pod_selector {
        lp = lp.labels(sel);
    }
    let pods: Vec<Value> = all
        .list(&lp)
        .await?
        .items
        .into_iter()
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .collect();
    // Mirror pods belong to their node's agent and cannot be removed through the API.
    let pods: Vec<Value> = pods
        .into_iter()
        .filter(|p| {
            p.pointer("/metadata/annotations/kubernetes.io~1config.mirror")
                .is_none()
        })
        .collect();
    let mut blocked: Vec<(&str, String)> = Vec::new();
    for p in &pods {
        if let Some(why) = drain_blocker(p, &a) {
            blocked.push((
                why,
                format!(
                    "{}/{}",
                    p["metadata"]["namespace"].as_str().unwrap_or(""),
                    p["metadata"]["name"].as_str().unwrap_or("")
                ),
            ));
        }
    }
    if !blocked.is_empty() {
        let mut reasons: Vec<&str> = blocked.iter().map(|(w, _)| *w).collect();
        reasons.dedup();
        let text: Vec<String> = reasons
            .iter()
            .map(|r| {
                format!(
                    "{r}: {}",
                    blocked
                        .iter()
                        .filter(|(w, _)| w == r)
                        .map(|(_, p)| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        bail!(
            "error: unable to drain node {:?} due to error: {}\n\
             There are pending nodes to be drained:\n {}",
            a.node,
            text.join("; "),
            a.node
        );
    }
    let grace = (a.grace_period >= 0).then_some(a.grace_period);
    let mut waiting: Vec<(String, String, String)> = Vec::new();
    for p in &pods {
        let ns = p["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
        let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let base = resources::path(pods_r, Some(&ns), Some(&name));
        let mut delete_options = json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"});
        if let Some(g) = grace {
            delete_options["gracePeriodSeconds"] = json!(g);
        }
        let req = if a.disable_eviction {
            http::Request::delete(base)
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&delete_options)?)?
        } else {
            outln!("evicting pod {ns}/{name}");
            let eviction = json!({
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": ns},
                "deleteOptions": delete_options,
            });
            http::Request::post(format!("{base}/eviction"))
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&eviction)?)?
        };
        match conn.client.request_text(req).await {
            Ok(_) => waiting.push((ns, name, uid)),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    // A pod is gone when it is not found, or its name now belongs to a new pod (another uid).
    let started = Instant::now();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for (ns, name, uid) in waiting {
            let api = resources::dynamic(&conn, pods_r, Some(&ns));
            match api.get_opt(&name).await? {
                Some(p) if p.metadata.uid.as_deref() == Some(uid.as_str()) => {
                    still.push((ns, name, uid))
                }
                _ => outln!(
                    "pod/{name} {}",
                    if a.disable_eviction {
                        "deleted"
                    } else {
                        "evicted"
                    }
                ),
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if !timeout.is_zero() && started.elapsed() >= timeout {
            let names: Vec<String> = waiting
                .iter()
                .map(|(ns, n, _)| format!("{ns}/{n}"))
                .collect();
            bail!(
                "error: unable to drain node {:?} due to error: global timeout reached: {}, \
                 pods still terminating: {}",
                a.node,
                a.timeout,
                names.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    outln!("node/{} drained", a.node);
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
    Add {
        key: String,
        value: Option<String>,
        effect: String,
    },
    Remove {
        key: String,
        effect: Option<String>,
    },
}

pub fn parse_taint(s: &str) -> Result<TaintChange> {
    if let Some(rest) = s.strip_suffix('-') {
        let (key, effect) = match rest.split_once(':') {
            Some((k, e)) => (k.to_string(), Some(e.to_string())),
            None => (rest.to_string(), None),
        };
        return Ok(TaintChange::Remove { key, effect });
    }
    let (kv, effect) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("error: invalid taint spec: {s}, unknown taint effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(anyhow!(
            "error: invalid taint effect: {effect}, unsupported taint effect"
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (kv.to_string(), None),
    };
    Ok(TaintChange::Add {
        key,
        value,
        effect: effect.to_string(),
    })
}

pub async fn taint(g: &Global, a: TaintArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    let mut args = a.args.clone();
    if args
        .first()
        .is_some_and(|t| matches!(t.as_str(), "nodes" | "node" | "no"))
    {
        args.remove(0);
    }
    let node = args
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("error: at least one taint update is required"))?;
    let changes: Vec<TaintChange> = args[1..]
        .iter()
        .map(|s| parse_taint(s))
        .collect::<Result<_>>()?;
    let r = resources::resolve("nodes")?;
    let api = resources::dynamic(&conn, r, None);
    let obj = api.get(&node).await?;
    let mut taints: Vec<Value> = obj
        .data
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut removed = false;
    for c in changes {
        match c {
            TaintChange::Add { key, value, effect } => {
                if let Some(existing) = taints
                    .iter_mut()
                    .find(|t| t["key"] == json!(key) && t["effect"] == json!(effect))
                {
                    if !a.overwrite {
                        return Err(anyhow!(
                            "error: node {node} already has {key} taint(s) with same effect(s) \
                             and --overwrite is false"
                        ));
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
                taints.retain(|t| {
                    !(t["key"] == json!(key)
                        && effect.as_ref().is_none_or(|e| t["effect"] == json!(e)))
                });
                if taints.len() == before {
                    return Err(anyhow!("error: taint {key:?} not found"));
                }
                removed = true;
            }
        }
    }
    api.patch(
        &node,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"taints": taints}})),
    )
    .await?;
    outln!(
        "node/{node} {}",
        if removed { "untainted" } else { "tainted" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taint_specs() {
        assert_eq!(
            parse_taint("dedicated=batch:NoSchedule").unwrap(),
            TaintChange::Add {
                key: "dedicated".into(),
                value: Some("batch".into()),
                effect: "NoSchedule".into()
            }
        );
        assert_eq!(
            parse_taint("dedicated:NoSchedule-").unwrap(),
            TaintChange::Remove {
                key: "dedicated".into(),
                effect: Some("NoSchedule".into())
            }
        );
        assert_eq!(
            parse_taint("dedicated-").unwrap(),
            TaintChange::Remove {
                key: "dedicated".into(),
                effect: None
            }
        );
        assert!(parse_taint("x=y:Sometimes").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("12").unwrap(), Duration::from_secs(12));
        assert!(parse_duration("5x").is_err());
    }
}
