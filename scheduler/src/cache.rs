//! The scheduler's cache: every node with the pods bound or assumed on it, kept from the
//! informers' events. A pod the scheduler has placed but whose binding the informer has not
//! confirmed yet is *assumed*: it counts against its node so the next pods see the resources
//! taken; it is confirmed when the informer shows it bound, or forgotten if binding fails.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::{
    framework::ClusterEvent,
    nodeinfo::{pod_key, NodeInfo, PodSummary},
};

#[derive(Debug)]
struct Placed {
    node: String,
    summary: Arc<PodSummary>,
    assumed: bool,
}

/// Nodes and placed pods.
#[derive(Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, Placed>,
    /// Pods bound to nodes the cache does not have (yet), by node name.
    orphans: HashMap<String, Vec<Arc<PodSummary>>>,
}

/// The events a node update stands for.
pub fn node_changes(old: &Node, new: &Node) -> Vec<ClusterEvent> {
    let mut out = Vec::new();
    if old.metadata.labels != new.metadata.labels {
        out.push(ClusterEvent::NodeLabelsChanged);
    }
    let spec = |n: &Node| n.spec.clone().unwrap_or_default();
    let (os, ns) = (spec(old), spec(new));
    if os.taints != ns.taints {
        out.push(ClusterEvent::NodeTaintsChanged);
    }
    if os.unschedulable.unwrap_or(false) != ns.unschedulable.unwrap_or(false) {
        out.push(ClusterEvent::NodeSchedulableChanged);
    }
    let status = |n: &Node| {
        n.status
            .as_ref()
            .map(|s| (s.allocatable.clone(), s.capacity.clone(), s.images.clone()))
            .unwrap_or_default()
    };
    let ((oa, oc, oi), (na, nc, ni)) = (status(old), status(new));
    if oa != na || oc != nc {
        out.push(ClusterEvent::NodeAllocatableChanged);
    }
    if oi != ni {
        out.push(ClusterEvent::NodeImagesChanged);
    }
    out
}

impl Cache {
    /// The snapshot the scheduling cycle reads.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// How many pods are placed, and how many of them assumed.
    pub fn pod_counts(&self) -> (usize, usize) {
        let assumed = self.pods.values().filter(|p| p.assumed).count();
        (self.pods.len(), assumed)
    }

    /// Adds or updates a node; returns the events it stands for.
    pub fn set_node(&mut self, node: Arc<Node>) -> Vec<ClusterEvent> {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(i) = self.index.get(&name) {
            let info = &mut self.nodes[*i];
            let events = node_changes(&info.node, &node);
            info.set_node(node);
            return events;
        }
        let mut info = NodeInfo::new(node);
        for pod in self.orphans.remove(&name).unwrap_or_default() {
            info.add_pod(pod);
        }
        self.index.insert(name, self.nodes.len());
        self.nodes.push(info);
        vec![ClusterEvent::NodeAdded]
    }

