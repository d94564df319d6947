//! `metrics.k8s.io/v1beta1` served by the apiserver itself, from the agents, so that
//! `kubectl top nodes|pods` and `pctl top` work with no add-on (Kubernetes needs the separate
//! metrics-server for this). Each request asks the agents of the Ready nodes for their Summary
//! API (`/stats/summary`, the kubelet's: node and per-container CPU in nanocores and memory
//! working set) over the same authenticated connection as logs and exec, and answers
//! NodeMetrics and PodMetrics as metrics-server does (CPU in nanocores `n`, memory in `Ki`,
//! the objects' labels copied so that label selectors work). A node whose agent does not
//! answer within 5 s is left out of lists, as metrics-server leaves out what it could not
//! scrape.

use std::time::Duration;

use api::{registry, selectors::LabelSelector, status::StatusError};
use axum::{
    http::{Method, StatusCode},
    response::Response,
};
use serde_json::{json, Map, Value};

use crate::{
    auth::{self, Attributes, Decision, UserInfo},
    handlers::json_response,
    request::Query,
    state::AppState,
};

/// The group and version served.
pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
/// How long one agent may take to answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The window metrics-server reports for kubelet-computed rates.
const WINDOW: &str = "10s";

/// The group's discovery entry (`/apis`, `/apis/metrics.k8s.io`).
pub fn group() -> Value {
    let gv = format!("{GROUP}/{VERSION}");
    json!({
        "name": GROUP,
        "versions": [{"groupVersion": gv, "version": VERSION}],
        "preferredVersion": {"groupVersion": gv, "version": VERSION},
    })
}

/// `/apis/metrics.k8s.io/v1beta1`.
pub fn resource_list() -> Value {
    let entry = |name: &str, singular: &str, kind: &str, namespaced: bool| {
        json!({"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
            "verbs": ["get", "list"]})
    };
    json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [entry("nodes", "", "NodeMetrics", false), entry("pods", "", "PodMetrics", true)],
    })
}

/// What a metrics.k8s.io path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Nodes(Option<&'a str>),
    Pods {
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    },
}

fn parse(path: &str) -> Option<Target<'_>> {
    let rest = path
        .trim_end_matches('/')
        .strip_prefix("/apis/metrics.k8s.io/v1beta1/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    match segs.as_slice() {
        ["nodes"] => Some(Target::Nodes(None)),
        ["nodes", n] => Some(Target::Nodes(Some(n))),
        ["pods"] => Some(Target::Pods {
            namespace: None,
            name: None,
        }),
        ["namespaces", ns, "pods"] => Some(Target::Pods {
            namespace: Some(ns),
            name: None,
        }),
        ["namespaces", ns, "pods", n] => Some(Target::Pods {
            namespace: Some(ns),
            name: Some(n),
        }),
        _ => None,
    }
}

/// Serves a request under `/apis/metrics.k8s.io/v1beta1/`; None for other paths.
pub async fn serve(
    state: &AppState,
    method: &Method,
    path: &str,
    query: &Query,
    user: &UserInfo,
) -> Option<Result<Response, StatusError>> {
    let target = parse(path)?;
    Some(answer(state, method, target, query, user).await)
}

