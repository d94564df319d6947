//! Admission validation with Kubernetes' rules and messages. Each rule yields [`FieldError`]s;
//! the apiserver answers 422 Invalid listing them all (see
//! [`crate::status::StatusError::invalid`]).

use std::fmt;

/// The kind of a field error, as Kubernetes' `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl ErrorType {
    /// The text Kubernetes prints for this type.
    pub fn text(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
            ErrorType::TypeInvalid => "Invalid value",
        }
    }

    /// `StatusCause.reason` for this type.
    pub fn cause_reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }
}

/// One problem with one field: `spec.replicas: Invalid value: -1: must be greater than or equal to
/// 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: ErrorType,
    /// Path as Kubernetes prints it: `spec.containers[0].image`, `metadata.labels`.
    pub field: String,
    /// The offending value as JSON text (`"A_b"`, `-1`), when the type prints one.
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    /// `value` is the JSON rendering of the bad value (strings quoted), or None.
    pub fn new(
        kind: ErrorType,
        field: impl Into<String>,
        value: Option<&str>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            kind,
            field: field.into(),
            value: value.map(str::to_string),
            detail: detail.into(),
        }
    }

    /// The message without the field path (`Required value`, `Invalid value: "x": detail`).
    pub fn body(&self) -> String {
        let mut s = self.kind.text().to_string();
        match self.kind {
            ErrorType::Required
            | ErrorType::Forbidden
            | ErrorType::TooLong
            | ErrorType::Internal => {}
            _ => {
                if let Some(v) = &self.value {
                    s.push_str(": ");
                    s.push_str(v);
                }
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}
/// Appends errors; helpers for the rules below.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn required(&mut self, field: impl Into<String>, detail: &str) {
        self.0
            .push(FieldError::new(ErrorType::Required, field, None, detail));
    }
    fn invalid(&mut self, field: impl Into<String>, value: &Value, detail: impl Into<String>) {
        self.0.push(FieldError::new(
            ErrorType::Invalid,
            field,
            Some(&render(value)),
            detail,
        ));
    }
    fn unsupported(&mut self, field: impl Into<String>, value: &Value, allowed: &[&str]) {
        let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        self.0.push(FieldError::new(
            ErrorType::NotSupported,
            field,
            Some(&render(value)),
            format!("supported values: {}", list.join(", ")),
        ));
    }
    fn forbidden(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.0
            .push(FieldError::new(ErrorType::Forbidden, field, None, detail));
    }
    fn duplicate(&mut self, field: impl Into<String>, value: &Value) {
        self.0.push(FieldError::new(
            ErrorType::Duplicate,
            field,
            Some(&render(value)),
            "",
        ));
    }
}

/// A value as Kubernetes prints it in messages: strings quoted, numbers bare.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

use serde_json::Value;

use crate::{quantity, registry::Resource, selectors};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
    alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. \
    'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
    alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
    (e.g. 'example.com', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric \
    characters or '-', start with an alphabetic character, and end with an alphanumeric character \
    (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn str_at<'a>(o: &'a Value, ptr: &str) -> Option<&'a str> {
    o.pointer(ptr).and_then(Value::as_str)
}

fn arr_at<'a>(o: &'a Value, ptr: &str) -> &'a [Value] {
    o.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Validates an object of `resource` (create when `old` is None, else update).
pub fn validate(resource: &Resource, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut e = Errors::default();
    metadata(resource, obj, &mut e);
    match resource.kind {
        "Pod" => {
            pod_spec(
                obj.get("spec").unwrap_or(&Value::Null),
                "spec",
                true,
                &mut e,
            );
            if let Some(old) = old {
                pod_update(obj, old, &mut e);
            }
        }
        "Deployment" | "ReplicaSet" => workload(resource.kind, obj, old, &mut e),
        "Service" => service(obj, old, &mut e),
        "Node" => node(obj, &mut e),
        "ConfigMap" | "Secret" => config_data(resource.kind, obj, old, &mut e),
        "Lease" => {
            if let Some(d) = obj
                .pointer("/spec/leaseDurationSeconds")
                .and_then(Value::as_i64)
            {
                if d <= 0 {
                    e.invalid(
                        "spec.leaseDurationSeconds",
                        &Value::from(d),
                        "must be greater than 0",
                    );
                }
            }
        }
        _ => {}
    }
    e.0
}

