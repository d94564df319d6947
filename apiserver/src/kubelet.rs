//! The apiserver's connections to the agents, as kube-apiserver's to kubelets: `pods/log` and
//! `pods/exec` are served by the agent of the pod's node, on the HTTPS endpoint its Node object
//! advertises (`status.addresses` + `status.daemonEndpoints.kubeletEndpoint.Port`), with the
//! kubelet API paths `/containerLogs/NS/POD/CONTAINER` and `/exec/NS/POD/CONTAINER`. Log bodies
//! stream through; an exec's upgraded connection (WebSocket or SPDY, whichever kubectl chose) is
//! spliced byte for byte, so the apiserver needs no knowledge of the streaming protocol.

use std::{path::Path, sync::Arc};

use anyhow::{Context, Result};
use api::status::StatusError;
use axum::{
    body::Body,
    http::{header, HeaderMap, Method, Request, Response, StatusCode},
};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use rustls::{pki_types::ServerName, ClientConfig};
use serde_json::Value;
use tlsfiles::AnyServerCert;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::debug;

use crate::tls::{read_certs, read_key, root_store};

/// Headers of an upgrade request that must reach the agent unchanged.
const UPGRADE_HEADERS: [&str; 6] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// How the apiserver reaches agents.
pub struct KubeletClient {
    tls: TlsConnector,
    preferred: Vec<String>,
}

impl KubeletClient {
    /// TLS to the agents: the client certificate the apiserver presents (the agents trust the
    /// cluster CA), and the CA that signed their serving certificates.
    pub fn new(
        cert_and_key: Option<(&Path, &Path)>,
        ca: Option<&Path>,
        preferred: &[String],
    ) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match ca {
            Some(ca) => builder.with_root_certificates(root_store(ca)?),
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider))),
        };
        let mut config = match cert_and_key {
            Some((cert, key)) => builder
                .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
                .context("loading the kubelet client certificate")?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            tls: TlsConnector::from(Arc::new(config)),
            preferred: preferred.to_vec(),
        })
    }

    /// The agent's host and port from its Node object.
    pub fn endpoint(&self, node: &Value) -> Result<(String, u16), StatusError> {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let port = node
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if port == 0 || port > u64::from(u16::MAX) {
            return Err(StatusError::bad_request(format!(
                "node {name:?} does not report an agent \
                endpoint (status.daemonEndpoints.kubeletEndpoint.Port)"
            )));
        }
        let addresses = node
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for kind in &self.preferred {
            if let Some(a) = addresses
                .iter()
                .find(|a| a["type"].as_str() == Some(kind.as_str()))
                .and_then(|a| a["address"].as_str())
            {
                return Ok((a.to_string(), port as u16));
            }
        }
        Err(StatusError::bad_request(format!(
            "no preferred addresses found; known addresses: {}",
            serde_json::to_string(&addresses).unwrap_or_default()
        )))
    }

    /// Sends one request to the agent at `host:port` over a new HTTP/1.1 connection (which
    /// supports upgrades) and returns its response.
    async fn send(
        &self,
        host: &str,
        port: u16,
        req: Request<Body>,
    ) -> Result<Response<hyper::body::Incoming>, StatusError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            StatusError::internal(format!("error dialing backend: {e}"))
        };
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::try_from(host.to_string()).map_err(|e| unreachable(&e))?;
        let tls = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                debug!(error = %e, "agent connection ended");
            }
        });
        sender.send_request(req).await.map_err(|e| unreachable(&e))
    }

    /// GET `path_and_query` on the agent and streams its answer back. An agent error becomes a
    /// Status with the agent's code and message.
    pub async fn stream(
        &self,
        host: &str,
        port: u16,
        path_and_query: &str,
    ) -> Result<Response<Body>, StatusError> {
        let req = Request::get(path_and_query)
            .header(header::HOST, format!("{host}:{port}"))
            .body(Body::empty())
            .map_err(|e| StatusError::internal(e.to_string()))?;
        let resp = self.send(host, port, req).await?;
        if !resp.status().is_success() {
            return Err(agent_error(resp).await);
        }
        let (parts, body) = resp.into_parts();
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = parts.status;
        if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
            out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        Ok(out)
    }

    /// GET `path` on the agent and parses its JSON answer (the Summary API for
    /// metrics.k8s.io).
    pub async fn get_json(&self, host: &str, port: u16, path: &str) -> Result<Value, StatusError> {
        use http_body_util::BodyExt;
        let req = Request::get(path)
            .header(header::HOST, format!("{host}:{port}"))
            .header(header::ACCEPT, "application/json")
            .body(Body::empty())
            .map_err(|e| StatusError::internal(e.to_string()))?;
        let resp = self.send(host, port, req).await?;
        if !resp.status().is_success() {
            return Err(agent_error(resp).await);
        }
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| StatusError::internal(format!("reading the agent's answer: {e}")))?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| StatusError::internal(format!("the agent's answer is not JSON: {e}")))
    }

    /// Forwards an upgrade request (exec) to the agent and, once the agent switches protocols,
    /// splices the client's and the agent's connections together.
    pub async fn upgrade(
        &self,
        host: &str,
        port: u16,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        client: Option<OnUpgrade>,
    ) -> Result<Response<Body>, StatusError> {
        let client = client.ok_or_else(|| StatusError::bad_request("Upgrade request required"))?;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path_and_query)
            .header(header::HOST, format!("{host}:{port}"));
        for name in UPGRADE_HEADERS {
            for v in headers.get_all(name) {
                req = req.header(name, v.clone());
            }
        }
        let req = req
            .body(Body::empty())
            .map_err(|e| StatusError::internal(e.to_string()))?;
        let mut resp = self.send(host, port, req).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(agent_error(resp).await);
        }
        let agent = hyper::upgrade::on(&mut resp);
        let mut out = Response::new(Body::empty());
        *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for (name, v) in resp.headers() {
            if name != header::CONTENT_LENGTH {
                out.headers_mut().append(name.clone(), v.clone());
            }
        }
        tokio::spawn(async move {
            let (client, agent) = match tokio::try_join!(client, agent) {
                Ok(pair) => pair,
                Err(e) => {
                    debug!(error = %e, "exec upgrade failed");
                    return;
                }
            };
            let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
                debug!(error = %e, "exec stream ended");
            }
        });
        Ok(out)
    }
}

/// The Status for an agent's non-success answer: its own Status if it sent one, else its text.
async fn agent_error(resp: Response<hyper::body::Incoming>) -> StatusError {
    use http_body_util::BodyExt;
    let code = resp.status().as_u16();
    let bytes = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return StatusError::internal(format!("reading the agent's answer: {e}")),
    };
    if let Ok(status) = serde_json::from_slice::<Value>(&bytes) {
        if status["kind"] == "Status" {
            if let Some(msg) = status["message"].as_str() {
                return StatusError::from_code(code, msg.to_string());
            }
        }
    }
    StatusError::from_code(code, String::from_utf8_lossy(&bytes).trim().to_string())
}
