//! The resources our API serves: names, scope, subresources, and the typed round trip that gives
//! every stored object the exact Kubernetes JSON shape.

use serde_json::Value;

/// One REST resource (e.g. `pods` in the core group, version v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group, `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Lower-case plural used in URLs and storage keys.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources served under `.../NAME/<sub>`.
    pub subresources: &'static [&'static str],
    /// Discovery categories (`all` makes `kubectl get all` include the resource).
    pub categories: &'static [&'static str],
    /// Name of the type in OpenAPI (`io.k8s.api.core.v1.Pod`).
    pub schema_name: &'static str,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `pods` or `deployments.apps`: how Kubernetes names the resource in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// Storage key prefix of all objects of this resource, ending in `/`.
    pub fn key_prefix(&self) -> String {
        format!("/registry/{}/", self.qualified_plural())
    }

    /// Storage key prefix of this resource in one namespace (namespaced resources), ending in `/`.
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("/registry/{}/{}/", self.qualified_plural(), namespace)
    }

    /// Storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                format!("/registry/{}/{}/{}", self.qualified_plural(), ns, name)
            }
            _ => format!("/registry/{}/{}", self.qualified_plural(), name),
        }
    }

    /// Verbs advertised in discovery.
    pub fn verbs(&self) -> &'static [&'static str] {
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

macro_rules! resource {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $namespaced:expr,
     $short:expr, $subs:expr, $cats:expr, $schema:expr) => {
        Resource {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: $short,
            subresources: $subs,
            categories: $cats,
            schema_name: $schema,
        }
    };
}

/// Every resource the API serves.
pub static RESOURCES: &[Resource] = &[
    resource!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        &["status", "finalize"],
        &[],
        "io.k8s.api.core.v1.Namespace"
    ),
    resource!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        &["status", "binding", "eviction", "log", "exec"],
        &["all"],
        "io.k8s.api.core.v1.Pod"
    ),
    resource!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        &["no"],
        &["status"],
        &[],
        "io.k8s.api.core.v1.Node"
    ),
    resource!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        &["status"],
        &["all"],
        "io.k8s.api.core.v1.Service"
    ),
    resource!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        &["ep"],
        &[],
        &[],
        "io.k8s.api.core.v1.Endpoints"
    ),
    resource!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        &[],
        &[],
        "io.k8s.api.core.v1.Event"
    ),
    resource!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        &[],
        &[],
        "io.k8s.api.core.v1.ConfigMap"
    ),
    resource!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        true,
        &[],
        &[],
        &[],
        "io.k8s.api.core.v1.Secret"
    ),
    resource!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        &[],
        &[],
        "io.k8s.api.core.v1.ServiceAccount"
    ),
    resource!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        &["status", "scale"],
        &["all"],
        "io.k8s.api.apps.v1.Deployment"
    ),
    resource!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        &["status", "scale"],
        &["all"],
        "io.k8s.api.apps.v1.ReplicaSet"
    ),
    resource!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        &[],
        &[],
        &[],
        "io.k8s.api.coordination.v1.Lease"
    ),
];

/// The groups served, in discovery order, with their one version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.iter().any(|(g, v)| *g == r.group && *v == r.version) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The resource served at `/api(s)/GROUP/VERSION/PLURAL`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of an object's `apiVersion` and `kind`.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The resource a user names on a command line: plural, singular, short name or kind, with an
/// optional `.group` suffix (`deployments.apps`, `deploy`, `Pod`).
pub fn find_by_user_name(name: &str) -> Option<&'static Resource> {
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    RESOURCES.iter().find(|r| {
        let group_ok = group
            .as_deref()
            .is_none_or(|g| g == r.group || (g == "core" && r.group.is_empty()));
        group_ok
            && (r.plural == base
                || r.singular == base
                || r.kind.to_ascii_lowercase() == base
                || r.short_names.contains(&base.as_str()))
    })
}

/// Why an object could not be decoded as its kind.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("no type registered for kind {0}")]
    UnknownKind(String),
}

