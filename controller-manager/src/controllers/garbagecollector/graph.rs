//! The garbage collector's ownership graph: every object of every watched resource by uid,
//! with its owner references, and the reverse index from an owner's uid to its dependents.
//! Plus the pure decision what to do with a dependent given the state of its owners.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::discovery::ApiResource;

/// The finalizer of a foreground deletion (dependents first).
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion (dependents kept, references removed).
pub const ORPHAN: &str = "orphan";

/// One object as the graph knows it.
#[derive(Debug, Clone)]
pub struct Node {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    /// Has the finalizer `f`.
    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
}

/// Objects by uid and dependents by owner uid.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// Adds or replaces an object.
    pub fn upsert(&mut self, uid: &str, node: Node) {
        self.unlink(uid);
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.to_string());
        }
        self.nodes.insert(uid.to_string(), node);
    }

    fn unlink(&mut self, uid: &str) {
        if let Some(old) = self.nodes.get(uid) {
            for o in &old.owners {
                if let Some(set) = self.dependents.get_mut(&o.uid) {
                    set.remove(uid);
                    if set.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
            }
        }
    }

    /// Removes an object; returns it.
    pub fn remove(&mut self, uid: &str) -> Option<Node> {
        self.unlink(uid);
        self.nodes.remove(uid)
    }

    /// The object of a uid.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The uids of the objects that name `uid` as an owner.
    pub fn dependents(&self, uid: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The uids known for a resource (to find those a relist no longer has).
    pub fn uids_of(&self, resource: &ApiResource) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| {
                n.resource.group == resource.group && n.resource.plural == resource.plural
            })
            .map(|(u, _)| u.clone())
            .collect()
    }
}

/// An owner's state as seen from a dependent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists (with the referenced uid) and is not being deleted in the foreground.
    Solid,
    /// Being deleted in the foreground: waits for its dependents.
    WaitingForDependents,
    /// Gone (or replaced by another object of the same name).
    Absent,
}

/// What to do with a dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some owner is solid and none needs anything: nothing.
    Keep,
    /// Some owner is solid: drop the references to these absent or waiting owners.
    DropReferences(Vec<String>),
    /// No owner is solid: delete it, in the foreground when an owner waits for it.
    Delete { foreground: bool },
}

/// Kubernetes' `attemptToDeleteItem` decision for a dependent with these owners.
pub fn verdict(owners: &[(String, OwnerState)]) -> Verdict {
    if owners.is_empty() {
        return Verdict::Keep;
    }
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    let stale: Vec<String> = owners
        .iter()
        .filter(|(_, s)| *s != OwnerState::Solid)
        .map(|(u, _)| u.clone())
        .collect();
    if solid {
        return if stale.is_empty() {
            Verdict::Keep
        } else {
            Verdict::DropReferences(stale)
        };
    }
    Verdict::Delete {
        foreground: owners
            .iter()
            .any(|(_, s)| *s == OwnerState::WaitingForDependents),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res() -> ApiResource {
        ApiResource {
            group: "".into(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
        }
    }

    fn node(owners: &[&str]) -> Node {
        Node {
            resource: res(),
            namespace: Some("default".into()),
            name: "x".into(),
            owners: owners
                .iter()
                .map(|u| OwnerReference {
                    uid: u.to_string(),
                    ..Default::default()
                })
                .collect(),
            deleting: false,
            finalizers: vec![],
        }
    }

    #[test]
    fn dependents_follow_owner_references() {
        let mut g = Graph::default();
        g.upsert("p1", node(&["rs"]));
        g.upsert("p2", node(&["rs", "other"]));
        assert_eq!(g.dependents("rs"), ["p1", "p2"]);
        g.upsert("p2", node(&["other"]));
        assert_eq!(g.dependents("rs"), ["p1"]);
        assert_eq!(g.dependents("other"), ["p2"]);
        g.remove("p1");
        assert!(g.dependents("rs").is_empty());
        assert_eq!(g.uids_of(&res()), ["p2"]);
    }

    #[test]
    fn verdicts() {
        use OwnerState::*;
        let o = |v: &[(&str, OwnerState)]| {
            v.iter()
                .map(|(u, s)| (u.to_string(), *s))
                .collect::<Vec<_>>()
        };
        assert_eq!(verdict(&o(&[])), Verdict::Keep);
        assert_eq!(verdict(&o(&[("a", Solid)])), Verdict::Keep);
        assert_eq!(
            verdict(&o(&[("a", Absent)])),
            Verdict::Delete { foreground: false }
        );
        assert_eq!(
            verdict(&o(&[("a", WaitingForDependents)])),
            Verdict::Delete { foreground: true }
        );
        assert_eq!(
            verdict(&o(&[("a", Solid), ("b", Absent)])),
            Verdict::DropReferences(vec!["b".into()])
        );
    }
}
