//! SHIM
use serde_json::Value;
use crate::registry::Resource;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(String);
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| PatchError(e.to_string()))?;
    let mut d = doc.clone();
    json_patch::patch(&mut d, &p).map_err(|e| PatchError(e.to_string()))?;
    Ok(d)
}
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut d = doc.clone();
    json_patch::merge(&mut d, patch);
    Ok(d)
}
pub fn apply_strategic_merge_patch(_r: &Resource, doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    apply_merge_patch(doc, patch)
}