macro_rules! roundtrip {
    ($kind:expr, $value:expr, $( $name:literal => $ty:ty ),* $(,)?) => {
        match $kind {
            $( $name => {
                let typed: $ty = serde_json::from_value($value)?;
                Ok(serde_json::to_value(&typed)?)
            } )*
            other => Err(DecodeError::UnknownKind(other.to_string())),
        }
    };
}

/// Decodes `value` as the resource's `k8s-openapi` type and encodes it again: the result has
/// exactly the fields Kubernetes knows, in its JSON shape. Wrong field types are errors;
/// unknown fields are dropped (see [`unknown_fields`] to report them).
pub fn normalize(resource: &Resource, value: Value) -> Result<Value, DecodeError> {
    use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coord, core::v1 as core};
    let mut out: Value = roundtrip!(resource.kind, value,
        "Namespace" => core::Namespace,
        "Pod" => core::Pod,
        "Node" => core::Node,
        "Service" => core::Service,
        "Endpoints" => core::Endpoints,
        "Event" => core::Event,
        "ConfigMap" => core::ConfigMap,
        "Secret" => core::Secret,
        "ServiceAccount" => core::ServiceAccount,
        "Deployment" => apps::Deployment,
        "ReplicaSet" => apps::ReplicaSet,
        "Lease" => coord::Lease,
    )?;
    if let Some(obj) = out.as_object_mut() {
        obj.insert("apiVersion".into(), Value::String(resource.api_version()));
        obj.insert("kind".into(), Value::String(resource.kind.to_string()));
    }
    Ok(out)
}

/// Paths (`spec.foo`, `spec.containers[0].bar`) of fields in `original` that [`normalize`]
/// dropped: the fields Kubernetes does not know. Null values are not reported.
pub fn unknown_fields(original: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(original, normalized, String::new(), &mut out);
    out
}

fn walk_unknown(orig: &Value, norm: &Value, path: String, out: &mut Vec<String>) {
    match (orig, norm) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match n.get(k) {
                    Some(nv) => walk_unknown(v, nv, p, out),
                    None if v.is_null() => {}
                    None => {
                        // Empty collections of a known optional field are dropped by some types;
                        // only report a field when the parent type kept nothing under that name.
                        if !is_empty_collection(v) {
                            out.push(p)
                        }
                    }
                }
            }
        }
        (Value::Array(o), Value::Array(n)) => {
            for (i, (ov, nv)) in o.iter().zip(n.iter()).enumerate() {
                walk_unknown(ov, nv, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty_collection(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.is_empty()) || matches!(v, Value::Object(o) if o.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_resources_by_every_name() {
        assert_eq!(find_by_user_name("po").map(|r| r.kind), Some("Pod"));
        assert_eq!(
            find_by_user_name("deployments.apps").map(|r| r.kind),
            Some("Deployment")
        );
        assert_eq!(find_by_user_name("Node").map(|r| r.plural), Some("nodes"));
        assert_eq!(
            find_kind("apps/v1", "ReplicaSet").map(|r| r.plural),
            Some("replicasets")
        );
        assert!(find_by_user_name("widgets").is_none());
    }

    #[test]
    fn keys_follow_kubernetes_layout() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            deploy.key(Some("ns"), "d"),
            "/registry/deployments.apps/ns/d"
        );
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/nodes/n1");
    }

    #[test]
    fn normalize_drops_and_reports_unknown_fields() {
        let pods = find("", "v1", "pods").unwrap();
        let input = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "image": "i", "bogus": 1}], "nope": true}});
        let out = normalize(pods, input.clone()).unwrap();
        assert_eq!(
            unknown_fields(&input, &out),
            vec!["spec.containers[0].bogus", "spec.nope"]
        );
        assert!(out["spec"].get("nope").is_none());
    }

    #[test]
    fn normalize_rejects_wrong_types() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let err = normalize(
            deploy,
            json!({"metadata": {"name": "a"}, "spec": {"replicas": "x",
                "selector": {}, "template": {}}}),
        );
        assert!(err.is_err());
    }
}
