//! The OpenAPI v3 documents kubectl reads: `/openapi/v3` (an index of group-versions) and one
//! document per group-version with the schemas of its types (from `k8s-openapi`'s JSON schemas,
//! with Kubernetes' extensions) and its paths. kubectl uses them to find out that the server
//! validates fields itself (`fieldValidation` on PATCH), for `kubectl explain`, and for apply's
//! strategic merge.

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    sync::LazyLock,
};

use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coord, core::v1 as core};
use schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::{
    patch::merge_strategy,
    registry::{self, Resource},
};

/// The URL path of a group-version's document, without `/openapi/v3/`: `api/v1`, `apis/apps/v1`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn add_types(gen: &mut SchemaGenerator, group: &str) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    gen.subschema_for::<meta::Status>();
    gen.subschema_for::<meta::DeleteOptions>();
    gen.subschema_for::<meta::Patch>();
    gen.subschema_for::<meta::ListMeta>();
    match group {
        "" => {
            gen.subschema_for::<core::Namespace>();
            gen.subschema_for::<core::Pod>();
            gen.subschema_for::<core::Binding>();
            gen.subschema_for::<core::Node>();
            gen.subschema_for::<core::Service>();
            gen.subschema_for::<core::Endpoints>();
            gen.subschema_for::<core::Event>();
            gen.subschema_for::<core::ConfigMap>();
            gen.subschema_for::<core::Secret>();
            gen.subschema_for::<core::ServiceAccount>();
        }
        "apps" => {
            gen.subschema_for::<apps::Deployment>();
            gen.subschema_for::<apps::ReplicaSet>();
            gen.subschema_for::<k8s_openapi::api::autoscaling::v1::Scale>();
        }
        "coordination.k8s.io" => {
            gen.subschema_for::<coord::Lease>();
        }
        _ => {}
    }
}

/// `group`, `version`, `kind` of the schema names our resources (and their lists) use.
fn gvk_of(schema_name: &str) -> Option<(String, String, String)> {
    for r in registry::RESOURCES {
        if r.schema_name == schema_name {
            return Some((r.group.to_string(), r.version.to_string(), r.kind.to_string()));
        }
        if format!("{}List", r.schema_name) == schema_name {
            return Some((r.group.to_string(), r.version.to_string(), r.list_kind()));
        }
    }
    None
}

/// The schema of a resource's list type (`PodList`), which `k8s-openapi` models generically.
fn list_schema(r: &Resource) -> Value {
    json!({
        "description": format!("{} is a list of {}.", r.list_kind(), r.kind),
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
            "items": {"type": "array", "description": format!("List of {}.", r.plural), "items": schema_ref(r.schema_name)},
            "metadata": {"allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")], "description": "Standard list metadata."},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": gvk_ext(r.group, r.version, &r.list_kind()),
    })
}

fn gvk_ext(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "version": version, "kind": kind}])
}

/// Adds the list merge strategy extensions to every property that has one.
fn add_patch_extensions(schemas: &mut Map<String, Value>) {
    for (name, schema) in schemas.iter_mut() {
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else { continue };
        for (field, prop) in props.iter_mut() {
            if let Some((strategy, key)) = merge_strategy(name, field) {
                if let Some(p) = prop.as_object_mut() {
                    p.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
                    if let Some(k) = key {
                        p.insert("x-kubernetes-patch-merge-key".into(), json!(k));
                    }
                }
            }
        }
    }
}

