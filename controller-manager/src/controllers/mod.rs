//! The controllers and what they share: one informer per resource kind (each controller
//! registers its handlers on them), the API client, the flags and the runner's metrics.
//! Each controller is a module with a `NAME` (its `--controllers` name) and a `setup` that
//! registers its handlers and returns the future running its workers once the caches synced.

pub mod deployment;
pub mod endpoints;
pub mod garbagecollector;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;

use std::sync::Arc;

use client::controller::{Informer, Metrics};
use futures::future::BoxFuture;
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    coordination::v1::Lease,
    core::v1::{Endpoints, Namespace, Node, Service},
};
use kube::{runtime::watcher, Api};

use crate::{
    config::{self, Config},
    pod_view::{PodView, WirePod},
};

/// What every controller gets.
pub struct Ctx {
    pub client: kube::Client,
    pub config: Config,
    pub metrics: Metrics,
    /// Pods in their compact form (what the controllers read).
    pub pods: Informer<PodView>,
    pub replicasets: Informer<ReplicaSet>,
    pub deployments: Informer<Deployment>,
    pub services: Informer<Service>,
    pub endpoints: Informer<Endpoints>,
    pub namespaces: Informer<Namespace>,
    pub nodes: Informer<Node>,
    /// Node heartbeats: Leases in kube-node-lease.
    pub node_leases: Informer<Lease>,
    informer_runs: std::sync::Mutex<Vec<BoxFuture<'static, ()>>>,
}

impl Ctx {
    /// The informers (not yet running) and the rest of the context.
    pub fn new(client: kube::Client, config: Config, metrics: Metrics) -> Arc<Ctx> {
        let mut runs: Vec<BoxFuture<'static, ()>> = Vec::new();
        let wc = watcher::Config::default;
        macro_rules! informer {
            ($api:expr) => {{
                let (i, run) = Informer::new($api, wc());
                runs.push(Box::pin(run));
                i
            }};
            // Watched as one type, cached as another (`Informer::mapped`).
            ($api:expr, $map:expr, $id:expr) => {{
                let (i, run) = Informer::mapped($api, wc(), $map, $id);
                runs.push(Box::pin(run));
                i
            }};
        }
        let c = client.clone();
        Arc::new(Ctx {
            // Pods are watched whole and cached as the controllers' small view of them.
            pods: informer!(Api::<WirePod>::all(c.clone()), PodView::from, PodView::id),
            replicasets: informer!(Api::<ReplicaSet>::all(c.clone())),
            deployments: informer!(Api::<Deployment>::all(c.clone())),
            services: informer!(Api::<Service>::all(c.clone())),
            endpoints: informer!(Api::<Endpoints>::all(c.clone())),
            namespaces: informer!(Api::<Namespace>::all(c.clone())),
            nodes: informer!(Api::<Node>::all(c.clone())),
            node_leases: informer!(Api::<Lease>::namespaced(c.clone(), "kube-node-lease")),
            informer_runs: std::sync::Mutex::new(runs),
            client,
            config,
            metrics,
        })
    }

    /// An event recorder reporting as `component` (`replicaset-controller`, ...).
    pub fn recorder(&self, component: &str) -> client::events::Recorder {
        client::events::Recorder::start(
            self.client.clone(),
            client::events::Source {
                component: component.into(),
                host: None,
                instance: component.into(),
            },
        )
    }

    /// True when every informer has its first list.
    async fn wait_synced(&self) {
        self.pods.wait_synced().await;
        self.replicasets.wait_synced().await;
        self.deployments.wait_synced().await;
        self.services.wait_synced().await;
        self.endpoints.wait_synced().await;
        self.namespaces.wait_synced().await;
        self.nodes.wait_synced().await;
        self.node_leases.wait_synced().await;
    }
}

type Setup = fn(&Arc<Ctx>) -> BoxFuture<'static, ()>;

/// Every controller, by its `--controllers` name.
pub const ALL: &[(&str, Setup)] = &[
    (replicaset::NAME, replicaset::setup),
    (deployment::NAME, deployment::setup),
    (endpoints::NAME, endpoints::setup),
    (namespace::NAME, namespace::setup),
    (garbagecollector::NAME, garbagecollector::setup),
    (nodelifecycle::NAME, nodelifecycle::setup),
    (podgc::NAME, podgc::setup),
    (nodeipam::NAME, nodeipam::setup),
];

/// Sets up the enabled controllers, starts the informers, waits for their first lists, then
/// runs the controllers until the process ends.
pub async fn run(ctx: Arc<Ctx>) {
    let mut controllers = Vec::new();
    for (name, setup) in ALL {
        if config::enabled(&ctx.config.controllers, name) {
            tracing::info!(controller = name, "starting controller");
            controllers.push(setup(&ctx));
        }
    }
    let runs = std::mem::take(&mut *ctx.informer_runs.lock().unwrap_or_else(|e| e.into_inner()));
    for r in runs {
        tokio::spawn(r);
    }
    ctx.wait_synced().await;
    tracing::info!("caches synced");
    let handles: Vec<_> = controllers.into_iter().map(tokio::spawn).collect();
    for h in handles {
        if let Err(e) = h.await {
            tracing::error!(error = %e, "controller ended abnormally");
        }
    }
}
