//! The member's listeners: etcd v3 gRPC for clients, the peer service, and plain HTTP for
//! /health and /metrics.

mod authority;
mod cluster;
mod kv;
mod lease;
mod maintenance;
mod peer;
mod tls;
pub mod validate;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use proto::etcdserverpb::cluster_server::ClusterServer;
use proto::etcdserverpb::kv_server::KvServer;
use proto::etcdserverpb::lease_server::LeaseServer;
use proto::etcdserverpb::maintenance_server::MaintenanceServer;
use proto::etcdserverpb::watch_server::WatchServer;
use proto::peerpb::peer_server::PeerServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig};

pub use maintenance::API_VERSION;

use crate::config::{split_urls, ServerConfig};
use crate::node::Node;
use crate::raft::network::MAX_PEER_MESSAGE;

/// gRPC overhead allowed on top of `--max-request-bytes`, as etcd allows.
const GRPC_OVERHEAD: usize = 512 * 1024;

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A listener's TLS files, checked for consistency: the CA is present only when clients
/// must present a certificate.
pub(super) struct TlsFiles<'a> {
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
    pub client_ca: Option<&'a std::path::Path>,
}

/// Checks a listener's TLS flags; `None` means plain text.
pub(super) fn tls_files<'a>(
    cert: &'a Option<std::path::PathBuf>,
    key: &'a Option<std::path::PathBuf>,
    ca: &'a Option<std::path::PathBuf>,
    client_auth: bool,
) -> anyhow::Result<Option<TlsFiles<'a>>> {
    match (cert, key) {
        (None, None) => {
            if client_auth {
                anyhow::bail!(
                    "client certificate authentication needs --cert-file and --key-file (TLS)"
                );
            }
            Ok(None)
        }
        (Some(cert), Some(key)) => {
            let client_ca = if client_auth {
                Some(
                    ca.as_deref()
                        .context("client certificate authentication needs a trusted CA file")?,
                )
            } else {
                None
            };
            Ok(Some(TlsFiles {
                cert,
                key,
                client_ca,
            }))
        }
        _ => anyhow::bail!("a TLS certificate needs both its cert file and its key file"),
    }
}

/// The server TLS config (tonic) from the checked files.
fn server_tls(
    cert: &Option<std::path::PathBuf>,
    key: &Option<std::path::PathBuf>,
    ca: &Option<std::path::PathBuf>,
    client_auth: bool,
) -> anyhow::Result<Option<ServerTlsConfig>> {
    let Some(files) = tls_files(cert, key, ca, client_auth)? else {
        return Ok(None);
    };
    let mut tls =
        ServerTlsConfig::new().identity(Identity::from_pem(read(files.cert)?, read(files.key)?));
    if let Some(ca) = files.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(Some(tls))
}

/// TLS used when this member dials its peers.
pub fn peer_client_tls(cfg: &ServerConfig) -> anyhow::Result<Option<ClientTlsConfig>> {
    let mut tls = ClientTlsConfig::new();
    let mut any = false;
    if let Some(ca) = &cfg.peer_trusted_ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        any = true;
    }
    if let (Some(c), Some(k)) = (&cfg.peer_cert_file, &cfg.peer_key_file) {
        tls = tls.identity(Identity::from_pem(read(c)?, read(k)?));
        any = true;
    }
    Ok(any.then_some(tls))
}

fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let u = url::Url::parse(url).with_context(|| format!("invalid URL {url:?}"))?;
    let host = u
        .host_str()
        .with_context(|| format!("URL {url:?} has no host"))?;
    let port = u
        .port()
        .with_context(|| format!("URL {url:?} has no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h
            .parse()
            .with_context(|| format!("URL {url:?}: host must be an IP address or localhost"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

async fn bind(url: &str) -> anyhow::Result<TcpListener> {
    let addr = socket_addr(url)?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {url}"))
}

/// Accepted connections with Nagle's algorithm off: small gRPC frames must not wait for the
/// peer's delayed ACK (~40 ms).
fn incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    })
}

/// Starts the peer listeners (before Raft needs them).
pub async fn serve_peers(cfg: &ServerConfig, node: Arc<Node>) -> anyhow::Result<()> {
    let tls = server_tls(
        &cfg.peer_cert_file,
        &cfg.peer_key_file,
        &cfg.peer_trusted_ca_file,
        cfg.peer_client_cert_auth,
    )?;
    for url in split_urls(&cfg.listen_peer_urls) {
        if url.starts_with("https") != tls.is_some() {
            anyhow::bail!("peer URL {url} and the peer TLS flags disagree (https needs --peer-cert-file and --peer-key-file, and they need https)");
        }
        let listener = bind(&url).await?;
        let mut builder = Server::builder().tcp_nodelay(true);
        if let Some(tls) = &tls {
            builder = builder.tls_config(tls.clone())?;
        }
        let svc = PeerServer::new(peer::PeerService::new(node.clone()))
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        let router = builder.add_service(svc);
        tracing::info!(%url, "serving peers");
        tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming(listener)).await {
                tracing::error!(%url, "peer server failed: {e}");
            }
        });
    }
    Ok(())
}

/// Starts the client (etcd v3 gRPC) listeners.
pub async fn serve_clients(cfg: &ServerConfig, node: Arc<Node>) -> anyhow::Result<()> {
    // TLS is done here rather than by tonic: `authority::FixAuthority` must see decrypted bytes.
    let tls = tls::tls_acceptor(
        &cfg.cert_file,
        &cfg.key_file,
        &cfg.trusted_ca_file,
        cfg.client_cert_auth,
    )?;
    let max = cfg.max_request_bytes + GRPC_OVERHEAD;
    let progress = Duration::from_secs(cfg.watch_progress_notify_interval.max(1));
    for url in split_urls(&cfg.listen_client_urls) {
        if url.starts_with("https") != tls.is_some() {
            anyhow::bail!("client URL {url} and the TLS flags disagree (https needs --cert-file and --key-file, and they need https)");
        }
        let listener = bind(&url).await?;
        let mut builder = Server::builder()
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .max_concurrent_streams(Some(10_000));
        let router = builder
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
        tracing::info!(%url, "serving clients");
        let tls = tls.clone();
        tokio::spawn(async move {
            // Client connections go through `FixAuthority`: etcdctl 3.4 sends `:authority`
            // values such as `http://127.0.0.1:2379`, which h2 would reset.
            let served = match tls {
                Some(tls) => {
                    router
                        .serve_with_incoming(authority::tls_incoming(incoming(listener), tls))
                        .await
                }
                None => {
                    router
                        .serve_with_incoming(authority::plain_incoming(incoming(listener)))
                        .await
                }
            };
            if let Err(e) = served {
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
        let listener = bind(&url).await?;
        let n1 = node.clone();
        let n2 = node.clone();
        let app = axum::Router::new()
            .route("/health", get(move || health(n1.clone())))
            .route(
                "/metrics",
                get(move || async move {
                    n2.refresh_gauges();
                    n2.metrics.render()
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
    let leader = node.raft.metrics().borrow().current_leader.is_some();
    let alarms = !node.state.cluster.read().alarms.is_empty();
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
