//! The pod's sandbox: the ready one adopted (older ones removed), or a new one run with its
//! IP from CNI.

use super::*;

/// The pod's ready sandbox and IP, created when there is none (None: it could not be made,
/// or the pod needs none any more).
pub(super) async fn ensure_sandbox(
    ctx: &Ctx,
    pod: &Pod,
    seen: &Seen,
    st: &mut WorkerState,
    wake: &mut Option<Duration>,
) -> Result<Option<(String, String)>, RuntimeError> {
    let ready = seen
        .sandboxes
        .iter()
        .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
        .max_by_key(|s| s.created_at);
    if let Some(sb) = ready {
        // Older sandboxes of the pod are stopped and removed.
        for old in seen.sandboxes.iter().filter(|s| s.id != sb.id) {
            ctx.runtime.stop_pod_sandbox(&old.id).await?;
            ctx.runtime.remove_pod_sandbox(&old.id).await?;
        }
        let ip = match st.sandbox_ips.get(&sb.id) {
            Some(ip) => ip.clone(),
            None => {
                let s = ctx.runtime.pod_sandbox_status(&sb.id).await?;
                let ip = s.network.map(|n| n.ip).unwrap_or_default();
                st.sandbox_ips.insert(sb.id.clone(), ip.clone());
                ip
            }
        };
        return Ok(Some((sb.id.clone(), ip)));
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    // A pod whose containers all ran and will not run again needs no new sandbox.
    let all_ran = spec
        .containers
        .iter()
        .all(|c| !status::instances(&seen.containers, &c.name).is_empty());
    if policy == "Never" && all_ran {
        return Ok(None);
    }
    for old in &seen.sandboxes {
        ctx.runtime.stop_pod_sandbox(&old.id).await?;
    }
    let attempt = seen
        .sandboxes
        .iter()
        .filter_map(|s| s.metadata.as_ref().map(|m| m.attempt + 1))
        .max()
        .unwrap_or(0);
    if attempt > 0 {
        ctx.events.emit(
            pod,
            None,
            Normal,
            "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.".into(),
        );
    }
    let config = sandbox::config(pod, attempt, &ctx.sandbox_env);
    let _ = std::fs::create_dir_all(&config.log_directory);
    let id = match ctx.runtime.run_pod_sandbox(config).await {
        Ok(id) => id,
        Err(e) => {
            ctx.events.emit(
                pod,
                None,
                Warning,
                "FailedCreatePodSandBox",
                format!("Failed to create pod sandbox: {e}"),
            );
            *wake = Some(Duration::from_secs(5));
            return Ok(None);
        }
    };
    let s = ctx.runtime.pod_sandbox_status(&id).await?;
    let ip = s.network.map(|n| n.ip).unwrap_or_default();
    st.sandbox_ips.insert(id.clone(), ip.clone());
    // Old sandboxes go once the new one runs (their containers' records go with them).
    for old in &seen.sandboxes {
        ctx.runtime.remove_pod_sandbox(&old.id).await?;
    }
    Ok(Some((id, ip)))
}
