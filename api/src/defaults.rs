//! SHIM
use crate::registry::Resource;
pub fn apply(_r: &Resource, _obj: &mut serde_json::Value) {}
