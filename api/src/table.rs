//! SHIM
use serde_json::{json, Value};
use crate::registry::Resource;
#[derive(Debug, Clone, Copy)]
pub enum IncludeObject { None, Metadata, Object }
impl IncludeObject {
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s { Some("None") => IncludeObject::None, Some("Object") => IncludeObject::Object, _ => IncludeObject::Metadata }
    }
}
pub fn table(_r: &Resource, objects: &[Value], include: IncludeObject, _now: k8s_openapi::jiff::Timestamp) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| {
        let object = match include { IncludeObject::None => Value::Null, IncludeObject::Object => o.clone(),
            IncludeObject::Metadata => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}) };
        json!({"cells": [o["metadata"]["name"], "0s"], "object": object})
    }).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": [
        {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
        {"name": "Age", "type": "string", "format": "", "description": "", "priority": 0}], "rows": rows})
}
