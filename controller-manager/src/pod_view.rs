//! The controller-manager's pod: only what its controllers read, deserialized straight from
//! the API's JSON (unknown fields skipped), so the pod informer never builds a k8s-openapi
//! `Pod` (whose `PodSpec`, `Container` and `ContainerStatus` are kilobytes inline even when
//! empty) for the 150,000 pods it caches (issue 17).
//!
//! What the controllers read: the identity and times (name, namespace, uid, resourceVersion,
//! creation and deletion), labels, owner references, the node, tolerations, the named
//! container ports, the phase, the Ready condition (status and since when), the pod IP and
//! the highest container restart count. Words that repeat across pods (phases, condition
//! statuses, owner kinds, toleration keys) are static strings, not allocations, and the
//! namespaces and the label, owner and toleration sets, which every pod of a ReplicaSet
//! shares, are kept once each (a [`Pool`]). The view holds no k8s-openapi `ObjectMeta` (over
//! 400 bytes inline, set or not): the informer watches [`WirePod`]s, which carry the metadata
//! `kube::Resource` needs, and caches the view made of each ([`client::controller::Informer::mapped`]).
//! Controllers patch pods and never write a whole one back, so nothing left out here is ever
//! lost.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    hash::Hash,
    sync::{Arc, LazyLock, Mutex},
};

use k8s_openapi::{
    api::core::v1::Toleration,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
    jiff::Timestamp,
    NamespaceResourceScope,
};
use serde::{Deserialize, Serialize};

use crate::pool::Pool;

/// A string that is usually one of a few known words (then it holds no allocation).
pub type Word = Cow<'static, str>;

/// Values that recur in every pod: phases, condition statuses, owner kinds and API versions,
/// toleration keys, operators and effects.
const WORDS: &[&str] = &[
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Unknown",
    "True",
    "False",
    "v1",
    "apps/v1",
    "batch/v1",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "Node",
    "Exists",
    "Equal",
    "NoExecute",
    "NoSchedule",
    "PreferNoSchedule",
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// `s` as a static word when it is a known one.
pub fn word(s: String) -> Word {
    match WORDS.iter().find(|w| **w == s) {
        Some(w) => Cow::Borrowed(w),
        None => Cow::Owned(s),
    }
}

/// `value` shared through `pool` (a poisoned pool still works: its sets are only ever whole).
fn share<T, V>(pool: &Mutex<Pool<T>>, value: V) -> Arc<T>
where
    T: ?Sized + Hash + Eq,
    V: std::borrow::Borrow<T> + Into<Arc<T>>,
{
    pool.lock().unwrap_or_else(|e| e.into_inner()).share(value)
}

type LabelPairs = [(Box<str>, Box<str>)];

static LABEL_SETS: LazyLock<Mutex<Pool<LabelPairs>>> = LazyLock::new(Mutex::default);
static TOLERATION_SETS: LazyLock<Mutex<Pool<[Tol]>>> = LazyLock::new(Mutex::default);
static OWNER_SETS: LazyLock<Mutex<Pool<[Owner]>>> = LazyLock::new(Mutex::default);
static NAMESPACES: LazyLock<Mutex<Pool<str>>> = LazyLock::new(Mutex::default);

/// Labels, sorted by key (shared with every pod that has the same).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels(Arc<LabelPairs>);

impl Default for Labels {
    fn default() -> Labels {
        Labels(Arc::new([]))
    }
}

impl Labels {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// The labels in key order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// No labels.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Labels {
        let pairs: Vec<(Box<str>, Box<str>)> =
            m.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Labels(share(&LABEL_SETS, pairs))
    }
}

/// An owner reference; serializes as the API's `OwnerReference`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub api_version: Word,
    pub kind: Word,
    pub name: Box<str>,
    pub uid: Box<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

impl From<OwnerReference> for Owner {
    fn from(r: OwnerReference) -> Owner {
        Owner {
            api_version: word(r.api_version),
            kind: word(r.kind),
            name: r.name.into(),
            uid: r.uid.into(),
            controller: r.controller,
            block_owner_deletion: r.block_owner_deletion,
        }
    }
}

