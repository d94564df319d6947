//! The Deployment controller: owns ReplicaSets named `<deployment>-<pod-template-hash>`,
//! rolls from the old ones to the new one (RollingUpdate within maxSurge/maxUnavailable, or
//! Recreate), scales proportionally when the replicas change mid-rollout, keeps the revision
//! annotations (so `kubectl rollout undo` and `history` work), honours `paused`, cleans up
//! beyond revisionHistoryLimit, and reports status and the Available/Progressing conditions.

mod plan;
mod status;
mod util;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use client::{
    controller::{self, Action, Change, Key, Reconciler},
    workqueue::WorkQueue,
};
use futures::{future::BoxFuture, FutureExt};
use k8s_openapi::{
    api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
    jiff::Timestamp,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Ctx;
use crate::pods;

/// The `--controllers` name.
pub const NAME: &str = "deployment";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (retried with back-off).
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// The ReplicaSet name of the template's hash belongs to another template; the collision
    /// count was raised and the next try uses another name.
    #[error("hash collision for ReplicaSet {0}")]
    Collision(String),
}

struct DeploymentController {
    ctx: Arc<Ctx>,
    /// ScalingReplicaSet events, as the deployment controller writes them.
    events: client::events::Recorder,
}

/// Registers the handlers; the future runs the workers.
pub fn setup(ctx: &Arc<Ctx>) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::<Key>::new();
    let q = queue.clone();
    ctx.deployments
        .on_change(move |c| q.add(Key::of(c.object())));
    let (q, c2) = (queue.clone(), ctx.clone());
    ctx.replicasets.on_change(move |c| {
        let rs = c.object();
        let ns = rs.metadata.namespace.as_deref();
        match pods::controller_of(&rs.metadata) {
            Some(o) if o.kind == "Deployment" => q.add(Key::new(ns, &o.name)),
            Some(_) => {}
            None => {
                for d in c2.deployments.list_namespace(ns.unwrap_or("")) {
                    let sel = d.spec.as_ref().map(|s| &s.selector);
                    if pods::selects(sel, rs.metadata.labels.as_ref()) {
                        q.add(Key::of(d.as_ref()));
                    }
                }
            }
        }
    });
    // Recreate waits for the old pods to be gone.
    let (q, c2) = (queue.clone(), ctx.clone());
    ctx.pods.on_change(move |c| {
        let Change::Deleted(pod) = c else { return };
        let ns = Some(pod.namespace());
        let Some(owner) = pod.controller().filter(|o| o.kind == "ReplicaSet") else {
            return;
        };
        if let Some(rs) = c2.replicasets.get(&Key::new(ns, &owner.name)) {
            if let Some(d) = pods::controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") {
                q.add(Key::new(ns, &d.name));
            }
        }
    });
    let r = Arc::new(DeploymentController {
        ctx: ctx.clone(),
        events: ctx.recorder("deployment-controller"),
    });
    let workers = ctx.config.concurrent_deployment_syncs;
    controller::run(NAME, r, queue, workers, Some(ctx.metrics.clone())).boxed()
}

impl Reconciler for DeploymentController {
    type Error = Error;

    async fn reconcile(&self, key: &Key) -> Result<Action, Error> {
        let Some(d) = self.ctx.deployments.get(key) else {
            return Ok(Action::Done);
        };
        let mut d = (*d).clone();
        let rss = self.claim(&d).await?;
        let now = Timestamp::now();
        if d.metadata.deletion_timestamp.is_some() {
            let (new, olds) = self.new_and_old(&mut d, rss, false).await?;
            let all = all_of(&new, &olds);
            return self
                .write_status(&d, status::calculate(&d, &all, new.as_ref(), now))
                .await;
        }
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        self.paused_condition(&mut d, paused, now);
        if paused || self.scaling_event(&d, &rss) {
            return self.sync(&mut d, rss, paused, now).await;
        }
        if util::is_rolling(&d) {
            self.rolling(&mut d, rss, now).await
        } else {
            self.recreate(&mut d, rss, now).await
        }
    }
}

