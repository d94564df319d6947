//! Resident memory per stored object (issue 17): how many bytes of a process's resident memory
//! each object costs, against the object's serialized size.
//!
//! A measurement reads a process's resident memory before the objects exist (idle) and after,
//! counts the objects and their mean compact JSON size by listing them, and divides:
//! `(after - idle) / objects` bytes per object, and that over the mean size as the ratio.
//! `api-bench --memory-pods N` prints it for the apiserver and the store; the scale benchmark
//! uses the same functions.
//!
//! ```no_run
//! # async fn demo(api: &cluster_tests::ApiCluster, client: kube::Client) -> anyhow::Result<()> {
//! use cluster_tests::memory;
//! let pid = api.apiserver_pid(0).unwrap();
//! let idle = cluster_tests::rss_kib(pid).unwrap_or(0);
//! memory::create_pods(&client, &memory::Pods::new(10_000)).await?;
//! let sizes = memory::object_sizes(&client, "/api/v1/pods").await?;
//! let m = memory::object_memory("apiserver", pid, idle, &sizes).unwrap();
//! println!("{}", memory::table(&[m]));
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    core::v1::{Namespace, Node, Pod},
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::process::rss_kib;

/// The count and mean serialized size of a set of objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectSizes {
    pub count: usize,
    /// Mean size of one object as compact JSON, in bytes.
    pub mean_bytes: f64,
}

/// Counts the objects a list path returns (e.g. `/api/v1/pods`, read in pages of 5,000) and
/// their mean size as compact JSON, as the server sends them.
pub async fn object_sizes(client: &kube::Client, path: &str) -> Result<ObjectSizes> {
    let mut count = 0usize;
    let mut bytes = 0usize;
    let mut cont: Option<String> = None;
    loop {
        let (items, next) = list_page::<Value>(client, path, Some((5000, cont.as_deref()))).await?;
        for item in &items {
            bytes += serde_json::to_vec(item)?.len();
        }
        count += items.len();
        cont = next;
        if cont.is_none() {
            break;
        }
    }
    Ok(ObjectSizes {
        count,
        mean_bytes: if count == 0 {
            0.0
        } else {
            bytes as f64 / count as f64
        },
    })
}

/// One page of the list at `path` as raw JSON, without a typed client in between: its items
/// (as `T`: `serde_json::Value`, or `serde::de::IgnoredAny` to only count them) and the
/// continue token of the next page. `page`: the limit and this page's continue token; None
/// lists everything in one answer.
pub async fn list_page<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    path: &str,
    page: Option<(usize, Option<&str>)>,
) -> Result<(Vec<T>, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "continue")]
        cont: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct List<T> {
        metadata: Meta,
        items: Vec<T>,
    }
    let mut url = path.to_string();
    if let Some((limit, cont)) = page {
        url.push_str(&format!("?limit={limit}"));
        if let Some(c) = cont {
            url.push_str(&format!("&continue={c}"));
        }
    }
    let req = http::Request::get(url).body(Vec::new())?;
    let text = client
        .request_text(req)
        .await
        .with_context(|| format!("listing {path}"))?;
    let list: List<T> = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    Ok((list.items, list.metadata.cont.filter(|c| !c.is_empty())))
}

/// One process's memory per object.
#[derive(Debug, Clone)]
pub struct ObjectMemory {
    pub process: String,
    /// Resident memory before the objects existed, KiB.
    pub idle_kib: u64,
    /// Resident memory with the objects, KiB.
    pub after_kib: u64,
    pub objects: usize,
    /// Mean serialized (compact JSON) size of one object, bytes.
    pub mean_object_bytes: f64,
}

impl ObjectMemory {
    /// Resident bytes the objects added, per object.
    pub fn bytes_per_object(&self) -> f64 {
        let grown = self.after_kib.saturating_sub(self.idle_kib) as f64 * 1024.0;
        grown / self.objects.max(1) as f64
    }

    /// Bytes per object over the object's serialized size (the issue's goal: at most 2).
    pub fn ratio(&self) -> f64 {
        if self.mean_object_bytes <= 0.0 {
            return 0.0;
        }
        self.bytes_per_object() / self.mean_object_bytes
    }
}

/// Reads `pid`'s resident memory now and relates its growth since `idle_kib` to `sizes`. None
/// when the process is gone.
pub fn object_memory(
    process: &str,
    pid: u32,
    idle_kib: u64,
    sizes: &ObjectSizes,
) -> Option<ObjectMemory> {
    Some(ObjectMemory {
        process: process.to_string(),
        idle_kib,
        after_kib: rss_kib(pid)?,
        objects: sizes.count,
        mean_object_bytes: sizes.mean_bytes,
    })
}

/// A Markdown table of the measurements, one row per process.
pub fn table(rows: &[ObjectMemory]) -> String {
    let mut out = String::from(
        "| process | RSS idle | RSS with the objects | objects | bytes per object | JSON per \
         object | ratio |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.1} MiB | {:.1} MiB | {} | {:.0} | {:.0} | {:.2} |\n",
            r.process,
            r.idle_kib as f64 / 1024.0,
            r.after_kib as f64 / 1024.0,
            r.objects,
            r.bytes_per_object(),
            r.mean_object_bytes,
            r.ratio()
        ));
    }
    out
}

