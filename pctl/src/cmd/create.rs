//! `create -f`, `create deployment NAME --image=...`, `create namespace NAME`,
//! `create configmap`, `create secret generic`; `--dry-run=client|server` and `-o yaml|json`.

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use kube::api::{DynamicObject, PostParams};
use serde_json::{json, Value};

use super::apply::{read_sourced, Manifest};
use super::create_data;
use crate::{output, resources, Global};

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Files, directories or `-` (stdin) holding manifests.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// `client`: print the object without sending it; `server`: have the server check it.
    #[arg(long, global = true, default_value = "none")]
    pub dry_run: String,
    /// Print the created object: yaml, json or name.
    #[arg(short = 'o', long, global = true)]
    pub output: Option<String>,
    #[command(subcommand)]
    pub what: Option<What>,
}

#[derive(Debug, Subcommand)]
pub enum SecretKind {
    /// Create a secret from files, directories or literal values.
    Generic {
        name: String,
        #[command(flatten)]
        sources: super::create_data::Sources,
        /// The secret's type.
        #[arg(long = "type")]
        kind: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// Create a deployment with the specified name.
    Deployment {
        name: String,
        /// Image name to run.
        #[arg(long, required = true)]
        image: Vec<String>,
        /// Number of replicas to create.
        #[arg(long, default_value_t = 1)]
        replicas: i32,
        /// The port the container exposes.
        #[arg(long)]
        port: Option<i32>,
    },
    /// Create a namespace with the specified name.
    #[command(alias = "ns")]
    Namespace { name: String },
    /// Create a config map from files, directories, env files or literal values.
    #[command(alias = "cm")]
    Configmap {
        name: String,
        #[command(flatten)]
        sources: super::create_data::Sources,
    },
    /// Create a secret.
    #[command(subcommand)]
    Secret(SecretKind),
}

/// How `create` sends (or does not send) the object.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DryRun {
    None,
    Client,
    Server,
}

fn dry_run(s: &str) -> Result<DryRun> {
    match s {
        "none" | "false" => Ok(DryRun::None),
        "client" | "true" => Ok(DryRun::Client),
        "server" => Ok(DryRun::Server),
        other => Err(anyhow!(
            "error: Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
        )),
    }
}

/// The Deployment `create deployment` makes, as kubectl's generator does.
pub fn deployment(name: &str, images: &[String], replicas: i32, port: Option<i32>) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .map(|image| {
            let base = image.rsplit('/').next().unwrap_or(image);
            let cname = base.split([':', '@']).next().unwrap_or(base).to_string();
            let mut c = json!({"name": cname, "image": image, "resources": {}});
            if let Some(p) = port {
                c["ports"] = json!([{"containerPort": p}]);
            }
            c
        })
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "strategy": {},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers},
            }},
    })
}

async fn create_one(
    conn: &resources::Conn,
    mut obj: Value,
    source: Option<&Manifest>,
    mode: DryRun,
    output: Option<&str>,
) -> Result<()> {
    let av = obj["apiVersion"].as_str().unwrap_or("").to_string();
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let r = resources::resolve_kind(&av, &kind)?;
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| conn.namespace.clone());
    let created = match mode {
        DryRun::Client => {
            // As kubectl's generators: the object as it would be sent.
            obj["metadata"]["creationTimestamp"] = Value::Null;
            obj
        }
        _ => {
            let api = resources::dynamic(conn, r, Some(&ns));
            let d: DynamicObject = serde_json::from_value(obj)?;
            let pp = PostParams {
                dry_run: mode == DryRun::Server,
                ..PostParams::default()
            };
            let created = match api.create(&pp, &d).await {
                Ok(c) => c,
                Err(e) => return Err(create_error(e, source, &kind)),
            };
            serde_json::to_value(created)?
        }
    };
    print_result(&created, mode, output)
}

