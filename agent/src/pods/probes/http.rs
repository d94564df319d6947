//! `httpGet` probes: an HTTP/1.1 GET (HTTPS without verifying the certificate, as the
//! kubelet) to the pod's IP (or `host`) and port, with the probe's headers; a status from 200
//! to 399 succeeds. Redirects are not followed: a 3xx counts as success, as the kubelet counts
//! a redirect to another host.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use http_body_util::Empty;
use hyper::{body::Bytes, Request};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::HTTPGetAction;
use rustls::pki_types::ServerName;
use tlsfiles::AnyServerCert;
use tokio::net::TcpStream;

use super::{tcp, Handler, Outcome, Target};

/// The User-Agent of the kubelet's probes.
const USER_AGENT: &str = "kube-probe/1.33";

pub struct HttpGet {
    action: HTTPGetAction,
}

impl HttpGet {
    pub fn new(a: &HTTPGetAction) -> HttpGet {
        HttpGet { action: a.clone() }
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The request a probe sends.
fn request(
    a: &HTTPGetAction,
    authority: &str,
    path: &str,
) -> Result<Request<Empty<Bytes>>, String> {
    let mut b = Request::get(path);
    let headers = a.http_headers.clone().unwrap_or_default();
    let has = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    if !has("host") {
        b = b.header("Host", authority);
    }
    if !has("user-agent") {
        b = b.header("User-Agent", USER_AGENT);
    }
    if !has("accept") {
        b = b.header("Accept", "*/*");
    }
    for h in &headers {
        b = b.header(h.name.as_str(), h.value.as_str());
    }
    b.header("Connection", "close")
        .body(Empty::new())
        .map_err(|e| format!("invalid probe request: {e}"))
}

/// Sends the GET over `io`; the status code.
async fn send<IO>(io: IO, req: Request<Empty<Bytes>>) -> Result<u16, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

impl HttpGet {
    async fn get(&self, t: &Target) -> Result<u16, String> {
        let a = &self.action;
        let port = t.port(&a.port)?;
        let host = t.host(a.host.as_ref());
        let authority = tcp::join(&host, port);
        let https = a
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
        let mut path = a.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let url = format!(
            "{}://{authority}{path}",
            if https { "https" } else { "http" }
        );
        let fail = |e: String| format!("Get \"{url}\": {e}");
        let stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| fail(tcp::dial_error(&authority, &e)))?;
        let req = request(a, &authority, &path).map_err(fail)?;
        if https {
            let name = ServerName::try_from(host.clone()).map_err(|e| fail(e.to_string()))?;
            let tls = tls_connector()
                .map_err(fail)?
                .connect(name, stream)
                .await
                .map_err(|e| fail(e.to_string()))?;
            send(tls, req).await.map_err(fail)
        } else {
            send(stream, req).await.map_err(fail)
        }
    }
}

#[async_trait]
impl Handler for HttpGet {
    async fn check(&self, t: &Target, timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, self.get(t)).await {
            Ok(Ok(code)) if (200..400).contains(&code) => Outcome::Success,
            Ok(Ok(code)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            Ok(Err(msg)) => Outcome::Failure(msg),
            Err(_) => {
                let a = &self.action;
                let port = t.port(&a.port).unwrap_or_default();
                let path = a.path.clone().unwrap_or_else(|| "/".into());
                Outcome::Failure(format!(
                    "Get \"http://{}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    tcp::join(&t.host(a.host.as_ref()), port)
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{api::core::v1::HTTPHeader, apimachinery::pkg::util::intstr::IntOrString};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering every request with `status`; sends the requests it got.
    async fn server(status: u16) -> (i32, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port() as i32;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s
                    .write_all(
                        format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                    )
                    .await;
            }
        });
        (port, rx)
    }

    fn target() -> Target {
        Target {
            runtime: Arc::new(crate::runtime::fake::FakeRuntime::new(Default::default())),
            container_id: "c".into(),
            pod_ip: "127.0.0.1".into(),
            ports: vec![("web".into(), 0)],
        }
    }

    fn probe(port: i32, path: &str) -> HttpGet {
        HttpGet::new(&HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Probe".into(),
                value: "yes".into(),
            }]),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn status_codes_headers_and_refusals() {
        let (ok_port, mut seen) = server(204).await;
        let t = target();
        assert_eq!(
            probe(ok_port, "/healthz")
                .check(&t, Duration::from_secs(2))
                .await,
            Outcome::Success
        );
        let req = seen.recv().await.unwrap();
        assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
        assert!(
            req.to_ascii_lowercase()
                .contains("user-agent: kube-probe/1.33"),
            "{req}"
        );
        assert!(req.to_ascii_lowercase().contains("x-probe: yes"), "{req}");
        let (bad_port, _) = server(500).await;
        assert_eq!(
            probe(bad_port, "/").check(&t, Duration::from_secs(2)).await,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port() as i32;
        assert_eq!(
            probe(closed, "/x").check(&t, Duration::from_secs(2)).await,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{closed}/x\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ))
        );
    }
}
