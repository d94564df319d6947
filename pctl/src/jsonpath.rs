//! kubectl's JSONPath templates (`-o jsonpath=`, `-o custom-columns=`, `--sort-by`): text with
//! `{...}` actions, `{range ...}{end}` loops and `{"\n"}` literals. Each path is turned into
//! an RFC 9535 JSONPath (`.metadata.labels.app` → `$['metadata']['labels']['app']`) and
//! evaluated by the jsonpath-rust crate; a missing field prints nothing, as in `kubectl get`.

use jsonpath_rust::JsonPath;
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("unclosed action")]
    Unclosed,
    #[error("unexpected {{end}}")]
    UnexpectedEnd,
    #[error("missing {{end}}")]
    MissingEnd,
    #[error("unrecognized identifier {0}")]
    BadPath(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(String),
    Range(String, Vec<Node>),
}

/// A template ready to run on objects.
#[derive(Debug, Clone)]
pub struct Template(Vec<Node>);

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut stack: Vec<(String, Vec<Node>)> = Vec::new();
        let mut nodes = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_string()));
            }
            let close = action_end(&rest[open..]).ok_or(TemplateError::Unclosed)?;
            let action = rest[open + 1..open + close].trim();
            rest = &rest[open + close + 1..];
            if let Some(path) = action.strip_prefix("range ") {
                stack.push((path.trim().to_string(), std::mem::take(&mut nodes)));
            } else if action == "end" {
                let (path, outer) = stack.pop().ok_or(TemplateError::UnexpectedEnd)?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            } else if let Some(lit) = literal(action) {
                nodes.push(Node::Text(lit));
            } else {
                rfc_path(action)?;
                nodes.push(Node::Path(action.to_string()));
            }
        }
        if !stack.is_empty() {
            return Err(TemplateError::MissingEnd);
        }
        Ok(Template(nodes))
    }

    /// The template's text for `v`.
    pub fn render(&self, v: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        render(&self.0, v, v, &mut out)?;
        Ok(out)
    }

    /// The values of a template that is one path (custom columns, `--sort-by`).
    pub fn values(&self, v: &Value) -> Result<Vec<Value>, TemplateError> {
        let mut out = Vec::new();
        for n in &self.0 {
            if let Node::Path(p) = n {
                out.extend(query(p, v, v)?);
            }
        }
        Ok(out)
    }
}

/// The length of the `{...}` action at the start of `s`, up to its `}` (not counting braces
/// inside quotes).
fn action_end(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
        escaped = false;
    }
    None
}

/// A quoted literal action (`"\n"`, `'\t'`), unescaped.
fn literal(action: &str) -> Option<String> {
    let q = action.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = action.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

/// A kubectl path (`.a.b[0]`, `@.x`, `$.y`, `..name`, `a.b`) as an RFC 9535 path from `$`,
/// and whether it starts at the root (`$`) rather than the current object.
fn rfc_path(p: &str) -> Result<(String, bool), TemplateError> {
    let bad = || TemplateError::BadPath(p.to_string());
    let (root, body) = match p.strip_prefix('$') {
        Some(rest) => (true, rest),
        None => (false, p.strip_prefix('@').unwrap_or(p)),
    };
    let mut out = String::from("$");
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    // A path without a leading dot (`metadata.name`, as custom columns allow).
    let mut expect_name = !chars.is_empty() && chars[0] != '.' && chars[0] != '[';
    while i < chars.len() || expect_name {
        if expect_name || chars[i] == '.' {
            if !expect_name {
                i += 1;
                if chars.get(i) == Some(&'.') {
                    out.push_str("..");
                    i += 1;
                    if chars.get(i) == Some(&'[') {
                        continue;
                    }
                }
            }
            expect_name = false;
            let start = i;
            while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                i += 1;
            }
            let name: String = chars[start..i]
                .iter()
                .collect::<String>()
                .replace("\\.", ".");
            if name.is_empty() {
                if i >= chars.len() {
                    break; // `{.}`: the object itself
                }
                return Err(bad());
            }
            if name == "*" {
                out.push_str("[*]");
            } else {
                out.push_str(&format!("['{}']", name.replace('\'', "\\'")));
            }
        } else if chars[i] == '[' {
            let start = i;
            let mut depth = 0;
            let mut quote = None;
            while i < chars.len() {
                let c = chars[i];
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (None, '"' | '\'') => quote = Some(c),
                    (None, '[') => depth += 1,
                    (None, ']') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(bad());
            }
            let inner: String = chars[start + 1..i].iter().collect();
            i += 1;
            // kubectl's filters are written `[?(@.x=="y")]`; RFC 9535 takes them as is.
            out.push('[');
            out.push_str(&inner);
            out.push(']');
        } else {
            return Err(bad());
        }
    }
    Ok((out, root))
}

fn query(p: &str, root: &Value, current: &Value) -> Result<Vec<Value>, TemplateError> {
    let (path, from_root) = rfc_path(p)?;
    let target = if from_root { root } else { current };
    let found = target
        .query(&path)
        .map_err(|e| TemplateError::BadPath(format!("{p}: {e}")))?;
    Ok(found.into_iter().cloned().collect())
}

/// A value as kubectl prints it in a template: strings raw, the rest as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render(
    nodes: &[Node],
    root: &Value,
    current: &Value,
    out: &mut String,
) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let vals = query(p, root, current)?;
                out.push_str(&vals.iter().map(text).collect::<Vec<_>>().join(" "));
            }
            Node::Range(p, body) => {
                for item in query(p, root, current)? {
                    render(body, root, &item, out)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn kubectl_templates() {
        let list = json!({"items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
             "spec": {"containers": [{"image": "i1"}, {"image": "i2"}]}},
            {"metadata": {"name": "b", "labels": {}}, "spec": {"containers": [{"image": "i3"}]}},
        ]});
        assert_eq!(run("{.items[*].metadata.name}", &list), "a b");
        assert_eq!(
            run("{range .items[*]}{.metadata.name}{\"\\t\"}{.spec.containers[*].image}{\"\\n\"}{end}", &list),
            "a\ti1 i2\nb\ti3\n"
        );
        assert_eq!(
            run("{.items[0].metadata.labels}", &list),
            "{\"app.kubernetes.io/name\":\"x\"}"
        );
        assert_eq!(
            run(
                "{.items[0].metadata.labels.app\\.kubernetes\\.io/name}",
                &list
            ),
            "x"
        );
        assert_eq!(
            run(
                "{.items[0].metadata.labels['app.kubernetes.io/name']}",
                &list
            ),
            "x"
        );
        assert_eq!(
            run(
                "{.items[?(@.metadata.name==\"b\")].spec.containers[0].image}",
                &list
            ),
            "i3"
        );
        assert_eq!(run("{.items[*].missing}", &list), "");
        assert_eq!(run("name: {.items[1].metadata.name}!", &list), "name: b!");
        assert_eq!(run("{..image}", &list), "i1 i2 i3");
        assert!(Template::parse("{.a").is_err());
        assert!(Template::parse("{range .a}").is_err());
        let t = Template::parse("{.metadata.name}").unwrap();
        assert_eq!(t.values(&list["items"][1]).unwrap(), vec![json!("b")]);
        assert_eq!(
            Template::parse("metadata.name").unwrap().0,
            vec![Node::Text("metadata.name".into())]
        );
    }
}
