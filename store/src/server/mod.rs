//! The member's servers: etcd v3 gRPC for clients, the peer service, and plain HTTP for
//! /health and /metrics. Sockets and TLS come from [`listen`]; the etcd services are one file
//! each.

mod cluster;
mod h2shim;
mod kv;
mod lease;
mod listen;
mod maintenance;
mod peer;
pub mod validate;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use proto::etcdserverpb::cluster_server::ClusterServer;
use proto::etcdserverpb::kv_server::KvServer;
use proto::etcdserverpb::lease_server::LeaseServer;
use proto::etcdserverpb::maintenance_server::MaintenanceServer;
use proto::etcdserverpb::watch_server::WatchServer;
use proto::peerpb::peer_server::PeerServer;
use tonic::transport::Server;

pub use listen::peer_client_tls;
pub use maintenance::API_VERSION;

use crate::config::{split_urls, ServerConfig};
use crate::node::Node;
use crate::raft::network::MAX_PEER_MESSAGE;

/// gRPC overhead allowed on top of `--max-request-bytes`, as etcd allows.
const GRPC_OVERHEAD: usize = 512 * 1024;

/// Starts the peer listeners (before Raft needs them).
pub async fn serve_peers(cfg: &ServerConfig, node: Arc<Node>) -> anyhow::Result<()> {
    for listener in listen::bind_peers(cfg).await? {
        let svc = PeerServer::new(peer::PeerService::new(node.clone()))
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        let router = listener.server()?.add_service(svc);
        let url = listener.url.clone();
        tracing::info!(%url, "serving peers");
        let wire_node = node.clone();
        let wire = move |conn, kind| {
            tokio::spawn(peer::serve_wire(wire_node.clone(), conn, kind));
        };
        tokio::spawn(async move {
            if let Err(e) = listener.serve(router, wire).await {
                tracing::error!(%url, "peer server failed: {e}");
            }
        });
    }
    Ok(())
}

/// Starts the client (etcd v3 gRPC) listeners.
pub async fn serve_clients(cfg: &ServerConfig, node: Arc<Node>) -> anyhow::Result<()> {
    let max = cfg.max_request_bytes + GRPC_OVERHEAD;
    let progress = Duration::from_secs(cfg.watch_progress_notify_interval.max(1));
    for listener in listen::bind_clients(cfg).await? {
        let router = Server::builder()
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .max_concurrent_streams(Some(10_000))
            .add_service(
                KvServer::new(kv::KvService::new(node.clone())).max_decoding_message_size(max),
            )
            .add_service(
                WatchServer::new(watch::WatchService::new(node.clone(), progress))
                    .max_decoding_message_size(max),
            )
            .add_service(
                LeaseServer::new(lease::LeaseService::new(node.clone()))
                    .max_decoding_message_size(max),
            )
            .add_service(
                ClusterServer::new(cluster::ClusterService::new(node.clone()))
                    .max_decoding_message_size(max),
            )
            .add_service(
                MaintenanceServer::new(maintenance::MaintenanceService::new(node.clone()))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(64 * 1024 * 1024),
            );
        let url = listener.url.clone();
        tracing::info!(%url, "serving clients");
        tokio::spawn(async move {
            if let Err(e) = listener.serve(router).await {
                tracing::error!(%url, "client server failed: {e}");
            }
        });
    }
    Ok(())
}

/// Starts the /health and /metrics listeners.
pub async fn serve_metrics(cfg: &ServerConfig, node: Arc<Node>) -> anyhow::Result<()> {
    let Some(urls) = &cfg.listen_metrics_urls else {
        return Ok(());
    };
    for url in split_urls(urls) {
        let listener = listen::bind(&url).await?;
        let n1 = node.clone();
        let n2 = node.clone();
        let app = axum::Router::new()
            .route("/health", get(move || health(n1.clone())))
            .route(
                "/metrics",
                get(move || async move {
                    n2.refresh_gauges();
                    n2.metrics().render()
                }),
            );
        tracing::info!(%url, "serving /health and /metrics");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(%url, "metrics server failed: {e}");
            }
        });
    }
    Ok(())
}

/// etcd's /health: healthy with a leader and no alarm.
async fn health(node: Arc<Node>) -> (axum::http::StatusCode, String) {
    let leader = node.has_leader();
    let alarms = !node.alarms().is_empty();
    let (ok, reason) = match (leader, alarms) {
        (false, _) => (false, "RAFT NO LEADER"),
        (true, true) => (false, "ALARM ACTIVE"),
        (true, false) => (true, ""),
    };
    let code = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        format!("{{\"health\":\"{ok}\",\"reason\":\"{reason}\"}}"),
    )
}
