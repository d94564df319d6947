//! What the scheduling cycle sees: the pod being scheduled ([`PodInfo`], with its requests
//! computed once), and each node with the pods placed on it ([`NodeInfo`], keeping only a
//! compact [`PodSummary`] per pod so the cache stays small at thousands of nodes).

use std::{collections::HashMap, sync::Arc};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::labels::NodeLabels;
use crate::resources::{node_allocatable, pod_requests, Resources};

/// A host port a pod uses: (protocol, host IP, port). The IP is `0.0.0.0` when unset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports cannot both be bound on one node: same protocol and port, and
    /// the same IP or either one is the wildcard.
    pub fn conflicts(&self, o: &HostPort) -> bool {
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || self.ip == "0.0.0.0" || o.ip == "0.0.0.0")
    }
}

/// What the cache keeps of a pod placed on a node.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSummary {
    /// `namespace/name`.
    pub key: String,
    /// Effective requests (for NodeResourcesFit).
    pub requests: Resources,
    /// Requests with the scoring defaults for containers that request nothing.
    pub non_zero: Resources,
    /// Host ports of its containers.
    pub host_ports: Vec<HostPort>,
    /// The uid of its controlling owner (ReplicaSet, StatefulSet...), for spreading.
    pub owner: Option<String>,
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

impl PodSummary {
    /// Computes the summary of a pod.
    pub fn of(pod: &Pod) -> PodSummary {
        let (requests, non_zero, host_ports) = match &pod.spec {
            Some(spec) => {
                let ports = spec
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .filter(|p| p.host_port.unwrap_or(0) > 0)
                    .map(|p| HostPort {
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|ip| !ip.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        port: p.host_port.unwrap_or(0),
                    })
                    .collect();
                (pod_requests(spec, false), pod_requests(spec, true), ports)
            }
            None => Default::default(),
        };
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| r.uid.clone());
        PodSummary {
            key: pod_key(pod),
            requests,
            non_zero,
            host_ports,
            owner,
        }
    }
}

/// The pod being scheduled.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub summary: Arc<PodSummary>,
}

impl PodInfo {
    /// Wraps a pod, computing its summary.
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let summary = Arc::new(PodSummary::of(&pod));
        PodInfo { pod, summary }
    }
}

/// One node of the snapshot and what is placed on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub allocatable: Resources,
    /// How many pods the node takes (`allocatable.pods`).
    pub allowed_pods: i64,
    /// Sum of the requests of its pods.
    pub requested: Resources,
    /// Sum of the scoring requests of its pods.
    pub non_zero_requested: Resources,
    /// Its pods (bound or assumed).
    pub pods: Vec<Arc<PodSummary>>,
    /// Image name (each of `status.images[].names`) → size in bytes.
    pub images: HashMap<String, i64>,
    /// The node's labels as symbols, for matching node affinity quickly.
    pub label_syms: NodeLabels,
}

impl NodeInfo {
    /// A node with no pods yet.
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut info = NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            node: node.clone(),
            allocatable: Resources::default(),
            allowed_pods: 0,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: Vec::new(),
            images: HashMap::new(),
            label_syms: NodeLabels::default(),
        };
        info.set_node(node);
        info
    }

    /// Replaces the node object, keeping the pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let (alloc, pods) = node_allocatable(&node);
        self.allocatable = alloc;
        self.allowed_pods = pods;
        self.label_syms = NodeLabels::of(node.metadata.labels.as_ref());
        self.images = node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|img| {
                let size = img.size_bytes.unwrap_or(0);
                img.names.iter().flatten().map(move |n| (n.clone(), size))
            })
            .collect();
        self.node = node;
    }

    /// Places a pod on the node.
    pub fn add_pod(&mut self, pod: Arc<PodSummary>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero);
        self.pods.push(pod);
    }

    /// Removes the pod with `key`; returns whether it was there.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero);
        true
    }

    /// The node's labels.
    pub fn labels(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        self.node.metadata.labels.as_ref()
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Small builders for plugin tests.
    use super::*;
    use serde_json::{json, Value};

    /// A pod from a JSON spec.
    pub fn pod(spec: Value) -> PodInfo {
        pod_meta(json!({"name": "p", "namespace": "default"}), spec)
    }

    /// A pod from JSON metadata and spec.
    pub fn pod_meta(meta: Value, spec: Value) -> PodInfo {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        }
        let p: Pod = serde_json::from_value(json!({"metadata": meta, "spec": spec})).unwrap();
        PodInfo::new(Arc::new(p))
    }

    /// A node from JSON metadata, spec and status.
    pub fn node(name: &str, labels: Value, spec: Value, status: Value) -> NodeInfo {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels}, "spec": spec, "status": status
        }))
        .unwrap();
        NodeInfo::new(Arc::new(n))
    }

    /// A node with cpu, memory and pods allocatable and nothing else.
    pub fn sized(name: &str, cpu: &str, mem: &str, pods: &str) -> NodeInfo {
        node(
            name,
            json!({}),
            json!({}),
            json!({"allocatable": {"cpu": cpu, "memory": mem, "pods": pods}}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn summary_and_accounting() {
        let p = pod_meta(
            json!({"name": "a", "namespace": "ns", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}]}),
            json!({"containers": [{"name": "c", "image": "i",
                "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}],
                "resources": {"requests": {"cpu": "500m"}}}]}),
        );
        let s = &p.summary;
        assert_eq!(s.key, "ns/a");
        assert_eq!(s.owner.as_deref(), Some("u1"));
        assert_eq!(
            s.host_ports,
            vec![HostPort {
                protocol: "TCP".into(),
                ip: "0.0.0.0".into(),
                port: 8080
            }]
        );
        let mut n = sized("n", "2", "1Gi", "10");
        n.add_pod(p.summary.clone());
        assert_eq!(n.requested.milli_cpu, 500);
        assert!(n.remove_pod("ns/a"));
        assert!(!n.remove_pod("ns/a"));
        assert_eq!(n.requested, Resources::default());
    }

    #[test]
    fn host_port_conflicts() {
        let hp = |proto: &str, ip: &str, port| HostPort {
            protocol: proto.into(),
            ip: ip.into(),
            port,
        };
        let cases = [
            (hp("TCP", "0.0.0.0", 80), hp("TCP", "10.0.0.1", 80), true),
            (hp("TCP", "10.0.0.2", 80), hp("TCP", "10.0.0.1", 80), false),
            (hp("TCP", "0.0.0.0", 80), hp("UDP", "0.0.0.0", 80), false),
            (hp("TCP", "0.0.0.0", 80), hp("TCP", "0.0.0.0", 81), false),
            (hp("UDP", "1.2.3.4", 53), hp("UDP", "1.2.3.4", 53), true),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.conflicts(&b), want, "{a:?} vs {b:?}");
        }
    }
}