async fn answer(
    state: &AppState,
    method: &Method,
    target: Target<'_>,
    query: &Query,
    user: &UserInfo,
) -> Result<Response, StatusError> {
    if *method != Method::GET {
        return Err(StatusError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let (resource, namespace, name) = match &target {
        Target::Nodes(n) => ("nodes", None, *n),
        Target::Pods { namespace, name } => ("pods", *namespace, *name),
    };
    let attrs = Attributes {
        verb: if name.is_some() { "get" } else { "list" },
        group: GROUP,
        resource,
        subresource: None,
        namespace,
        name,
    };
    if let Decision::Deny(why) = state.authz.authorize(user, &attrs) {
        return Err(auth::forbidden(user, &attrs, &why));
    }
    let selector = match query.get("labelSelector") {
        Some(s) => {
            Some(LabelSelector::parse(s).map_err(|e| StatusError::bad_request(e.to_string()))?)
        }
        None => None,
    };
    let nodes = objects(state, "nodes", None);
    let summaries = scrape(state, &nodes).await;
    let items: Vec<Value> = match &target {
        Target::Nodes(_) => nodes
            .iter()
            .filter_map(|n| {
                let node_name = n.pointer("/metadata/name")?.as_str()?;
                let summary = summaries.iter().find(|(name, _)| name == node_name)?;
                node_metrics(n, &summary.1)
            })
            .collect(),
        Target::Pods { namespace, .. } => {
            let pods = objects(state, "pods", *namespace);
            summaries
                .iter()
                .flat_map(|(_, s)| s["pods"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| pod_metrics(&p, &pods))
                .collect()
        }
    };
    let kind = match target {
        Target::Nodes(_) => "NodeMetrics",
        Target::Pods { .. } => "PodMetrics",
    };
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|i| {
            let labels = i.pointer("/metadata/labels").and_then(Value::as_object);
            selector
                .as_ref()
                .is_none_or(|s| s.matches(labels.unwrap_or(&Map::new())))
        })
        .filter(|i| {
            name.is_none_or(|n| i.pointer("/metadata/name").and_then(Value::as_str) == Some(n))
        })
        .collect();
    items.sort_by_key(|i| {
        (
            i.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            i.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    });
    if let Some(n) = name {
        return match items.pop() {
            Some(item) => Ok(json_response(StatusCode::OK, &item)),
            None => Err(StatusError::not_found(
                &format!("{resource}.{GROUP}"),
                GROUP,
                n,
            )),
        };
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{kind}List"),
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": {},
            "items": items,
        }),
    ))
}

/// The objects of a resource from the watch cache (one namespace, or all).
fn objects(state: &AppState, plural: &str, namespace: Option<&str>) -> Vec<Value> {
    let Some(resource) = registry::find_by_user_name(plural) else {
        return Vec::new();
    };
    let Some(cache) = state.caches.get(resource) else {
        return Vec::new();
    };
    let prefix = match namespace {
        Some(ns) => resource.namespace_prefix(ns),
        None => resource.key_prefix(),
    };
    cache
        .snapshot(&prefix, None)
        .0
        .into_iter()
        .map(|o| o.value())
        .collect()
}

fn ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The Summary of each Ready node whose agent answered: (node name, summary).
async fn scrape(state: &AppState, nodes: &[Value]) -> Vec<(String, Value)> {
    let asks = nodes.iter().filter(|n| ready(n)).map(|n| async move {
        let name = n.pointer("/metadata/name")?.as_str()?.to_string();
        let (host, port) = state.kubelet.endpoint(n).ok()?;
        let got = tokio::time::timeout(
            SCRAPE_TIMEOUT,
            state.kubelet.get_json(&host, port, "/stats/summary"),
        )
        .await;
        match got {
            Ok(Ok(summary)) => Some((name, summary)),
            Ok(Err(e)) => {
                tracing::warn!(node = %name, error = %e.message, "scraping the agent's summary");
                None
            }
            Err(_) => {
                tracing::warn!(node = %name, "scraping the agent's summary timed out");
                None
            }
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// `{"cpu": "<n>n", "memory": "<k>Ki"}` from a Summary entry's `cpu` and `memory`; None
/// when either is missing.
fn usage(stats: &Value) -> Option<Value> {
    let cpu = stats.pointer("/cpu/usageNanoCores")?.as_u64()?;
    let memory = stats.pointer("/memory/workingSetBytes")?.as_u64()?;
    Some(json!({"cpu": format!("{cpu}n"), "memory": format!("{}Ki", memory / 1024)}))
}

fn sample_time(stats: &Value) -> Value {
    stats
        .pointer("/cpu/time")
        .or_else(|| stats.pointer("/memory/time"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn node_metrics(node: &Value, summary: &Value) -> Option<Value> {
    let stats = summary.get("node")?;
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {
            "name": node.pointer("/metadata/name")?,
            "creationTimestamp": chrono_now(),
            "labels": node.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
        },
        "timestamp": sample_time(stats),
        "window": WINDOW,
        "usage": usage(stats)?,
    }))
}

/// A PodMetrics from a Summary's pod entry, for a pod that exists (its labels copied); None
/// for pods of other namespaces, gone pods, or a pod with a container without usage.
fn pod_metrics(entry: &Value, pods: &[Value]) -> Option<Value> {
    let name = entry.pointer("/podRef/name")?.as_str()?;
    let namespace = entry.pointer("/podRef/namespace")?.as_str()?;
    let pod = pods.iter().find(|p| {
        p.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
            && p.pointer("/metadata/namespace").and_then(Value::as_str) == Some(namespace)
    })?;
    let containers: Vec<Value> = entry["containers"]
        .as_array()?
        .iter()
        .map(|c| Some(json!({"name": c.get("name")?, "usage": usage(c)?})))
        .collect::<Option<Vec<Value>>>()?;
    let time = entry["containers"]
        .as_array()
        .and_then(|l| l.first())
        .map(sample_time)
        .unwrap_or(Value::Null);
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": chrono_now(),
            "labels": pod.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
        },
        "timestamp": time,
        "window": WINDOW,
        "containers": containers,
    }))
}

