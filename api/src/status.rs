//! API errors as Kubernetes sends them: an HTTP code and a `meta.k8s.io/v1 Status` body whose
//! reason and message kubectl prints ("Error from server (NotFound): pods \"x\" not found").

use serde_json::{json, Value};

use crate::validation::FieldError;

/// An error answered to a client. `Display` is the Status message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StatusError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status: the object's name, group, kind and field causes.
    pub details: Option<Value>,
}

impl StatusError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        StatusError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        self.details = Some(json!({"name": name, "group": group, "kind": kind}));
        self
    }

    /// 404: `pods "web" not found`.
    pub fn not_found(qualified_plural: &str, group: &str, name: &str) -> Self {
        let kind = qualified_plural
            .split('.')
            .next()
            .unwrap_or(qualified_plural);
        Self::new(
            404,
            "NotFound",
            format!("{qualified_plural} \"{name}\" not found"),
        )
        .with_details(name, group, kind)
    }

    /// 409: `pods "web" already exists`.
    pub fn already_exists(qualified_plural: &str, group: &str, name: &str) -> Self {
        let kind = qualified_plural
            .split('.')
            .next()
            .unwrap_or(qualified_plural);
        Self::new(
            409,
            "AlreadyExists",
            format!("{qualified_plural} \"{name}\" already exists"),
        )
        .with_details(name, group, kind)
    }

    /// 409 Conflict: an update raced another (stale resourceVersion) or a precondition failed.
    pub fn conflict(qualified_plural: &str, group: &str, name: &str, why: &str) -> Self {
        let kind = qualified_plural
            .split('.')
            .next()
            .unwrap_or(qualified_plural);
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {qualified_plural} \"{name}\": {why}"),
        )
        .with_details(name, group, kind)
    }

    /// The usual message of a stale resourceVersion.
    pub const STALE: &'static str =
        "the object has been modified; please apply your changes to the latest version and try \
            again";

    /// 422: `Pod "x" is invalid: [spec.containers[0].name: Required value, ...]`.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let list = if errors.len() == 1 {
            errors[0].to_string()
        } else {
            format!(
                "[{}]",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(
                |e| json!({"reason": e.kind.cause_reason(), "message": e.body(), "field": e.field}),
            )
            .collect();
        let mut err = Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {list}"),
        );
        err.details = Some(json!({"name": name, "group": group, "kind": kind, "causes": causes}));
        err
    }

    /// 400 with a message naming the problem.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403: `pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the
    /// namespace "default"`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 403 for a namespace that is being deleted.
    pub fn namespace_terminating(qualified_plural: &str, name: &str, namespace: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{qualified_plural} \"{name}\" is forbidden: unable to create new content in \
                namespace {namespace} because it is being terminated"
            ),
        )
    }

    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 406.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 410 Expired: a watch or list from a compacted resourceVersion.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// 415.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503: the store cannot be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 504.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// An error another server answered with `code` (e.g. an agent behind pods/log), with
    /// Kubernetes' reason for that code.
    pub fn from_code(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self::new(code, reason, message)
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

/// A `Status` of success, as DELETE answers for collections and some subresources.
pub fn success(details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{ErrorType, FieldError};

    #[test]
    fn messages_match_kubernetes() {
        assert_eq!(
            StatusError::not_found("pods", "", "web").message,
            "pods \"web\" not found"
        );
        assert_eq!(
            StatusError::already_exists("deployments.apps", "apps", "d").message,
            "deployments.apps \"d\" already exists"
        );
        let errs = vec![
            FieldError::new(ErrorType::Required, "spec.containers", None, ""),
            FieldError::new(
                ErrorType::Invalid,
                "metadata.name",
                Some("\"A_b\""),
                "a lowercase RFC \
                1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            ),
        ];
        let e = StatusError::invalid("Pod", "", "A_b", &errs);
        assert_eq!(e.code, 422);
        assert!(e.message.starts_with(
            "Pod \"A_b\" is invalid: [spec.containers: Required value, \
            metadata.name: Invalid value: \"A_b\": a lowercase"
        ));
        assert_eq!(
            e.to_status()["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
    }
}
