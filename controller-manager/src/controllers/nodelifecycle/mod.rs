//! The node lifecycle controller: a node whose Lease in kube-node-lease (or its Ready
//! heartbeat) has not changed for --node-monitor-grace-period gets its conditions set to
//! Unknown (NodeStatusUnknown) and its pods' Ready condition set to False; nodes get the
//! `unreachable` (Ready Unknown) or `not-ready` (Ready False) taints, NoSchedule and
//! NoExecute, the NoExecute ones added at --node-eviction-rate nodes per second; the taints go
//! when the node is Ready again. As the taint manager, it deletes the pods of a node with
//! NoExecute taints (these or a user's) that do not tolerate them, once their
//! tolerationSeconds have passed.

pub mod taints;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use client::{
    controller::{self, Action, Key, Reconciler},
    workqueue::WorkQueue,
};
use futures::{future::BoxFuture, FutureExt};
use k8s_openapi::{
    api::core::v1::{Node, NodeCondition, Pod},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Ctx;
use crate::{pod_view::PodView, pods};

/// The `--controllers` name.
pub const NAME: &str = "nodelifecycle";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (retried with back-off).
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct NodeLifecycle {
    ctx: Arc<Ctx>,
    /// Per node: the last heartbeat seen (lease renew time and Ready heartbeat) and when, on
    /// our clock, it was first seen.
    heartbeats: Mutex<HashMap<String, (Heartbeat, Instant)>>,
    /// When we first saw each NoExecute taint without a timeAdded.
    first_seen: Mutex<HashMap<(String, String), Timestamp>>,
    /// Token bucket of NoExecute taint additions (--node-eviction-rate).
    bucket: Mutex<(f64, Instant)>,
}

/// Registers the handlers; the future runs the workers.
pub fn setup(ctx: &Arc<Ctx>) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::<Key>::new();
    let q = queue.clone();
    ctx.nodes.on_change(move |c| q.add(Key::of(c.object())));
    let q = queue.clone();
    ctx.node_leases.on_change(move |c| {
        q.add(Key::new(
            None,
            c.object().metadata.name.as_deref().unwrap_or(""),
        ))
    });
    let q = queue.clone();
    ctx.pods.on_change(move |c| {
        if let Some(n) = c.object().node_name.as_deref() {
            q.add(Key::new(None, n));
        }
    });
    let r = Arc::new(NodeLifecycle {
        ctx: ctx.clone(),
        heartbeats: Mutex::default(),
        first_seen: Mutex::default(),
        bucket: Mutex::new((1.0, Instant::now())),
    });
    controller::run(NAME, r, queue, 4, Some(ctx.metrics.clone())).boxed()
}

/// What shows a node alive: its Lease's renew time and its Ready condition's heartbeat and
/// status. Compared as values on every reconcile (each lease renewal and monitor period of
/// every node), so nothing is formatted.
#[derive(Debug, Clone, PartialEq)]
struct Heartbeat {
    renew: Option<Timestamp>,
    ready: Option<(Option<Timestamp>, String)>,
}

fn ready_heartbeat(node: &Node) -> Option<(Option<Timestamp>, String)> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| {
            (
                c.last_heartbeat_time.as_ref().map(|t| t.0),
                c.status.clone(),
            )
        })
}

