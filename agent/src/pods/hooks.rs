//! Lifecycle handlers run by the agent: `exec` in the container through the runtime and
//! `httpGet` to the pod (a plain HTTP/1.1 GET, 2xx and 3xx succeed), each bounded by a
//! timeout. Used by preStop (and postStart).

use std::time::Duration;

use k8s_openapi::{api::core::v1::LifecycleHandler, apimachinery::pkg::util::intstr::IntOrString};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::runtime::Runtime;

/// Runs a handler for container `id` of a pod at `pod_ip`; Err carries the failure message.
pub async fn run(
    runtime: &dyn Runtime,
    id: &str,
    pod_ip: &str,
    ports: &[(String, i32)],
    h: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &h.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let out = runtime
            .exec_sync(id, cmd.clone(), timeout)
            .await
            .map_err(|e| e.to_string())?;
        if out.exit_code != 0 {
            return Err(format!(
                "command '{}' exited with {}: {}",
                cmd.join(" "),
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        return Ok(());
    }
    if let Some(get) = &h.http_get {
        let port = match &get.port {
            IntOrString::Int(p) => *p,
            IntOrString::String(name) => ports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p)
                .ok_or_else(|| format!("port {name:?} not found"))?,
        };
        let host = get
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let path = get.path.clone().unwrap_or_else(|| "/".into());
        let code = tokio::time::timeout(timeout, http_get(&host, port, &path))
            .await
            .map_err(|_| format!("Get \"http://{host}:{port}{path}\": timeout"))??;
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if h.sleep.is_some() || h.tcp_socket.is_some() {
        return Err("this handler type is not supported by this agent".into());
    }
    Ok(())
}

/// A GET to `host:port/path`; the status code.
pub async fn http_get(host: &str, port: i32, path: &str) -> Result<u16, String> {
    let addr = format!("{host}:{port}");
    let mut s = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 64];
    let n = s.read(&mut head).await.map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"http://{addr}{path}\": malformed HTTP response"))
}
