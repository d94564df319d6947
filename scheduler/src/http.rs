//! The scheduler's HTTP endpoints: `/healthz` (the process serves) and `/metrics`
//! (Prometheus text format; queue and cache sizes are read at scrape time).

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};

use crate::run::Scheduler;

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(State(s): State<Arc<Scheduler>>) -> impl IntoResponse {
    s.update_gauges();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// Serves the endpoints on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scheduler: Arc<Scheduler>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(scheduler);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /healthz and /metrics");
    }
    axum::serve(listener, app).await
}
