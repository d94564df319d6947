//! `rollout`: status (wait for a deployment's rollout), history and undo (through the replica
//! sets the deployment controller keeps, one per revision), restart (a new template annotation).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{json, Value};

use crate::{output, resources, Global};

/// The annotation the deployment controller puts on each replica set: its revision.
const REVISION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// Annotations of a replica set that `undo` does not copy onto the deployment (kubectl's list).
const NOT_COPIED: [&str; 5] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
];

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub what: RolloutCmd,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCmd {
    /// Show the status of a rollout, waiting until it finishes (unless --watch=false).
    Status {
        /// TYPE/NAME or TYPE NAME.
        #[arg(required = true)]
        args: Vec<String>,
        /// Keep watching until the rollout finishes.
        #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
        /// How long to wait, e.g. 60s or 5m (0s: forever).
        #[arg(long, default_value = "0s")]
        timeout: String,
    },
    /// Show the revisions of a deployment, or one revision's pod template.
    History {
        /// TYPE/NAME or TYPE NAME.
        #[arg(required = true)]
        args: Vec<String>,
        /// Show the pod template of this revision.
        #[arg(long, default_value_t = 0)]
        revision: i64,
    },
    /// Roll a deployment back to an earlier revision (by default the previous one).
    Undo {
        /// TYPE/NAME or TYPE NAME.
        #[arg(required = true)]
        args: Vec<String>,
        /// The revision to roll back to (0: the previous one).
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Restart a deployment's pods (a rolling update with the same spec).
    Restart {
        /// TYPE/NAME or TYPE NAME.
        #[arg(required = true)]
        args: Vec<String>,
    },
}

/// The one deployment named by the arguments.
fn deployments(args: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (r, name) in resources::targets(args)? {
        let name = name.ok_or_else(|| {
            anyhow!("error: resource(s) were provided, but no name was specified")
        })?;
        if r.kind != "Deployment" {
            bail!("error: no rollout support for {}", r.plural);
        }
        out.push(name);
    }
    Ok(out)
}

pub async fn rollout(g: &Global, a: RolloutArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    let deploy_r = resources::resolve("deployments")?;
    let api = resources::dynamic(&conn, deploy_r, Some(&conn.namespace));
    match a.what {
        RolloutCmd::Restart { args } => {
            for name in deployments(&args)? {
                let now = k8s_openapi::jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": now
                }}}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                outln!("{} restarted", resources::display_name(deploy_r, &name));
            }
        }
        RolloutCmd::Status {
            args,
            watch,
            timeout,
        } => {
            let timeout = super::node::parse_duration(&timeout)?;
            let started = Instant::now();
            for name in deployments(&args)? {
                let mut last = String::new();
                loop {
                    let d = serde_json::to_value(api.get(&name).await?)?;
                    let (msg, done) = status_line(&name, &d)?;
                    if msg != last {
                        out!("{msg}");
                        last = msg;
                    }
                    if done || !watch {
                        break;
                    }
                    if !timeout.is_zero() && started.elapsed() >= timeout {
                        bail!("error: timed out waiting for the condition");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        RolloutCmd::History { args, revision } => {
            for name in deployments(&args)? {
                let d = serde_json::to_value(api.get(&name).await?)?;
                let history = history(&conn, &d).await?;
                let display = resources::display_name(deploy_r, &name);
                // kubectl checks for no history before looking for the revision.
                if history.is_empty() {
                    if revision > 0 {
                        outln!("{display} with revision #{revision}");
                    } else {
                        outln!("{display} ");
                    }
                    outln!("No rollout history found.");
                    continue;
                }
                if revision > 0 {
                    let rs = history
                        .iter()
                        .find(|(r, _)| *r == revision)
                        .ok_or_else(|| anyhow!("error: unable to find the specified revision"))?;
                    outln!("{display} with revision #{revision}");
                    // kubectl prints the template (which ends with a newline) as a line.
                    outln!("{}", template_text(&rs.1["spec"]["template"]));
                    continue;
                }
                outln!("{display} ");
                let mut rows = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".to_string()]];
                for (rev, rs) in &history {
                    let cause = rs
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(CHANGE_CAUSE))
                        .and_then(Value::as_str)
                        .unwrap_or("<none>");
                    rows.push(vec![rev.to_string(), cause.to_string()]);
                }
                out!("{}", output::align(&rows));
                outln!();
            }
        }
        RolloutCmd::Undo { args, to_revision } => {
            for name in deployments(&args)? {
                let d = serde_json::to_value(api.get(&name).await?)?;
                if d.pointer("/spec/paused") == Some(&json!(true)) {
                    bail!(
                        "error: you cannot rollback a paused deployment; resume it first with \
                         'kubectl rollout resume' and try again"
                    );
                }
                let history = history(&conn, &d).await?;
                let display = resources::display_name(deploy_r, &name);
                let target = if to_revision > 0 {
                    history
                        .iter()
                        .find(|(r, _)| *r == to_revision)
                        .ok_or_else(|| {
                            anyhow!(
                                "error: unable to find specified revision {to_revision} in history"
                            )
                        })?
                } else {
                    // The previous revision: the second highest.
                    if history.is_empty() {
                        bail!("error: no rollout history found for deployment {name:?}");
                    }
                    history.iter().rev().nth(1).ok_or_else(|| {
                        anyhow!("error: no revision found for deployment {name:?}")
                    })?
                };
                // Templates compare as the deployment controller compares them: without the hash.
                let template = without_hash(&target.1["spec"]["template"]);
                if template == without_hash(&d["spec"]["template"]) {
                    outln!(
                        "{display} skipped rollback (current template already matches revision {})",
                        target.0
                    );
                    continue;
                }
                let mut annotations = serde_json::Map::new();
                if let Some(a) = target
                    .1
                    .pointer("/metadata/annotations")
                    .and_then(Value::as_object)
                {
                    for (k, v) in a {
                        if !NOT_COPIED.contains(&k.as_str()) {
                            annotations.insert(k.clone(), v.clone());
                        }
                    }
                }
                // A JSON patch with a test on the resourceVersion: a concurrent change fails it.
                let rv = d
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                let mut ops = vec![
                    json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
                    json!({"op": "replace", "path": "/spec/template", "value": template}),
                ];
                if !annotations.is_empty() {
                    let mut merged = d
                        .pointer("/metadata/annotations")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    merged.extend(annotations);
                    ops.push(
                        json!({"op": "add", "path": "/metadata/annotations", "value": merged}),
                    );
                }
                let path = resources::path(deploy_r, Some(&conn.namespace), Some(&name));
                let req = http::Request::patch(path)
                    .header("Content-Type", "application/json-patch+json")
                    .body(serde_json::to_vec(&ops)?)?;
                conn.client.request_text(req).await?;
                outln!("{display} rolled back");
            }
        }
    }
    Ok(())
}

/// kubectl's message for a deployment's rollout, and whether it is done.
pub fn status_line(name: &str, d: &Value) -> Result<(String, bool)> {
    let int = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let generation = int("/metadata/generation");
    let observed = int("/status/observedGeneration");
    if generation > observed {
        return Ok((
            "Waiting for deployment spec update to be observed...\n".into(),
            false,
        ));
    }
    let timed_out = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
        });
    if timed_out {
        bail!("error: deployment {name:?} exceeded its progress deadline");
    }
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = int("/status/updatedReplicas");
    let replicas = int("/status/replicas");
    let available = int("/status/availableReplicas");
    if updated < desired {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {desired} \
                 new replicas have been updated...\n"
            ),
            false,
        ));
    }
    if replicas > updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending \
                 termination...\n",
                replicas - updated
            ),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} \
                 updated replicas are available...\n"
            ),
            false,
        ));
    }
    Ok((
        format!("deployment {name:?} successfully rolled out\n"),
        true,
    ))
}

