//! The garbage collector: watches every resource discovery lists, keeps the ownership graph,
//! and deletes dependents whose owners are gone (background cascading), deletes the
//! dependents of an owner being deleted in the foreground (`foregroundDeletion` finalizer)
//! before removing that finalizer once no dependent with blockOwnerDeletion is left, and
//! removes the references to an owner deleted with the `orphan` finalizer before removing it.
//! The apiserver adds these finalizers from DELETE's propagationPolicy.

pub mod graph;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use client::{
    controller::{self, Action, Key, Reconciler},
    workqueue::WorkQueue,
};
use futures::{future::BoxFuture, FutureExt, StreamExt};
use kube::{
    api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy},
    discovery::{verbs, ApiResource, Discovery, Scope},
    runtime::{watcher, WatchStreamExt},
};
use serde_json::json;

use self::graph::{Graph, Node, OwnerState, Verdict, FOREGROUND, ORPHAN};
use super::Ctx;

/// The `--controllers` name.
pub const NAME: &str = "garbagecollector";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (retried with back-off).
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct Gc {
    ctx: Arc<Ctx>,
    graph: Mutex<Graph>,
    /// (apiVersion, kind) → resource and whether it is namespaced.
    kinds: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
    queue: WorkQueue<Key>,
}

fn uid_key(uid: &str) -> Key {
    Key::new(None, uid)
}

/// Registers nothing up front: the future discovers the resources, watches them all, and
/// runs the workers once every watch has listed.
pub fn setup(ctx: &Arc<Ctx>) -> BoxFuture<'static, ()> {
    let gc = Arc::new(Gc {
        ctx: ctx.clone(),
        graph: Mutex::default(),
        kinds: Mutex::default(),
        queue: WorkQueue::new(),
    });
    async move {
        let resources = loop {
            match Discovery::new(gc.ctx.client.clone()).run().await {
                Ok(d) => break d,
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collector: discovery failed; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let mut watched = Vec::new();
        for group in resources.groups() {
            for (ar, caps) in group.recommended_resources() {
                let namespaced = caps.scope == Scope::Namespaced;
                if let Ok(mut k) = gc.kinds.lock() {
                    k.insert(
                        (ar.api_version.clone(), ar.kind.clone()),
                        (ar.clone(), namespaced),
                    );
                }
                if caps.supports_operation(verbs::WATCH)
                    && caps.supports_operation(verbs::LIST)
                    && ar.plural != "events"
                {
                    watched.push(ar);
                }
            }
        }
        let (synced_tx, mut synced_rx) = tokio::sync::mpsc::channel::<()>(watched.len().max(1));
        let n = watched.len();
        for ar in watched {
            tokio::spawn(watch(gc.clone(), ar, synced_tx.clone()));
        }
        for _ in 0..n {
            synced_rx.recv().await;
        }
        tracing::info!(resources = n, "garbage collector: graph synced");
        let workers = gc.ctx.config.concurrent_gc_syncs;
        let metrics = gc.ctx.metrics.clone();
        controller::run(NAME, gc.clone(), gc.queue.clone(), workers, Some(metrics)).await;
    }
    .boxed()
}

/// Follows one resource into the graph.
async fn watch(gc: Arc<Gc>, ar: ApiResource, synced: tokio::sync::mpsc::Sender<()>) {
    let api: Api<DynamicObject> = Api::all_with(gc.ctx.client.clone(), &ar);
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut seen: HashSet<String> = HashSet::new();
    let mut first = true;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(o)) => gc.observe(&ar, &o),
            Ok(watcher::Event::InitApply(o)) => {
                seen.insert(o.metadata.uid.clone().unwrap_or_default());
                gc.observe(&ar, &o);
            }
            Ok(watcher::Event::Delete(o)) => gc.gone(o.metadata.uid.as_deref().unwrap_or("")),
            Ok(watcher::Event::Init) => seen.clear(),
            Ok(watcher::Event::InitDone) => {
                let known = gc.graph.lock().map(|g| g.uids_of(&ar)).unwrap_or_default();
                for uid in known.iter().filter(|u| !seen.contains(*u)) {
                    gc.gone(uid);
                }
                seen.clear();
                if first {
                    first = false;
                    let _ = synced.send(()).await;
                }
            }
            Err(e) => {
                tracing::warn!(resource = %ar.plural, error = %e, "garbage collector watch error; retrying")
            }
        }
    }
}

impl Gc {
    fn observe(&self, ar: &ApiResource, o: &DynamicObject) {
        let Some(uid) = o.metadata.uid.clone() else {
            return;
        };
        let node = Node {
            resource: ar.clone(),
            namespace: o.metadata.namespace.clone(),
            name: o.metadata.name.clone().unwrap_or_default(),
            owners: o.metadata.owner_references.clone().unwrap_or_default(),
            deleting: o.metadata.deletion_timestamp.is_some(),
            finalizers: o.metadata.finalizers.clone().unwrap_or_default(),
        };
        let interesting = !node.owners.is_empty()
            || (node.deleting && (node.has_finalizer(FOREGROUND) || node.has_finalizer(ORPHAN)));
        let dependents = if let Ok(mut g) = self.graph.lock() {
            g.upsert(&uid, node);
            g.dependents(&uid)
        } else {
            Vec::new()
        };
        if interesting {
            self.queue.add(uid_key(&uid));
        }
        // An owner that changed (e.g. started a foreground deletion) concerns its dependents.
        for d in dependents {
            self.queue.add(uid_key(&d));
        }
    }