/// A toleration (the fields of the API's `Toleration`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tol {
    pub key: Option<Word>,
    pub operator: Option<Word>,
    pub value: Option<Box<str>>,
    pub effect: Option<Word>,
    pub seconds: Option<i64>,
}

impl Tol {
    /// As the API's type (for the taint logic, which nodes share).
    pub fn to_k8s(&self) -> Toleration {
        Toleration {
            key: self.key.as_ref().map(|s| s.to_string()),
            operator: self.operator.as_ref().map(|s| s.to_string()),
            value: self.value.as_ref().map(|s| s.to_string()),
            effect: self.effect.as_ref().map(|s| s.to_string()),
            toleration_seconds: self.seconds,
        }
    }
}

impl From<Toleration> for Tol {
    fn from(t: Toleration) -> Tol {
        Tol {
            key: t.key.map(word),
            operator: t.operator.map(word),
            value: t.value.map(Into::into),
            effect: t.effect.map(word),
            seconds: t.toleration_seconds,
        }
    }
}

/// The Ready condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// "True", "False" or "Unknown".
    pub status: Word,
    pub last_transition_time: Option<Timestamp>,
}

/// A pod as the controllers see it (see the module's doc).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "WirePod")]
pub struct PodView {
    pub name: Box<str>,
    /// Shared with every pod of the namespace.
    pub namespace: Arc<str>,
    pub uid: Box<str>,
    pub resource_version: Box<str>,
    pub creation_timestamp: Option<Timestamp>,
    pub deletion_timestamp: Option<Timestamp>,
    pub labels: Labels,
    /// Shared with every pod that has the same.
    pub owners: Arc<[Owner]>,
    /// spec.nodeName (None when unscheduled or empty).
    pub node_name: Option<Box<str>>,
    /// Shared with every pod that has the same.
    pub tolerations: Arc<[Tol]>,
    /// The containers' ports that have a name: (name, containerPort).
    pub named_ports: Box<[(Box<str>, i32)]>,
    pub phase: Option<Word>,
    pub ready: Option<Ready>,
    /// status.podIP (None when unset or empty).
    pub pod_ip: Option<Box<str>>,
    /// The highest restart count of its containers.
    pub restarts: i32,
}

impl PodView {
    /// The owner reference with `controller: true`, if any.
    pub fn controller(&self) -> Option<&Owner> {
        self.owners.iter().find(|r| r.controller == Some(true))
    }

