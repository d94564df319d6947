//! `components.schemas` of the OpenAPI v3 documents: the `k8s-openapi` types' schemars schemas,
//! reshaped the way Kubernetes publishes them (refs with siblings wrapped in `allOf`, GVK and
//! patch-strategy extensions, hand-built `List` types).

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v1 as autoscaling, coordination::v1 as coord, core::v1 as core,
    policy::v1 as policy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::patch::merge_strategy;
use crate::registry::Resource;

/// Prefix of every `$ref` in the documents.
pub const REF_PREFIX: &str = "#/components/schemas/";

pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
pub const BINDING: &str = "io.k8s.api.core.v1.Binding";
pub const EVICTION: &str = "io.k8s.api.policy.v1.Eviction";

/// `{"$ref": "#/components/schemas/<name>"}`.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

/// The schema name of a resource's list type (`io.k8s.api.core.v1.PodList`).
pub fn list_schema_name(resource: &Resource) -> String {
    format!("{}List", resource.schema_name)
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) {
    let _ = generator.subschema_for::<T>();
}

/// Adds the schema of the resource's kind (and everything it references) to the generator.
fn add_kind(generator: &mut SchemaGenerator, kind: &str) {
    match kind {
        "Namespace" => add::<core::Namespace>(generator),
        "Pod" => add::<core::Pod>(generator),
        "Node" => add::<core::Node>(generator),
        "Service" => add::<core::Service>(generator),
        "Endpoints" => add::<core::Endpoints>(generator),
        "Event" => add::<core::Event>(generator),
        "ConfigMap" => add::<core::ConfigMap>(generator),
        "Secret" => add::<core::Secret>(generator),
        "ServiceAccount" => add::<core::ServiceAccount>(generator),
        "Deployment" => add::<apps::Deployment>(generator),
        "ReplicaSet" => add::<apps::ReplicaSet>(generator),
        "Lease" => add::<coord::Lease>(generator),
        _ => {}
    }
}

/// The schemas of one group-version's document, keyed by schema name.
pub fn for_group_version(resources: &[&Resource]) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3()
        .with(|s| {
            s.transforms.clear();
            s.meta_schema = None;
        })
        .into_generator();
    for r in resources {
        add_kind(&mut generator, r.kind);
        if r.has_subresource("scale") {
            add::<autoscaling::Scale>(&mut generator);
        }
        if r.has_subresource("binding") {
            add::<core::Binding>(&mut generator);
        }
        if r.has_subresource("eviction") {
            add::<policy::Eviction>(&mut generator);
        }
    }
    add::<meta::DeleteOptions>(&mut generator);
    add::<meta::Status>(&mut generator);
    add::<meta::Patch>(&mut generator);
    add::<meta::WatchEvent<core::Pod>>(&mut generator);
    add::<meta::ListMeta>(&mut generator);
    let mut defs = generator.take_definitions(false);

    for schema in defs.values_mut() {
        wrap_ref_siblings(schema);
    }
    for r in resources {
        if let Some(Value::Object(schema)) = defs.get_mut(r.schema_name) {
            // Rust makes metadata non-optional; Kubernetes does not require it.
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|f| f != "metadata");
                if required.is_empty() {
                    schema.remove("required");
                }
            }
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(r.group, r.version, r.kind)]),
            );
        }
        defs.insert(list_schema_name(r), list_schema(r));
    }
    let served: Vec<Value> = crate::registry::groups()
        .iter()
        .map(|(g, v)| gvk(g, v, "DeleteOptions"))
        .collect();
    set_gvk(&mut defs, DELETE_OPTIONS, Value::Array(served));
    let watch: Vec<Value> = crate::registry::groups()
        .iter()
        .map(|(g, v)| gvk(g, v, "WatchEvent"))
        .collect();
    set_gvk(&mut defs, WATCH_EVENT, Value::Array(watch));
    set_gvk(&mut defs, STATUS, json!([gvk("", "v1", "Status")]));
    set_gvk(&mut defs, SCALE, json!([gvk("autoscaling", "v1", "Scale")]));
    set_gvk(&mut defs, BINDING, json!([gvk("", "v1", "Binding")]));
    add_patch_extensions(&mut defs);
    defs
}