fn all_of<'a>(new: &'a Option<ReplicaSet>, olds: &'a [ReplicaSet]) -> Vec<&'a ReplicaSet> {
    olds.iter().chain(new.iter()).collect()
}

impl DeploymentController {
    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    /// The ReplicaSets this Deployment owns, adopting matching orphans and releasing owned
    /// ones that stopped matching.
    async fn claim(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, Error> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let sel = pods::compile(d.spec.as_ref().map(|s| &s.selector));
        let deleting = d.metadata.deletion_timestamp.is_some();
        let api = self.rs_api(&ns);
        let mut out = Vec::new();
        for rs in self.ctx.replicasets.list_namespace(&ns) {
            let matches = pods::matches(sel.as_ref(), rs.metadata.labels.as_ref());
            let name = rs.metadata.name.clone().unwrap_or_default();
            match pods::controller_of(&rs.metadata) {
                Some(o) if o.uid == uid => {
                    if matches || deleting {
                        out.push((*rs).clone());
                    } else {
                        let refs: Vec<_> = rs
                            .metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .filter(|r| r.uid != uid)
                            .cloned()
                            .collect();
                        let body = json!({"metadata": {"ownerReferences": refs}});
                        gone_ok(
                            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                                .await,
                        )?;
                    }
                }
                Some(_) => {}
                None if matches && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                    let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                    refs.push(pods::controller_ref("apps/v1", "Deployment", &d.metadata));
                    let body = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.metadata.resource_version}});
                    match api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                        .await
                    {
                        Ok(r) => out.push(r),
                        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// The new ReplicaSet (created when `create` and missing) and the old ones; the new one's
    /// revision is moved past the old ones and the Deployment's revision annotation follows.
    async fn new_and_old(
        &self,
        d: &mut Deployment,
        rss: Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
        let (new, olds) = util::split_new_old(d, &rss);
        let olds: Vec<ReplicaSet> = olds.into_iter().cloned().collect();
        let new_revision = olds.iter().map(util::revision).max().unwrap_or(0) + 1;
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let now = Timestamp::now();
        let new = match new {
            Some(rs) => {
                let mut rs = rs.clone();
                let mut ann = rs.metadata.annotations.clone().unwrap_or_default();
                let mut changed = util::copy_annotations(d, &mut ann);
                changed |= util::set_new_rs_revision(&mut ann, new_revision);
                let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
                let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
                if changed || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0) {
                    let body = json!({"metadata": {"annotations": ann, "resourceVersion": rs.metadata.resource_version},
                        "spec": {"minReadySeconds": min_ready}});
                    rs = self
                        .rs_api(&ns)
                        .patch(
                            rs.metadata.name.as_deref().unwrap_or(""),
                            &PatchParams::default(),
                            &Patch::Merge(&body),
                        )
                        .await?;
                }
                let st = d.status.get_or_insert_with(Default::default);
                if status::get(st, status::PROGRESSING).is_none()
                    && d.spec
                        .as_ref()
                        .and_then(|s| s.progress_deadline_seconds)
                        .is_some()
                {
                    let msg = format!(
                        "Found new replica set {:?}",
                        rs.metadata.name.as_deref().unwrap_or("")
                    );
                    status::set(
                        st,
                        status::condition(
                            status::PROGRESSING,
                            "True",
                            status::FOUND_NEW_RS,
                            msg,
                            now,
                        ),
                    );
                }
                Some(rs)
            }
            None if create => {
                let rs = self.create_new(d, &olds, new_revision).await?;
                let msg = format!(
                    "Created new replica set {:?}",
                    rs.metadata.name.as_deref().unwrap_or("")
                );
                if d.spec
                    .as_ref()
                    .and_then(|s| s.progress_deadline_seconds)
                    .is_some()
                {
                    let st = d.status.get_or_insert_with(Default::default);
                    status::set(
                        st,
                        status::condition(
                            status::PROGRESSING,
                            "True",
                            status::NEW_RS_CREATED,
                            msg,
                            now,
                        ),
                    );
                }
                Some(rs)
            }
            None => None,
        };
        if let Some(rs) = &new {
            self.set_revision(d, rs).await?;
        }
        Ok((new, olds))
    }