/// The error of a refused create, in kubectl's words: a manifest's source before the
/// server's message, or the generator's own line.
fn create_error(e: kube::Error, source: Option<&Manifest>, kind: &str) -> anyhow::Error {
    match (source, e) {
        (Some(m), e) => m.refused(e, "creating").into(),
        (None, kube::Error::Api(s)) if kind == "ConfigMap" => {
            anyhow!("error: failed to create configmap: {}", s.message)
        }
        (None, kube::Error::Api(s)) if kind == "Secret" => {
            anyhow!("error: failed to create secret {}", s.message)
        }
        (None, e) => e.into(),
    }
}

/// What `create` prints for an object it made (or would make).
fn print_result(obj: &Value, mode: DryRun, output: Option<&str>) -> Result<()> {
    let kind = obj["kind"].as_str().unwrap_or("");
    let r = resources::resolve_kind(obj["apiVersion"].as_str().unwrap_or(""), kind)?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let suffix = match mode {
        DryRun::None => "",
        DryRun::Client => " (dry run)",
        DryRun::Server => " (server dry run)",
    };
    match output {
        Some("yaml") => out!("{}", output::yaml(obj)?),
        Some("json") => outln!("{}", output::json(obj)?),
        Some("name") => outln!("{}", resources::display_name(r, name)),
        None => outln!("{} created{suffix}", resources::display_name(r, name)),
        Some(f) => {
            return Err(anyhow!(
                "error: unable to match a printer suitable for the output format \"{f}\", \
                 allowed formats are: json,name,yaml"
            ))
        }
    }
    Ok(())
}

pub async fn create(g: &Global, a: CreateArgs) -> Result<()> {
    let mode = dry_run(&a.dry_run)?;
    let out = a.output.as_deref();
    let objects: Vec<(Option<Manifest>, Value)> = match a.what {
        Some(What::Deployment {
            name,
            image,
            replicas,
            port,
        }) => vec![(None, deployment(&name, &image, replicas, port))],
        Some(What::Namespace { name }) => vec![(
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )],
        Some(What::Configmap { name, sources }) => {
            let data = create_data::read(&sources, "ConfigMap", &name)?;
            vec![(None, create_data::configmap(&name, data))]
        }
        Some(What::Secret(SecretKind::Generic {
            name,
            sources,
            kind,
        })) => {
            let data = create_data::read(&sources, "Secret", &name)?;
            vec![(None, create_data::secret(&name, data, kind.as_deref()))]
        }
        None if a.files.is_empty() => return Err(anyhow!("error: must specify one of -f and -k")),
        None => read_sourced(&a.files)?
            .into_iter()
            .map(|m| {
                let object = m.object.clone();
                (Some(m), object)
            })
            .collect(),
    };
    // As kubectl, a generated object names its namespace when -n was given.
    let objects: Vec<(Option<Manifest>, Value)> = objects
        .into_iter()
        .map(|(source, mut obj)| {
            if let (None, Some(ns)) = (&source, &g.namespace) {
                if resources::resolve_kind(
                    obj["apiVersion"].as_str().unwrap_or(""),
                    obj["kind"].as_str().unwrap_or(""),
                )
                .is_ok_and(|r| r.namespaced)
                {
                    obj["metadata"]["namespace"] = Value::from(ns.as_str());
                }
            }
            (source, obj)
        })
        .collect();
    // A client dry run needs no server (kubectl's generators work offline too).
    let conn = match mode {
        DryRun::Client if a.files.is_empty() => None,
        _ => Some(resources::connect(g).await?),
    };
    for (source, obj) in objects {
        match &conn {
            Some(c) => create_one(c, obj, source.as_ref(), mode, out).await?,
            None => print_offline(obj, out)?,
        }
    }
    Ok(())
}

/// A generated object under `--dry-run=client`, printed without asking the server anything.
fn print_offline(mut obj: Value, output: Option<&str>) -> Result<()> {
    obj["metadata"]["creationTimestamp"] = Value::Null;
    print_result(&obj, DryRun::Client, output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_generator() {
        let d = deployment("web", &["localhost/busybox:1.36".into()], 2, Some(80));
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["name"],
            "busybox"
        );
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(d["spec"]["replicas"], 2);
    }
}