/// The deployment's replica sets by revision, oldest first.
async fn history(conn: &resources::Conn, d: &Value) -> Result<Vec<(i64, Value)>> {
    let uid = d
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = d
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&conn.namespace);
    let rs_api = resources::dynamic(conn, resources::resolve("replicasets")?, Some(ns));
    let mut out = Vec::new();
    for rs in rs_api.list(&ListParams::default()).await? {
        let owned = rs
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| r.uid == uid && r.controller == Some(true)));
        if !owned {
            continue;
        }
        let rev = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .and_then(|r| r.parse::<i64>().ok())
            .unwrap_or(0);
        if rev > 0 {
            out.push((rev, serde_json::to_value(rs)?));
        }
    }
    out.sort_by_key(|(r, _)| *r);
    Ok(out)
}

/// A pod template without the pod-template-hash label the controller adds to replica sets'.
fn without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
    }
    t
}

/// A revision's pod template, as `rollout history --revision` prints it: describe's Pod
/// Template section, its tabs left in (kubectl does not align it).
fn template_text(t: &Value) -> String {
    let mut w = super::describe::text::Text::default();
    super::describe::pod::template(&mut w, t);
    w.raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_follow_kubectl() {
        let d = json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 1},
        });
        assert_eq!(
            status_line("web", &d).unwrap(),
            (
                "Waiting for deployment spec update to be observed...\n".to_string(),
                false
            )
        );
        let d = json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 1, "replicas": 3},
        });
        assert!(status_line("web", &d)
            .unwrap()
            .0
            .contains("1 out of 3 new replicas have been updated"));
        let d = json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4},
        });
        assert!(status_line("web", &d)
            .unwrap()
            .0
            .contains("1 old replicas are pending termination"));
        let d = json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 3},
            "status": {
                "observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2
            },
        });
        assert!(status_line("web", &d)
            .unwrap()
            .0
            .contains("2 of 3 updated replicas are available"));
        let d = json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 3},
            "status": {
                "observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3
            },
        });
        assert_eq!(
            status_line("web", &d).unwrap(),
            (
                "deployment \"web\" successfully rolled out\n".to_string(),
                true
            )
        );
        let d = json!({
            "metadata": {"generation": 1},
            "status": {
                "observedGeneration": 1,
                "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}],
            },
        });
        assert!(status_line("web", &d).is_err());
    }

    #[test]
    fn templates_compare_without_hash() {
        let a =
            json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {}});
        let b = json!({"metadata": {"labels": {"app": "web"}}, "spec": {}});
        assert_eq!(without_hash(&a), without_hash(&b));
    }
}
