//! The plain-HTTP endpoint: `/healthz` (the process serves) and `/metrics` (Prometheus text:
//! work queue depth, adds, retries and reconcile latency per controller).

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus::{Encoder, Registry, TextEncoder};

/// Serves until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .with_state(registry);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "health and metrics endpoint failed");
    }
}

async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::warn!(error = %e, "encoding metrics");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
