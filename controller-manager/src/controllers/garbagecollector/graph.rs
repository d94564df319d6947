//! The garbage collector's ownership graph: every object of every watched resource by uid,
//! with its owner references, and the reverse index from an owner's uid to its dependents.
//! Plus the pure decision what to do with a dependent given the state of its owners.
//!
//! The graph holds every object of the cluster (150,000 pods and more, issue 17), so it keeps
//! them compact: uids as 16 bytes when they are UUIDs, each resource's `ApiResource` once,
//! namespaces, owner kinds and API versions shared, and each set of owner references too (every
//! pod of a ReplicaSet has the same), names and finalizers in boxed slices.
//! [`Node`] is the readable form going in and out.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::discovery::ApiResource;

use crate::pool::Pool;

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

/// A uid: a UUID in 16 bytes (as the apiserver assigns them), any other string as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Uid {
    Uuid(uuid::Uuid),
    Other(Box<str>),
}

impl Uid {
    fn new(s: &str) -> Uid {
        // Only the canonical form, so that the string comes back exactly as it was.
        match uuid::Uuid::try_parse(s) {
            Ok(u) if s.len() == 36 && !s.bytes().any(|b| b.is_ascii_uppercase()) => Uid::Uuid(u),
            _ => Uid::Other(s.into()),
        }
    }

    fn text(&self) -> String {
        match self {
            Uid::Uuid(u) => u.hyphenated().to_string(),
            Uid::Other(s) => s.to_string(),
        }
    }
}

/// An owner reference as the graph keeps it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Ref {
    api_version: Arc<str>,
    kind: Arc<str>,
    name: Box<str>,
    uid: Uid,
    controller: Option<bool>,
    block_owner_deletion: Option<bool>,
}

/// An object as the graph keeps it.
#[derive(Debug)]
struct Entry {
    /// Index into `Graph::resources`.
    resource: u32,
    namespace: Option<Arc<str>>,
    name: Box<str>,
    /// Shared with every object that has the same.
    owners: Arc<[Ref]>,
    deleting: bool,
    finalizers: Box<[Box<str>]>,
}

/// Removals between two sweeps of the shared strings no object uses any more.
const SWEEP_EVERY: usize = 4096;

/// Objects by uid and dependents by owner uid.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<Uid, Entry>,
    dependents: HashMap<Uid, HashSet<Uid>>,
    /// Every resource seen, once.
    resources: Vec<ApiResource>,
    /// Shared namespaces, owner kinds and API versions.
    strings: Pool<str>,
    /// Shared sets of owner references.
    owner_sets: Pool<[Ref]>,
    removals: usize,
}

impl Graph {
    fn intern(&mut self, s: &str) -> Arc<str> {
        self.strings.share(s)
    }

    fn resource_index(&mut self, r: &ApiResource) -> u32 {
        match self.resources.iter().position(|x| x == r) {
            Some(i) => i as u32,
            None => {
                self.resources.push(r.clone());
                (self.resources.len() - 1) as u32
            }
        }
    }