fn set_gvk(defs: &mut Map<String, Value>, name: &str, value: Value) {
    if let Some(Value::Object(schema)) = defs.get_mut(name) {
        schema.insert("x-kubernetes-group-version-kind".into(), value);
    }
}

/// Kubernetes never puts siblings next to `$ref` (OpenAPI 3.0 ignores them): a described
/// reference is `{"allOf": [{"$ref": ...}], "description": ...}`.
fn wrap_ref_siblings(schema: &mut Value) {
    match schema {
        Value::Object(obj) => {
            if obj.len() > 1 {
                if let Some(r) = obj.remove("$ref") {
                    obj.insert("allOf".into(), json!([{ "$ref": r }]));
                }
            }
            for v in obj.values_mut() {
                wrap_ref_siblings(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_ref_siblings),
        _ => {}
    }
}

/// `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` on every field with one.
fn add_patch_extensions(defs: &mut Map<String, Value>) {
    for (name, schema) in defs.iter_mut() {
        let Some(Value::Object(props)) = schema.get_mut("properties") else {
            continue;
        };
        for (field, prop) in props.iter_mut() {
            let (Some((strategy, key)), Value::Object(prop)) = (merge_strategy(name, field), prop)
            else {
                continue;
            };
            if let Some(key) = key {
                prop.insert(
                    "x-kubernetes-patch-merge-key".into(),
                    Value::String(key.into()),
                );
            }
            prop.insert(
                "x-kubernetes-patch-strategy".into(),
                Value::String(strategy.into()),
            );
        }
    }
}

/// The `<Kind>List` schema, which `k8s-openapi` has no type for.
fn list_schema(r: &Resource) -> Value {
    json!({
        "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of \
                    an object. Servers should convert recognized schemas to the latest internal \
                    value, and may reject unrecognized values. More info: \
                    https://git.k8s.io/community/contributors/devel/\
                    sig-architecture/api-conventions.md#resources",
                "type": "string"
            },
            "items": {
                "description": format!("List of {}.", r.plural),
                "type": "array",
                "items": { "allOf": [reference(r.schema_name)], "default": {} }
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object \
                    represents. Servers may infer this from the endpoint the client submits \
                    requests to. Cannot be updated. In CamelCase. More info: \
                    https://git.k8s.io/community/contributors/devel/\
                    sig-architecture/api-conventions.md#types-kinds",
                "type": "string"
            },
            "metadata": {
                "allOf": [reference(LIST_META)],
                "default": {},
                "description": "Standard list metadata. More info: \
                    https://git.k8s.io/community/contributors/devel/\
                    sig-architecture/api-conventions.md#types-kinds"
            }
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [gvk(r.group, r.version, &r.list_kind())]
    })
}

/// Every `$ref` target in `value`, without the prefix.
#[cfg(test)]
pub(crate) fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(obj) => {
            if let Some(Value::String(r)) = obj.get("$ref") {
                out.push(r.strip_prefix(REF_PREFIX).unwrap_or(r).to_string());
            }
            obj.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RESOURCES;

    fn core() -> Map<String, Value> {
        let rs: Vec<&Resource> = RESOURCES.iter().filter(|r| r.group.is_empty()).collect();
        for_group_version(&rs)
    }

    #[test]
    fn kinds_carry_gvk_and_lists_exist() {
        let defs = core();
        assert_eq!(
            defs["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert_eq!(
            defs["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"][0]["kind"],
            "PodList"
        );
        assert!(defs["io.k8s.api.core.v1.Pod"].get("required").is_none());
        assert!(defs.contains_key(BINDING));
        assert!(!defs.contains_key(SCALE));
    }

    #[test]
    fn refs_with_descriptions_are_wrapped() {
        let defs = core();
        let meta = &defs["io.k8s.api.core.v1.Pod"]["properties"]["metadata"];
        assert_eq!(
            meta["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(meta["description"].is_string());
        assert!(meta.get("$ref").is_none());
    }

    #[test]
    fn patch_extensions_are_set() {
        let defs = core();
        let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let finalizers =
            &defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"];
        assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
        assert!(finalizers.get("x-kubernetes-patch-merge-key").is_none());
    }
}
