//! Manifests read as kubectl reads them: YAML 1.1 (go-yaml v2) turned into JSON. Plain scalars
//! get YAML 1.1 types (`yes` is `true`, `0777` is 511, timestamps stay strings), quoted ones are
//! strings, map keys become strings, anchors and merge keys (`<<`) are followed.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use thiserror::Error;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::resolve::{resolve, Resolved};

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("yaml: line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("json: unsupported value: {0}")]
    Unsupported(String),
    #[error("yaml: line {0}: unknown anchor referenced")]
    UnknownAnchor(usize),
    #[error("yaml: line {0}: a map key must be a scalar")]
    ComplexKey(usize),
}

/// A plain value that YAML 1.1 reads as a boolean where YAML 1.2 would read a string (`yes`,
/// `on`, `n`): where it is (`data.enabled`) and how it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Boolean {
    pub path: String,
    pub text: String,
}

/// Every document in `text`, in order (an empty document is `null`).
pub fn documents(text: &str) -> Result<Vec<Value>, ReadError> {
    Ok(documents_noting(text)?
        .into_iter()
        .map(|(v, _)| v)
        .collect())
}

/// [`documents`], each with the YAML 1.1 booleans it holds (for clearer errors).
pub fn documents_noting(text: &str) -> Result<Vec<(Value, Vec<Boolean>)>, ReadError> {
    let mut r = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        path: Vec::new(),
        in_key: false,
        booleans: Vec::new(),
    };
    let mut out = Vec::new();
    loop {
        match r.next()? {
            (Event::StreamEnd, _) => return Ok(out),
            (Event::DocumentStart, _) => {
                let (ev, mark) = r.next()?;
                let v = match ev {
                    Event::DocumentEnd => Value::Null,
                    ev => {
                        let v = r.node(ev, mark)?;
                        r.next()?; // DocumentEnd
                        v
                    }
                };
                out.push((v, std::mem::take(&mut r.booleans)));
            }
            _ => {}
        }
    }
}

struct Reader<'a> {
    parser: Parser<std::str::Chars<'a>>,
    anchors: HashMap<usize, Value>,
    /// Where the node being read is (`spec`, `containers`, `[0]`).
    path: Vec<String>,
    in_key: bool,
    booleans: Vec<Boolean>,
}

