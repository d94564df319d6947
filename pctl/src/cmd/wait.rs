//! `wait --for=condition=C[=value] | --for=jsonpath={...}[=value] | --for=delete`: polls the
//! named objects (or those a selector or `--all` finds) until each meets the condition.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::Value;

use crate::jsonpath::{self, Template};
use crate::{output, resources, Global};

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// TYPE NAME... or TYPE/NAME...
    #[arg(required = true)]
    pub args: Vec<String>,
    /// `delete`, `condition=NAME[=VALUE]` or `jsonpath={PATH}[=VALUE]`.
    #[arg(long = "for", required = true)]
    pub condition: String,
    /// How long to wait (0: check once).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Wait for every object of TYPE that matches this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Wait for every object of TYPE in the namespace.
    #[arg(long)]
    pub all: bool,
}

/// What the objects are waited for.
pub enum Condition {
    Deleted,
    Status {
        name: String,
        value: String,
    },
    Path {
        path: Template,
        value: Option<String>,
    },
}

impl Condition {
    pub fn parse(s: &str) -> Result<Condition> {
        if s == "delete" {
            return Ok(Condition::Deleted);
        }
        if let Some(c) = s.strip_prefix("condition=") {
            let (name, value) = c.split_once('=').unwrap_or((c, "true"));
            return Ok(Condition::Status {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
        if let Some(j) = s.strip_prefix("jsonpath=") {
            let (path, value) = match j.rfind('}') {
                Some(end) => match j[end + 1..].strip_prefix('=') {
                    Some(v) => (&j[..=end], Some(v.to_string())),
                    None => (j, None),
                },
                None => match j.split_once('=') {
                    Some((p, v)) => (p, Some(v.to_string())),
                    None => (j, None),
                },
            };
            let path = super::printers::relaxed(path)
                .map_err(|e| anyhow!("error: unrecognized condition: {s:?}: {e}"))?;
            return Ok(Condition::Path { path, value });
        }
        bail!("error: unrecognized condition: {s:?}")
    }

    /// Whether `obj` (None: it does not exist) meets the condition.
    pub fn met(&self, obj: Option<&Value>) -> bool {
        let Some(obj) = obj else {
            return matches!(self, Condition::Deleted);
        };
        match self {
            Condition::Deleted => false,
            Condition::Status { name, value } => {
                let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
                obj.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        let current = match (c["observedGeneration"].as_i64(), generation) {
                            (Some(seen), Some(g)) => seen >= g,
                            _ => true,
                        };
                        c["type"]
                            .as_str()
                            .is_some_and(|t| t.eq_ignore_ascii_case(name))
                            && c["status"]
                                .as_str()
                                .is_some_and(|v| v.eq_ignore_ascii_case(value))
                            && current
                    })
            }
            Condition::Path { path, value } => match path.values(obj) {
                Ok(vals) => match value {
                    Some(want) => vals.iter().any(|v| jsonpath::text(v) == *want),
                    None => !vals.is_empty(),
                },
                Err(_) => false,
            },
        }
    }
}

async fn get_opt(conn: &resources::Conn, path: &str) -> Result<Option<Value>> {
    match output::fetch_json(&conn.client, path).await {
        Ok(v) => Ok(Some(v)),
        Err(e) => match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            _ => Err(e),
        },
    }
}

pub async fn wait(g: &Global, a: WaitArgs) -> Result<()> {
    let cond = Condition::parse(&a.condition)?;
    let timeout = super::node::parse_duration(&a.timeout)?;
    let conn = resources::connect(g).await?;
    let mut names = Vec::new();
    for (r, name) in resources::targets(&a.args)? {
        match name {
            Some(n) => names.push((r, n)),
            None if a.selector.is_some() || a.all => {
                let mut path = resources::path(r, Some(&conn.namespace), None);
                if let Some(l) = &a.selector {
                    path = format!("{path}?labelSelector={}", super::get::urlencode(l));
                }
                let list = output::fetch_json(&conn.client, &path).await?;
                for o in list["items"].as_array().into_iter().flatten() {
                    names.push((r, o["metadata"]["name"].as_str().unwrap_or("").to_string()));
                }
            }
            None => bail!("error: resource(s) were provided, but no name was specified"),
        }
    }
    if names.is_empty() {
        bail!("error: no matching resources found");
    }
    let started = Instant::now();
    for (r, name) in names {
        let path = resources::path(r, Some(&conn.namespace), Some(&name));
        let mut first = true;
        loop {
            let obj = get_opt(&conn, &path).await?;
            // Already gone: kubectl says nothing.
            if first && obj.is_none() && matches!(cond, Condition::Deleted) {
                break;
            }
            first = false;
            if obj.is_none() && !matches!(cond, Condition::Deleted) {
                // The server's NotFound, as kubectl reports it.
                output::fetch_json(&conn.client, &path).await?;
            }
            if cond.met(obj.as_ref()) {
                outln!("{} condition met", resources::display_name(r, &name));
                break;
            }
            if started.elapsed() >= timeout {
                bail!(
                    "error: timed out waiting for the condition on {}/{name}",
                    r.plural
                );
            }
            tokio::time::sleep(
                Duration::from_millis(250).min(timeout.saturating_sub(started.elapsed())),
            )
            .await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions() {
        let pod = json!({"metadata": {"generation": 1}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(Condition::parse("condition=Ready").unwrap().met(Some(&pod)));
        assert!(Condition::parse("condition=ready=true")
            .unwrap()
            .met(Some(&pod)));
        assert!(!Condition::parse("condition=Ready=False")
            .unwrap()
            .met(Some(&pod)));
        assert!(Condition::parse("jsonpath={.status.phase}=Running")
            .unwrap()
            .met(Some(&pod)));
        assert!(!Condition::parse("jsonpath={.status.phase}=Failed")
            .unwrap()
            .met(Some(&pod)));
        assert!(Condition::parse("jsonpath={.status.phase}")
            .unwrap()
            .met(Some(&pod)));
        assert!(Condition::parse("delete").unwrap().met(None));
        assert!(!Condition::parse("delete").unwrap().met(Some(&pod)));
        assert!(Condition::parse("bogus").is_err());
    }
}
