//! `/healthz` (the agent answers and its runtime is reachable) and `/metrics` (Prometheus
//! text: request counts per endpoint family and status code, running pods and containers;
//! counts only, no object data).

use api::status::StatusError;
use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use super::{status, Ctx};
use crate::{
    pods::labels,
    runtime::{api as cri, Runtime},
};

/// The agent API's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    running_pods: IntGauge,
    running_containers: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "agent_api_requests_total",
                "Requests to the agent API by endpoint family and HTTP status code.",
            ),
            &["endpoint", "code"],
        )
        .expect("valid metric");
        let running_pods = IntGauge::new(
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox.",
        )
        .expect("valid metric");
        let running_containers = IntGauge::new(
            "kubelet_running_containers",
            "Number of containers currently running.",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(running_pods.clone()),
            Box::new(running_containers.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            running_pods,
            running_containers,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The endpoint family of a path (a bounded label set).
fn family(path: &str) -> &'static str {
    match path.split('/').nth(1) {
        Some("containerLogs") => "containerLogs",
        Some("exec") => "exec",
        Some("stats") => "stats",
        Some("healthz") => "healthz",
        Some("metrics") => "metrics",
        _ => "other",
    }
}

/// Counts each request by family and status code.
pub async fn count(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let family = family(req.uri().path());
    let resp = next.run(req).await;
    ctx.metrics
        .requests
        .with_label_values(&[family, resp.status().as_str()])
        .inc();
    resp
}

/// `ok` while the runtime answers.
pub async fn healthz(State(ctx): State<Ctx>) -> Response {
    match ctx.runtime.version().await {
        Ok(_) => ([(header::CONTENT_TYPE, "text/plain")], "ok").into_response(),
        Err(e) => status(StatusError::unavailable(format!(
            "container runtime is down: {e}"
        ))),
    }
}

/// How many of this node's sandboxes and containers run.
async fn running(runtime: &dyn Runtime, node: &str) -> Option<(usize, usize)> {
    let pods = runtime
        .list_pod_sandbox(cri::PodSandboxFilter {
            state: Some(cri::PodSandboxStateValue {
                state: cri::PodSandboxState::SandboxReady as i32,
            }),
            label_selector: labels::node_selector(node),
            ..Default::default()
        })
        .await
        .ok()?;
    let containers = runtime
        .list_containers(cri::ContainerFilter {
            state: Some(cri::ContainerStateValue {
                state: cri::ContainerState::ContainerRunning as i32,
            }),
            label_selector: labels::node_selector(node),
            ..Default::default()
        })
        .await
        .ok()?;
    Some((pods.len(), containers.len()))
}

/// The Prometheus text exposition.
pub async fn metrics(State(ctx): State<Ctx>) -> Response {
    if let Some((pods, containers)) = running(ctx.runtime.as_ref(), &ctx.node).await {
        ctx.metrics.running_pods.set(pods as i64);
        ctx.metrics.running_containers.set(containers as i64);
    }
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&ctx.metrics.registry.gather(), &mut out) {
        return status(StatusError::internal(format!("encoding metrics: {e}")));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