    /// Sets the Deployment's revision annotation to its new ReplicaSet's.
    async fn set_revision(&self, d: &mut Deployment, rs: &ReplicaSet) -> Result<(), Error> {
        let Some(rev) = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(util::REVISION))
            .cloned()
        else {
            return Ok(());
        };
        let current = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(util::REVISION));
        if current == Some(&rev) {
            return Ok(());
        }
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &ns);
        let body = json!({"metadata": {"annotations": {util::REVISION: rev}}});
        let patched = api
            .patch(
                d.metadata.name.as_deref().unwrap_or(""),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await?;
        d.metadata.annotations = patched.metadata.annotations;
        d.metadata.resource_version = patched.metadata.resource_version;
        Ok(())
    }

    async fn create_new(
        &self,
        d: &mut Deployment,
        olds: &[ReplicaSet],
        revision: i64,
    ) -> Result<ReplicaSet, Error> {
        let spec = d.spec.clone().unwrap_or_default();
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = util::template_hash(&spec.template, collisions);
        let mut template = spec.template.clone();
        let tm = template.metadata.get_or_insert_with(Default::default);
        tm.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(util::HASH_LABEL.into(), hash.clone());
        let labels = tm.labels.clone();
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(util::HASH_LABEL.into(), hash.clone());
        let d_name = d.metadata.name.clone().unwrap_or_default();
        let name = format!("{d_name}-{hash}");
        let old_refs: Vec<&ReplicaSet> = olds.iter().collect();
        let replicas = plan::new_rs_replicas(d, &old_refs, 0);
        let mut ann = BTreeMap::new();
        util::copy_annotations(d, &mut ann);
        util::set_new_rs_revision(&mut ann, revision);
        let want = util::replicas(d);
        util::set_replicas_annotations(&mut ann, want, want + util::max_surge(d));
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels,
                annotations: Some(ann),
                owner_references: Some(vec![pods::controller_ref(
                    "apps/v1",
                    "Deployment",
                    &d.metadata,
                )]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let api = self.rs_api(d.metadata.namespace.as_deref().unwrap_or(""));
        match api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                tracing::info!(deployment = %d_name, replicaset = %name, replicas, "created new ReplicaSet");
                if replicas > 0 {
                    self.events.emit(
                        d,
                        client::events::Kind::Normal,
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {name} from 0 to {replicas}"),
                    );
                }
                Ok(created)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = api.get(&name).await?;
                let ours = pods::controller_of(&existing.metadata)
                    .is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| util::equal_ignore_hash(t, &spec.template));
                if ours && same {
                    return Ok(existing);
                }
                let st = d.status.get_or_insert_with(Default::default);
                st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                let deployments: Api<Deployment> = Api::namespaced(
                    self.ctx.client.clone(),
                    d.metadata.namespace.as_deref().unwrap_or(""),
                );
                deployments
                    .replace_status(&d_name, &PostParams::default(), d)
                    .await?;
                Err(Error::Collision(name))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies scaling decisions, updating the replicas annotations too.
    async fn apply(
        &self,
        d: &Deployment,
        rss: &[&ReplicaSet],
        scales: &[plan::Scale],
    ) -> Result<(), Error> {
        let want = util::replicas(d);
        let max = want + util::max_surge(d);
        for (name, n) in scales {
            let Some(rs) = rss.iter().find(|r| r.metadata.name.as_ref() == Some(name)) else {
                continue;
            };
            let mut ann = rs.metadata.annotations.clone().unwrap_or_default();
            util::set_replicas_annotations(&mut ann, want, max);
            let body = json!({"metadata": {"annotations": ann, "resourceVersion": rs.metadata.resource_version},
                "spec": {"replicas": n}});
            self.rs_api(d.metadata.namespace.as_deref().unwrap_or(""))
                .patch(name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
            let from = util::rs_replicas(rs);
            tracing::info!(deployment = ?d.metadata.name, replicaset = %name, from, to = n, "scaled ReplicaSet");
            if *n != from {
                let way = if *n > from { "up" } else { "down" };
                self.events.emit(
                    d,
                    client::events::Kind::Normal,
                    "ScalingReplicaSet",
                    format!("Scaled {way} replica set {name} from {from} to {n}"),
                );
            }
        }
        Ok(())
    }

    /// An active ReplicaSet was last scaled for other replicas than the Deployment's.
    fn scaling_event(&self, d: &Deployment, rss: &[ReplicaSet]) -> bool {
        let want = i64::from(util::replicas(d));
        rss.iter()
            .filter(|r| util::rs_replicas(r) > 0)
            .any(|r| util::annotation_int(r, util::DESIRED_REPLICAS).is_some_and(|v| v != want))
    }

    /// Scaling only (paused, or replicas changed): proportional, then the plain status.
    async fn sync(
        &self,
        d: &mut Deployment,
        rss: Vec<ReplicaSet>,
        paused: bool,
        now: Timestamp,
    ) -> Result<Action, Error> {
        let (new, olds) = self.new_and_old(d, rss, false).await?;
        let old_refs: Vec<&ReplicaSet> = olds.iter().collect();
        let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let scales = plan::proportional(d, new.as_ref(), &old_refs, status_replicas);
        let all = all_of(&new, &olds);
        self.apply(d, &all, &scales).await?;
        if paused {
            self.cleanup(d, &olds).await?;
        }
        self.write_status(d, status::calculate(d, &all, new.as_ref(), now))
            .await
    }

    async fn rolling(
        &self,
        d: &mut Deployment,
        rss: Vec<ReplicaSet>,
        now: Timestamp,
    ) -> Result<Action, Error> {
        let (new, olds) = self.new_and_old(d, rss, true).await?;
        let all = all_of(&new, &olds);
        if let Some(n) = &new {
            let up = plan::scale_up_new(d, &all, n);
            if !up.is_empty() {
                self.apply(d, &all, &up).await?;
                return self
                    .write_status(d, status::rollout(d, &all, new.as_ref(), now))
                    .await;
            }
        }
        let active: Vec<&ReplicaSet> = olds.iter().filter(|r| util::rs_replicas(r) > 0).collect();
        let down = plan::scale_down_old(d, &active, new.as_ref());
        if !down.is_empty() {
            self.apply(d, &all, &down).await?;
            return self
                .write_status(d, status::rollout(d, &all, new.as_ref(), now))
                .await;
        }
        if d.status.as_ref().is_some_and(|s| status::complete(d, s)) {
            self.cleanup(d, &olds).await?;
        }
        self.write_status(d, status::rollout(d, &all, new.as_ref(), now))
            .await
    }

    async fn recreate(
        &self,
        d: &mut Deployment,
        rss: Vec<ReplicaSet>,
        now: Timestamp,
    ) -> Result<Action, Error> {
        let (mut new, mut olds) = self.new_and_old(d, rss.clone(), false).await?;
        {
            let all = all_of(&new, &olds);
            let active: Vec<&ReplicaSet> =
                olds.iter().filter(|r| util::rs_replicas(r) > 0).collect();
            let down = plan::scale_down_all(&active);
            if !down.is_empty() {
                self.apply(d, &all, &down).await?;
                return self
                    .write_status(d, status::rollout(d, &all, new.as_ref(), now))
                    .await;
            }
            if self.old_pods_running(&olds) {
                return self
                    .write_status(d, status::rollout(d, &all, new.as_ref(), now))
                    .await;
            }
        }
        if new.is_none() {
            (new, olds) = self.new_and_old(d, rss, true).await?;
        }
        let all = all_of(&new, &olds);
        if let Some(n) = &new {
            if util::rs_replicas(n) != util::replicas(d) {
                let scale = [(
                    n.metadata.name.clone().unwrap_or_default(),
                    util::replicas(d),
                )];
                self.apply(d, &all, &scale).await?;
                return self
                    .write_status(d, status::rollout(d, &all, new.as_ref(), now))
                    .await;
            }
        }
        if d.status.as_ref().is_some_and(|s| status::complete(d, s)) {
            self.cleanup(d, &olds).await?;
        }
        self.write_status(d, status::rollout(d, &all, new.as_ref(), now))
            .await
    }

    /// Some pod of an old ReplicaSet has not finished (Recreate waits for them all).
    fn old_pods_running(&self, olds: &[ReplicaSet]) -> bool {
        let uids: Vec<&str> = olds
            .iter()
            .filter_map(|r| r.metadata.uid.as_deref())
            .collect();
        let ns = olds
            .first()
            .and_then(|r| r.metadata.namespace.clone())
            .unwrap_or_default();
        self.ctx.pods.list_namespace(&ns).iter().any(|p| {
            p.controller().is_some_and(|o| uids.contains(&&*o.uid)) && !pods::is_terminated(p)
        })
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond revisionHistoryLimit.
    async fn cleanup(&self, d: &Deployment, olds: &[ReplicaSet]) -> Result<(), Error> {
        let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = olds
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        let extra = cleanable.len() as i64 - i64::from(limit);
        if extra <= 0 {
            return Ok(());
        }
        cleanable.sort_by_key(|r| (util::revision(r), r.metadata.creation_timestamp.clone()));
        let api = self.rs_api(d.metadata.namespace.as_deref().unwrap_or(""));
        for rs in cleanable.into_iter().take(extra as usize) {
            let st = rs.status.clone().unwrap_or_default();
            let settled = st.observed_generation >= rs.metadata.generation;
            if st.replicas != 0 || util::rs_replicas(rs) != 0 || !settled {
                continue;
            }
            let name = rs.metadata.name.clone().unwrap_or_default();
            tracing::info!(deployment = ?d.metadata.name, replicaset = %name, "deleting old ReplicaSet beyond the revision history limit");
            gone_ok(api.delete(&name, &DeleteParams::background()).await)?;
        }
        Ok(())
    }

    /// Progressing Unknown with DeploymentPaused / DeploymentResumed (`checkPausedConditions`).
    fn paused_condition(&self, d: &mut Deployment, paused: bool, now: Timestamp) {
        if d.spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .is_none()
        {
            return;
        }
        let st = d.status.get_or_insert_with(Default::default);
        let reason = status::get(st, status::PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(status::TIMED_OUT) {
            return;
        }
        let is_paused = reason.as_deref() == Some(status::PAUSED);
        if paused && !is_paused {
            status::set(
                st,
                status::condition(
                    status::PROGRESSING,
                    "Unknown",
                    status::PAUSED,
                    "Deployment is paused".into(),
                    now,
                ),
            );
        } else if !paused && is_paused {
            status::set(
                st,
                status::condition(
                    status::PROGRESSING,
                    "Unknown",
                    status::RESUMED,
                    "Deployment is resumed".into(),
                    now,
                ),
            );
        }
    }

    /// Writes the status when it changed; looks again when a progress deadline runs.
    async fn write_status(
        &self,
        d: &Deployment,
        new: k8s_openapi::api::apps::v1::DeploymentStatus,
    ) -> Result<Action, Error> {
        let cached = self.ctx.deployments.get(&Key::of(d));
        let unchanged = cached
            .as_ref()
            .is_some_and(|c| c.status.as_ref() == Some(&new));
        let deadline = status::deadline(d, &new);
        if !unchanged {
            let api: Api<Deployment> = Api::namespaced(
                self.ctx.client.clone(),
                d.metadata.namespace.as_deref().unwrap_or(""),
            );
            let mut obj = d.clone();
            obj.status = Some(new);
            match api
                .replace_status(
                    d.metadata.name.as_deref().unwrap_or(""),
                    &PostParams::default(),
                    &obj,
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::Done),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(match deadline {
            Some(t) => {
                let left = t.as_millisecond() - Timestamp::now().as_millisecond();
                Action::RequeueAfter(
                    Duration::from_millis(left.max(0) as u64) + Duration::from_secs(1),
                )
            }
            None => Action::Done,
        })
    }
}

fn gone_ok<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
