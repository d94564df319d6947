//! SHIM
use serde_json::{json, Value};
use std::sync::LazyLock;
static INDEX: LazyLock<Value> = LazyLock::new(|| json!({"paths": {}}));
pub fn index() -> &'static Value { &INDEX }
pub fn document(_p: &str) -> Option<&'static Value> { None }
