//! `delete`: by name, by file, by label selector or `--all`; `--grace-period`, `--force`,
//! `--ignore-not-found`, and (as kubectl, by default) waiting until the objects are gone.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::{ArgAction, Args};
use kube::api::{DeleteParams, ListParams};
use serde_json::Value;

use super::apply::read_sourced;
use crate::{output, resources, Global};

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
    /// Delete every object of the given types in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Treat "not found" as a successful delete (the default with --all).
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Wait until the objects are gone (their finalizers done) before returning.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub wait: bool,
    /// How long to wait for the objects to go (0: a week, as kubectl).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Delete with the shortest grace period (1 second).
    #[arg(long)]
    pub now: bool,
}

/// kubectl's wait when `--timeout` is 0.
const WAIT_FOREVER: Duration = Duration::from_secs(168 * 3600);

pub async fn delete(g: &Global, a: DeleteArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    let mut dp = DeleteParams::background();
    if a.force && a.grace_period <= 0 {
        errln!(
            "Warning: Immediate deletion does not wait for confirmation that the running \
             resource has been terminated. The resource may continue to run on the cluster \
             indefinitely."
        );
        dp.grace_period_seconds = Some(0);
    } else if a.grace_period >= 0 {
        dp.grace_period_seconds = Some(a.grace_period.max(1) as u32);
    } else if a.now {
        dp.grace_period_seconds = Some(1);
    }
    let timeout = match super::node::parse_duration(&a.timeout)? {
        d if d.is_zero() => WAIT_FOREVER,
        d => d,
    };
    let ignore_not_found = a.ignore_not_found || a.all;
    let verb = if a.force && a.grace_period <= 0 {
        "force deleted"
    } else {
        "deleted"
    };
    // Each object with its manifest's source, which kubectl names in the server's errors.
    let mut targets: Vec<(
        &'static api::registry::Resource,
        String,
        String,
        Option<String>,
    )> = Vec::new();
    for m in read_sourced(&a.files)? {
        let obj = &m.object;
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
            Some(m.source.clone()),
        ));
    }
    if !a.args.is_empty() {
        for (r, name) in resources::targets(&a.args)? {
            match name {
                Some(n) => targets.push((r, conn.namespace.clone(), n, None)),
                None => {
                    if a.selector.is_none() && !a.all {
                        bail!("error: resource(s) were provided, but no name was specified");
                    }
                    let params = match &a.selector {
                        Some(sel) => ListParams::default().labels(sel),
                        None => ListParams::default(),
                    };
                    let api = resources::dynamic(&conn, r, Some(&conn.namespace));
                    for o in api.list(&params).await? {
                        targets.push((
                            r,
                            conn.namespace.clone(),
                            o.metadata.name.unwrap_or_default(),
                            None,
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
        errln!("No resources found");
    }
    let mut deleted = Vec::new();
    let mut failed = None;
    for (r, ns, name, source) in targets {
        let api = resources::dynamic(&conn, r, Some(&ns));
        match api.delete(&name, &dp).await {
            Ok(either) => {
                outln!("{} \"{name}\" {verb}", r.singular_display());
                let uid = either.left().and_then(|o| o.metadata.uid);
                deleted.push((r, api, name, uid));
            }
            Err(kube::Error::Api(s)) if s.code == 404 && ignore_not_found => {}
            // kubectl goes on with the other objects and fails at the end.
            Err(e) => {
                let e = match &source {
                    Some(src) => output::with_source(e, "deleting", src),
                    None => e,
                };
                errln!("{}", output::error_text(&anyhow::Error::from(e)));
                failed = Some(anyhow::Error::new(output::Reported));
            }
        }
    }
    if a.wait {
        let started = Instant::now();
        for (r, api, name, uid) in &deleted {
            let left = timeout.saturating_sub(started.elapsed());
            if !wait_gone(api, name, uid.as_deref(), left).await? {
                bail!(
                    "error: timed out waiting for the condition on {}/{name}",
                    r.plural
                );
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Polls until `name` (with `uid`, when known: a new object of the same name does not count)
/// no longer exists; false when `timeout` passed first.
async fn wait_gone(
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
    uid: Option<&str>,
    timeout: Duration,
) -> Result<bool> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match api.get_opt(name).await? {
            None => return Ok(true),
            Some(o) if uid.is_some() && o.metadata.uid.as_deref() != uid => return Ok(true),
            Some(_) => {}
        }
        if started.elapsed() >= timeout {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
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
