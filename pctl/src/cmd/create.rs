//! `create -f`, `create deployment NAME --image=...`, `create namespace NAME`.

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use kube::api::{DynamicObject, PostParams};
use serde_json::{json, Value};

use super::apply::read_manifests;
use crate::{resources, Global};

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Files, directories or `-` (stdin) holding manifests.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    #[command(subcommand)]
    pub what: Option<What>,
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

async fn create_one(conn: &resources::Conn, obj: Value) -> Result<()> {
    let av = obj["apiVersion"].as_str().unwrap_or("").to_string();
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let r = resources::resolve_kind(&av, &kind)?;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| conn.namespace.clone());
    let api = resources::dynamic(conn, r, Some(&ns));
    let d: DynamicObject = serde_json::from_value(obj)?;
    let created = api.create(&PostParams::default(), &d).await?;
    println!(
        "{} created",
        resources::display_name(r, created.metadata.name.as_deref().unwrap_or(&name))
    );
    Ok(())
}

pub async fn create(g: &Global, a: CreateArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    match a.what {
        Some(What::Deployment {
            name,
            image,
            replicas,
            port,
        }) => create_one(&conn, deployment(&name, &image, replicas, port)).await,
        Some(What::Namespace { name }) => {
            create_one(
                &conn,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
            .await
        }
        None if a.files.is_empty() => Err(anyhow!("error: must specify one of -f and -k")),
        None => {
            for obj in read_manifests(&a.files)? {
                create_one(&conn, obj).await?;
            }
            Ok(())
        }
    }
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
