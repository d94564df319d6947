//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the selector. It
//! adopts matching orphans and releases owned pods that stopped matching (through the
//! controller ownerReference), creates missing pods in slow-start batches and deletes surplus
//! ones in Kubernetes' order, guarded by expectations, and writes the status.

mod expectations;
pub mod logic;

use std::sync::Arc;

use client::{
    controller::{self, Action, Change, Key, Reconciler},
    events::Kind,
    workqueue::WorkQueue,
};
use futures::{future::BoxFuture, FutureExt};
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
    jiff::Timestamp,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use self::expectations::{Expectations, Seen};
use super::Ctx;
use crate::{
    pod_view::{PodView, WirePod},
    pods,
};

/// The `--controllers` name.
pub const NAME: &str = "replicaset";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (retried with back-off).
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct RsController {
    ctx: Arc<Ctx>,
    expectations: Expectations,
    events: client::events::Recorder,
}

/// Registers the handlers; the future runs the workers.
pub fn setup(ctx: &Arc<Ctx>) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::<Key>::new();
    let r = Arc::new(RsController {
        ctx: ctx.clone(),
        expectations: Expectations::default(),
        events: ctx.recorder("replicaset-controller"),
    });
    let q = queue.clone();
    ctx.replicasets
        .on_change(move |c| q.add(Key::of(c.object())));
    let (q, rc) = (queue.clone(), r.clone());
    ctx.pods.on_change(move |c| {
        let pod = c.object();
        let (ns, name) = (Some(pod.namespace()), pod.name());
        match pod.controller() {
            Some(owner) if owner.kind == "ReplicaSet" => {
                let key = Key::new(ns, &owner.name);
                if matches!(c, Change::Deleted(_)) {
                    rc.expectations.observe_gone(&key, name);
                }
                q.add(key);
            }
            Some(_) => {}
            None => {
                for rs in rc.ctx.replicasets.list_namespace(ns.unwrap_or("")) {
                    let sel = rs.spec.as_ref().map(|s| &s.selector);
                    if pods::selects(sel, &pod.labels) {
                        q.add(Key::of(rs.as_ref()));
                    }
                }
            }
        }
    });
    let workers = ctx.config.concurrent_replicaset_syncs;
    let metrics = ctx.metrics.clone();
    controller::run(NAME, r, queue, workers, Some(metrics)).boxed()
}

impl Reconciler for RsController {
    type Error = Error;

    async fn reconcile(&self, key: &Key) -> Result<Action, Error> {
        let Some(rs) = self.ctx.replicasets.get(key) else {
            self.expectations.forget(key);
            return Ok(Action::Done);
        };
        let ns = key.namespace.clone().unwrap_or_default();
        let owned = self.claim(&rs, &ns).await?;
        let active: Vec<&PodView> = owned
            .iter()
            .map(Arc::as_ref)
            .filter(|p| pods::is_active(p))
            .collect();
        let spec = rs.spec.clone().unwrap_or_default();
        let want = spec.replicas.unwrap_or(1).max(0) as usize;
        let cached = |name: &str| match self.ctx.pods.get(&Key::new(Some(&ns), name)) {
            None => Seen::Absent,
            Some(p) if p.deleting() => Seen::Terminating,
            Some(_) => Seen::Present,
        };
        let mut result = Ok(());
        if rs.metadata.deletion_timestamp.is_none() && self.expectations.satisfied(key, cached) {
            result = self.manage(key, &rs, &active, want).await;
        }
        let now = Timestamp::now();
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let template_labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.as_ref());
        let status = logic::status(
            &active,
            template_labels,
            min_ready,
            rs.metadata.generation,
            now,
        );
        if rs.status.as_ref() != Some(&status) {
            let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), &ns);
            let body = json!({"status": {
                "replicas": status.replicas,
                "fullyLabeledReplicas": status.fully_labeled_replicas,
                "readyReplicas": status.ready_replicas,
                "availableReplicas": status.available_replicas,
                "observedGeneration": status.observed_generation,
            }});
            match api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::Done),
                Err(e) => return Err(e.into()),
            }
        }
        result?;
        // Pods ready but not yet available become available later: look again then.
        if min_ready > 0 && status.ready_replicas > status.available_replicas {
            return Ok(Action::RequeueAfter(std::time::Duration::from_secs(1)));
        }
        Ok(Action::Done)
    }
}

