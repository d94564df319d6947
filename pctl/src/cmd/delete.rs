//! `delete`: by name, by file, or by label selector; `--grace-period`, `--force`.

use anyhow::{anyhow, Result};
use clap::Args;
use kube::api::{DeleteParams, ListParams};
use serde_json::Value;

use super::apply::read_manifests;
use crate::{resources, Global};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// TYPE NAME... or TYPE/NAME...
    pub args: Vec<String>,
    /// Files, directories or `-` naming the objects to delete.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Delete every object of TYPE matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Seconds the object is given to terminate (-1: the object's default).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// Delete at once, without waiting for the agent's confirmation (with --grace-period=0).
    #[arg(long)]
    pub force: bool,
}

pub async fn delete(g: &Global, a: DeleteArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    let mut dp = DeleteParams::background();
    if a.force && a.grace_period <= 0 {
        eprintln!(
            "Warning: Immediate deletion does not wait for confirmation that the running \
             resource has been terminated. The resource may continue to run on the cluster \
             indefinitely."
        );
        dp.grace_period_seconds = Some(0);
    } else if a.grace_period >= 0 {
        dp.grace_period_seconds = Some(a.grace_period.max(1) as u32);
    }
    let verb = if a.force && a.grace_period <= 0 {
        "force deleted"
    } else {
        "deleted"
    };
    let mut targets: Vec<(&'static api::registry::Resource, String, String)> = Vec::new();
    for obj in read_manifests(&a.files)? {
        let r = resources::resolve_kind(
            obj["apiVersion"].as_str().unwrap_or(""),
            obj["kind"].as_str().unwrap_or(""),
        )?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(&conn.namespace)
            .to_string();
        targets.push((
            r,
            ns,
            obj.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ));
    }
    if !a.args.is_empty() {
        for (r, name) in resources::targets(&a.args)? {
            match name {
                Some(n) => targets.push((r, conn.namespace.clone(), n)),
                None => {
                    let sel = a.selector.as_deref().ok_or_else(|| {
                        anyhow!("error: resource(s) were provided, but no name was specified")
                    })?;
                    let api = resources::dynamic(&conn, r, Some(&conn.namespace));
                    for o in api.list(&ListParams::default().labels(sel)).await? {
                        targets.push((
                            r,
                            conn.namespace.clone(),
                            o.metadata.name.unwrap_or_default(),
                        ));
                    }
                }
            }
        }
    }
    if targets.is_empty() && a.files.is_empty() {
        if a.args.is_empty() {
            return Err(anyhow!(
                "error: You must provide one or more resources by argument or filename."
            ));
        }
        eprintln!("No resources found");
    }
    for (r, ns, name) in targets {
        let api = resources::dynamic(&conn, r, Some(&ns));
        api.delete(&name, &dp).await?;
        println!("{} \"{name}\" {verb}", r.singular_display());
    }
    Ok(())
}

/// `pod`, `deployment.apps`: the name kubectl uses in `... "x" deleted`.
trait SingularDisplay {
    fn singular_display(&self) -> String;
}

impl SingularDisplay for api::registry::Resource {
    fn singular_display(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_string()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }
}