    /// The namespace (empty when unset).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name (empty when unset).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Being deleted.
    pub fn deleting(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    /// Its namespace and name, as the informer finds it ([`client::controller::IdOf`]).
    pub fn id(&self) -> (Option<&str>, &str) {
        (Some(&self.namespace), &self.name)
    }
}

/// A pod as the API sends it, decoded as far as [`PodView`] reads it, with the metadata that
/// `kube::Resource` needs to watch and patch pods (name, namespace, uid, resourceVersion) in a
/// k8s-openapi `ObjectMeta` that lives only until the view is taken out of it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "wire::Pod")]
pub struct WirePod {
    pub metadata: ObjectMeta,
    pub view: PodView,
}

impl From<WirePod> for PodView {
    fn from(p: WirePod) -> PodView {
        p.view
    }
}

impl kube::Resource for WirePod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The API's JSON as far as the controllers read it; every other field is skipped unparsed.
mod wire {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::Toleration;
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    pub struct Pod {
        #[serde(default)]
        metadata: Meta,
        #[serde(default)]
        spec: Option<Spec>,
        #[serde(default)]
        status: Option<Status>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Meta {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
        creation_timestamp: Option<Time>,
        deletion_timestamp: Option<Time>,
        labels: Option<BTreeMap<String, String>>,
        owner_references: Option<Vec<OwnerReference>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Spec {
        node_name: Option<String>,
        tolerations: Option<Vec<Toleration>>,
        containers: Option<Vec<Container>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Container {
        ports: Option<Vec<Port>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Port {
        name: Option<String>,
        container_port: i32,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Status {
        phase: Option<String>,
        #[serde(rename = "podIP")]
        pod_ip: Option<String>,
        conditions: Option<Vec<Condition>>,
        container_statuses: Option<Vec<ContainerStatus>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Condition {
        #[serde(rename = "type")]
        type_: String,
        status: String,
        last_transition_time: Option<Time>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct ContainerStatus {
        restart_count: i32,
    }

    impl From<Pod> for WirePod {
        fn from(p: Pod) -> WirePod {
            let m = p.metadata;
            let spec = p.spec.unwrap_or_default();
            let status = p.status.unwrap_or_default();
            let text = |s: &Option<String>| Box::<str>::from(s.as_deref().unwrap_or(""));
            let view = PodView {
                name: text(&m.name),
                namespace: share(&NAMESPACES, m.namespace.as_deref().unwrap_or("")),
                uid: text(&m.uid),
                resource_version: text(&m.resource_version),
                creation_timestamp: m.creation_timestamp.as_ref().map(|t| t.0),
                deletion_timestamp: m.deletion_timestamp.as_ref().map(|t| t.0),
                labels: m.labels.map(Labels::from).unwrap_or_default(),
                owners: share(
                    &OWNER_SETS,
                    m.owner_references
                        .into_iter()
                        .flatten()
                        .map(Owner::from)
                        .collect::<Vec<_>>(),
                ),
                node_name: spec.node_name.filter(|n| !n.is_empty()).map(Into::into),
                tolerations: share(
                    &TOLERATION_SETS,
                    spec.tolerations
                        .into_iter()
                        .flatten()
                        .map(Tol::from)
                        .collect::<Vec<_>>(),
                ),
                named_ports: spec
                    .containers
                    .into_iter()
                    .flatten()
                    .flat_map(|c| c.ports.into_iter().flatten())
                    .filter_map(|p| Some((p.name?.into(), p.container_port)))
                    .collect(),
                phase: status.phase.map(word),
                ready: status
                    .conditions
                    .into_iter()
                    .flatten()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| Ready {
                        status: word(c.status),
                        last_transition_time: c.last_transition_time.map(|t| t.0),
                    }),
                pod_ip: status.pod_ip.filter(|i| !i.is_empty()).map(Into::into),
                restarts: status
                    .container_statuses
                    .into_iter()
                    .flatten()
                    .map(|c| c.restart_count)
                    .max()
                    .unwrap_or(0),
            };
            WirePod {
                metadata: ObjectMeta {
                    name: m.name,
                    namespace: m.namespace,
                    uid: m.uid,
                    resource_version: m.resource_version,
                    ..Default::default()
                },
                view,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn full() -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u1", "resourceVersion": "9",
                "creationTimestamp": "2025-12-31T00:00:00Z",
                "labels": {"app": "web", "tier": "x"}, "annotations": {"note": "x"},
                "managedFields": [{"manager": "m", "operation": "Update"}],
                "finalizers": ["f"], "deletionTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "rs", "uid": "u0", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"nodeName": "n1", "hostname": "h", "subdomain": "s",
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 300}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "containers": [{"name": "c", "image": "i", "command": ["sleep"],
                    "env": [{"name": "E", "value": "v"}],
                    "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 81}]},
                    {"name": "d", "image": "i", "ports": [{"name": "admin", "containerPort": 90}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                "hostIP": "10.1.0.1",
                "conditions": [{"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 3,
                    "image": "i", "imageID": "sha", "state": {"running": {}}},
                    {"name": "d", "ready": true, "restartCount": 5, "image": "i", "imageID": "sha"}]}})
    }

    #[test]
    fn keeps_what_controllers_read() {
        let v: PodView = serde_json::from_value(full()).unwrap();
        let p: Pod = serde_json::from_value(full()).unwrap();
        let pm = &p.metadata;
        let text = |s: &Option<String>| s.as_deref().unwrap_or("").to_string();
        assert_eq!(
            (v.name(), v.namespace(), &*v.uid, &*v.resource_version),
            (
                &*text(&pm.name),
                &*text(&pm.namespace),
                &*text(&pm.uid),
                &*text(&pm.resource_version)
            )
        );
        assert_eq!(
            v.creation_timestamp,
            pm.creation_timestamp.as_ref().map(|t| t.0)
        );
        assert_eq!(
            v.deletion_timestamp,
            pm.deletion_timestamp.as_ref().map(|t| t.0)
        );
        assert_eq!(v.id(), (Some("ns"), "a"));
        // What watching and patching need, and no more.
        let w: WirePod = serde_json::from_value(full()).unwrap();
        assert_eq!(
            w.metadata,
            ObjectMeta {
                name: pm.name.clone(),
                namespace: pm.namespace.clone(),
                uid: pm.uid.clone(),
                resource_version: pm.resource_version.clone(),
                ..Default::default()
            }
        );
        assert_eq!(w.view, v);
        let labels: BTreeMap<String, String> = v
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(Some(labels), p.metadata.labels);
        assert_eq!(v.labels.get("tier"), Some("x"));
        assert_eq!(v.labels.get("nope"), None);
        let owners = serde_json::to_value(&*v.owners).unwrap();
        assert_eq!(
            owners,
            serde_json::to_value(&p.metadata.owner_references).unwrap()
        );
        assert_eq!(v.controller().map(|o| &*o.name), Some("rs"));
        assert!(matches!(v.controller().unwrap().kind, Cow::Borrowed(_)));
        assert_eq!(v.node_name.as_deref(), Some("n1"));
        let tols: Vec<Toleration> = v.tolerations.iter().map(Tol::to_k8s).collect();
        assert_eq!(Some(tols), p.spec.as_ref().unwrap().tolerations);
        assert_eq!(&*v.named_ports, [("http".into(), 80), ("admin".into(), 90)]);
        assert_eq!(v.phase.as_deref(), Some("Running"));
        let ready = v.ready.as_ref().unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            ready.last_transition_time,
            Some("2026-01-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(v.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(v.restarts, 5);
    }

    #[test]
    fn pods_alike_share_their_label_and_toleration_sets() {
        let a: PodView = serde_json::from_value(full()).unwrap();
        let b: PodView = serde_json::from_value(full()).unwrap();
        assert!(Arc::ptr_eq(&a.labels.0, &b.labels.0));
        assert!(Arc::ptr_eq(&a.tolerations, &b.tolerations));
        assert!(Arc::ptr_eq(&a.owners, &b.owners));
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        let mut other = full();
        other["metadata"]["labels"]["tier"] = json!("y");
        other["spec"]["tolerations"][0]["tolerationSeconds"] = json!(30);
        let c: PodView = serde_json::from_value(other).unwrap();
        assert_eq!(
            (c.labels.get("tier"), a.labels.get("tier")),
            (Some("y"), Some("x"))
        );
        assert_eq!(
            (c.tolerations[0].seconds, a.tolerations[0].seconds),
            (Some(30), Some(300))
        );
    }

    #[test]
    fn empty_and_null_fields() {
        let v: PodView = serde_json::from_value(json!({"metadata": {"name": "a"},
            "spec": {"nodeName": "", "containers": []},
            "status": {"podIP": null, "conditions": [{"type": "Ready", "status": "Maybe"}]}}))
        .unwrap();
        assert_eq!((v.node_name, v.pod_ip, v.phase), (None, None, None));
        assert_eq!(v.ready.unwrap().status, "Maybe");
        assert!(v.owners.is_empty() && v.labels.is_empty());
        let v: PodView = serde_json::from_value(json!({})).unwrap();
        assert_eq!(v, PodView::default());
    }

    #[test]
    fn resource_urls() {
        use kube::Resource;
        assert_eq!(
            WirePod::url_path(&(), Some("ns")),
            Pod::url_path(&(), Some("ns"))
        );
        assert_eq!(WirePod::url_path(&(), None), Pod::url_path(&(), None));
        assert_eq!(WirePod::kind(&()), "Pod");
    }
}

#[cfg(test)]
mod sizes {
    /// Where a k8s-openapi pod's bytes go, beside the view's (`cargo test ... sizes -- --nocapture`).
    #[test]
    fn inline_sizes() {
        use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec, PodStatus};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        use std::mem::size_of;
        for (name, n) in [
            ("Pod", size_of::<Pod>()),
            ("PodSpec", size_of::<PodSpec>()),
            ("Container", size_of::<Container>()),
            ("PodStatus", size_of::<PodStatus>()),
            ("ContainerStatus", size_of::<ContainerStatus>()),
            ("ObjectMeta", size_of::<ObjectMeta>()),
            ("PodView", size_of::<super::PodView>()),
        ] {
            println!("{name}: {n} bytes");
        }
        assert!(size_of::<super::PodView>() < size_of::<Pod>() / 4);
    }
}

#[cfg(test)]
mod heap {
    //! Heap bytes per cached pod (`cargo test -p controller-manager heap -- --nocapture
    //! --test-threads=1`): what the pod informer and the garbage collector's graph hold.
    use std::sync::Arc;

    use client::controller::Objects;
    use serde_json::json;

    use super::PodView;

    fn pod(i: usize) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("scale-0123-5d8f7b9c4-{i:05}"),
                "generateName": "scale-0123-5d8f7b9c4-", "namespace": "scale-bench-3",
                "uid": uuid::Uuid::new_v4().to_string(), "resourceVersion": format!("{}", 1_000_000 + i),
                "creationTimestamp": "2026-12-07T11:20:00Z",
                "labels": {"app": "scale-0123", "scale-bench": "saturation", "pod-template-hash": "5d8f7b9c4"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "scale-0123-5d8f7b9c4", "uid": "3f2b1c4d-0000-4000-8000-000000000123",
                    "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"nodeName": format!("hollow-node-{:04}", i % 3000),
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
                "containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "infinity"]}]},
            "status": {"phase": "Running", "podIP": "10.1.2.3", "hostIP": "172.18.0.2",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T11:20:01Z"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0}]}})
    }

    fn allocated() -> usize {
        let _ = tikv_jemalloc_ctl::epoch::advance();
        tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0)
    }

    #[test]
    fn bytes_per_pod() {
        const N: usize = 20_000;
        let json: Vec<Vec<u8>> = (0..N)
            .map(|i| serde_json::to_vec(&pod(i)).unwrap())
            .collect();
        let before = allocated();
        // The informer's own cache.
        let mut cache = Objects::new(PodView::id);
        for j in &json {
            let p: PodView = serde_json::from_slice(j).unwrap();
            let p = Arc::new(p);
            cache.insert(p);
        }
        let informer = allocated() - before;
        let before = allocated();
        let mut graph = crate::controllers::garbagecollector::graph::Graph::default();
        let ar = kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&());
        for j in &json {
            let o: kube::api::DynamicObject = serde_json::from_slice(j).unwrap();
            graph.upsert(
                o.metadata.uid.as_deref().unwrap(),
                crate::controllers::garbagecollector::graph::Node {
                    resource: ar.clone(),
                    namespace: o.metadata.namespace.clone(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                    owners: o.metadata.owner_references.clone().unwrap_or_default(),
                    deleting: false,
                    finalizers: vec![],
                },
            );
        }
        let gc = allocated() - before;
        println!(
            "JSON {} bytes/pod; informer {} bytes/pod (PodView inline {}); gc graph {} bytes/pod",
            json.iter().map(Vec::len).sum::<usize>() / N,
            informer / N,
            std::mem::size_of::<PodView>(),
            gc / N
        );
        drop((cache, graph));
    }
}
