//! The Namespace controller: a namespace being deleted (deletionTimestamp set, phase
//! Terminating, `kubernetes` in spec.finalizers) is emptied: every namespaced resource that
//! discovery lists is deleted with deletecollection, and once nothing is left the
//! `kubernetes` finalizer is removed through `namespaces/NAME/finalize`, which lets the
//! apiserver delete the namespace.

use std::{sync::Arc, time::Duration};

use client::{
    controller::{self, Action, Key, Reconciler},
    workqueue::WorkQueue,
};
use futures::{future::BoxFuture, FutureExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    api::{Api, DeleteParams, DynamicObject, ListParams, PostParams},
    discovery::{verbs, Discovery, Scope},
};

use super::Ctx;

/// The `--controllers` name.
pub const NAME: &str = "namespace";

/// The finalizer this controller owns.
const FINALIZER: &str = "kubernetes";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (retried with back-off).
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct NamespaceController {
    ctx: Arc<Ctx>,
}

/// Registers the handlers; the future runs the workers.
pub fn setup(ctx: &Arc<Ctx>) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::<Key>::new();
    let q = queue.clone();
    ctx.namespaces.on_change(move |c| {
        if c.object().metadata.deletion_timestamp.is_some() {
            q.add(Key::of(c.object()));
        }
    });
    let r = Arc::new(NamespaceController { ctx: ctx.clone() });
    controller::run(
        NAME,
        r,
        queue,
        ctx.config.concurrent_namespace_syncs,
        Some(ctx.metrics.clone()),
    )
    .boxed()
}

impl Reconciler for NamespaceController {
    type Error = Error;

    async fn reconcile(&self, key: &Key) -> Result<Action, Error> {
        let Some(ns) = self.ctx.namespaces.get(key) else {
            return Ok(Action::Done);
        };
        let finalizers = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if ns.metadata.deletion_timestamp.is_none() || !finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(Action::Done);
        }
        let left = self.delete_content(&key.name).await?;
        if left > 0 {
            tracing::info!(namespace = %key.name, left, "namespace not empty yet");
            return Ok(Action::RequeueAfter(Duration::from_secs(2)));
        }
        let mut done = (*ns).clone();
        if let Some(spec) = done.spec.as_mut() {
            spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
        }
        let api: Api<Namespace> = Api::all(self.ctx.client.clone());
        match api
            .replace_subresource("finalize", &key.name, &PostParams::default(), &done)
            .await
        {
            Ok(_) => tracing::info!(namespace = %key.name, "namespace emptied and finalized"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::Done)
    }
}

impl NamespaceController {
    /// Deletes every namespaced object of `ns`; returns how many objects are still there.
    async fn delete_content(&self, ns: &str) -> Result<usize, Error> {
        let discovery = Discovery::new(self.ctx.client.clone()).run().await?;
        let mut left = 0;
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                    continue;
                }
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.ctx.client.clone(), ns, &ar);
                let list = api.list(&ListParams::default()).await?;
                if list.items.is_empty() {
                    continue;
                }
                if caps.supports_operation(verbs::DELETE_COLLECTION) {
                    api.delete_collection(&DeleteParams::background(), &ListParams::default())
                        .await?;
                } else if caps.supports_operation(verbs::DELETE) {
                    for o in &list.items {
                        let name = o.metadata.name.as_deref().unwrap_or("");
                        match api.delete(name, &DeleteParams::background()).await {
                            Ok(_) => {}
                            Err(kube::Error::Api(e)) if e.code == 404 => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                // What is still there (finalizers, graceful pod deletion) is waited for.
                left += api.list(&ListParams::default()).await?.items.len();
            }
        }
        Ok(left)
    }
}