    fn node(&self, e: &Entry) -> Node {
        Node {
            resource: self.resources[e.resource as usize].clone(),
            namespace: e.namespace.as_deref().map(str::to_string),
            name: e.name.to_string(),
            owners: e
                .owners
                .iter()
                .map(|r| OwnerReference {
                    api_version: r.api_version.to_string(),
                    kind: r.kind.to_string(),
                    name: r.name.to_string(),
                    uid: r.uid.text(),
                    controller: r.controller,
                    block_owner_deletion: r.block_owner_deletion,
                })
                .collect(),
            deleting: e.deleting,
            finalizers: e.finalizers.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// Adds or replaces an object.
    pub fn upsert(&mut self, uid: &str, node: Node) {
        let uid = Uid::new(uid);
        self.unlink(&uid);
        let owners: Vec<Ref> = node
            .owners
            .into_iter()
            .map(|o| Ref {
                api_version: self.intern(&o.api_version),
                kind: self.intern(&o.kind),
                name: o.name.into(),
                uid: Uid::new(&o.uid),
                controller: o.controller,
                block_owner_deletion: o.block_owner_deletion,
            })
            .collect();
        let entry = Entry {
            resource: self.resource_index(&node.resource),
            namespace: node.namespace.as_deref().map(|n| self.intern(n)),
            name: node.name.into(),
            owners: self.owner_sets.share(owners),
            deleting: node.deleting,
            finalizers: node.finalizers.into_iter().map(Into::into).collect(),
        };
        for o in entry.owners.iter() {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        self.nodes.insert(uid, entry);
    }

    fn unlink(&mut self, uid: &Uid) {
        if let Some(old) = self.nodes.get(uid) {
            for o in old.owners.iter() {
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
        let uid = Uid::new(uid);
        self.unlink(&uid);
        let node = self.nodes.remove(&uid).map(|e| self.node(&e));
        self.removals += 1;
        if self.removals >= SWEEP_EVERY {
            self.removals = 0;
            // Sets first: they hold the strings.
            self.owner_sets.sweep();
            self.strings.sweep();
        }
        node
    }

    /// The object of a uid.
    pub fn get(&self, uid: &str) -> Option<Node> {
        self.nodes.get(&Uid::new(uid)).map(|e| self.node(e))
    }

    /// The uids of the objects that name `uid` as an owner.
    pub fn dependents(&self, uid: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .dependents
            .get(&Uid::new(uid))
            .map(|s| s.iter().map(Uid::text).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The uids known for a resource (to find those a relist no longer has).
    pub fn uids_of(&self, resource: &ApiResource) -> Vec<String> {
        let indexes: Vec<u32> = (0..self.resources.len() as u32)
            .filter(|i| {
                let r = &self.resources[*i as usize];
                r.group == resource.group && r.plural == resource.plural
            })
            .collect();
        self.nodes
            .iter()
            .filter(|(_, e)| indexes.contains(&e.resource))
            .map(|(u, _)| u.text())
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
        g.upsert("p3", node(&["rs"]));
        let owners = |uid: &str| g.nodes[&Uid::new(uid)].owners.clone();
        assert!(
            Arc::ptr_eq(&owners("p1"), &owners("p3")),
            "one copy of a set"
        );
        g.remove("p3");
        g.upsert("p2", node(&["other"]));
        assert_eq!(g.dependents("rs"), ["p1"]);
        assert_eq!(g.dependents("other"), ["p2"]);
        g.remove("p1");
        assert!(g.dependents("rs").is_empty());
        assert_eq!(g.uids_of(&res()), ["p2"]);
    }

    #[test]
    fn uids_and_shared_strings_come_back_as_they_were() {
        let mut g = Graph::default();
        let (rs, p) = (
            "0b6c6a6e-9a64-4f5e-8b1c-2a3d4e5f6a7b",
            "1c7d7b7f-ab75-4a6f-9c2d-3b4e5f6a7b8c",
        );
        let mut n = node(&[rs]);
        n.owners[0].kind = "ReplicaSet".into();
        n.owners[0].controller = Some(true);
        n.finalizers = vec![FOREGROUND.into()];
        n.deleting = true;
        g.upsert(p, n.clone());
        g.upsert(
            "UPPER-not-a-uuid",
            node(&["0B6C6A6E-9A64-4F5E-8B1C-2A3D4E5F6A7B"]),
        );
        let back = g.get(p).unwrap();
        assert_eq!(back.owners, n.owners);
        assert_eq!((&back.namespace, &back.name), (&n.namespace, &n.name));
        assert!(back.deleting && back.has_finalizer(FOREGROUND));
        assert_eq!(back.resource, res());
        assert_eq!(g.dependents(rs), [p]);
        assert_eq!(
            g.dependents("0B6C6A6E-9A64-4F5E-8B1C-2A3D4E5F6A7B"),
            ["UPPER-not-a-uuid"]
        );
        let mut uids = g.uids_of(&res());
        uids.sort();
        assert_eq!(uids, [p, "UPPER-not-a-uuid"]);
        assert_eq!(g.remove(p).unwrap().owners, n.owners);
        assert!(g.get(p).is_none() && g.dependents(rs).is_empty());
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