impl RsController {
    /// The pods this ReplicaSet owns after adopting matching orphans and releasing owned pods
    /// that no longer match.
    async fn claim(&self, rs: &ReplicaSet, ns: &str) -> Result<Vec<Arc<PodView>>, Error> {
        let uid = rs.metadata.uid.as_deref().unwrap_or("");
        let selector = pods::compile(rs.spec.as_ref().map(|s| &s.selector));
        let deleting = rs.metadata.deletion_timestamp.is_some();
        let api: Api<WirePod> = Api::namespaced(self.ctx.client.clone(), ns);
        let mut owned = Vec::new();
        for pod in self.ctx.pods.list_namespace(ns) {
            let matches = pods::matches(selector.as_ref(), &pod.labels);
            let name = pod.name();
            match pod.controller() {
                Some(r) if &*r.uid == uid => {
                    if matches || deleting {
                        owned.push(pod);
                    } else {
                        let refs: Vec<_> = pod
                            .owners
                            .iter()
                            .filter(|r| &*r.uid != uid)
                            .cloned()
                            .collect();
                        tracing::info!(pod = %name, replicaset = ?rs.metadata.name, "releasing pod that no longer matches");
                        let body = json!({"metadata": {"ownerReferences": refs, "uid": pod.uid}});
                        ignore_gone(
                            api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
                                .await,
                        )?;
                    }
                }
                Some(_) => {}
                None if matches && !deleting && !pod.deleting() => {
                    let mut refs = pod.owners.to_vec();
                    refs.push(pods::controller_ref("apps/v1", "ReplicaSet", &rs.metadata).into());
                    let body = json!({"metadata": {"ownerReferences": refs, "uid": pod.uid,
                        "resourceVersion": pod.resource_version}});
                    tracing::info!(pod = %name, replicaset = ?rs.metadata.name, "adopting pod");
                    match api
                        .patch(name, &PatchParams::default(), &Patch::Merge(&body))
                        .await
                    {
                        Ok(p) => owned.push(Arc::new(p.view)),
                        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {}
            }
        }
        Ok(owned)
    }

    /// Creates or deletes pods so that `want` are active.
    async fn manage(
        &self,
        key: &Key,
        rs: &ReplicaSet,
        active: &[&PodView],
        want: usize,
    ) -> Result<(), Error> {
        let ns = key.namespace.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        if active.len() < want {
            let missing = (want - active.len()).min(logic::BURST_REPLICAS);
            let pod = pod_from_template(rs);
            let pp = PostParams::default();
            for batch in logic::slow_start_batches(missing) {
                let creates = (0..batch).map(|_| api.create(&pp, &pod));
                let results = futures::future::join_all(creates).await;
                let mut names = Vec::new();
                let mut failure = None;
                for r in results {
                    match r {
                        Ok(p) => {
                            let name = p.metadata.name.unwrap_or_default();
                            self.events.emit(
                                rs,
                                Kind::Normal,
                                "SuccessfulCreate",
                                format!("Created pod: {name}"),
                            );
                            names.push(name);
                        }
                        Err(e) => {
                            self.events.emit(
                                rs,
                                Kind::Warning,
                                "FailedCreate",
                                format!("Error creating: {e}"),
                            );
                            failure = Some(e);
                        }
                    }
                }
                self.expectations.created(key, names);
                if let Some(e) = failure {
                    // Slow start: stop at the first failing batch, skip the rest.
                    return Err(e.into());
                }
            }
            tracing::info!(replicaset = %key, created = missing, "created pods");
        } else if active.len() > want {
            let doomed = logic::pick_for_deletion(active.to_vec(), want);
            let names: Vec<String> = doomed.iter().map(|p| p.name().to_string()).collect();
            self.expectations.deleted(key, names.clone());
            let dp = DeleteParams::default();
            let deletes = names.iter().map(|n| api.delete(n, &dp));
            let mut failure = None;
            for (r, n) in futures::future::join_all(deletes)
                .await
                .into_iter()
                .zip(&names)
            {
                match r {
                    Ok(_) => self.events.emit(
                        rs,
                        Kind::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {n}"),
                    ),
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        self.expectations.observe_gone(key, n)
                    }
                    Err(e) => {
                        self.expectations.observe_gone(key, n);
                        failure = Some(e);
                    }
                }
            }
            tracing::info!(replicaset = %key, deleted = names.len(), "deleted pods");
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
        Ok(())
    }
}

fn ignore_gone<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A new pod from the ReplicaSet's template, owned by it.
fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name.as_deref().unwrap_or(""))),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![pods::controller_ref(
                "apps/v1",
                "ReplicaSet",
                &rs.metadata,
            )]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}
