//! A stand-in for a node agent's HTTPS API (the kubelet API the apiserver calls for pods/log
//! and pods/exec), for testing the apiserver's side of those subresources: the real agent
//! serves the same paths from containerd.
//!
//! - `GET /containerLogs/NS/POD/CONTAINER`: five lines naming the container (`tailLines` keeps
//!   the last N; `follow=true` then adds a `tick K` line every 100 ms, 50 at most). Every
//!   container had a previous instance: `previous=true` gives its five lines (`... previous
//!   line K`), and `timestamps=true` prefixes each line with its time as the kubelet does
//!   (RFC 3339 with nanoseconds, then a space). A pod named `waiting` answers 400 with a Status,
//!   as an agent does for a container that has not started.
//! - `GET /exec/NS/POD/CONTAINER?command=...` (WebSocket, `v5.channel.k8s.io` or
//!   `v4.channel.k8s.io`): runs the command on this machine, streams stdout (channel 1) and
//!   stderr (2; with `tty=true` both come on 1, as from a terminal), feeds channel 0 to its
//!   stdin (v5 close closes it), reads terminal sizes from the resize channel (4), and ends
//!   with the exit status on channel 3, as Kubernetes' remote command protocol does. Each exec
//!   is recorded ([`AgentDouble::execs`]): command, stdin and tty flags, sizes received.
//!
//! It asks for a client certificate signed by the cluster CA, as an agent does.

use std::{
    collections::HashMap,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use axum::{
    body::Body,
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Path as UrlPath, Query, RawQuery, State,
    },
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use futures::{SinkExt, StreamExt};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
    task::JoinHandle,
};
use tower::ServiceExt;

/// A running agent double; stops when dropped.
pub struct AgentDouble {
    /// The HTTPS port on 127.0.0.1.
    pub port: u16,
    execs: ExecLog,
    task: JoinHandle<()>,
}

/// What one exec request carried, as the double saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRecord {
    pub command: Vec<String>,
    pub stdin: bool,
    pub tty: bool,
    /// (width, height) of each message on the resize channel, in order.
    pub resizes: Vec<(u16, u16)>,
}

type ExecLog = Arc<Mutex<Vec<ExecRecord>>>;

impl AgentDouble {
    /// The exec requests served so far, oldest first (sizes keep arriving while one runs).
    pub fn execs(&self) -> Vec<ExecRecord> {
        self.execs.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for AgentDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(rustls_pemfile::certs(&mut pem.as_slice()).collect::<Result<Vec<_>, _>>()?)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())?.context("no private key")
}

impl AgentDouble {
    /// Serves on a free loopback port with the serving certificate `cert`/`key`, requiring
    /// client certificates signed by `ca`.
    pub async fn start(cert: &Path, key_file: &Path, ca: &Path) -> Result<AgentDouble> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for c in certs(ca)? {
            roots.add(c)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(cert)?, key(key_file)?)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let execs = ExecLog::default();
        let app = Router::new()
            .route("/containerLogs/{ns}/{pod}/{container}", get(logs))
            .route("/exec/{ns}/{pod}/{container}", get(exec))
            .with_state(execs.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            app.clone().oneshot(req.map(Body::new))
                        },
                    );
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(AgentDouble { port, execs, task })
    }
}

