//! Lifecycle handlers run by the agent (preStop, postStart): `exec` in the container and
//! `httpGet` to the pod, through the same handlers as probes (so a hook's failure reads like a
//! probe's), and `sleep`; each bounded by a timeout. `tcpSocket` handlers are deprecated in
//! Kubernetes and refused, as the kubelet refuses them.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::LifecycleHandler;

use super::probes::{exec::Exec, http::HttpGet, Handler, Outcome, Target};
use crate::runtime::Runtime;

/// Runs a handler for container `id` of a pod at `pod_ip`; Err carries the failure message.
pub async fn run(
    runtime: &Arc<dyn Runtime>,
    id: &str,
    pod_ip: &str,
    ports: &[(String, i32)],
    h: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    let handler: Box<dyn Handler> = if let Some(e) = &h.exec {
        Box::new(Exec::new(e))
    } else if let Some(g) = &h.http_get {
        Box::new(HttpGet::new(g))
    } else if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout)).await;
        return Ok(());
    } else if h.tcp_socket.is_some() {
        return Err("tcpSocket lifecycle handlers are deprecated and not supported".into());
    } else {
        return Ok(());
    };
    let target = Target {
        runtime: runtime.clone(),
        container_id: id.to_string(),
        pod_ip: pod_ip.to_string(),
        ports: ports.to_vec(),
    };
    match handler.check(&target, timeout).await {
        Outcome::Success => Ok(()),
        Outcome::Failure(msg) => Err(msg),
    }
}