impl Reader<'_> {
    fn next(&mut self) -> Result<(Event, Marker), ReadError> {
        self.parser.next_token().map_err(|e| ReadError::Syntax {
            line: e.marker().line(),
            message: e.info().to_string(),
        })
    }

    fn node(&mut self, ev: Event, mark: Marker) -> Result<Value, ReadError> {
        let (v, anchor) = match ev {
            Event::Alias(id) => {
                return self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or(ReadError::UnknownAnchor(mark.line()))
            }
            Event::Scalar(text, style, anchor, tag) => {
                let v = scalar(text.clone(), style, tag.as_ref())?;
                let yaml_1_2_bool = matches!(
                    text.as_str(),
                    "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
                );
                if v.is_boolean() && !yaml_1_2_bool && !self.in_key {
                    self.booleans.push(Boolean {
                        path: self.path.concat().trim_start_matches('.').to_string(),
                        text,
                    });
                }
                (v, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, mark) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    self.path.push(format!("[{}]", items.len()));
                    let item = self.node(ev, mark);
                    self.path.pop();
                    items.push(item?);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => (self.mapping()?, anchor),
            _ => (Value::Null, 0),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
        Ok(v)
    }

    fn mapping(&mut self) -> Result<Value, ReadError> {
        let mut m = Map::new();
        let mut merged = Map::new();
        loop {
            let (ev, mark) = self.next()?;
            let key = match ev {
                Event::MappingEnd => break,
                Event::Scalar(ref text, TScalarStyle::Plain, _, None) if text == "<<" => {
                    let (ev, mark) = self.next()?;
                    match self.node(ev, mark)? {
                        Value::Object(src) => merge_into(&mut merged, src),
                        Value::Array(srcs) => {
                            for s in srcs.into_iter().filter_map(|s| match s {
                                Value::Object(o) => Some(o),
                                _ => None,
                            }) {
                                merge_into(&mut merged, s);
                            }
                        }
                        _ => {}
                    }
                    continue;
                }
                Event::Scalar(..) | Event::Alias(_) => {
                    self.in_key = true;
                    let k = self.node(ev, mark);
                    self.in_key = false;
                    key_text(k?)
                }
                _ => return Err(ReadError::ComplexKey(mark.line())),
            };
            let (ev, mark) = self.next()?;
            self.path.push(format!(".{key}"));
            let v = self.node(ev, mark);
            self.path.pop();
            m.insert(key, v?);
        }
        for (k, v) in merged {
            m.entry(k).or_insert(v);
        }
        Ok(Value::Object(m))
    }
}

fn merge_into(into: &mut Map<String, Value>, src: Map<String, Value>) {
    for (k, v) in src {
        into.entry(k).or_insert(v);
    }
}

/// A map key as kubectl's YAML-to-JSON conversion writes it.
fn key_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn is_core_tag(tag: Option<&Tag>, name: &str) -> bool {
    tag.is_some_and(|t| t.suffix == name && (t.handle == "!!" || t.handle == "tag:yaml.org,2002:"))
}

fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, ReadError> {
    if style != TScalarStyle::Plain || is_core_tag(tag, "str") || is_core_tag(tag, "binary") {
        return Ok(Value::String(text));
    }
    Ok(match resolve(&text) {
        Resolved::Str | Resolved::Timestamp => Value::String(text),
        Resolved::Null => Value::Null,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(i) => Value::from(i),
        Resolved::Uint(u) => Value::from(u),
        Resolved::Float(f) => Value::Number(Number::from_f64(f).ok_or_else(|| {
            ReadError::Unsupported(if f.is_nan() {
                "NaN".into()
            } else if f > 0.0 {
                "+Inf".into()
            } else {
                "-Inf".into()
            })
        })?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Value {
        documents(text).unwrap().remove(0)
    }

    #[test]
    fn yaml_1_1_types() {
        assert_eq!(
            one("data: {enabled: yes, q: 'yes', dq: \"no\", m: 0777, t: 2024-01-01, e: ~}"),
            json!({"data": {"enabled": true, "q": "yes", "dq": "no", "m": 511,
                "t": "2024-01-01", "e": null}})
        );
        assert_eq!(
            one("a: !!str yes\nb: 1_000\nc: 1.5"),
            json!({"a": "yes", "b": 1000, "c": 1.5})
        );
        assert_eq!(one("on: 1\n2: x\n"), json!({"true": 1, "2": "x"}));
        assert!(matches!(
            documents("a: .inf"),
            Err(ReadError::Unsupported(s)) if s == "+Inf"
        ));
    }

    #[test]
    fn yaml_1_1_booleans_are_noted() {
        let docs = documents_noting("data: {a: yes, b: true, on: x}\nl: [n, \"y\"]\n").unwrap();
        let paths: Vec<(&str, &str)> = docs[0]
            .1
            .iter()
            .map(|b| (b.path.as_str(), b.text.as_str()))
            .collect();
        assert_eq!(paths, [("data.a", "yes"), ("l[0]", "n")]);
    }

    #[test]
    fn documents_anchors_and_merges() {
        let docs =
            documents("a: 1\n---\n---\nb: &x {c: 2}\nd: *x\ne:\n  <<: *x\n  f: 3\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1], Value::Null);
        assert_eq!(
            docs[2],
            json!({"b": {"c": 2}, "d": {"c": 2}, "e": {"c": 2, "f": 3}})
        );
        assert_eq!(documents("").unwrap(), Vec::<Value>::new());
        assert!(matches!(documents("a: ["), Err(ReadError::Syntax { .. })));
        assert_eq!(
            one("{\"kind\": \"Pod\", \"n\": 1}"),
            json!({"kind": "Pod", "n": 1})
        );
    }
}
