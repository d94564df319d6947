//! Label selectors (`app=web,tier in (a,b),!canary`) and field selectors
//! (`spec.nodeName=n1,status.phase!=Running`) with Kubernetes' syntax, supported fields and
//! error messages.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sLabelSelector;
use serde_json::{Map, Value};

use crate::registry::Resource;

/// Why a selector could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    #[error("found '{found}', expected: {expected}")]
    Syntax { found: String, expected: String },
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Field(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    fn matches<'v>(&self, get: &dyn Fn(&str) -> Option<&'v str>) -> bool {
        let v = get(&self.key);
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Op::Equals | Op::In => v.is_some_and(listed),
            Op::NotEquals | Op::NotIn => v.is_none_or(|v| !listed(v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars().all(is_name_char)
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Kubernetes' label key rule (`[prefix/]name`).
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !valid_dns_subdomain(p) {
            return Err(format!(
                "{key:?}: prefix part a lowercase RFC 1123 subdomain must consist \
                of lower case alphanumeric characters, '-' or '.', and must start and end with an \
                alphanumeric character"
            ));
        }
    }
    if !valid_name(name) {
        return Err(format!(
            "{key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
                '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ));
    }
    Ok(())
}

/// Kubernetes' label value rule (empty, or a name of at most 63 characters).
pub fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || valid_name(v) {
        Ok(())
    } else {
        Err(format!(
            "{v:?}: a valid label must be an empty string or consist of alphanumeric \
            characters, '-', '_' or '.', and must start and end with an alphanumeric character \
            (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
            '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ))
    }
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Result<Vec<String>, SelectorError> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(SelectorError::Syntax {
                        found: ")".into(),
                        expected: "identifier".into(),
                    });
                }
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if depth != 0 {
        return Err(SelectorError::Syntax {
            found: "end of string".into(),
            expected: "')'".into(),
        });
    }
    out.push(cur);
    Ok(out)
}

fn parse_requirement(term: &str) -> Result<Requirement, SelectorError> {
    let t = term.trim();
    let bad = |msg: String| SelectorError::Requirement(msg);
    if t.is_empty() {
        return Err(SelectorError::Syntax {
            found: "','".into(),
            expected: "!, identifier".into(),
        });
    }
    if let Some(key) = t.strip_prefix('!') {
        let key = key.trim();
        check_label_key(key).map_err(bad)?;
        return Ok(Requirement {
            key: key.into(),
            op: Op::DoesNotExist,
            values: vec![],
        });
    }
    for (sym, op) in [("!=", Op::NotEquals), ("==", Op::Equals), ("=", Op::Equals)] {
        if let Some((k, v)) = t.split_once(sym) {
            let (k, v) = (k.trim(), v.trim());
            check_label_key(k).map_err(bad)?;
            check_label_value(v).map_err(bad)?;
            return Ok(Requirement {
                key: k.into(),
                op,
                values: vec![v.into()],
            });
        }
    }
    // `key in (a,b)` / `key notin (a,b)` / `key`
    let (key, rest) = match t.find(|c: char| c.is_whitespace() || c == '(') {
        Some(i) => (t[..i].trim(), t[i..].trim()),
        None => (t, ""),
    };
    check_label_key(key).map_err(bad)?;
    if rest.is_empty() {
        return Ok(Requirement {
            key: key.into(),
            op: Op::Exists,
            values: vec![],
        });
    }
    let (op, list) = if let Some(l) = rest.strip_prefix("notin") {
        (Op::NotIn, l.trim())
    } else if let Some(l) = rest.strip_prefix("in") {
        (Op::In, l.trim())
    } else {
        return Err(SelectorError::Syntax {
            found: rest.to_string(),
            expected: "=, !=, ==, in, notin".into(),
        });
    };
    let inner = list
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Syntax {
            found: list.to_string(),
            expected: "'('".into(),
        })?;
    let values: Vec<String> = inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(bad(
            "for 'in', 'notin' operators, values set can't be empty".to_string(),
        ));
    }
    for v in &values {
        check_label_value(v).map_err(bad)?;
    }
    Ok(Requirement {
        key: key.into(),
        op,
        values,
    })
}

impl LabelSelector {
    /// Parses Kubernetes' label selector syntax.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        let reqs = split_top(s)?
            .iter()
            .map(|t| parse_requirement(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelSelector { reqs })
    }

    /// From a `metav1.LabelSelector` (matchLabels and matchExpressions).
    pub fn from_k8s(sel: &K8sLabelSelector) -> Result<LabelSelector, SelectorError> {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement {
                key: k.clone(),
                op: Op::Equals,
                values: vec![v.clone()],
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(SelectorError::Requirement(format!(
                        "{other:?} is not a valid label selector operator"
                    )))
                }
            };
            let mut values = e.values.clone().unwrap_or_default();
            values.sort();
            reqs.push(Requirement {
                key: e.key.clone(),
                op,
                values,
            });
        }
        Ok(LabelSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether a label map (JSON) matches.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.reqs.iter().all(|r| r.matches(&get))
    }

    /// Whether a label map matches.
    pub fn matches_btree(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &str| labels.get(k).map(String::as_str);
        self.reqs.iter().all(|r| r.matches(&get))
    }

    /// Whether the labels that `get` looks up (a key's value, None when absent) match.
    pub fn matches_by<'v>(&self, get: &dyn Fn(&str) -> Option<&'v str>) -> bool {
        self.reqs.iter().all(|r| r.matches(get))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .reqs
            .iter()
            .map(|r| match r.op {
                Op::Equals => format!("{}={}", r.key, r.values[0]),
                Op::NotEquals => format!("{}!={}", r.key, r.values[0]),
                Op::In => format!("{} in ({})", r.key, r.values.join(",")),
                Op::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Op::Exists => r.key.clone(),
                Op::DoesNotExist => format!("!{}", r.key),
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// A parsed field selector.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    kind: String,
    /// (field, equal (vs not equal), value)
    terms: Vec<(String, bool, String)>,
}

/// The fields a field selector may name: (kind, or "" for every kind; field; where it lives in
/// the object).
const FIELDS: &[(&str, &str, &str)] = &[
    ("", "metadata.name", "/metadata/name"),
    ("", "metadata.namespace", "/metadata/namespace"),
    ("Pod", "spec.nodeName", "/spec/nodeName"),
    ("Pod", "spec.restartPolicy", "/spec/restartPolicy"),
    ("Pod", "spec.schedulerName", "/spec/schedulerName"),
    ("Pod", "spec.serviceAccountName", "/spec/serviceAccountName"),
    ("Pod", "spec.hostNetwork", "/spec/hostNetwork"),
    ("Pod", "status.phase", "/status/phase"),
    ("Pod", "status.podIP", "/status/podIP"),
    (
        "Pod",
        "status.nominatedNodeName",
        "/status/nominatedNodeName",
    ),
    ("Event", "involvedObject.kind", "/involvedObject/kind"),
    (
        "Event",
        "involvedObject.namespace",
        "/involvedObject/namespace",
    ),
    ("Event", "involvedObject.name", "/involvedObject/name"),
    ("Event", "involvedObject.uid", "/involvedObject/uid"),
    (
        "Event",
        "involvedObject.apiVersion",
        "/involvedObject/apiVersion",
    ),
    (
        "Event",
        "involvedObject.resourceVersion",
        "/involvedObject/resourceVersion",
    ),
    (
        "Event",
        "involvedObject.fieldPath",
        "/involvedObject/fieldPath",
    ),
    ("Event", "reason", "/reason"),
    ("Event", "reportingComponent", "/reportingComponent"),
    ("Event", "source", "/source/component"),
    ("Event", "type", "/type"),
    ("Node", "spec.unschedulable", "/spec/unschedulable"),
    ("Namespace", "status.phase", "/status/phase"),
    ("Secret", "type", "/type"),
    ("ReplicaSet", "status.replicas", "/status/replicas"),
    ("Service", "spec.clusterIP", "/spec/clusterIP"),
    ("Service", "spec.type", "/spec/type"),
];

/// Where `field` lives in objects of `kind`; None when they cannot be selected by it.
fn field_path(kind: &str, field: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|(k, f, _)| *f == field && (k.is_empty() || *k == kind))
        .map(|(_, _, p)| *p)
}

/// The fields objects of `kind` can be selected by, always in the same order.
pub fn selectable_fields(kind: &str) -> impl Iterator<Item = &'static str> + '_ {
    FIELDS
        .iter()
        .filter(move |(k, _, _)| k.is_empty() || *k == kind)
        .map(|(_, f, _)| *f)
}

/// The field by whose value the apiserver's watch cache indexes a resource's watchers
/// (Kubernetes' trigger functions): a pod's `spec.nodeName`, which every agent watches with,
/// so that an event wakes only the watchers of its node.
pub fn indexed_field(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("spec.nodeName"),
        _ => None,
    }
}