fn metadata(r: &Resource, obj: &Value, e: &mut Errors) {
    let name = str_at(obj, "/metadata/name").unwrap_or("");
    if name.is_empty() {
        e.required("metadata.name", "name or generateName is required");
    } else {
        let (ok, msg) = match r.kind {
            "Namespace" => (is_dns1123_label(name), DNS1123_LABEL_MSG),
            "Service" => (is_dns1035_label(name), DNS1035_LABEL_MSG),
            _ => (is_dns1123_subdomain(name), DNS1123_SUBDOMAIN_MSG),
        };
        if !ok {
            e.invalid("metadata.name", &Value::from(name), msg);
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Err(msg) = selectors::check_label_key(k) {
                e.invalid(
                    "metadata.labels",
                    &Value::from(k.as_str()),
                    msg.split_once(": ")
                        .map(|x| x.1)
                        .unwrap_or(&msg)
                        .to_string(),
                );
            }
            match v.as_str() {
                Some(v) => {
                    if let Err(msg) = selectors::check_label_value(v) {
                        e.invalid(
                            "metadata.labels",
                            &Value::from(v),
                            msg.split_once(": ")
                                .map(|x| x.1)
                                .unwrap_or(&msg)
                                .to_string(),
                        );
                    }
                }
                None => e.invalid("metadata.labels", v, "label values must be strings"),
            }
        }
    }
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in ann {
            total += k.len() + v.as_str().map_or(0, str::len);
            if let Err(msg) = selectors::check_label_key(&k.to_ascii_lowercase()) {
                e.invalid(
                    "metadata.annotations",
                    &Value::from(k.as_str()),
                    msg.split_once(": ")
                        .map(|x| x.1)
                        .unwrap_or(&msg)
                        .to_string(),
                );
            }
        }
        if total > 256 * 1024 {
            e.0.push(FieldError::new(
                ErrorType::TooLong,
                "metadata.annotations",
                None,
                "must have at most 262144 bytes",
            ));
        }
    }
}

const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];

fn container(c: &Value, path: &str, names: &mut Vec<String>, require_image: bool, e: &mut Errors) {
    let name = str_at(c, "/name").unwrap_or("");
    if name.is_empty() {
        e.required(format!("{path}.name"), "");
    } else if !is_dns1123_label(name) {
        e.invalid(
            format!("{path}.name"),
            &Value::from(name),
            DNS1123_LABEL_MSG,
        );
    } else if names.iter().any(|n| n == name) {
        e.duplicate(format!("{path}.name"), &Value::from(name));
    } else {
        names.push(name.to_string());
    }
    if require_image && str_at(c, "/image").is_none_or(|i| i.trim().is_empty()) {
        e.required(format!("{path}.image"), "");
    }
    if let Some(p) = c.get("imagePullPolicy") {
        if !matches!(p.as_str(), Some("Always" | "IfNotPresent" | "Never")) {
            e.unsupported(
                format!("{path}.imagePullPolicy"),
                p,
                &["Always", "IfNotPresent", "Never"],
            );
        }
    }
    let mut port_names: Vec<String> = Vec::new();
    for (i, p) in arr_at(c, "/ports").iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        match p.get("containerPort").and_then(Value::as_i64) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => e.invalid(
                format!("{pp}.containerPort"),
                &Value::from(n),
                "must be between 1 and 65535, inclusive",
            ),
            None => e.required(format!("{pp}.containerPort"), ""),
        }
        if let Some(proto) = p.get("protocol") {
            if !proto.as_str().is_some_and(|s| PROTOCOLS.contains(&s)) {
                e.unsupported(format!("{pp}.protocol"), proto, &PROTOCOLS);
            }
        }
        if let Some(n) = str_at(p, "/name") {
            if n.len() > 15 || !is_dns1123_label(n) || !n.chars().any(|c| c.is_ascii_lowercase()) {
                e.invalid(
                    format!("{pp}.name"),
                    &Value::from(n),
                    "must be no more than 15 \
                    characters and contain only lower case alphanumeric characters or '-' with at \
                    least one letter",
                );
            } else if port_names.iter().any(|x| x == n) {
                e.duplicate(format!("{pp}.name"), &Value::from(n));
            } else {
                port_names.push(n.to_string());
            }
        }
    }
    for (i, env) in arr_at(c, "/env").iter().enumerate() {
        if str_at(env, "/name").is_none_or(str::is_empty) {
            e.required(format!("{path}.env[{i}].name"), "");
        }
    }
    resources(c, path, e);
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get(probe) {
            let handlers = ["exec", "httpGet", "tcpSocket", "grpc"]
                .iter()
                .filter(|h| p.get(**h).is_some())
                .count();
            if handlers == 0 {
                e.required(format!("{path}.{probe}"), "must specify a handler type");
            } else if handlers > 1 {
                e.forbidden(
                    format!("{path}.{probe}"),
                    "may not specify more than 1 handler type",
                );
            }
            for f in [
                "periodSeconds",
                "timeoutSeconds",
                "successThreshold",
                "failureThreshold",
            ] {
                if let Some(v) = p.get(f).and_then(Value::as_i64) {
                    if v < 1 {
                        e.invalid(
                            format!("{path}.{probe}.{f}"),
                            &Value::from(v),
                            "must be greater than or equal to 1",
                        );
                    }
                }
            }
        }
    }
}

