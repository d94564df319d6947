//! `explain TYPE[.FIELD...]`: a kind's or a field's documentation from the server's OpenAPI v3
//! schemas, in kubectl's layout (KIND/VERSION, FIELD, DESCRIPTION wrapped at 80 columns,
//! FIELDS with their types and `-required-`).

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::Value;
use thiserror::Error;

use crate::{output, resources, Global};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// TYPE or TYPE.FIELD.FIELD...
    pub path: String,
}

/// Why a path cannot be explained.
#[derive(Debug, Error)]
pub enum ExplainError {
    /// kubectl has printed the KIND/VERSION header by the time it finds this.
    #[error("field \"{field}\" does not exist")]
    NoField { header: String, field: String },
    #[error("couldn't find resource for \"{0}\"")]
    NoSchema(String),
}

/// The width kubectl wraps descriptions to (after their four spaces of indentation).
const WRAP: usize = 76;

/// The schema a `$ref` (directly or in `allOf`) points at, by its component name.
fn reference(schema: &Value) -> Option<&str> {
    schema
        .get("$ref")
        .or_else(|| schema.pointer("/allOf/0/$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

/// The type kubectl shows: `string`, `[]Container`, `map[string]string`, `ObjectMeta`.
pub fn type_name(schema: &Value) -> String {
    if let Some(r) = reference(schema) {
        return r.rsplit('.').next().unwrap_or(r).to_string();
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return "IntOrString".into();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => format!(
            "[]{}",
            type_name(schema.get("items").unwrap_or(&Value::Null))
        ),
        Some("object") => match schema.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map[string]{}", type_name(v)),
            _ => "Object".into(),
        },
        Some(t) => t.to_string(),
        None => "Object".into(),
    }
}

/// `text` word-wrapped at `width` as go-wordwrap does: the spaces between words kept, those at
/// a break dropped, long words on lines of their own, line breaks kept.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut len = 0;
        let mut rest = para;
        while !rest.is_empty() {
            let word_at = rest.find(|c| c != ' ').unwrap_or(rest.len());
            let (spaces, tail) = rest.split_at(word_at);
            let word_end = tail.find(' ').unwrap_or(tail.len());
            let (word, next) = tail.split_at(word_end);
            rest = next;
            if word.is_empty() {
                break;
            }
            let (sl, wl) = (spaces.chars().count(), word.chars().count());
            if len > 0 && len + sl + wl > width {
                out.push(std::mem::take(&mut line));
                len = 0;
            } else {
                line.push_str(spaces);
                len += sl;
            }
            line.push_str(word);
            len += wl;
        }
        out.push(line);
    }
    out
}

fn described(text: &str) -> String {
    wrap(text, WRAP)
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect()
}

