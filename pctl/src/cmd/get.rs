//! `get`: the server's table (or -o wide|yaml|json|name), selectors, all namespaces, `-w`.

use anyhow::{anyhow, Result};
use clap::Args;
use futures::{AsyncBufReadExt, TryStreamExt};
use serde_json::Value;

use crate::{output, resources, Global};

#[derive(Debug, Args)]
pub struct GetArgs {
    /// TYPE [NAME...] or TYPE/NAME...
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Output format: wide, yaml, json or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label selector (`app=web,tier in (a,b)`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`spec.nodeName=n1`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

fn query(a: &GetArgs) -> String {
    let mut q = Vec::new();
    if let Some(l) = &a.selector {
        q.push(format!("labelSelector={}", urlencode(l)));
    }
    if let Some(f) = &a.field_selector {
        q.push(format!("fieldSelector={}", urlencode(f)));
    }
    q.join("&")
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn get(g: &Global, a: GetArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    let targets = resources::targets(&a.args)?;
    let ns = if a.all_namespaces {
        None
    } else {
        Some(conn.namespace.as_str())
    };
    let fmt = a.output.as_deref().unwrap_or("");
    if !matches!(fmt, "" | "wide" | "yaml" | "json" | "name") {
        return Err(anyhow!(
            "error: unable to match a printer suitable for the output format \"{fmt}\", \
             allowed formats are: json,name,wide,yaml"
        ));
    }
    let q = query(&a);
    let multi = targets
        .iter()
        .map(|(r, _)| r.plural)
        .collect::<std::collections::HashSet<_>>()
        .len()
        > 1;
    let mut printed_header = false;
    let mut any = false;
    let mut last_rv = String::new();
    for (r, name) in &targets {
        let mut path = resources::path(r, ns, name.as_deref());
        if !q.is_empty() && name.is_none() {
            path = format!("{path}?{q}");
        }
        match fmt {
            "yaml" | "json" => {
                let v = output::fetch_json(&conn.client, &path).await?;
                let v = if name.is_none() { strip_list(v, r) } else { v };
                any = true;
                if fmt == "json" {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    print!("{}", output::yaml(&v)?);
                }
            }
            "name" => {
                let v = output::fetch_json(&conn.client, &path).await?;
                let items = if name.is_some() {
                    vec![v]
                } else {
                    v["items"].as_array().cloned().unwrap_or_default()
                };
                for i in items {
                    any = true;
                    println!(
                        "{}",
                        resources::display_name(
                            r,
                            i.pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                        )
                    );
                }
            }
            _ => {
                let t = output::fetch_table(&conn.client, &path).await?;
                last_rv = t
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let mut rows =
                    output::table_rows(&t, fmt == "wide", a.all_namespaces && r.namespaced, true);
                if rows.len() > 1 {
                    // Several types: one table each, names prefixed with the type, as kubectl.
                    if multi {
                        let col = usize::from(a.all_namespaces && r.namespaced);
                        for row in rows.iter_mut().skip(1) {
                            if let Some(c) = row.get_mut(col) {
                                *c = resources::display_name(r, c);
                            }
                        }
                        if any {
                            println!();
                        }
                    }
                    any = true;
                    print!("{}", output::align(&rows));
                    printed_header = true;
                }
            }
        }
    }
    if !any && !a.watch {
        match ns {
            Some(n) if targets.iter().any(|(r, _)| r.namespaced) => {
                eprintln!("No resources found in {n} namespace.")
            }
            _ => eprintln!("No resources found"),
        }
    }
    if a.watch {
        let (r, name) = &targets[0];
        let mut path = resources::path(r, ns, None);
        let mut params = vec![format!("watch=true&resourceVersion={last_rv}")];
        if let Some(n) = name {
            params.push(format!("fieldSelector=metadata.name%3D{n}"));
        }
        if !q.is_empty() {
            params.push(q.clone());
        }
        path = format!("{path}?{}", params.join("&"));
        let req = http::Request::get(path)
            .header(
                "Accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )
            .body(Vec::new())?;
        let lines = conn.client.request_stream(req).await?.lines();
        futures::pin_mut!(lines);
        while let Some(line) = lines.try_next().await? {
            let ev: Value = serde_json::from_str(&line)?;
            if ev["type"] == "ERROR" {
                return Err(anyhow!(
                    "error: {}",
                    ev["object"]["message"].as_str().unwrap_or("watch failed")
                ));
            }
            let rows = output::table_rows(
                &ev["object"],
                fmt == "wide",
                a.all_namespaces && r.namespaced,
                !printed_header,
            );
            printed_header = true;
            print!("{}", output::align(&rows));
        }
    }
    Ok(())
}

/// A plain list as kubectl prints it: `kind: List` with items carrying kind and apiVersion.
fn strip_list(v: Value, r: &api::registry::Resource) -> Value {
    let items: Vec<Value> = v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut i| {
            i["apiVersion"] = Value::from(r.api_version());
            i["kind"] = Value::from(r.kind);
            i
        })
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
        "metadata": {"resourceVersion": ""},
    })
}