fn resources(c: &Value, path: &str, e: &mut Errors) {
    let mut parsed: Vec<(String, String, quantity::Quantity)> = Vec::new();
    for kind in ["limits", "requests"] {
        if let Some(m) = c
            .pointer(&format!("/resources/{kind}"))
            .and_then(Value::as_object)
        {
            for (res, q) in m {
                let field = format!("{path}.resources.{kind}[{res}]");
                let text = match q {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => other.to_string(),
                };
                match quantity::parse(&text) {
                    Ok(v) if v.value() < 0.0 => e.invalid(
                        field,
                        &Value::from(text.as_str()),
                        "must be greater than or equal to 0",
                    ),
                    Ok(v) => parsed.push((kind.to_string(), res.clone(), v)),
                    Err(err) => e.invalid(field, &Value::from(text.as_str()), err.to_string()),
                }
            }
        }
    }
    for (kind, res, req) in parsed.iter().filter(|(k, _, _)| k == "requests") {
        let _ = kind;
        if let Some((_, _, lim)) = parsed.iter().find(|(k, r, _)| k == "limits" && r == res) {
            if req > lim {
                let text = c
                    .pointer(&format!("/resources/requests/{res}"))
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .unwrap_or_default();
                let lim_text = c
                    .pointer(&format!("/resources/limits/{res}"))
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .unwrap_or_default();
                e.invalid(
                    format!("{path}.resources.requests"),
                    &Value::from(text.as_str()),
                    format!("must be less than or equal to {res} limit of {lim_text}"),
                );
            }
        }
    }
}