/// Pods as one Deployment's ReplicaSet makes them, bound to `nodes` nodes, each then updated
/// once with the status an agent reports.
#[derive(Debug, Clone)]
pub struct Pods {
    pub pods: usize,
    /// Nodes the pods are spread over (`node-0` ...); with `create_nodes`, also created.
    pub nodes: usize,
    pub create_nodes: bool,
    pub namespace: String,
    /// Concurrent writers.
    pub clients: usize,
}

impl Pods {
    /// `pods` pods in namespace `mem` over 100 nodes (not created), 32 writers.
    pub fn new(pods: usize) -> Pods {
        Pods {
            pods,
            nodes: 100,
            create_nodes: false,
            namespace: "mem".into(),
            clients: 32,
        }
    }
}

/// The ReplicaSet that owns the pods.
const OWNER: &str = "web-5d8c7f9b6";
const HASH: &str = "5d8c7f9b6";

fn container() -> Value {
    json!({"name": "web", "image": "localhost/busybox:1.36",
        "command": ["sh", "-c", "exec httpd -f -p 8080 -h /www"],
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"}}})
}

fn labels() -> Value {
    json!({"app": "web", "tier": "frontend", "pod-template-hash": HASH})
}

/// The owning ReplicaSet (created before the pods, so their ownerReference names a real uid).
fn replica_set(replicas: usize) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": OWNER, "labels": labels()},
        "spec": {"replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": HASH}},
            "template": {"metadata": {"labels": labels()},
                "spec": {"containers": [container()]}}}})
}

/// Pod `i` as the ReplicaSet controller creates it, already bound (as after scheduling).
pub fn pod(i: usize, nodes: usize, owner_uid: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{OWNER}-{i:05x}"), "generateName": format!("{OWNER}-"),
            "labels": labels(),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": OWNER,
                "uid": owner_uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [container()], "nodeName": format!("node-{}", i % nodes.max(1))}})
}

/// The status an agent reports for running pod `i`.
pub fn running_status(i: usize) -> Value {
    let t = "2026-12-06T12:00:00Z";
    let ip = format!("10.{}.{}.{}", 64 + (i >> 16) % 64, (i >> 8) % 256, i % 256);
    json!({"status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": ip,
        "podIPs": [{"ip": ip}], "startTime": t, "qosClass": "Burstable",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            {"type": "Ready", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": t},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t}],
        "containerStatuses": [{"name": "web", "ready": true, "started": true,
            "restartCount": 0, "image": "localhost/busybox:1.36",
            "imageID": "localhost/busybox@sha256:0d5e4c0a0d4d1b8b0b3c2a9c1d4c2f1e0b9a8c7d6e5f4a3b2c1d0e9f8a7b6c5d",
            "containerID": format!("containerd://{i:064x}"),
            "state": {"running": {"startedAt": t}}}]}})
}

/// A Node as a registered agent leaves it.
pub fn node(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{i}"), "labels": {
            "kubernetes.io/hostname": format!("node-{i}"), "kubernetes.io/os": "linux"}},
        "status": {
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})
}

/// Runs `op(i)` for i in 0..n with `clients` at a time, printing progress to stderr.
async fn each<F, Fut>(what: &str, n: usize, clients: usize, op: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let done = Arc::new(AtomicUsize::new(0));
    let step = (n / 10).max(1);
    stream::iter(0..n)
        .map(|i| {
            let fut = op(i);
            let done = done.clone();
            async move {
                fut.await?;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d.is_multiple_of(step) {
                    eprintln!("memory: {what} {d}/{n}");
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(clients.max(1))
        .try_collect::<()>()
        .await
}

/// Creates the namespace, the owning ReplicaSet, the nodes (with `create_nodes`) and the pods,
/// then updates each pod's status once (so the watch caches' windows hold updates too).
pub async fn create_pods(client: &kube::Client, w: &Pods) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": w.namespace}}))?,
        )
        .await
        .with_context(|| format!("creating namespace {}", w.namespace))?;
    if w.create_nodes {
        let nodes: Api<Node> = Api::all(client.clone());
        each("nodes created", w.nodes, w.clients, |i| {
            let nodes = nodes.clone();
            async move {
                nodes
                    .create(&PostParams::default(), &serde_json::from_value(node(i))?)
                    .await?;
                Ok(())
            }
        })
        .await?;
    }
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &w.namespace);
    let rs = sets
        .create(
            &PostParams::default(),
            &serde_json::from_value(replica_set(w.pods))?,
        )
        .await
        .context("creating the owning ReplicaSet")?;
    let uid = rs.metadata.uid.unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &w.namespace);
    each("pods created", w.pods, w.clients, |i| {
        let pods = pods.clone();
        let body = pod(i, w.nodes, &uid);
        async move {
            pods.create(&PostParams::default(), &serde_json::from_value(body)?)
                .await?;
            Ok(())
        }
    })
    .await?;
    each("pod statuses updated", w.pods, w.clients, |i| {
        let pods = pods.clone();
        async move {
            pods.patch_status(
                &format!("{OWNER}-{i:05x}"),
                &PatchParams::default(),
                &Patch::Merge(&running_status(i)),
            )
            .await?;
            Ok(())
        }
    })
    .await
}
