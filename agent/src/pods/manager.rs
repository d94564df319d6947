//! The pods of this node: an informer on Pods with `spec.nodeName=NODE` (kube-rs' watcher and
//! reflector, as the client crate's informers) feeding the workers; a relist of the runtime's
//! containers every `--relist-period` that wakes the worker of a pod whose containers changed
//! (the kubelet's PLEG); and housekeeping that hands sandboxes of pods that no longer exist to
//! a worker that removes them (also what a restarted agent finds of deleted pods).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    runtime::{reflector, watcher, WatchStreamExt},
    Api,
};

use super::{labels, worker::Workers, Ctx};
use crate::runtime::api;

/// Runs the pod side of the agent for ever.
pub async fn run(ctx: Ctx, relist_period: Duration) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node));
    let (reader, writer) = reflector::store();
    let stream = watcher(pods, config).default_backoff().reflect(writer);
    let workers = Workers::new(ctx.clone());
    tokio::spawn(relist(ctx.clone(), workers.clone(), relist_period));
    let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
    // Counts the pod events, so that housekeeping can tell the pods did not change.
    let pod_events = Arc::new(AtomicU64::new(0));
    tokio::spawn(housekeeping(
        ctx.clone(),
        workers.clone(),
        reader.clone(),
        synced_rx,
        pod_events.clone(),
    ));
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        pod_events.fetch_add(1, Ordering::Relaxed);
        match event {
            Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => workers.update(p),
            Ok(watcher::Event::Delete(p)) => {
                if let Some(uid) = &p.metadata.uid {
                    workers.gone(uid);
                }
            }
            Ok(watcher::Event::InitDone) => {
                // After a (re)list, pods that vanished meanwhile are gone.
                let live: std::collections::HashSet<String> = reader
                    .state()
                    .iter()
                    .filter_map(|p| p.metadata.uid.clone())
                    .collect();
                for uid in workers.uids() {
                    if !live.contains(&uid) {
                        workers.gone(&uid);
                    }
                }
                let _ = synced_tx.send(true);
            }
            Ok(watcher::Event::Init) => {}
            Err(e) => tracing::warn!(error = %e, "pod watch error; retrying"),
        }
    }
}

/// Wakes the worker of each pod whose containers changed state since the last listing.
async fn relist(ctx: Ctx, workers: Arc<Workers>, period: Duration) {
    let mut last: HashMap<String, (i32, String)> = HashMap::new();
    let mut last_version = None;
    loop {
        tokio::time::sleep(period).await;
        let version = ctx.runtime.records_version().await;
        if version.is_some() && version == last_version {
            continue;
        }
        let filter = api::ContainerFilter {
            label_selector: labels::node_selector(&ctx.node),
            ..Default::default()
        };
        let list = match ctx.runtime.container_states(filter, labels::POD_UID).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "listing containers");
                continue;
            }
        };
        let now: HashMap<String, (i32, String)> = list
            .into_iter()
            .map(|c| (c.id, (c.state, c.label)))
            .collect();
        let mut changed: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (id, (state, uid)) in &now {
            if last.get(id).map(|(s, _)| s) != Some(state) {
                changed.insert(uid);
            }
        }
        for (id, (_, uid)) in &last {
            if !now.contains_key(id) {
                changed.insert(uid);
            }
        }
        for uid in changed {
            workers.notify(uid);
        }
        last = now;
        // Read before the listing: a change after it moves the number again.
        last_version = version;
    }
}

/// Every 10 s (after the first list of pods): sandboxes of this node whose pod is unknown get
/// a worker that removes them. A pass is skipped when neither the pods nor the runtime's
/// records (if it can tell) changed since the last one.
async fn housekeeping(
    ctx: Ctx,
    workers: Arc<Workers>,
    reader: reflector::Store<Pod>,
    mut synced: tokio::sync::watch::Receiver<bool>,
    pod_events: Arc<AtomicU64>,
) {
    while !*synced.borrow_and_update() {
        if synced.changed().await.is_err() {
            return;
        }
    }
    let mut last = None;
    loop {
        // Read before looking: a change after it shows in the next pass.
        let now = ctx
            .runtime
            .records_version()
            .await
            .map(|v| (v, pod_events.load(Ordering::Relaxed)));
        if now.is_some() && now == last {
            tokio::time::sleep(Duration::from_secs(10)).await;
            continue;
        }
        match ctx
            .runtime
            .list_pod_sandbox(api::PodSandboxFilter {
                label_selector: labels::node_selector(&ctx.node),
                ..Default::default()
            })
            .await
        {
            Ok(list) => {
                last = now;
                let live: std::collections::HashSet<String> = reader
                    .state()
                    .iter()
                    .filter_map(|p| p.metadata.uid.clone())
                    .collect();
                for sb in list {
                    if let Some(pod) = labels::pod_of(&sb.labels) {
                        if !live.contains(&pod.uid) {
                            tracing::info!(pod = %format!("{}/{}", pod.namespace, pod.name), uid = %pod.uid, "removing the sandbox of a pod that no longer exists");
                            workers.orphan(&pod.uid);
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "listing sandboxes"),
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}
