//! Printing as kubectl does: errors (`Error from server (NotFound): ...`), the server's
//! tables with aligned upper-case columns, YAML and JSON.

use anyhow::Result;
use serde_json::Value;

/// The line kubectl prints for an error.
pub fn error_text(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(kube::Error::Api(s)) = cause.downcast_ref::<kube::Error>() {
            return format!("Error from server ({}): {}", s.reason, s.message);
        }
    }
    let text = format!("{e:#}");
    if text.starts_with("error:") || text.starts_with("Error") {
        text
    } else {
        format!("error: {text}")
    }
}

/// Fetches `path` as a `meta.k8s.io/v1 Table`.
pub async fn fetch_table(client: &kube::Client, path: &str) -> Result<Value> {
    let req = http::Request::get(path)
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(serde_json::from_str(&text)?)
}

/// Fetches `path` as plain JSON.
pub async fn fetch_json(client: &kube::Client, path: &str) -> Result<Value> {
    let req = http::Request::get(path).body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(serde_json::from_str(&text)?)
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".into(),
        other => other.to_string(),
    }
}

/// The header and rows of a Table: priority-0 columns, plus the wide ones when `wide`,
/// with a NAMESPACE column first when `namespace_column`.
pub fn table_rows(
    table: &Value,
    wide: bool,
    namespace_column: bool,
    header: bool,
) -> Vec<Vec<String>> {
    let cols = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let keep: Vec<usize> = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    if header {
        let mut h: Vec<String> = keep
            .iter()
            .map(|i| cols[*i]["name"].as_str().unwrap_or("").to_uppercase())
            .collect();
        if namespace_column {
            h.insert(0, "NAMESPACE".into());
        }
        out.push(h);
    }
    for row in table["rows"].as_array().cloned().unwrap_or_default() {
        let cells = row["cells"].as_array().cloned().unwrap_or_default();
        let mut r: Vec<String> = keep
            .iter()
            .map(|i| cells.get(*i).map(cell_text).unwrap_or_default())
            .collect();
        if namespace_column {
            r.insert(
                0,
                row.pointer("/object/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        out.push(r);
    }
    out
}

/// Lines aligned as kubectl's tabwriter: columns padded to the widest cell plus 3 spaces.
pub fn align(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// YAML as kubectl prints it.
pub fn yaml(v: &Value) -> Result<String> {
    Ok(serde_norway::to_string(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_like_kubectl() {
        let t = json!({
            "columnDefinitions": [
                {"name": "Name", "priority": 0},
                {"name": "Ready", "priority": 0},
                {"name": "IP", "priority": 1},
            ],
            "rows": [
                {
                    "cells": ["web", "1/1", "10.0.0.1"],
                    "object": {"metadata": {"namespace": "default"}},
                },
                {"cells": ["a", "0/1", "<none>"], "object": {"metadata": {"namespace": "x"}}},
            ],
        });
        assert_eq!(
            align(&table_rows(&t, false, false, true)),
            "NAME   READY\nweb    1/1\na      0/1\n"
        );
        assert_eq!(
            align(&table_rows(&t, true, true, true))
                .lines()
                .next()
                .unwrap(),
            "NAMESPACE   NAME   READY   IP"
        );
    }
}
