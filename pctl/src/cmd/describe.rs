//! `describe`: an object's identity, labels, its most telling fields, and its events.

use anyhow::{anyhow, Result};
use clap::Args;
use serde_json::Value;

use crate::{output, resources, Global};

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// TYPE NAME or TYPE/NAME.
    #[arg(required = true)]
    pub args: Vec<String>,
}

fn map_lines(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n                "),
        _ => "<none>".into(),
    }
}

pub async fn describe(g: &Global, a: DescribeArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    for (r, name) in resources::targets(&a.args)? {
        let name = name.ok_or_else(|| {
            anyhow!("error: resource(s) were provided, but no name was specified")
        })?;
        let obj = output::fetch_json(
            &conn.client,
            &resources::path(r, Some(&conn.namespace), Some(&name)),
        )
        .await?;
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("<none>")
                .to_string()
        };
        println!("Name:           {}", s("/metadata/name"));
        if r.namespaced {
            println!("Namespace:      {}", s("/metadata/namespace"));
        }
        println!(
            "Labels:         {}",
            map_lines(obj.pointer("/metadata/labels"))
        );
        println!(
            "Annotations:    {}",
            map_lines(obj.pointer("/metadata/annotations"))
        );
        println!("Created:        {}", s("/metadata/creationTimestamp"));
        match r.kind {
            "Pod" => {
                println!("Node:           {}", s("/spec/nodeName"));
                println!("Status:         {}", s("/status/phase"));
                println!("IP:             {}", s("/status/podIP"));
                println!("Containers:");
                for c in obj
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    println!("  {}:", c["name"].as_str().unwrap_or(""));
                    println!("    Image:      {}", c["image"].as_str().unwrap_or(""));
                }
            }
            "Deployment" | "ReplicaSet" => {
                println!(
                    "Replicas:       {} desired | {} updated | {} total | {} available",
                    obj.pointer("/spec/replicas").cloned().unwrap_or_default(),
                    obj.pointer("/status/updatedReplicas")
                        .cloned()
                        .unwrap_or(Value::from(0)),
                    obj.pointer("/status/replicas")
                        .cloned()
                        .unwrap_or(Value::from(0)),
                    obj.pointer("/status/availableReplicas")
                        .cloned()
                        .unwrap_or(Value::from(0))
                );
            }
            "Node" => {
                let taints: Vec<String> = obj
                    .pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        format!(
                            "{}={}:{}",
                            t["key"].as_str().unwrap_or(""),
                            t["value"].as_str().unwrap_or(""),
                            t["effect"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                println!(
                    "Taints:         {}",
                    if taints.is_empty() {
                        "<none>".into()
                    } else {
                        taints.join("\n                ")
                    }
                );
                println!(
                    "Unschedulable:  {}",
                    obj.pointer("/spec/unschedulable")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                );
            }
            "Service" => {
                println!("Type:           {}", s("/spec/type"));
                println!("IP:             {}", s("/spec/clusterIP"));
            }
            _ => {}
        }
        let uid = s("/metadata/uid");
        let ns = if r.namespaced {
            conn.namespace.clone()
        } else {
            "default".into()
        };
        let events_path = format!(
            "/api/v1/namespaces/{ns}/events\
             ?fieldSelector=involvedObject.name%3D{name},involvedObject.uid%3D{uid}"
        );
        let t = output::fetch_table(&conn.client, &events_path).await?;
        let rows = output::table_rows(&t, false, false, true);
        if rows.len() <= 1 {
            println!("Events:         <none>");
        } else {
            println!("Events:");
            for line in output::align(&rows).lines() {
                println!("  {line}");
            }
        }
    }
    Ok(())
}
