//! The pod garbage collector: every 20 seconds it deletes the oldest terminated pods beyond
//! --terminated-pod-gc-threshold, pods bound to nodes that no longer exist (after checking
//! with the apiserver), and unscheduled pods already marked for deletion.

use std::{sync::Arc, time::Duration};

use client::{
    controller::{self, Action, Key, Reconciler},
    workqueue::WorkQueue,
};
use futures::{future::BoxFuture, FutureExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams};

use super::Ctx;
use crate::{pod_view::PodView, pods};

/// The `--controllers` name.
pub const NAME: &str = "podgc";

/// How often the collector looks.
const PERIOD: Duration = Duration::from_secs(20);

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (retried with back-off).
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct PodGc {
    ctx: Arc<Ctx>,
}

/// The future runs the periodic passes (one key, re-queued every period).
pub fn setup(ctx: &Arc<Ctx>) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::<Key>::new();
    queue.add(Key::new(None, NAME));
    let r = Arc::new(PodGc { ctx: ctx.clone() });
    controller::run(NAME, r, queue, 1, Some(ctx.metrics.clone())).boxed()
}

/// The terminated pods to delete to keep at most `threshold`: the oldest first.
pub fn over_threshold(terminated: &[Arc<PodView>], threshold: usize) -> Vec<Arc<PodView>> {
    if threshold == 0 || terminated.len() <= threshold {
        return Vec::new();
    }
    let mut sorted = terminated.to_vec();
    sorted.sort_by(|a, b| {
        a.creation_timestamp
            .cmp(&b.creation_timestamp)
            .then(a.name.cmp(&b.name))
    });
    sorted.truncate(terminated.len() - threshold);
    sorted
}

impl PodGc {
    async fn force_delete(&self, pod: &PodView, why: &str) -> Result<(), Error> {
        let (ns, name) = (pod.namespace(), pod.name());
        tracing::info!(pod = %format!("{ns}/{name}"), why, "pod GC deleting pod");
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        match api
            .delete(
                name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Reconciler for PodGc {
    type Error = Error;

    async fn reconcile(&self, _key: &Key) -> Result<Action, Error> {
        let all = self.ctx.pods.list();
        let terminated: Vec<Arc<PodView>> = all
            .iter()
            .filter(|p| pods::is_terminated(p))
            .cloned()
            .collect();
        for p in over_threshold(&terminated, self.ctx.config.terminated_pod_gc_threshold) {
            self.force_delete(&p, "terminated pods over the threshold")
                .await?;
        }
        let nodes: Api<Node> = Api::all(self.ctx.client.clone());
        for p in &all {
            let node = p.node_name.as_deref().map(str::to_string);
            // The node check awaits the API, which a match guard cannot do.
            #[allow(clippy::collapsible_match)]
            match node {
                Some(n) => {
                    if self.ctx.nodes.get(&Key::new(None, &n)).is_none()
                        && nodes.get_opt(&n).await?.is_none()
                    {
                        self.force_delete(p, "bound to a node that does not exist")
                            .await?;
                    }
                }
                None if p.deleting() => {
                    self.force_delete(p, "unscheduled and terminating").await?;
                }
                None => {}
            }
        }
        Ok(Action::RequeueAfter(PERIOD))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_terminated_go_first() {
        let pod = |n: &str, t: &str| {
            Arc::new(
                serde_json::from_value::<PodView>(
                    serde_json::json!({"metadata": {"name": n, "creationTimestamp": t},
                    "status": {"phase": "Succeeded"}}),
                )
                .unwrap(),
            )
        };
        let pods = [
            pod("c", "2026-01-03T00:00:00Z"),
            pod("a", "2026-01-01T00:00:00Z"),
            pod("b", "2026-01-02T00:00:00Z"),
        ];
        let gone: Vec<_> = over_threshold(&pods, 1)
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        assert_eq!(gone, ["a", "b"]);
        assert!(over_threshold(&pods, 3).is_empty());
        assert!(over_threshold(&pods, 0).is_empty());
    }
}