/// A field's value as a selector compares it: booleans and numbers as text, absent as "".
pub fn field_value(kind: &str, obj: &Value, field: &str) -> String {
    let Some(ptr) = field_path(kind, field) else {
        return String::new();
    };
    match obj.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ if matches!(field, "spec.unschedulable" | "spec.hostNetwork") => "false".into(),
        _ if field == "status.replicas" => "0".into(),
        _ => String::new(),
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits on unescaped `sep`.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push('\\');
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

impl FieldSelector {
    /// Parses `f=v,f!=v` for `resource`, refusing fields it cannot be selected by.
    pub fn parse(resource: &Resource, s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for term in split_unescaped(s, ',') {
            if term.trim().is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError::Field(s.to_string(), term.clone()));
            };
            let field = field.trim();
            if field_path(resource.kind, field).is_none() {
                return Err(SelectorError::UnsupportedField(field.to_string()));
            }
            terms.push((field.to_string(), equal, unescape(value.trim())));
        }
        Ok(FieldSelector {
            kind: resource.kind.to_string(),
            terms,
        })
    }

    /// Whether the object matches every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|(f, equal, v)| (field_value(&self.kind, obj, f) == *v) == *equal)
    }

    /// Whether the field values that `value` gives (as [`field_value`] computes them for
    /// this selector's kind) match every term.
    pub fn matches_by<'v>(&self, value: &dyn Fn(&str) -> &'v str) -> bool {
        self.terms
            .iter()
            .all(|(f, equal, v)| (value(f) == v.as_str()) == *equal)
    }

    /// The kind of object this selector is for.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The value an `=` term requires of `field` (e.g. the node of `spec.nodeName=n1`).
    pub fn single_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, e, _)| f == field && *e)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn label_selector_syntax() {
        let l = labels(json!({"app": "web", "tier": "front", "env": "prod"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("tier notin (front)", false),
            ("env", true),
            ("!canary", true),
            ("!app", false),
            ("app=web,tier in (front,back),!canary", true),
            ("missing!=x", true),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("a in (x").is_err());
        assert!(LabelSelector::parse("Bad Key=x").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
        assert_eq!(
            LabelSelector::parse("a in (x,y),!b").unwrap().to_string(),
            "a in (x,y),!b"
        );
    }

    #[test]
    fn from_k8s_selector() {
        let sel: K8sLabelSelector = serde_json::from_value(json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b",
            "a"]}]}))
        .unwrap();
        let s = LabelSelector::from_k8s(&sel).unwrap();
        assert_eq!(s.to_string(), "app=web,tier in (a,b)");
        assert!(s.matches(&labels(json!({"app": "web", "tier": "a"}))));
    }

    #[test]
    fn field_selectors() {
        let pods = crate::registry::find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse(pods, "spec.nodeName=n1,status.phase!=Pending")
                .unwrap()
                .matches(&pod)
        );
        assert!(!FieldSelector::parse(pods, "metadata.name=q")
            .unwrap()
            .matches(&pod));
        assert!(FieldSelector::parse(pods, "spec.nodeName=")
            .unwrap()
            .matches(&json!({"spec": {}})));
        assert_eq!(
            FieldSelector::parse(pods, "spec.nodeName=n1")
                .unwrap()
                .single_value("spec.nodeName"),
            Some("n1")
        );
        assert_eq!(
            FieldSelector::parse(pods, "spec.foo=x")
                .unwrap_err()
                .to_string(),
            "field label not supported: spec.foo"
        );
        let nodes = crate::registry::find("", "v1", "nodes").unwrap();
        assert!(FieldSelector::parse(nodes, "spec.unschedulable=false")
            .unwrap()
            .matches(&json!({"spec": {}})));
        let events = crate::registry::find("", "v1", "events").unwrap();
        assert!(
            FieldSelector::parse(events, "involvedObject.name=web,involvedObject.kind=Pod")
                .unwrap()
                .matches(&json!({"involvedObject": {"name": "web", "kind": "Pod"}}))
        );
    }
}
