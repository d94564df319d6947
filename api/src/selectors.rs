//! SHIM
use serde_json::Value;
use crate::registry::Resource;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);
#[derive(Debug, Clone)]
pub struct LabelSelector(Vec<(String, String)>);
impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Ok(LabelSelector(s.split(',').filter_map(|t| t.split_once('=').map(|(a, b)| (a.to_string(), b.to_string()))).collect()))
    }
    pub fn from_k8s(s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> Result<Self, SelectorError> {
        Ok(LabelSelector(s.match_labels.clone().unwrap_or_default().into_iter().collect()))
    }
    pub fn matches(&self, labels: &serde_json::Map<String, Value>) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v))
    }
}
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
    }
}
#[derive(Debug, Clone)]
pub struct FieldSelector(Vec<(String, String)>);
impl FieldSelector {
    pub fn parse(_r: &Resource, s: &str) -> Result<Self, SelectorError> {
        Ok(FieldSelector(s.split(',').filter_map(|t| t.split_once('=').map(|(a, b)| (a.to_string(), b.to_string()))).collect()))
    }
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, v)| obj.pointer(&format!("/{}", k.replace('.', "/"))).and_then(Value::as_str).unwrap_or("") == v)
    }
}
