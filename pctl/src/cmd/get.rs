//! `get`: the server's table (or another format, see [`printers`](super::printers)), selectors,
//! all namespaces, `--sort-by`, `--show-labels`, `-w`.

use anyhow::{anyhow, Result};
use clap::Args;
use futures::{AsyncBufReadExt, TryStreamExt};
use serde_json::Value;

use super::printers::{self, Format};
use crate::{output, resources, Global};
use api::registry::Resource;

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
    /// Add a LABELS column to the table.
    #[arg(long)]
    pub show_labels: bool,
    /// Sort by the value at this JSONPath (`.metadata.name`, `{.spec.replicas}`).
    #[arg(long)]
    pub sort_by: Option<String>,
    /// Leave out the header line of tables.
    #[arg(long)]
    pub no_headers: bool,
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
    let fmt = Format::parse(a.output.as_deref().unwrap_or(""))?;
    let sort = match &a.sort_by {
        Some(p) => Some(
            printers::relaxed(p).map_err(|e| anyhow!("error: error parsing jsonpath {p}, {e}"))?,
        ),
        None => None,
    };
    let conn = resources::connect(g).await?;
    let targets = resources::targets(&a.args)?;
    let ns = if a.all_namespaces {
        None
    } else {
        Some(conn.namespace.as_str())
    };
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
    // Object formats: one object when exactly one was named, else one List of everything.
    let mut items = Vec::new();
    for (r, name) in &targets {
        let mut path = resources::path(r, ns, name.as_deref());
        if !q.is_empty() && name.is_none() {
            path = format!("{path}?{q}");
        }
        if fmt.objects() {
            let v = output::fetch_json(&conn.client, &path).await?;
            if name.is_some() {
                items.push((*r, v));
            } else {
                items.extend(list_items(v, r).into_iter().map(|i| (*r, i)));
            }
            continue;
        }
        let Format::Table { wide } = fmt else {
            continue;
        };
        let t = output::fetch_table(&conn.client, &path).await?;
        last_rv = t
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let t = match &sort {
            Some(key) => sort_table(t, &output::fetch_json(&conn.client, &path).await?, key),
            None => t,
        };
        let mut rows = output::table_rows(&t, wide, a.all_namespaces && r.namespaced, true);
        if a.show_labels {
            rows[0].push("LABELS".into());
            for (row, raw) in rows.iter_mut().skip(1).zip(rows_objects(&t)) {
                row.push(printers::labels_cell(&raw));
            }
        }
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
                    outln!();
                }
            }
            any = true;
            let from = usize::from(a.no_headers);
            out!("{}", output::align(&rows[from..]));
            printed_header = true;
        }
    }
    if fmt.objects() {
        if let Some(key) = &sort {
            items.sort_by(|(_, x), (_, y)| printers::compare(key, x, y));
        }
        return print_objects(&fmt, &targets, items, &a, ns);
    }
    if !any && !a.watch {
        no_resources(&targets, ns);
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
                matches!(fmt, Format::Table { wide: true }),
                a.all_namespaces && r.namespaced,
                !printed_header,
            );
            printed_header = true;
            out!("{}", output::align(&rows));
        }
    }
    Ok(())
}

/// Prints what an object format shows of `items`.
fn print_objects(
    fmt: &Format,
    targets: &[(&'static Resource, Option<String>)],
    items: Vec<(&'static Resource, Value)>,
    a: &GetArgs,
    ns: Option<&str>,
) -> Result<()> {
    let single = targets.len() == 1 && targets[0].1.is_some();
    let doc = || {
        let mut objs: Vec<Value> = items.iter().map(|(_, v)| v.clone()).collect();
        match objs.pop() {
            Some(v) if single => v,
            last => {
                objs.extend(last);
                list(objs)
            }
        }
    };
    match fmt {
        Format::Json => outln!("{}", output::json(&doc())?),
        Format::Yaml => out!("{}", output::yaml(&doc())?),
        Format::JsonPath(t) => {
            let text = t
                .render(&doc())
                .map_err(|e| anyhow!("error: error executing jsonpath: {e}"))?;
            out!("{text}");
        }
        Format::Name => {
            for (r, i) in &items {
                let name = i
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                outln!("{}", resources::display_name(r, name));
            }
        }
        Format::CustomColumns(cols) => {
            let objs: Vec<Value> = items.iter().map(|(_, v)| v.clone()).collect();
            let rows = printers::custom_columns(cols, &objs, !a.no_headers)?;
            if !objs.is_empty() {
                out!("{}", output::align(&rows));
            }
        }
        Format::Table { .. } => {}
    }
    if items.is_empty() && matches!(fmt, Format::Name | Format::CustomColumns(_)) {
        no_resources(targets, ns);
    }
    Ok(())
}

fn no_resources(targets: &[(&'static Resource, Option<String>)], ns: Option<&str>) {
    match ns {
        Some(n) if targets.iter().any(|(r, _)| r.namespaced) => {
            errln!("No resources found in {n} namespace.")
        }
        _ => errln!("No resources found"),
    }
}

/// The objects of a table's rows (metadata at least), in order.
fn rows_objects(t: &Value) -> Vec<Value> {
    t["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["object"].clone())
        .collect()
}

/// The table with its rows in the order of `list`'s items sorted by `key`.
fn sort_table(mut t: Value, list: &Value, key: &crate::jsonpath::Template) -> Value {
    let mut items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
    items.sort_by(|x, y| printers::compare(key, x, y));
    let rank = |row: &Value| {
        let uid = row.pointer("/object/metadata/uid");
        let name = row.pointer("/object/metadata/name");
        items
            .iter()
            .position(|i| match uid {
                Some(u) => i.pointer("/metadata/uid") == Some(u),
                None => i.pointer("/metadata/name") == name,
            })
            .unwrap_or(usize::MAX)
    };
    if let Some(rows) = t["rows"].as_array_mut() {
        rows.sort_by_key(|r| rank(r));
    }
    t
}

/// The items of a list response, each with the kind and apiVersion kubectl shows.
fn list_items(v: Value, r: &api::registry::Resource) -> Vec<Value> {
    let Value::Object(mut m) = v else {
        return Vec::new();
    };
    let Some(Value::Array(items)) = m.remove("items") else {
        return Vec::new();
    };
    items
        .into_iter()
        .map(|mut i| {
            i["apiVersion"] = Value::from(r.api_version());
            i["kind"] = Value::from(r.kind);
            i
        })
        .collect()
}

/// A plain list as kubectl prints it: `kind: List` holding every item, whatever its kind.
fn list(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
        "metadata": {"resourceVersion": ""},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_list_for_every_kind() {
        let pods = json!({"kind": "PodList", "items": [{"metadata": {"name": "p"}}]});
        let svcs = json!({"kind": "ServiceList", "items": [{"metadata": {"name": "s"}}]});
        let mut items = list_items(pods, api::registry::find_by_user_name("po").unwrap());
        items.extend(list_items(
            svcs,
            api::registry::find_by_user_name("svc").unwrap(),
        ));
        let l = list(items);
        assert_eq!(l["kind"], "List");
        assert_eq!(l["metadata"], json!({"resourceVersion": ""}));
        assert_eq!(l["items"][0]["kind"], "Pod");
        assert_eq!(l["items"][1]["kind"], "Service");
        assert_eq!(l["items"][1]["apiVersion"], "v1");
    }
}
