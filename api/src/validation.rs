//! Admission validation with Kubernetes' rules and messages. Each rule yields [`FieldError`]s;
//! the apiserver answers 422 Invalid listing them all (see [`crate::status::StatusError::invalid`]).

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

/// One problem with one field: `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
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
    pub fn new(kind: ErrorType, field: impl Into<String>, value: Option<&str>, detail: impl Into<String>) -> Self {
        FieldError { kind, field: field.into(), value: value.map(str::to_string), detail: detail.into() }
    }

    /// The message without the field path (`Required value`, `Invalid value: "x": detail`).
    pub fn body(&self) -> String {
        let mut s = self.kind.text().to_string();
        match self.kind {
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal => {}
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
/// SHIM
pub fn validate(_r: &crate::registry::Resource, _obj: &serde_json::Value, _old: Option<&serde_json::Value>) -> Vec<FieldError> { Vec::new() }