impl NodeLifecycle {
    /// How long the node has gone without a heartbeat (lease renewal or Ready update).
    fn silent_for(&self, node: &Node, name: &str) -> Duration {
        let lease = self
            .ctx
            .node_leases
            .get(&Key::new(Some("kube-node-lease"), name));
        let probe = Heartbeat {
            renew: lease.and_then(|l| {
                l.spec
                    .as_ref()
                    .and_then(|s| s.renew_time.as_ref().map(|t| t.0))
            }),
            ready: ready_heartbeat(node),
        };
        let Ok(mut hb) = self.heartbeats.lock() else {
            return Duration::ZERO;
        };
        match hb.get_mut(name) {
            Some(entry) if entry.0 == probe => entry.1.elapsed(),
            Some(entry) => {
                *entry = (probe, Instant::now());
                Duration::ZERO
            }
            None => {
                hb.insert(name.to_string(), (probe, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// One token of the NoExecute-taint bucket, or how long until there is one.
    fn take_token(&self) -> Result<(), Duration> {
        let rate = self.ctx.config.node_eviction_rate;
        if rate <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        let Ok(mut b) = self.bucket.lock() else {
            return Ok(());
        };
        let tokens = (b.0 + b.1.elapsed().as_secs_f64() * rate).min(1.0);
        b.1 = Instant::now();
        if tokens >= 1.0 {
            b.0 = tokens - 1.0;
            Ok(())
        } else {
            b.0 = tokens;
            Err(Duration::from_secs_f64((1.0 - tokens) / rate))
        }
    }

    /// Sets every condition Unknown (the agent went silent) and the node's pods not ready.
    async fn mark_unknown(&self, node: &Node, now: Timestamp) -> Result<(), Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        if !conditions.iter().any(|c| c.type_ == "Ready") {
            conditions.push(NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_transition_time: Some(Time(now)),
                last_heartbeat_time: None,
            });
        }
        for c in conditions.iter_mut() {
            if matches!(
                c.type_.as_str(),
                "Ready" | "MemoryPressure" | "DiskPressure" | "PIDPressure"
            ) && c.status != "Unknown"
            {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
            }
        }
        tracing::info!(node = %name, "node stopped posting status; marking it Unknown");
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        let body = json!({"status": {"conditions": conditions}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        self.mark_pods_not_ready(&name, now).await
    }

    async fn mark_pods_not_ready(&self, node: &str, now: Timestamp) -> Result<(), Error> {
        for pod in self.pods_on(node) {
            if pod.ready.as_ref().is_none_or(|r| r.status == "False") {
                continue;
            }
            // A strategic merge patch: conditions merge by type, so the pod's other
            // conditions (which the informer does not keep) stay as they are.
            let ready = json!({"type": "Ready", "status": "False", "reason": "NodeNotReady",
                "message": "Node is not ready", "lastTransitionTime": Time(now)});
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), pod.namespace());
            let body = json!({"status": {"conditions": [ready]}});
            gone_ok(
                api.patch_status(
                    pod.name(),
                    &PatchParams::default(),
                    &Patch::Strategic(&body),
                )
                .await,
            )?;
        }
        Ok(())
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<PodView>> {
        self.ctx
            .pods
            .list_filter(|p| p.node_name.as_deref() == Some(node))
    }

    /// Deletes the pods whose time on this node's NoExecute taints is up; returns when the
    /// next one is due.
    async fn evict(&self, node: &Node, now: Timestamp) -> Result<Option<Duration>, Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let no_execute: Vec<_> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .map(|t| {
                let added = t.time_added.as_ref().map(|x| x.0).unwrap_or_else(|| {
                    let mut seen = self.first_seen.lock().unwrap_or_else(|e| e.into_inner());
                    *seen.entry((name.clone(), t.key.clone())).or_insert(now)
                });
                (t, added)
            })
            .collect();
        if no_execute.is_empty() {
            return Ok(None);
        }
        let mut next: Option<Duration> = None;
        for pod in self.pods_on(&name) {
            if pod.deleting() || pods::is_terminated(&pod) {
                continue;
            }
            let Some(at) = taints::eviction_time(&pod, &no_execute, now) else {
                continue;
            };
            if at <= now {
                let (ns, pname) = (pod.namespace(), pod.name());
                tracing::info!(node = %name, pod = %format!("{ns}/{pname}"), "evicting pod from NoExecute-tainted node");
                let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
                gone_ok(api.delete(pname, &DeleteParams::default()).await)?;
            } else {
                let left = Duration::from_millis(
                    (at.as_millisecond() - now.as_millisecond()).max(0) as u64,
                );
                next = Some(next.map_or(left, |n| n.min(left)));
            }
        }
        Ok(next)
    }
}

impl Reconciler for NodeLifecycle {
    type Error = Error;

    async fn reconcile(&self, key: &Key) -> Result<Action, Error> {
        let Some(node) = self.ctx.nodes.get(key) else {
            if let Ok(mut hb) = self.heartbeats.lock() {
                hb.remove(&key.name);
            }
            return Ok(Action::Done);
        };
        let now = Timestamp::now();
        let period = self.ctx.config.node_monitor_period;
        let grace = self.ctx.config.node_monitor_grace_period;
        let silent = self.silent_for(&node, &key.name);
        let ready = taints::ready_status(&node).map(str::to_string);
        if silent > grace && ready.as_deref() != Some("Unknown") {
            self.mark_unknown(&node, now).await?;
            // The status change comes back as an event; taints follow then.
            return Ok(Action::RequeueAfter(period));
        }
        if ready.as_deref() != Some("True") && ready.is_some() {
            self.mark_pods_not_ready(&key.name, now).await?;
        }
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if let Some(new) = taints::with_lifecycle_taints(&current, ready.as_deref(), now) {
            let adds_no_execute = new.iter().filter(|t| t.effect == "NoExecute").count()
                > current.iter().filter(|t| t.effect == "NoExecute").count();
            if adds_no_execute {
                if let Err(wait) = self.take_token() {
                    return Ok(Action::RequeueAfter(wait));
                }
            }
            let mut updated = (*node).clone();
            updated.spec.get_or_insert_with(Default::default).taints =
                (!new.is_empty()).then_some(new);
            tracing::info!(node = %key.name, ready = ?ready, "updating node lifecycle taints");
            let api: Api<Node> = Api::all(self.ctx.client.clone());
            match api
                .replace(&key.name, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::Done),
                Err(e) => return Err(e.into()),
            }
            return Ok(Action::RequeueAfter(period));
        }
        let next = self.evict(&node, now).await?;
        // Look again at the next monitor period (or sooner, when an eviction is due).
        let mut after = period;
        if ready.as_deref() != Some("Unknown") {
            after = after.min(grace.saturating_sub(silent) + Duration::from_millis(100));
        }
        if let Some(n) = next {
            after = after.min(n + Duration::from_millis(50));
        }
        Ok(Action::RequeueAfter(after))
    }
}

fn gone_ok<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