/// The whole explanation of `fields` (the path after the type) in `root`'s schema.
pub fn render(
    schemas: &Value,
    root: &str,
    group: &str,
    kind: &str,
    version: &str,
    fields: &[&str],
) -> Result<String, ExplainError> {
    let mut out = String::new();
    if !group.is_empty() {
        out.push_str(&format!("GROUP:      {group}\n"));
    }
    out.push_str(&format!("KIND:       {kind}\nVERSION:    {version}\n\n"));
    let resolve = |s: &Value| -> Value {
        match reference(s) {
            Some(r) => schemas.get(r).cloned().unwrap_or(Value::Null),
            None => s.clone(),
        }
    };
    let mut schema = schemas
        .get(root)
        .cloned()
        .ok_or_else(|| ExplainError::NoSchema(root.to_string()))?;
    let mut field: Option<(String, Value)> = None;
    for f in fields {
        // Through arrays and maps to what they hold.
        let mut holder = resolve(&schema);
        while let Some(inner) = holder
            .get("items")
            .or_else(|| holder.get("additionalProperties").filter(|v| v.is_object()))
        {
            holder = resolve(inner);
        }
        let Some(child) = holder.pointer(&format!("/properties/{f}")).cloned() else {
            return Err(ExplainError::NoField {
                header: out,
                field: f.to_string(),
            });
        };
        field = Some((f.to_string(), child.clone()));
        schema = child;
    }
    let mut description = String::new();
    let mut target = resolve(&schema);
    if let Some((name, raw)) = &field {
        out.push_str(&format!("FIELD: {name} <{}>\n\n\n", type_name(raw)));
        description.push_str(raw.get("description").and_then(Value::as_str).unwrap_or(""));
        let mut inner = raw.clone();
        while let Some(i) = inner
            .get("items")
            .or_else(|| inner.get("additionalProperties").filter(|v| v.is_object()))
            .cloned()
        {
            inner = i;
        }
        if reference(&inner).is_some() {
            target = resolve(&inner);
            if let Some(d) = target.get("description").and_then(Value::as_str) {
                if !description.is_empty() {
                    description.push('\n');
                }
                description.push_str(d);
            }
        }
    } else {
        description.push_str(
            target
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
    }
    out.push_str("DESCRIPTION:\n");
    out.push_str(&described(&description));
    out.push_str("    \n");
    if let Some(props) = target.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = target
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str("FIELDS:\n");
        for (name, p) in props {
            let req = if required.contains(&name.as_str()) {
                " -required-"
            } else {
                ""
            };
            out.push_str(&format!("  {name}\t<{}>{req}\n", type_name(p)));
            let d = p.get("description").and_then(Value::as_str).unwrap_or("");
            out.push_str(&described(d));
            out.push('\n');
        }
    }
    out.push('\n');
    Ok(out)
}

pub async fn explain(g: &Global, a: ExplainArgs) -> Result<()> {
    let mut parts = a.path.split('.');
    let type_name = parts.next().unwrap_or("");
    let fields: Vec<&str> = parts.collect();
    // kubectl explain says this one without "error: ".
    let r = api::registry::find_by_user_name(type_name).ok_or_else(|| {
        output::Plain(format!(
            "the server doesn't have a resource type \"{type_name}\""
        ))
    })?;
    let conn = resources::connect(g).await?;
    let index = output::fetch_json(&conn.client, "/openapi/v3").await?;
    let gv = if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    };
    let url = index
        .pointer(&format!(
            "/paths/{}/serverRelativeURL",
            gv.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("error: the server has no OpenAPI schema for {gv}"))?;
    let doc = output::fetch_json(&conn.client, url).await?;
    let schemas = doc
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or(Value::Null);
    match render(&schemas, r.schema_name, r.group, r.kind, r.version, &fields) {
        Ok(text) => {
            out!("{text}");
            Ok(())
        }
        Err(e @ ExplainError::NoField { .. }) => {
            if let ExplainError::NoField { header, .. } = &e {
                out!("{header}");
            }
            bail!("error: {e}")
        }
        Err(e) => bail!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wraps_and_types() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("a.  Bb cc dd", 6), ["a.  Bb", "cc dd"]);
        assert_eq!(
            wrap("x https://very-long-url y", 5),
            ["x", "https://very-long-url", "y"]
        );
        assert_eq!(
            type_name(&json!({"type": "array", "items": {"type": "string"}})),
            "[]string"
        );
        assert_eq!(
            type_name(
                &json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]})
            ),
            "PodSpec"
        );
        assert_eq!(
            type_name(&json!({"type": "object", "additionalProperties": {"type": "string"}})),
            "map[string]string"
        );
        let schemas = json!({"x.Pod": {"description": "A pod.", "required": ["spec"],
            "properties": {"spec": {"type": "string", "description": "The spec."}}}});
        assert_eq!(
            render(&schemas, "x.Pod", "", "Pod", "v1", &[]).unwrap(),
            "KIND:       Pod\nVERSION:    v1\n\nDESCRIPTION:\n    A pod.\n    \nFIELDS:\n  \
             spec\t<string> -required-\n    The spec.\n\n\n"
        );
        assert!(render(&schemas, "x.Pod", "", "Pod", "v1", &["nope"]).is_err());
    }
}
