//! Printing as kubectl does: errors (`Error from server (NotFound): ...`), the server's
//! tables with aligned upper-case columns, YAML and JSON. Every command prints through
//! `out!`/`outln!` (and `errln!` for stderr), which end the process
//! quietly when the reader of the output has gone away (`pctl get pods | head -1`).

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

/// `print!` that ends the process quietly (exit 0) when stdout's reader is gone.
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!($($t)*), false) };
}

/// `println!` that ends the process quietly (exit 0) when stdout's reader is gone.
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!(""), true) };
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!($($t)*), true) };
}

/// `eprintln!` that ends the process quietly when stderr's reader is gone.
macro_rules! errln {
    ($($t:tt)*) => { $crate::output::write_stderr(format_args!($($t)*)) };
}

/// An error already printed (kubectl goes on past some failures and exits 1 at the end).
#[derive(Debug, thiserror::Error)]
#[error("the error was reported")]
pub struct Reported;

/// Whether `e` (or anything it was caused by) is a write to a pipe whose reader has gone.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Ends the process after a failed write: quietly with 0 when the reader is gone (as a
/// SIGPIPE-killed kubectl says nothing), else with kubectl's error line and 1.
fn write_failed(e: std::io::Error, stream: &str) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    let _ = writeln!(std::io::stderr(), "error: writing to {stream}: {e}");
    std::process::exit(1);
}

/// Writes to stdout (and a newline when `newline`), ending the process if that fails.
pub fn write_stdout(args: std::fmt::Arguments, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = written {
        write_failed(e, "stdout");
    }
}

/// Writes one line to stderr, ending the process if that fails.
pub fn write_stderr(args: std::fmt::Arguments) {
    let mut err = std::io::stderr().lock();
    if let Err(e) = err.write_fmt(args).and_then(|()| err.write_all(b"\n")) {
        write_failed(e, "stderr");
    }
}

/// Flushes stdout before the process exits on its own, with the same rule as the writes.
pub fn flush_stdout() {
    if let Err(e) = std::io::stdout().flush() {
        write_failed(e, "stdout");
    }
}

/// An error kubectl prints as it is, without `error: ` before it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Plain(pub String);

/// The line kubectl prints for an error.
pub fn error_text(e: &anyhow::Error) -> String {
    if let Some(p) = e.downcast_ref::<Plain>() {
        return p.0.clone();
    }
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

/// The server's error with kubectl's `error when creating "FILE": ` before its message.
pub fn with_source(e: kube::Error, verb: &str, source: &str) -> kube::Error {
    match e {
        kube::Error::Api(mut s) => {
            s.message = format!("error when {verb} {source:?}: {}", s.message);
            kube::Error::Api(s)
        }
        other => other,
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

/// JSON as kubectl prints it (Go's `json.MarshalIndent` with four spaces): keys sorted,
/// `<`, `>`, `&` and the line separators escaped.
pub fn json(v: &Value) -> Result<String> {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    v.serialize(&mut serde_json::Serializer::with_formatter(&mut buf, fmt))?;
    let text = String::from_utf8(buf)?;
    // These characters only occur inside strings in JSON text, so replacing them is safe.
    Ok(text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029"))
}

/// YAML as kubectl prints it.
pub fn yaml(v: &Value) -> Result<String> {
    Ok(crate::yaml::to_string(v))
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
            json(&json!({"b": [], "a": {"x": "<&>"}})).unwrap(),
            "{\n    \"a\": {\n        \"x\": \"\\u003c\\u0026\\u003e\"\n    },\n    \"b\": []\n}"
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