fn pod_spec(spec: &Value, path: &str, require_image: bool, e: &mut Errors) {
    let containers = arr_at(spec, "/containers");
    if containers.is_empty() {
        e.required(format!("{path}.containers"), "");
    }
    let mut names = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        container(
            c,
            &format!("{path}.containers[{i}]"),
            &mut names,
            require_image,
            e,
        );
    }
    for (i, c) in arr_at(spec, "/initContainers").iter().enumerate() {
        container(
            c,
            &format!("{path}.initContainers[{i}]"),
            &mut names,
            require_image,
            e,
        );
    }
    if let Some(p) = spec.get("restartPolicy") {
        if !matches!(p.as_str(), Some("Always" | "OnFailure" | "Never")) {
            e.unsupported(
                format!("{path}.restartPolicy"),
                p,
                &["Always", "OnFailure", "Never"],
            );
        }
    }
    if let Some(p) = spec.get("dnsPolicy") {
        if !matches!(
            p.as_str(),
            Some("ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None")
        ) {
            e.unsupported(
                format!("{path}.dnsPolicy"),
                p,
                &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
            );
        }
    }
    if let Some(g) = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
    {
        if g < 0 {
            e.invalid(
                format!("{path}.terminationGracePeriodSeconds"),
                &Value::from(g),
                "must be greater than or equal to 0",
            );
        }
    }
    if let Some(d) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if d < 1 {
            e.invalid(
                format!("{path}.activeDeadlineSeconds"),
                &Value::from(d),
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    let mut volumes: Vec<&str> = Vec::new();
    for (i, v) in arr_at(spec, "/volumes").iter().enumerate() {
        let n = str_at(v, "/name").unwrap_or("");
        if n.is_empty() {
            e.required(format!("{path}.volumes[{i}].name"), "");
        } else if volumes.contains(&n) {
            e.duplicate(format!("{path}.volumes[{i}].name"), &Value::from(n));
        } else {
            volumes.push(n);
        }
    }
    for (ci, c) in containers.iter().enumerate() {
        for (mi, m) in arr_at(c, "/volumeMounts").iter().enumerate() {
            let n = str_at(m, "/name").unwrap_or("");
            if !volumes.contains(&n) {
                e.0.push(FieldError::new(
                    ErrorType::NotFound,
                    format!("{path}.containers[{ci}].volumeMounts[{mi}].name"),
                    Some(&render(&Value::from(n))),
                    "",
                ));
            }
        }
    }
    for (i, t) in arr_at(spec, "/tolerations").iter().enumerate() {
        if let Some(op) = t.get("operator") {
            // "" is Equal (the API types' zero value), as Kubernetes' ValidateTolerations.
            if !matches!(op.as_str(), Some("" | "Exists" | "Equal")) {
                e.unsupported(
                    format!("{path}.tolerations[{i}].operator"),
                    op,
                    &["Equal", "Exists"],
                );
            }
        }
        if let Some(eff) = t.get("effect") {
            if !matches!(
                eff.as_str(),
                Some("" | "NoSchedule" | "PreferNoSchedule" | "NoExecute")
            ) {
                e.unsupported(
                    format!("{path}.tolerations[{i}].effect"),
                    eff,
                    &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                );
            }
        }
        if t.get("tolerationSeconds").is_some_and(|s| !s.is_null())
            && str_at(t, "/effect") != Some("NoExecute")
        {
            let effect = t.get("effect").cloned().unwrap_or(Value::from(""));
            e.invalid(
                format!("{path}.tolerations[{i}].effect"),
                &effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
    }
    if let Some(sel) = spec.get("nodeSelector").and_then(Value::as_object) {
        for (k, v) in sel {
            if selectors::check_label_key(k).is_err()
                || v.as_str()
                    .is_none_or(|v| selectors::check_label_value(v).is_err())
            {
                e.invalid(
                    format!("{path}.nodeSelector"),
                    &Value::from(k.as_str()),
                    "must be a valid label key and value",
                );
            }
        }
    }
}

/// Pod updates may change only images, activeDeadlineSeconds, tolerations (additions) and
/// terminationGracePeriodSeconds; everything else in spec is immutable.
fn pod_update(new: &Value, old: &Value, e: &mut Errors) {
    let strip = |spec: Option<&Value>| -> Value {
        let mut s = spec.cloned().unwrap_or(Value::Null);
        if let Some(m) = s.as_object_mut() {
            for k in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                m.remove(k);
            }
            for list in ["containers", "initContainers"] {
                if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                        c.remove("image");
                    }
                }
            }
        }
        s
    };
    if strip(new.get("spec")) != strip(old.get("spec")) {
        e.forbidden(
            "spec",
            concat!(
                "pod updates may not change fields other than `spec.containers[*].image`,",
                "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,",
                "`spec.tolerations` (only additions to existing tolerations),",
                "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was ",
                "previously negative)"
            ),
        );
    }
    // Kubernetes' validateOnlyAddedTolerations: every old toleration must still be there, equal
    // in key, operator, value and effect (tolerationSeconds may change); new ones may be added.
    let old_t = arr_at(old, "/spec/tolerations");
    let new_t = arr_at(new, "/spec/tolerations");
    if old_t
        .iter()
        .any(|o| !new_t.iter().any(|n| same_toleration(o, n)))
    {
        e.forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        );
    }
}

