//! Discovery documents kubectl reads before anything else: /version, /api, /apis, the
//! per-group-version resource lists, and the OpenAPI v3 documents.

use api::registry::{self, Resource};
use serde_json::{json, Value};

use crate::{metrics_api, request::Query};

/// The Kubernetes version our API corresponds to (the k8s-openapi types are v1.33's).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0"),
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-11-23T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS,
            if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// `/`: the paths served.
pub fn root_paths() -> Value {
    let mut paths = vec![
        "/api".to_string(),
        "/api/v1".to_string(),
        "/apis".to_string(),
    ];
    let served = registry::groups()
        .into_iter()
        .chain([(metrics_api::GROUP, metrics_api::VERSION)]);
    for (g, v) in served {
        if !g.is_empty() {
            paths.push(format!("/apis/{g}"));
            paths.push(format!("/apis/{g}/{v}"));
        }
    }
    paths.extend(
        [
            "/healthz",
            "/livez",
            "/readyz",
            "/metrics",
            "/openapi/v3",
            "/version",
        ]
        .map(String::from),
    );
    json!({ "paths": paths })
}

/// A protobuf-encoded OpenAPI v2 document (gnostic `openapi_v2.Document`) holding only
/// `swagger: "2.0"` and its `info`: the v3 documents carry every schema.
pub fn empty_openapi_v2() -> Vec<u8> {
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let info = [
        field(0x0a, b"Kubernetes"),
        field(0x12, format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0").as_bytes()),
    ]
    .concat();
    [field(0x0a, b"2.0"), field(0x12, &info)].concat()
}

/// True for `/api/v1`, `/apis/GROUP` and `/apis/GROUP/VERSION`.
pub fn is_group_path(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(segs.as_slice(), ["api", _] | ["apis", _] | ["apis", _, _])
}

/// The discovery document at `path`, if any.
pub fn serve(path: &str, _query: &Query) -> Option<Value> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api"] => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        })),
        ["apis"] => Some(json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": registry::groups().into_iter().filter(|(g, _)| !g.is_empty()).map(|(g,
                v)| group(g, v)).chain([metrics_api::group()]).collect::<Vec<_>>(),
        })),
        ["apis", metrics_api::GROUP] => {
            let mut doc = metrics_api::group();
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            Some(doc)
        }
        ["apis", metrics_api::GROUP, metrics_api::VERSION] => Some(metrics_api::resource_list()),
        ["api", "v1"] => Some(resource_list("", "v1")),
        ["apis", g] => registry::groups()
            .into_iter()
            .find(|(gg, _)| gg == g && !g.is_empty())
            .map(|(g, v)| {
                let mut doc = group(g, v);
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                doc
            }),
        ["apis", g, v] => registry::groups()
            .into_iter()
            .find(|(gg, vv)| gg == g && vv == v && !g.is_empty())
            .map(|(g, v)| resource_list(g, v)),
        ["openapi", "v3"] => Some(api::openapi::index().clone()),
        ["openapi", "v3", rest @ ..] => api::openapi::document(&rest.join("/")).cloned(),
        _ => None,
    }
}

fn group(g: &str, v: &str) -> Value {
    let gv = format!("{g}/{v}");
    json!({
        "name": g,
        "versions": [{"groupVersion": gv, "version": v}],
        "preferredVersion": {"groupVersion": gv, "version": v},
    })
}

fn resource_list(g: &str, v: &str) -> Value {
    let gv = if g.is_empty() {
        v.to_string()
    } else {
        format!("{g}/{v}")
    };
    let mut resources = Vec::new();
    for r in registry::RESOURCES
        .iter()
        .filter(|r| r.group == g && r.version == v)
    {
        resources.push(resource_entry(r));
        for sub in r.subresources {
            resources.push(subresource_entry(r, sub));
        }
    }
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
        "resources": resources })
}

fn resource_entry(r: &Resource) -> Value {
    let mut e = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
        "storageVersionHash": format!("{:x}", fnv(r.schema_name)),
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    e
}

fn subresource_entry(r: &Resource, sub: &str) -> Value {
    let (kind, verbs, group, version): (&str, Vec<&str>, Option<&str>, Option<&str>) = match sub {
        "status" => (r.kind, vec!["get", "patch", "update"], None, None),
        "scale" => (
            "Scale",
            vec!["get", "patch", "update"],
            Some("autoscaling"),
            Some("v1"),
        ),
        "binding" => ("Binding", vec!["create"], None, None),
        "eviction" => ("Eviction", vec!["create"], Some("policy"), Some("v1")),
        "finalize" => (r.kind, vec!["update"], None, None),
        "log" => ("Pod", vec!["get"], None, None),
        "exec" => ("PodExecOptions", vec!["create", "get"], None, None),
        _ => (r.kind, vec!["get"], None, None),
    };
    let mut e = json!({
        "name": format!("{}/{sub}", r.plural),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if let Some(g) = group {
        e["group"] = json!(g);
    }
    if let Some(v) = version {
        e["version"] = json!(v);
    }
    e
}

/// A stable short hash (storageVersionHash only needs to be stable per type).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resource_list_has_pods_and_subresources() {
        let doc = serve("/api/v1", &Query::default()).unwrap();
        let names: Vec<&str> = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"pods")
                && names.contains(&"pods/status")
                && names.contains(&"namespaces/finalize")
        );
        let pods = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"][0], "po");
    }

    #[test]
    fn groups_listed() {
        let doc = serve("/apis", &Query::default()).unwrap();
        let names: Vec<&str> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["apps", "coordination.k8s.io", "metrics.k8s.io"]);
        assert!(serve("/apis/apps/v1", &Query::default()).is_some());
        let metrics = serve("/apis/metrics.k8s.io/v1beta1", &Query::default()).unwrap();
        assert_eq!(metrics["resources"][0]["kind"], "NodeMetrics");
        assert!(serve("/apis/nope/v1", &Query::default()).is_none());
    }
}