    fn gone(&self, uid: &str) {
        let (node, dependents) = match self.graph.lock() {
            Ok(mut g) => (g.remove(uid), g.dependents(uid)),
            Err(_) => return,
        };
        for d in dependents {
            self.queue.add(uid_key(&d));
        }
        // An owner waiting in the foreground may now be free to go.
        for o in node.map(|n| n.owners).unwrap_or_default() {
            self.queue.add(uid_key(&o.uid));
        }
    }

    fn api(&self, node: &Node) -> Api<DynamicObject> {
        match &node.namespace {
            Some(ns) => Api::namespaced_with(self.ctx.client.clone(), ns, &node.resource),
            None => Api::all_with(self.ctx.client.clone(), &node.resource),
        }
    }

    /// What an owner reference of `node` points at.
    async fn owner_state(
        &self,
        node: &Node,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Result<OwnerState, Error> {
        let known = self.graph.lock().ok().and_then(|g| g.get(&r.uid));
        if let Some(owner) = known {
            return Ok(state_of(owner.deleting, owner.has_finalizer(FOREGROUND)));
        }
        // Not in the graph: the watch may lag, so ask the apiserver.
        let kind = self
            .kinds
            .lock()
            .ok()
            .and_then(|k| k.get(&(r.api_version.clone(), r.kind.clone())).cloned());
        let Some((ar, namespaced)) = kind else {
            // A kind we cannot look up is never taken as gone.
            return Ok(OwnerState::Solid);
        };
        let api: Api<DynamicObject> = match (&node.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.ctx.client.clone(), ns, &ar),
            _ => Api::all_with(self.ctx.client.clone(), &ar),
        };
        match api.get_opt(&r.name).await? {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let fg = o
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FOREGROUND);
                Ok(state_of(o.metadata.deletion_timestamp.is_some(), fg))
            }
            _ => Ok(OwnerState::Absent),
        }
    }

    async fn remove_finalizer(&self, node: &Node, f: &str) -> Result<(), Error> {
        let left: Vec<&String> = node.finalizers.iter().filter(|x| *x != f).collect();
        let body = json!({"metadata": {"finalizers": left}});
        gone_ok(
            self.api(node)
                .patch(&node.name, &PatchParams::default(), &Patch::Merge(&body))
                .await,
        )
    }

    async fn delete(&self, uid: &str, node: &Node, foreground: bool) -> Result<(), Error> {
        let dp = DeleteParams {
            propagation_policy: Some(if foreground {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            }),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        tracing::info!(kind = %node.resource.kind, namespace = ?node.namespace, name = %node.name, foreground, "garbage collector deleting dependent");
        gone_ok(self.api(node).delete(&node.name, &dp).await)
    }
}

fn state_of(deleting: bool, foreground: bool) -> OwnerState {
    if deleting && foreground {
        OwnerState::WaitingForDependents
    } else {
        OwnerState::Solid
    }
}

impl Reconciler for Gc {
    type Error = Error;

    async fn reconcile(&self, key: &Key) -> Result<Action, Error> {
        let uid = key.name.as_str();
        let Some(node) = self.graph.lock().ok().and_then(|g| g.get(uid)) else {
            return Ok(Action::Done);
        };
        let dependents = self
            .graph
            .lock()
            .map(|g| g.dependents(uid))
            .unwrap_or_default();
        if node.deleting && node.has_finalizer(ORPHAN) {
            for d in &dependents {
                let Some(dn) = self.graph.lock().ok().and_then(|g| g.get(d)) else {
                    continue;
                };
                let refs: Vec<_> = dn.owners.iter().filter(|r| r.uid != uid).collect();
                // No references left: the field goes, as Kubernetes leaves it.
                let refs = if refs.is_empty() {
                    json!(null)
                } else {
                    json!(refs)
                };
                let body = json!({"metadata": {"ownerReferences": refs}});
                gone_ok(
                    self.api(&dn)
                        .patch(&dn.name, &PatchParams::default(), &Patch::Merge(&body))
                        .await,
                )?;
            }
            self.remove_finalizer(&node, ORPHAN).await?;
            return Ok(Action::Done);
        }
        if node.deleting && node.has_finalizer(FOREGROUND) {
            let mut blocking = 0;
            for d in &dependents {
                let Some(dn) = self.graph.lock().ok().and_then(|g| g.get(d)) else {
                    continue;
                };
                if dn
                    .owners
                    .iter()
                    .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
                {
                    blocking += 1;
                }
                if !dn.deleting {
                    self.delete(d, &dn, true).await?;
                }
            }
            if blocking == 0 {
                self.remove_finalizer(&node, FOREGROUND).await?;
                return Ok(Action::Done);
            }
            return Ok(Action::RequeueAfter(Duration::from_secs(5)));
        }
        if node.owners.is_empty() || node.deleting {
            return Ok(Action::Done);
        }
        let mut states = Vec::new();
        for r in &node.owners {
            states.push((r.uid.clone(), self.owner_state(&node, r).await?));
        }
        match graph::verdict(&states) {
            Verdict::Keep => {}
            Verdict::DropReferences(stale) => {
                let refs: Vec<_> = node
                    .owners
                    .iter()
                    .filter(|r| !stale.contains(&r.uid))
                    .collect();
                let body = json!({"metadata": {"ownerReferences": refs}});
                gone_ok(
                    self.api(&node)
                        .patch(&node.name, &PatchParams::default(), &Patch::Merge(&body))
                        .await,
                )?;
            }
            Verdict::Delete { foreground } => self.delete(uid, &node, foreground).await?,
        }
        Ok(Action::Done)
    }
}

fn gone_ok<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