/// Equal apart from tolerationSeconds (an absent string field is Go's "", as in the API types).
fn same_toleration(a: &Value, b: &Value) -> bool {
    ["key", "operator", "value", "effect"].iter().all(|f| {
        a.get(*f).and_then(Value::as_str).unwrap_or("")
            == b.get(*f).and_then(Value::as_str).unwrap_or("")
    })
}

fn workload(kind: &str, obj: &Value, old: Option<&Value>, e: &mut Errors) {
    if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64) {
        if r < 0 {
            e.invalid(
                "spec.replicas",
                &Value::from(r),
                "must be greater than or equal to 0",
            );
        }
    }
    for f in ["revisionHistoryLimit", "minReadySeconds"] {
        if let Some(v) = obj.pointer(&format!("/spec/{f}")).and_then(Value::as_i64) {
            if v < 0 {
                e.invalid(
                    format!("spec.{f}"),
                    &Value::from(v),
                    "must be greater than or equal to 0",
                );
            }
        }
    }
    let selector = obj.pointer("/spec/selector");
    let parsed = selector
        .and_then(|s| {
            serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>(
                s.clone(),
            )
            .ok()
        })
        .and_then(|s| selectors::LabelSelector::from_k8s(&s).ok());
    match &parsed {
        None => e.required("spec.selector", ""),
        Some(s) if s.is_empty() => e.invalid(
            "spec.selector",
            selector.unwrap_or(&Value::Null),
            "empty selector is invalid for deployment",
        ),
        Some(s) => {
            let empty = serde_json::Map::new();
            let labels = obj
                .pointer("/spec/template/metadata/labels")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if !s.matches(labels) {
                e.invalid(
                    "spec.template.metadata.labels",
                    &Value::Object(labels.clone()),
                    "`selector` does not match template `labels`",
                );
            }
        }
    }
    if let Some(old) = old {
        if old.pointer("/spec/selector") != selector {
            e.invalid(
                "spec.selector",
                selector.unwrap_or(&Value::Null),
                "field is immutable",
            );
        }
    }
    pod_spec(
        obj.pointer("/spec/template/spec").unwrap_or(&Value::Null),
        "spec.template.spec",
        true,
        e,
    );
    if kind == "Deployment" {
        if let Some(t) = obj.pointer("/spec/strategy/type") {
            if !matches!(t.as_str(), Some("Recreate" | "RollingUpdate")) {
                e.unsupported("spec.strategy.type", t, &["Recreate", "RollingUpdate"]);
            }
            if t.as_str() == Some("Recreate")
                && obj.pointer("/spec/strategy/rollingUpdate").is_some()
            {
                e.forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                );
            }
        }
        let zero = |p: &str| match obj.pointer(p) {
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s == "0" || s == "0%",
            _ => false,
        };
        if zero("/spec/strategy/rollingUpdate/maxSurge")
            && zero("/spec/strategy/rollingUpdate/maxUnavailable")
        {
            e.invalid(
                "spec.strategy.rollingUpdate.maxUnavailable",
                obj.pointer("/spec/strategy/rollingUpdate/maxUnavailable")
                    .unwrap_or(&Value::Null),
                "may not be 0 when `maxSurge` is 0",
            );
        }
    }
}