async fn logs(
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if pod == "waiting" {
        let message = format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
        );
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "code": 400, "reason": "BadRequest", "message": message});
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            status.to_string(),
        )
            .into_response();
    }
    let flag = |name: &str| q.get(name).is_some_and(|v| v == "true" || v == "1");
    let (previous, timestamps) = (flag("previous"), flag("timestamps"));
    // The kubelet's timestamp format: RFC 3339 with nine fractional digits.
    let stamp = move |second: u32| {
        if timestamps {
            format!(
                "2024-01-01T00:{:02}:{:02}.000000000Z ",
                second / 60,
                second % 60
            )
        } else {
            String::new()
        }
    };
    let instance = if previous { "previous line" } else { "line" };
    let mut lines: Vec<String> = (1..=5)
        .map(|i| format!("{}{ns}/{pod}/{container} {instance} {i}\n", stamp(i)))
        .collect();
    if let Some(n) = q.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        lines = lines.split_off(lines.len().saturating_sub(n));
    }
    // A previous instance has ended: nothing to follow.
    let follow = flag("follow") && !previous;
    let head = futures::stream::iter(lines.into_iter().map(Ok::<_, std::io::Error>));
    let body = if follow {
        let ticks = futures::stream::unfold(1u32, move |k| async move {
            if k > 50 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok(format!("{}tick {k}\n", stamp(5 + k))), k + 1))
        });
        Body::from_stream(head.chain(ticks))
    } else {
        Body::from_stream(head)
    };
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn exec(
    State(execs): State<ExecLog>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let command: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let flag = |name: &str| {
        params
            .iter()
            .any(|(k, v)| k == name && (v == "true" || v == "1"))
    };
    let record = ExecRecord {
        command,
        stdin: flag("stdin"),
        tty: flag("tty"),
        resizes: Vec::new(),
    };
    let index = match execs.lock() {
        Ok(mut l) => {
            l.push(record.clone());
            l.len() - 1
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| run(socket, record, execs, index))
}

fn status_message(code: Option<i32>, command: &[String]) -> Vec<u8> {
    let status = match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(c) => json!({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": format!(
                "command terminated with non-zero exit code: error executing command \
                 {command:?}, exit code {c}"
            ),
            "details": {"causes": [{"reason": "ExitCode", "message": c.to_string()}]}}),
        None => json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": "the command was killed"}),
    };
    let mut out = vec![3u8];
    out.extend_from_slice(status.to_string().as_bytes());
    out
}

async fn run(socket: WebSocket, record: ExecRecord, execs: ExecLog, index: usize) {
    let ExecRecord {
        command,
        stdin: with_stdin,
        tty,
        ..
    } = record;
    let v5 = socket.protocol().and_then(|p| p.to_str().ok()) == Some("v5.channel.k8s.io");
    let (mut tx, mut rx) = socket.split();
    let Some(program) = command.first() else {
        return;
    };
    let spawned = tokio::process::Command::new(program)
        .args(&command[1..])
        .stdin(if with_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": format!("failed to exec in container: exec: {program:?}: {e}")});
            let mut msg = vec![3u8];
            msg.extend_from_slice(status.to_string().as_bytes());
            let _ = tx.send(Message::Binary(msg.into())).await;
            let _ = tx
                .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1000,
                    reason: "".into(),
                })))
                .await;
            return;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let mut pumps = Vec::new();
    // A terminal has one output stream: stderr comes on stdout's channel.
    let err_channel = if tty { 1u8 } else { 2u8 };
    for (channel, reader) in [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            err_channel,
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(mut reader) = reader else { continue };
        let out_tx = out_tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut msg = vec![channel];
                msg.extend_from_slice(&buf[..n]);
                if out_tx.send(msg).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(out_tx);
    let mut stdin = child.stdin.take();
    let input = tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            let Message::Binary(data) = msg else { continue };
            match data.first() {
                Some(0) => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&data[1..]).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                // v5: close of a stream; channel 0 closes stdin.
                Some(255) if v5 && data.get(1) == Some(&0) => stdin = None,
                // Resize: {"Width":W,"Height":H}, as kubectl sends it.
                Some(4) => {
                    let size: Option<serde_json::Value> = serde_json::from_slice(&data[1..]).ok();
                    let dim = |k: &str| {
                        size.as_ref()
                            .and_then(|s| s.get(k))
                            .and_then(serde_json::Value::as_u64)
                            .and_then(|v| u16::try_from(v).ok())
                    };
                    if let (Some(w), Some(h)) = (dim("Width"), dim("Height")) {
                        if let Ok(mut log) = execs.lock() {
                            if let Some(r) = log.get_mut(index) {
                                r.resizes.push((w, h));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    });
    while let Some(msg) = out_rx.recv().await {
        if tx.send(Message::Binary(msg.into())).await.is_err() {
            break;
        }
    }
    let code = child.wait().await.ok().and_then(|s| s.code());
    input.abort();
    let _ = tx
        .send(Message::Binary(status_message(code, &command).into()))
        .await;
    // A normal closure (1000): client-go reports a close without a code as an error.
    let _ = tx
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}
