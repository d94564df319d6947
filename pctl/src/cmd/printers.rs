//! `get`'s output formats: the server's table (plain or wide, with `--show-labels`), yaml,
//! json, name, `jsonpath=TEMPLATE` and `custom-columns=HEADER:PATH,...`; and `--sort-by`.

use std::cmp::Ordering;

use anyhow::{anyhow, Result};
use serde_json::Value;

use crate::jsonpath::{self, Template};

/// How `get` prints what it found.
pub enum Format {
    Table { wide: bool },
    Yaml,
    Json,
    Name,
    JsonPath(Template),
    CustomColumns(Vec<(String, Template)>),
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        let bad_template =
            |e: jsonpath::TemplateError| anyhow!("error: error parsing jsonpath {s}, {e}");
        Ok(match s.split_once('=') {
            None => match s {
                "" => Format::Table { wide: false },
                "wide" => Format::Table { wide: true },
                "yaml" => Format::Yaml,
                "json" => Format::Json,
                "name" => Format::Name,
                _ => return Err(unknown(s)),
            },
            Some(("jsonpath", t)) => Format::JsonPath(Template::parse(t).map_err(bad_template)?),
            Some(("custom-columns", spec)) => {
                let mut cols = Vec::new();
                for col in spec.split(',') {
                    let (header, path) = col.split_once(':').ok_or_else(|| {
                        anyhow!(
                            "error: unexpected custom-columns spec: {col}, expected <header>:<json-path-expr>"
                        )
                    })?;
                    cols.push((header.to_string(), relaxed(path).map_err(bad_template)?));
                }
                Format::CustomColumns(cols)
            }
            _ => return Err(unknown(s)),
        })
    }

    /// Whether this format prints objects (not the server's table).
    pub fn objects(&self) -> bool {
        !matches!(self, Format::Table { .. })
    }
}

fn unknown(s: &str) -> anyhow::Error {
    anyhow!(
        "error: unable to match a printer suitable for the output format \"{s}\", allowed \
         formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,\
         jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml"
    )
}

/// A path as custom columns and `--sort-by` take it: `.a.b`, `a.b` or `{.a.b}`.
pub fn relaxed(path: &str) -> Result<Template, jsonpath::TemplateError> {
    let p = path.trim();
    let inner = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let inner = if inner.starts_with('.') || inner.starts_with('$') || inner.starts_with('@') {
        inner.to_string()
    } else {
        format!(".{inner}")
    };
    Template::parse(&format!("{{{inner}}}"))
}

/// The custom-columns table of `items`.
pub fn custom_columns(
    cols: &[(String, Template)],
    items: &[Value],
    header: bool,
) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    if header {
        rows.push(cols.iter().map(|(h, _)| h.clone()).collect());
    }
    for item in items {
        let mut row = Vec::new();
        for (_, t) in cols {
            let vals = t.values(item)?;
            row.push(if vals.is_empty() {
                "<none>".to_string()
            } else {
                vals.iter()
                    .map(jsonpath::text)
                    .collect::<Vec<_>>()
                    .join(",")
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `a=1,b=2` (sorted), or `<none>`: the LABELS column of `--show-labels`.
pub fn labels_cell(obj: &Value) -> String {
    match obj.pointer("/metadata/labels").and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// Compares two objects by the value `--sort-by` names: numbers as numbers, the rest as text;
/// objects without the value first.
pub fn compare(t: &Template, a: &Value, b: &Value) -> Ordering {
    let key = |v: &Value| t.values(v).ok().and_then(|vals| vals.into_iter().next());
    match (key(a), key(b)) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(x), Some(y)) => jsonpath::text(&x).cmp(&jsonpath::text(&y)),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_and_columns() {
        assert!(matches!(
            Format::parse("wide").unwrap(),
            Format::Table { wide: true }
        ));
        assert!(Format::parse("xml").is_err());
        let Format::CustomColumns(cols) = Format::parse(
            "custom-columns=NAME:.metadata.name,IMAGES:spec.containers[*].image,X:.x",
        )
        .unwrap() else {
            panic!("custom columns expected");
        };
        let items = [json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"image": "a"}, {"image": "b"}]}})];
        assert_eq!(
            custom_columns(&cols, &items, true).unwrap(),
            vec![vec!["NAME", "IMAGES", "X"], vec!["p", "a,b", "<none>"]]
        );
        let t = relaxed("{.spec.replicas}").unwrap();
        let (a, b) = (
            json!({"spec": {"replicas": 10}}),
            json!({"spec": {"replicas": 9}}),
        );
        assert_eq!(compare(&t, &a, &b), Ordering::Greater);
        assert_eq!(
            labels_cell(&json!({"metadata": {"labels": {"b": "2", "a": "1"}}})),
            "a=1,b=2"
        );
    }
}