fn service(obj: &Value, old: Option<&Value>, e: &mut Errors) {
    let t = obj
        .pointer("/spec/type")
        .cloned()
        .unwrap_or(Value::from("ClusterIP"));
    let ts = t.as_str().unwrap_or("");
    if !matches!(
        ts,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        e.unsupported(
            "spec.type",
            &t,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        );
    }
    let headless = str_at(obj, "/spec/clusterIP") == Some("None");
    let ports = arr_at(obj, "/spec/ports");
    if ports.is_empty() && ts != "ExternalName" && !headless {
        e.required("spec.ports", "");
    }
    if ts == "ExternalName" && str_at(obj, "/spec/externalName").is_none_or(str::is_empty) {
        e.required("spec.externalName", "");
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        match p.get("port").and_then(Value::as_i64) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => e.invalid(
                format!("{pp}.port"),
                &Value::from(n),
                "must be between 1 and 65535, inclusive",
            ),
            None => e.required(format!("{pp}.port"), ""),
        }
        let name = str_at(p, "/name").unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            e.required(format!("{pp}.name"), "");
        } else if !name.is_empty() {
            if !is_dns1123_label(name) {
                e.invalid(format!("{pp}.name"), &Value::from(name), DNS1123_LABEL_MSG);
            } else if names.contains(&name) {
                e.duplicate(format!("{pp}.name"), &Value::from(name));
            } else {
                names.push(name);
            }
        }
        if let Some(proto) = p.get("protocol") {
            if !proto.as_str().is_some_and(|s| PROTOCOLS.contains(&s)) {
                e.unsupported(format!("{pp}.protocol"), proto, &PROTOCOLS);
            }
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) if !(1..=65535).contains(&n.as_i64().unwrap_or(0)) => e.invalid(
                format!("{pp}.targetPort"),
                &Value::Number(n.clone()),
                "must be between 1 and 65535, inclusive",
            ),
            Some(Value::String(s)) if s.len() > 15 || !is_dns1123_label(s) => e.invalid(
                format!("{pp}.targetPort"),
                &Value::from(s.as_str()),
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            ),
            _ => {}
        }
        if p.get("nodePort").is_some() && !matches!(ts, "NodePort" | "LoadBalancer") {
            e.forbidden(
                format!("{pp}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            );
        }
    }
    // Kubernetes' validateUpgradeDowngradeClusterIPs: the primary cluster IP may not change,
    // unless the service changes to or from ExternalName. The apiserver has already put back
    // allocated values the update left out (its patch_allocated_values), as Kubernetes does.
    if let Some(old) = old {
        let old_ts = str_at(old, "/spec/type").unwrap_or("ClusterIP");
        let (old_ips, new_ips) = (cluster_ips(old), cluster_ips(obj));
        if old_ts != "ExternalName" && ts != "ExternalName" {
            if let (Some(o), Some(n)) = (old_ips.first(), new_ips.first()) {
                if o != n {
                    // Go's %#v of the []string, as kube-apiserver prints this value.
                    let quoted: Vec<String> = new_ips.iter().map(|ip| format!("{ip:?}")).collect();
                    let value = format!("[]string{{{}}}", quoted.join(", "));
                    e.0.push(FieldError::new(
                        ErrorType::Invalid,
                        "spec.clusterIPs[0]",
                        Some(&value),
                        "may not change once set",
                    ));
                }
            }
        }
    }
}

/// spec.clusterIPs, or [spec.clusterIP] for an object that has only the singular field.
fn cluster_ips(svc: &Value) -> Vec<String> {
    let ips: Vec<String> = arr_at(svc, "/spec/clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    match (ips.is_empty(), str_at(svc, "/spec/clusterIP")) {
        (true, Some(ip)) if !ip.is_empty() => vec![ip.to_string()],
        _ => ips,
    }
}

fn node(obj: &Value, e: &mut Errors) {
    for (i, t) in arr_at(obj, "/spec/taints").iter().enumerate() {
        let key = str_at(t, "/key").unwrap_or("");
        if let Err(msg) = selectors::check_label_key(key) {
            e.invalid(
                format!("spec.taints[{i}].key"),
                &Value::from(key),
                msg.split_once(": ")
                    .map(|x| x.1)
                    .unwrap_or(&msg)
                    .to_string(),
            );
        }
        match t.get("effect") {
            Some(eff)
                if matches!(
                    eff.as_str(),
                    Some("NoSchedule" | "PreferNoSchedule" | "NoExecute")
                ) => {}
            Some(eff) => e.unsupported(
                format!("spec.taints[{i}].effect"),
                eff,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ),
            None => e.required(format!("spec.taints[{i}].effect"), ""),
        }
    }
}

