//! The agent's HTTPS API, the kubelet's: what the apiserver calls for `pods/log`
//! (`/containerLogs/NS/POD/CONTAINER`, [`logs`]) and `pods/exec` (`/exec/NS/POD/CONTAINER`,
//! [`exec`]), the usage summary `kubectl top` is built on (`/stats/summary`, [`stats`]), and
//! `/healthz` and `/metrics` ([`health`]).
//!
//! Only clients with a certificate signed by `--client-ca-file` complete the TLS handshake;
//! the pod endpoints are then allowed to the users and groups of [`auth::Policy`] (by default
//! the apiserver's `kube-apiserver-kubelet-client` and `system:masters`), `/healthz` and
//! `/metrics` (no object data) to any such client.

pub mod auth;
pub mod exec;
pub mod health;
pub mod logs;
pub mod stats;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context;
use api::status::StatusError;
use axum::{
    http::{header, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
};
use rustls::{server::WebPkiClientVerifier, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::runtime::Runtime;

/// What the endpoints share.
pub struct ServerCtx {
    pub runtime: Arc<dyn Runtime>,
    /// This node's name: only its own sandboxes and containers are served.
    pub node: String,
    /// Where the pods' log directories are.
    pub log_root: PathBuf,
    pub policy: auth::Policy,
    pub stats: stats::Sampler,
    pub metrics: health::Metrics,
}

/// Shared server context.
pub type Ctx = Arc<ServerCtx>;

/// The TLS files of the server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// rustls serving `cert`/`key`, requiring a client certificate signed by `client_ca`.
pub fn tls_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(tlsfiles::root_store(&files.client_ca)?),
        provider.clone(),
    )
    .build()
    .context("building the client certificate verifier")?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            tlsfiles::read_certs(&files.cert)?,
            tlsfiles::read_key(&files.key)?,
        )
        .context("loading the serving certificate")?;
    // HTTP/1.1 only: exec is an upgraded HTTP/1.1 connection.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The routes, each behind its authorization.
pub fn router(ctx: Ctx) -> Router {
    let pods = Router::new()
        .route(
            "/containerLogs/{ns}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(exec::exec).post(exec::exec),
        )
        .route("/stats/summary", get(stats::summary))
        .route_layer(middleware::from_fn_with_state(
            ctx.clone(),
            auth::authorize_pods,
        ));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route_layer(middleware::from_fn(auth::authenticated));
    pods.merge(open)
        .layer(middleware::from_fn_with_state(ctx.clone(), health::count))
        .with_state(ctx)
}

/// Accepts TLS connections for ever; each request carries the client's [`auth::Peer`].
pub async fn accept(listener: TcpListener, config: Arc<ServerConfig>, app: Router) {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (tcp, addr): (_, SocketAddr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "TLS handshake refused");
                    return;
                }
            };
            let peer = auth::Peer(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(tlsfiles::user_of),
            );
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer.clone());
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%addr, error = %e, "connection ended with an error");
            }
        });
    }
}

/// A Status answer, as the kubelet gives for a refused request.
pub fn status(e: StatusError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        e.to_status().to_string(),
    )
        .into_response()
}

/// The files the server needs, when all three flags are given.
pub fn tls_files(cert: Option<&Path>, key: Option<&Path>, ca: Option<&Path>) -> Option<TlsFiles> {
    Some(TlsFiles {
        cert: cert?.to_path_buf(),
        key: key?.to_path_buf(),
        client_ca: ca?.to_path_buf(),
    })
}
