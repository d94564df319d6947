//! HTTPS serving: rustls with optional client certificates (verified against the client CA;
//! their CN and O become the user and groups), HTTP/1.1 and HTTP/2, connection upgrades.

use std::{net::SocketAddr, path::Path, sync::Arc};

use anyhow::{Context, Result};
use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
};
use rustls::{pki_types::CertificateDer, server::WebPkiClientVerifier, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::debug;

use crate::auth::{PeerIdentity, UserInfo};

pub use tlsfiles::{read_certs, read_key, root_store};

/// The rustls server configuration: serving certificate, and client certificates optional but
/// verified when a client CA is given.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(ca)?), provider)
                    .allow_unauthenticated()
                    .build()
                    .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .context("loading the serving certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The user named by a verified client certificate: CN is the name, each O a group.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<UserInfo> {
    tlsfiles::user_of(cert).map(|u| UserInfo {
        name: u.name,
        groups: u.groups,
    })
}

/// Accepts TLS connections forever, serving `app` on each with the peer's identity attached to
/// every request as a [`PeerIdentity`] extension.
pub async fn serve(listener: TcpListener, config: Arc<ServerConfig>, app: Router) -> Result<()> {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (tcp, addr): (_, SocketAddr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "accept failed");
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
                    debug!(%addr, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let identity = PeerIdentity(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(identity_of),
            );
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(identity.clone());
                    req.extensions_mut().insert(addr);
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut builder = Builder::new(TokioExecutor::new());
            // Many watches share one connection (kube-apiserver allows 250 streams; informers
            // of a busy component need more).
            builder.http2().max_concurrent_streams(1000);
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                debug!(%addr, error = %e, "connection ended with an error");
            }
        });
    }
}