fn param(name: &str, location: &str, description: &str) -> Value {
    json!({"name": name, "in": location, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn body(name: &str, content_types: &[&str]) -> Value {
    let content: Map<String, Value> = content_types.iter().map(|c| (c.to_string(), json!({"schema": schema_ref(name)}))).collect();
    json!({"content": content, "required": true})
}

fn responses(name: &str, codes: &[&str]) -> Value {
    let mut out = Map::new();
    for code in codes {
        out.insert(
            code.to_string(),
            json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(name)}, "application/yaml": {"schema": schema_ref(name)}}}),
        );
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

fn op(action: &str, id: &str, r: &Resource, kind: &str, params: Vec<Value>, request: Option<Value>, resp: Value) -> Value {
    let mut o = json!({
        "tags": [format!("{}_{}", if r.group.is_empty() { "core" } else { r.group }, r.version)],
        "operationId": id,
        "parameters": params,
        "responses": resp,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": kind},
    });
    if let Some(b) = request {
        o["requestBody"] = b;
    }
    o
}

fn paths_for(r: &Resource) -> Vec<(String, Value)> {
    let root = if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
    let scope = if r.namespaced { "/namespaces/{namespace}" } else { "" };
    let collection = format!("{root}{scope}/{}", r.plural);
    let item = format!("{collection}/{{name}}");
    let kind = r.kind;
    let id = format!("{}{}", if r.group.is_empty() { "Core" } else { "" }, kind);
    let write_params = || vec![
        param("dryRun", "query", "When present, indicates that modifications should not be persisted."),
        param("fieldManager", "query", "a name associated with the actor or entity that is making these changes."),
        param("fieldValidation", "query", "instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict."),
    ];
    let list_params = vec![
        param("labelSelector", "query", "A selector to restrict the list of returned objects by their labels."),
        param("fieldSelector", "query", "A selector to restrict the list of returned objects by their fields."),
        param("limit", "query", "limit is a maximum number of responses to return for a list call."),
        param("continue", "query", "The continue option should be set when retrieving more results from the server."),
        param("resourceVersion", "query", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        param("resourceVersionMatch", "query", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
        param("watch", "query", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
        param("allowWatchBookmarks", "query", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        param("timeoutSeconds", "query", "Timeout for the list/watch call."),
    ];
    let mut common = vec![];
    if r.namespaced {
        common.push(json!({"name": "namespace", "in": "path", "required": true, "description": "object name and auth scope, such as for teams and projects", "schema": {"type": "string", "uniqueItems": true}}));
    }
    let mut item_common = common.clone();
    item_common.push(json!({"name": "name", "in": "path", "required": true, "description": format!("name of the {kind}"), "schema": {"type": "string", "uniqueItems": true}}));
    let list_kind = r.list_kind();
    let schema = r.schema_name;
    let list_schema = format!("{schema}List");
    let patch_types = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"];
    let mut out = vec![
        (
            collection,
            json!({
                "get": op("list", &format!("list{id}"), r, kind, list_params, None, responses(&list_schema, &["200"])),
                "post": op("post", &format!("create{id}"), r, kind, write_params(), Some(body(schema, &["*/*"])), responses(schema, &["200", "201", "202"])),
                "delete": op("deletecollection", &format!("deletecollection{id}"), r, kind, vec![], Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", &["*/*"])), responses("io.k8s.apimachinery.pkg.apis.meta.v1.Status", &["200"])),
                "parameters": common,
            }),
        ),
        (
            item.clone(),
            json!({
                "get": op("get", &format!("read{id}"), r, kind, vec![], None, responses(schema, &["200"])),
                "put": op("put", &format!("replace{id}"), r, kind, write_params(), Some(body(schema, &["*/*"])), responses(schema, &["200", "201"])),
                "patch": op("patch", &format!("patch{id}"), r, kind, write_params(), Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.Patch", &patch_types)), responses(schema, &["200", "201"])),
                "delete": op("delete", &format!("delete{id}"), r, kind, vec![param("gracePeriodSeconds", "query", "The duration in seconds before the object should be deleted."), param("propagationPolicy", "query", "Whether and how garbage collection will be performed.")], Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", &["*/*"])), responses(schema, &["200", "202"])),
                "parameters": item_common.clone(),
            }),
        ),
    ];
    if r.has_subresource("status") {
        out.push((
            format!("{item}/status"),
            json!({
                "get": op("get", &format!("read{id}Status"), r, kind, vec![], None, responses(schema, &["200"])),
                "put": op("put", &format!("replace{id}Status"), r, kind, write_params(), Some(body(schema, &["*/*"])), responses(schema, &["200", "201"])),
                "patch": op("patch", &format!("patch{id}Status"), r, kind, write_params(), Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.Patch", &patch_types)), responses(schema, &["200", "201"])),
                "parameters": item_common.clone(),
            }),
        ));
    }
    let _ = list_kind;
    out
}

struct Docs {
    index: Value,
    docs: BTreeMap<String, Value>,
}

fn build() -> Docs {
    let mut docs = BTreeMap::new();
    let mut index = Map::new();
    for (group, version) in registry::groups() {
        let mut gen = SchemaSettings::openapi3().into_generator();
        add_types(&mut gen, group);
        let mut schemas = gen.take_definitions(true);
        for (name, schema) in schemas.iter_mut() {
            if let Some((g, v, k)) = gvk_of(name) {
                if let Some(o) = schema.as_object_mut() {
                    o.insert("x-kubernetes-group-version-kind".into(), gvk_ext(&g, &v, &k));
                }
            }
        }
        for r in registry::RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
            schemas.insert(format!("{}List", r.schema_name), list_schema(r));
        }
        add_patch_extensions(&mut schemas);
        let mut paths = Map::new();
        for r in registry::RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
            for (p, item) in paths_for(r) {
                paths.insert(p, item);
            }
        }
        let doc = json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": paths,
            "components": {"schemas": schemas},
        });
        let path = gv_path(group, version);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        doc.to_string().hash(&mut h);
        index.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={:016X}", h.finish())}));
        docs.insert(path, doc);
    }
    Docs { index: json!({"paths": index}), docs }
}

static DOCS: LazyLock<Docs> = LazyLock::new(build);

/// The `/openapi/v3` index.
pub fn index() -> &'static Value {
    &DOCS.index
}

/// The document of `path` (`api/v1`, `apis/apps/v1`), if served.
pub fn document(path: &str) -> Option<&'static Value> {
    DOCS.docs.get(path.trim_matches('/'))
}

/// The schema of a type by its OpenAPI name, from the document that holds it.
pub fn schema(name: &str) -> Option<&'static Value> {
    DOCS.docs.values().find_map(|d| d.pointer(&format!("/components/schemas/{}", name.replace('/', "~1"))))
}

/// A type's JSON schema generated on its own (for callers that walk one type).
pub fn schema_of<T: JsonSchema>() -> Value {
    let mut gen = SchemaSettings::openapi3().into_generator();
    gen.subschema_for::<T>();
    Value::Object(gen.take_definitions(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn documents_have_schemas_paths_and_extensions() {
        assert!(index()["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap().starts_with("/openapi/v3/api/v1?hash="));
        let core = document("api/v1").unwrap();
        let pod = &core["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        let containers = &core["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let patch = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        for path in ["api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1"] {
            let doc = document(path).unwrap();
            let mut all = Vec::new();
            refs(doc, &mut all);
            for r in all {
                let name = r.strip_prefix("#/components/schemas/").expect("component ref");
                assert!(doc["components"]["schemas"].get(name).is_some(), "{path}: dangling {r}");
            }
        }
        assert!(document("apis/apps/v1").unwrap()["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());
    }
}
