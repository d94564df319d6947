//! The OpenAPI v3 documents kubectl reads (`/openapi/v3` and one per group-version): schemas with
//! descriptions and Kubernetes extensions for `kubectl explain` and apply, and the resources'
//! operations with the query parameters kubectl probes for (`fieldValidation`).

mod paths;
mod schemas;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use crate::registry::{self, Resource, RESOURCES};

pub use schemas::REF_PREFIX;

/// `api/v1` or `apis/apps/v1`: where a group-version's document is served under `/openapi/v3/`.
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

static DOCUMENTS: LazyLock<BTreeMap<String, Value>> = LazyLock::new(|| {
    registry::groups()
        .into_iter()
        .map(|(group, version)| {
            let resources: Vec<&Resource> = RESOURCES
                .iter()
                .filter(|r| r.group == group && r.version == version)
                .collect();
            (
                group_version_path(group, version),
                build_document(group, version, &resources),
            )
        })
        .collect()
});

static INDEX: LazyLock<Value> = LazyLock::new(|| {
    let mut paths = Map::new();
    for (path, doc) in DOCUMENTS.iter() {
        let hash = hex_upper(&Sha512::digest(doc.to_string().as_bytes()));
        paths.insert(
            path.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}") }),
        );
    }
    json!({ "paths": paths })
});

/// Every schema of every document, for walking objects alongside their types.
static ALL_SCHEMAS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let mut all = Map::new();
    for doc in DOCUMENTS.values() {
        if let Some(Value::Object(schemas)) = doc.get("components").and_then(|c| c.get("schemas")) {
            for (name, schema) in schemas {
                all.entry(name.clone()).or_insert_with(|| schema.clone());
            }
        }
    }
    all
});

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn build_document(group: &str, version: &str, resources: &[&Resource]) -> Value {
    let schemas = schemas::for_group_version(resources);
    let mut paths = Map::new();
    for r in resources {
        paths::for_resource(r, &mut paths);
    }
    let title = if group.is_empty() {
        "Kubernetes".to_string()
    } else {
        format!("Kubernetes {group}")
    };
    json!({
        "openapi": "3.0.0",
        "info": { "title": title, "version": version },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header"
                }
            }
        },
        "security": [{ "BearerToken": [] }]
    })
}

/// The `/openapi/v3` body: each group-version document's URL with a hash of its content.
pub fn index() -> &'static Value {
    &INDEX
}

/// The OpenAPI 3.0 document of `path` (`api/v1`, `apis/apps/v1`), or None for an unknown one.
pub fn document(path: &str) -> Option<&'static Value> {
    DOCUMENTS.get(path.trim_matches('/'))
}

/// The schema named `name` (`io.k8s.api.core.v1.PodSpec`) in any document.
pub fn schema(name: &str) -> Option<&'static Value> {
    ALL_SCHEMAS.get(name)
}

/// The schema named `name` with the name as the documents hold it.
pub(crate) fn schema_entry(name: &str) -> Option<(&'static str, &'static Value)> {
    ALL_SCHEMAS
        .get_key_value(name)
        .map(|(k, v)| (k.as_str(), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_every_group_version_with_hash() {
        let paths = index()["paths"].as_object().expect("paths");
        for p in ["api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1"] {
            let url = paths[p]["serverRelativeURL"].as_str().expect("url");
            assert!(url.starts_with(&format!("/openapi/v3/{p}?hash=")), "{url}");
            assert_eq!(url.len(), format!("/openapi/v3/{p}?hash=").len() + 128);
        }
        assert_eq!(paths.len(), 3);
    }

    #[test]
    fn every_ref_resolves_inside_its_document() {
        for (path, doc) in DOCUMENTS.iter() {
            let schemas = doc["components"]["schemas"].as_object().expect("schemas");
            let mut refs = Vec::new();
            schemas::refs(doc, &mut refs);
            assert!(!refs.is_empty());
            for r in refs {
                assert!(schemas.contains_key(&r), "{path}: unresolved $ref {r}");
            }
        }
    }

    #[test]
    fn documents_hold_expected_schemas_and_operations() {
        let core = document("api/v1").expect("core");
        let schemas = &core["components"]["schemas"];
        for name in [
            "io.k8s.api.core.v1.Pod",
            "io.k8s.api.core.v1.PodList",
            "io.k8s.api.core.v1.Container",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            schemas::DELETE_OPTIONS,
        ] {
            assert!(schemas.get(name).is_some(), "missing {name}");
        }
        assert!(schemas.get("io.k8s.api.apps.v1.Deployment").is_none());
        assert_eq!(
            schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
                ["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert!(schemas["io.k8s.api.core.v1.PodSpec"]["description"].is_string());
        let patch = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "kind": "Pod", "version": "v1"})
        );
        let apps = document("/apis/apps/v1").expect("apps");
        assert_eq!(
            apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
                ["x-kubernetes-group-version-kind"][0]["group"],
            "apps"
        );
        assert!(document("apis/batch/v1").is_none());
        let text = serde_json::to_string(apps).expect("serializes");
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }

    #[test]
    fn schema_lookup_spans_documents() {
        assert!(schema("io.k8s.api.apps.v1.DeploymentSpec").is_some());
        assert!(schema("io.k8s.api.coordination.v1.LeaseSpec").is_some());
        assert!(schema("io.k8s.api.core.v1.Nope").is_none());
    }
}