fn config_data(kind: &str, obj: &Value, old: Option<&Value>, e: &mut Errors) {
    let valid_key = |k: &str| {
        !k.is_empty()
            && k.len() <= 253
            && k != "."
            && k != ".."
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let mut total = 0usize;
    let mut keys: Vec<&str> = Vec::new();
    for field in ["data", "binaryData", "stringData"] {
        if let Some(m) = obj.get(field).and_then(Value::as_object) {
            for (k, v) in m {
                if !valid_key(k) {
                    e.invalid(
                        format!("{field}[{k}]"),
                        &Value::from(k.as_str()),
                        "a valid config \
                        key must consist of alphanumeric characters, '-', '_' or '.' (e.g. \
                        'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
                        '[-._a-zA-Z0-9]+')",
                    );
                }
                if field == "binaryData" && keys.contains(&k.as_str()) {
                    e.invalid(
                        format!("binaryData[{k}]"),
                        &Value::from(k.as_str()),
                        "duplicate of key present in data",
                    );
                }
                keys.push(k);
                total += v.as_str().map_or(0, str::len);
            }
        }
    }
    if total > 1024 * 1024 {
        e.0.push(FieldError::new(
            ErrorType::TooLong,
            "data",
            None,
            "must have at most 1048576 bytes",
        ));
    }
    if kind == "Secret" {
        if let Some(old) = old {
            if old.get("type") != obj.get("type") {
                e.invalid(
                    "type",
                    obj.get("type").unwrap_or(&Value::Null),
                    "field is immutable",
                );
            }
        }
    }
    if let Some(old) = old {
        if old.get("immutable") == Some(&Value::Bool(true))
            && (old.get("data") != obj.get("data")
                || old.get("binaryData") != obj.get("binaryData"))
        {
            e.forbidden("data", "field is immutable when `immutable` is set");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;
    use serde_json::json;

    fn msgs(kind: (&str, &str), obj: Value, old: Option<Value>) -> Vec<String> {
        let r = find(kind.0, "v1", kind.1).unwrap();
        validate(r, &obj, old.as_ref())
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn names_and_required_fields() {
        let m = msgs(
            ("", "pods"),
            json!({"metadata": {"name": "Web_1"}, "spec": {}}),
            None,
        );
        assert!(
            m[0].starts_with(
                "metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain"
            ),
            "{m:?}"
        );
        assert_eq!(m[1], "spec.containers: Required value");
        let m = msgs(
            ("", "pods"),
            json!({"metadata": {}, "spec": {"containers": [{"name": "c"}]}}),
            None,
        );
        assert_eq!(
            m,
            vec![
                "metadata.name: Required value: name or generateName is required",
                "spec.containers[0].image: Required value"
            ]
        );
        assert!(msgs(
            ("", "services"),
            json!({"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}}),
            None
        )[0]
        .contains("DNS-1035"));
    }

    #[test]
    fn deployments() {
        let m = msgs(
            ("apps", "deployments"),
            json!({"metadata": {"name": "d"}, "spec": {"replicas": -1,
                "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c",
                "image": "i"}]}}}}),
            None,
        );
        assert_eq!(
            m[0],
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(
            m[1].starts_with("spec.template.metadata.labels: Invalid value:")
                && m[1].ends_with("`selector` does not match template `labels`"),
            "{m:?}"
        );
    }

    #[test]
    fn resources_and_pod_updates() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
            "image": "i", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1",
            "memory": "x1"}}}]}});
        let m = msgs(("", "pods"), pod, None);
        assert!(
            m.iter().any(|x| x.starts_with(
                "spec.containers[0].resources.limits[memory]: \
            Invalid value: \"x1\": quantities must match"
            )),
            "{m:?}"
        );
        assert!(
            m.iter().any(|x| x
                == "spec.containers[0].resources.requests: Invalid value: \
            \"2\": must be less than or equal to cpu limit of 1"),
            "{m:?}"
        );
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
            "image": "i"}]}});
        assert!(msgs(
            ("", "pods"),
            json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "j"}]}}),
            Some(old.clone())
        )
        .is_empty());
        let m = msgs(
            ("", "pods"),
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "d",
                "image": "i"}]}}),
            Some(old),
        );
        assert!(
            m[0].starts_with("spec: Forbidden: pod updates may not change fields"),
            "{m:?}"
        );
    }

    #[test]
    fn pod_updates_may_add_tolerations_and_change_their_seconds() {
        let pod = |tolerations: Value| {
            json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": tolerations}})
        };
        let old = pod(
            json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 300}, {"key": "gpu", "value": "yes",
                "effect": "NoSchedule"}]),
        );
        let modified = "spec.tolerations: Forbidden: existing toleration can not be modified \
            except its tolerationSeconds";
        // tolerationSeconds changed, one added, order changed: allowed.
        let changed = pod(
            json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 10}, {"key": "new", "operator": "Exists"}]),
        );
        assert!(msgs(("", "pods"), changed, Some(old.clone())).is_empty());
        // An absent operator is the same as "" (the API types' zero value).
        let explicit = pod(
            json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                "effect": "NoExecute"}, {"key": "gpu", "operator": "", "value": "yes",
                "effect": "NoSchedule"}]),
        );
        assert!(msgs(("", "pods"), explicit, Some(old.clone())).is_empty());
        // Removing one, or changing its value or effect: refused, once.
        assert_eq!(
            msgs(
                ("", "pods"),
                pod(json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])),
                Some(old.clone())
            ),
            vec![modified]
        );
        let value = pod(
            json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 300}, {"key": "gpu", "value": "no",
                "effect": "NoSchedule"}]),
        );
        assert_eq!(msgs(("", "pods"), value, Some(old.clone())), vec![modified]);
        let effect = pod(
            json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 300}, {"key": "gpu", "value": "yes",
                "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(msgs(("", "pods"), effect, Some(old)), vec![modified]);
        // tolerationSeconds only with NoExecute.
        let m = msgs(
            ("", "pods"),
            pod(
                json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                    "tolerationSeconds": 5}]),
            ),
            None,
        );
        assert_eq!(
            m,
            vec![
                "spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must \
            be 'NoExecute' when `tolerationSeconds` is set"
            ]
        );
    }

    #[test]
    fn services_and_config() {
        let m = msgs(
            ("", "services"),
            json!({"metadata": {"name": "s"}, "spec": {"type": "Weird", "ports": [{"port": 70000},
                {"port": 80}]}}),
            None,
        );
        assert!(
            m.contains(
                &"spec.type: Unsupported value: \"Weird\": supported values: \
            \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
                    .to_string()
            ),
            "{m:?}"
        );
        assert!(m.contains(
            &"spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
                .to_string()
        ));
        assert!(m.contains(&"spec.ports[0].name: Required value".to_string()));
        // The primary cluster IP may not change (the apiserver patches in omitted values first).
        let svc = |ip: &str, ips: Value| {
            json!({"metadata": {"name": "s"}, "spec": {"clusterIP": ip,
            "clusterIPs": ips, "ports": [{"port": 80}]}})
        };
        let old = svc("10.96.0.10", json!(["10.96.0.10"]));
        assert!(msgs(
            ("", "services"),
            svc("10.96.0.10", json!(["10.96.0.10"])),
            Some(old.clone())
        )
        .is_empty());
        let m = msgs(
            ("", "services"),
            svc("10.96.0.11", json!(["10.96.0.11"])),
            Some(old.clone()),
        );
        assert_eq!(
            m,
            vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not \
            change once set"
            ]
        );
        let external = json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName",
            "externalName": "example.com"}});
        assert!(msgs(("", "services"), external, Some(old)).is_empty());
        let m = msgs(
            ("", "configmaps"),
            json!({"metadata": {"name": "c"}, "data": {"bad key": "v"}}),
            None,
        );
        assert!(
            m[0].starts_with("data[bad key]: Invalid value: \"bad key\": a valid config key"),
            "{m:?}"
        );
    }
}
