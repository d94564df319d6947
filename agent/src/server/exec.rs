//! `/exec/NS/POD/CONTAINER?command=..&stdin=..&stdout=..&stderr=..&tty=..`, as the kubelet
//! serves it: CRI Exec prepares the command on the runtime's streaming server (containerd's
//! listens on loopback) and returns a one-time URL; the client's upgrade request (WebSocket
//! `v4.channel.k8s.io` and older, or SPDY/3.1 with `X-Stream-Protocol-Version`, as the
//! apiserver forwards it) is sent there, and once the runtime switches protocols the two
//! connections are spliced byte for byte. The runtime speaks the remote command protocol
//! itself (streams, resize, exit status), so the agent needs no knowledge of it.
//!
//! containerd 1.6 does not offer WebSocket `v5.channel.k8s.io`: its refusal reaches the client,
//! and kubectl (1.29 and later) then retries with SPDY, which it accepts.

use api::status::StatusError;
use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{header, StatusCode, Uri},
    response::Response,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{
    logs::{flag, instances, query_map},
    status, Ctx,
};
use crate::runtime::api as cri;

/// Headers of an upgrade request that must reach the streaming server unchanged.
const UPGRADE_HEADERS: [&str; 6] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

pub async fn exec(
    State(ctx): State<Ctx>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    match start(&ctx, &ns, &pod, &container, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(container = %format!("{ns}/{pod}/{container}"), error = %e,
                "exec refused");
            status(e)
        }
    }
}

/// The CRI request of an exec query.
pub fn exec_request(raw_query: Option<&str>, id: &str) -> Result<cri::ExecRequest, StatusError> {
    let cmd: Vec<String> = url::form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect();
    if cmd.is_empty() {
        return Err(StatusError::bad_request(
            "you must specify at least 1 command",
        ));
    }
    let q = query_map(raw_query);
    let r = cri::ExecRequest {
        container_id: id.into(),
        cmd,
        tty: flag(&q, "tty"),
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
    };
    if !(r.stdin || r.stdout || r.stderr) {
        return Err(StatusError::bad_request(
            "you must specify at least one of stdin, stdout, stderr",
        ));
    }
    Ok(r)
}

async fn start(
    ctx: &Ctx,
    ns: &str,
    pod: &str,
    container: &str,
    req: Request,
) -> Result<Response, StatusError> {
    let running = instances(ctx.runtime.as_ref(), &ctx.node, ns, pod, container)
        .await?
        .into_iter()
        .find(|c| c.state == cri::ContainerState::ContainerRunning as i32)
        .ok_or_else(|| {
            StatusError::from_code(404, format!("container not found ({container:?})"))
        })?;
    let request = exec_request(req.uri().query(), &running.id)?;
    let url = ctx
        .runtime
        .exec(request)
        .await
        .map_err(|e| StatusError::internal(format!("failed to prepare the exec: {e}")))?;
    proxy(&url, req).await
}

/// Sends the client's upgrade request to the streaming server at `url` and splices the two
/// connections once it switched protocols; any other answer goes back to the client as is.
async fn proxy(url: &str, mut req: Request) -> Result<Response, StatusError> {
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        StatusError::internal(format!("{what} the runtime's streaming server: {e}"))
    };
    let target: Uri = url.parse().map_err(|e| internal("the URL of", &e))?;
    let host = target.host().unwrap_or("127.0.0.1").to_string();
    let port = target.port_u16().unwrap_or(80);
    let path = target
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let client = hyper::upgrade::on(&mut req);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| internal("connecting to", &e))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| internal("talking to", &e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "streaming server connection ended");
        }
    });
    let mut out = hyper::Request::builder()
        .method(req.method().clone())
        .uri(path)
        .header(header::HOST, format!("{host}:{port}"));
    for name in UPGRADE_HEADERS {
        for v in req.headers().get_all(name) {
            out = out.header(name, v.clone());
        }
    }
    let out = out
        .body(Body::empty())
        .map_err(|e| internal("building the request to", &e))?;
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| internal("sending the request to", &e))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let runtime = hyper::upgrade::on(&mut resp);
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, v) in resp.headers() {
        if name != header::CONTENT_LENGTH {
            answer.headers_mut().append(name.clone(), v.clone());
        }
    }
    tokio::spawn(async move {
        let (client, runtime) = match tokio::try_join!(client, runtime) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "exec upgrade failed");
                return;
            }
        };
        let (mut client, mut runtime) = (TokioIo::new(client), TokioIo::new(runtime));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut runtime).await {
            tracing::debug!(error = %e, "exec stream ended");
        }
    });
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_queries() {
        let r = exec_request(
            Some("command=sh&command=-c&command=echo+hi&stdout=true&stdin=1&tty=false"),
            "c1",
        )
        .unwrap();
        assert_eq!(r.cmd, ["sh", "-c", "echo hi"]);
        assert!(r.stdout && r.stdin && !r.stderr && !r.tty);
        assert_eq!(r.container_id, "c1");
        assert_eq!(
            exec_request(Some("stdout=true"), "c1").unwrap_err().message,
            "you must specify at least 1 command"
        );
        assert_eq!(
            exec_request(Some("command=ls"), "c1").unwrap_err().code,
            400
        );
    }
}