    /// Removes a node; its pods wait for it to come back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let info = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            self.index.insert(self.nodes[i].name.clone(), i);
        }
        if !info.pods.is_empty() {
            self.orphans.insert(info.name.clone(), info.pods);
        }
    }

    /// Keeps only the nodes named in `keep` (after a relist).
    pub fn retain_nodes(&mut self, keep: &HashSet<String>) {
        let gone: Vec<String> = self
            .index
            .keys()
            .filter(|n| !keep.contains(*n))
            .cloned()
            .collect();
        for n in gone {
            self.remove_node(&n);
        }
    }

    fn place(&mut self, key: String, node: String, summary: Arc<PodSummary>, assumed: bool) {
        match self.index.get(&node) {
            Some(i) => self.nodes[*i].add_pod(summary.clone()),
            None => self
                .orphans
                .entry(node.clone())
                .or_default()
                .push(summary.clone()),
        }
        self.pods.insert(
            key,
            Placed {
                node,
                summary,
                assumed,
            },
        );
    }

    fn unplace(&mut self, key: &str) -> Option<Placed> {
        let placed = self.pods.remove(key)?;
        match self.index.get(&placed.node) {
            Some(i) => {
                self.nodes[*i].remove_pod(key);
            }
            None => {
                if let Some(list) = self.orphans.get_mut(&placed.node) {
                    list.retain(|p| p.key != key);
                    if list.is_empty() {
                        self.orphans.remove(&placed.node);
                    }
                }
            }
        }
        Some(placed)
    }

    /// A pod the informer shows bound to a node: added, updated, or (if assumed) confirmed.
    pub fn pod_bound(&mut self, pod: &Pod) {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return;
        };
        let summary = PodSummary::of(pod);
        let key = summary.key.clone();
        if let Some(p) = self.pods.get(&key) {
            if p.node == node && *p.summary == summary && !p.assumed {
                return;
            }
        }
        self.unplace(&key);
        self.place(key, node, Arc::new(summary), false);
    }

    /// A placed pod went away; returns whether the cache had it (its resources are free now).
    pub fn pod_gone(&mut self, key: &str) -> bool {
        self.unplace(key).is_some()
    }

    /// Keeps only the placed pods in `keep`, and assumed ones (after a relist). Returns
    /// whether any went.
    pub fn retain_pods(&mut self, keep: &HashSet<String>) -> bool {
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(k, p)| !p.assumed && !keep.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            self.unplace(k);
        }
        !gone.is_empty()
    }

    /// Assumes `pod` on `node` while it is being bound.
    pub fn assume(&mut self, pod: Arc<PodSummary>, node: &str) {
        let key = pod.key.clone();
        self.unplace(&key);
        self.place(key, node.to_string(), pod, true);
    }

    /// Drops an assumed pod (its binding failed). Returns whether it was assumed.
    pub fn forget(&mut self, key: &str) -> bool {
        if self.pods.get(key).is_some_and(|p| p.assumed) {
            self.unplace(key);
            return true;
        }
        false
    }

    /// Whether the pod is assumed (being bound).
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|p| p.assumed)
    }

    /// Whether the pod is placed (bound or assumed).
    pub fn is_placed(&self, pod: &Pod) -> bool {
        self.pods.contains_key(&pod_key(pod))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "10"}}}))
            .unwrap(),
        )
    }

    fn pod(name: &str, node: Option<&str>) -> Pod {
        let mut v = json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": "100m"}}}]}});
        if let Some(n) = node {
            v["spec"]["nodeName"] = json!(n);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn assume_confirm_forget() {
        let mut c = Cache::default();
        assert_eq!(c.set_node(node("n1", "1")), vec![ClusterEvent::NodeAdded]);
        let p = pod("a", None);
        c.assume(Arc::new(PodSummary::of(&p)), "n1");
        assert!(c.is_assumed("default/a"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 100);
        // The informer confirms it: still counted once.
        c.pod_bound(&pod("a", Some("n1")));
        assert!(!c.is_assumed("default/a"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 100);
        assert!(!c.forget("default/a"));
        // Another assumed pod whose binding fails is forgotten.
        c.assume(Arc::new(PodSummary::of(&pod("b", None))), "n1");
        assert_eq!(c.node("n1").unwrap().pods.len(), 2);
        assert!(c.forget("default/b"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 100);
        assert!(c.pod_gone("default/a"));
        assert!(!c.pod_gone("default/a"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn pods_before_their_node_and_node_removal() {
        let mut c = Cache::default();
        c.pod_bound(&pod("a", Some("n2")));
        c.set_node(node("n1", "1"));
        c.set_node(node("n2", "1"));
        assert_eq!(c.node("n2").unwrap().pods.len(), 1);
        c.remove_node("n1");
        assert_eq!(c.nodes().len(), 1);
        assert_eq!(c.node("n2").unwrap().name, "n2");
        c.remove_node("n2");
        c.set_node(node("n2", "1"));
        assert_eq!(c.node("n2").unwrap().pods.len(), 1);
        assert!(c.retain_pods(&HashSet::new()));
        assert!(c.node("n2").unwrap().pods.is_empty());
        c.retain_nodes(&HashSet::new());
        assert!(c.nodes().is_empty());
    }

    #[test]
    fn node_updates_name_their_changes() {
        let mut c = Cache::default();
        c.set_node(node("n1", "1"));
        assert!(c.set_node(node("n1", "1")).is_empty());
        assert_eq!(
            c.set_node(node("n1", "2")),
            vec![ClusterEvent::NodeAllocatableChanged]
        );
        let mut tainted = (*node("n1", "2")).clone();
        tainted.spec = Some(
            serde_json::from_value(json!({"unschedulable": true,
            "taints": [{"key": "k", "effect": "NoSchedule"}]}))
            .unwrap(),
        );
        tainted.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert_eq!(
            c.set_node(Arc::new(tainted)),
            vec![
                ClusterEvent::NodeLabelsChanged,
                ClusterEvent::NodeTaintsChanged,
                ClusterEvent::NodeSchedulableChanged
            ]
        );
    }
}