/// Now, as Kubernetes writes times.
fn chrono_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Value {
        json!({
            "node": {"nodeName": "n1",
                "cpu": {"time": "2026-12-06T12:00:00Z", "usageNanoCores": 250_000_000u64, "usageCoreNanoSeconds": 9},
                "memory": {"time": "2026-12-06T12:00:00Z", "workingSetBytes": 1_048_576u64}},
            "pods": [
                {"podRef": {"name": "web", "namespace": "default", "uid": "u1"},
                 "containers": [{"name": "app",
                    "cpu": {"time": "2026-12-06T12:00:01Z", "usageNanoCores": 1_000_000u64},
                    "memory": {"time": "2026-12-06T12:00:01Z", "workingSetBytes": 2_097_152u64}}]},
                {"podRef": {"name": "gone", "namespace": "default", "uid": "u2"},
                 "containers": [{"name": "app",
                    "cpu": {"usageNanoCores": 1u64}, "memory": {"workingSetBytes": 1u64}}]},
            ],
        })
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse("/apis/metrics.k8s.io/v1beta1/nodes"),
            Some(Target::Nodes(None))
        );
        assert_eq!(
            parse("/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods/p1"),
            Some(Target::Pods {
                namespace: Some("kube-system"),
                name: Some("p1")
            })
        );
        assert_eq!(parse("/apis/metrics.k8s.io/v1beta1/services"), None);
        assert_eq!(parse("/apis/apps/v1/deployments"), None);
    }

    #[test]
    fn node_and_pod_metrics_as_metrics_server_writes_them() {
        let node = json!({"metadata": {"name": "n1", "labels": {"zone": "a"}}});
        let m = node_metrics(&node, &summary()).unwrap();
        assert_eq!(m["usage"], json!({"cpu": "250000000n", "memory": "1024Ki"}));
        assert_eq!(m["metadata"]["labels"]["zone"], "a");
        assert_eq!(m["timestamp"], "2026-12-06T12:00:00Z");
        let pods = vec![
            json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}}),
        ];
        let entries = summary()["pods"].as_array().unwrap().clone();
        let m = pod_metrics(&entries[0], &pods).unwrap();
        assert_eq!(
            m["containers"][0],
            json!({"name": "app", "usage": {"cpu": "1000000n", "memory": "2048Ki"}})
        );
        assert_eq!(m["metadata"]["labels"]["app"], "web");
        // A pod the API no longer has is left out.
        assert!(pod_metrics(&entries[1], &pods).is_none());
    }
}
