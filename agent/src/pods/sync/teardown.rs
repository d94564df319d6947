//! Stopping: one container gracefully (preStop, SIGTERM, SIGKILL after the grace period), and
//! everything of a pod that is gone or deleted.

use super::*;

/// Stops one container: preStop first (within the grace period), then SIGTERM and SIGKILL
/// after what is left of the grace period (at least 2 s, as the kubelet). `why`: the Killing
/// event's message when it is not a plain stop.
pub(super) async fn kill(
    ctx: &Ctx,
    pod: Option<&Pod>,
    c: &api::ContainerStatus,
    grace: Duration,
    ip: &str,
    why: Option<String>,
) {
    let name = labels::container_name(c);
    let started = Instant::now();
    if let Some(pod) = pod {
        ctx.events.emit(
            pod,
            Some(&name),
            Normal,
            "Killing",
            why.unwrap_or_else(|| format!("Stopping container {name}")),
        );
        let spec = spec_container(pod, &name);
        let pre_stop = spec
            .and_then(|s| s.lifecycle.as_ref())
            .and_then(|l| l.pre_stop.as_ref());
        if let (Some(h), true) = (pre_stop, is(c, api::ContainerState::ContainerRunning)) {
            let ports = spec.map(ports).unwrap_or_default();
            if let Err(msg) = hooks::run(&ctx.runtime, &c.id, ip, &ports, h, grace).await {
                ctx.events.emit(
                    pod,
                    Some(&name),
                    Warning,
                    "FailedPreStopHook",
                    format!("PreStopHook failed: {msg}"),
                );
            }
        }
    }
    let left = grace
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(2).min(grace));
    if let Err(e) = ctx.runtime.stop_container(&c.id, left).await {
        tracing::warn!(container = %c.id, error = %e, "stopping a container");
    }
}

/// Stops and removes everything of the pod.
pub(super) async fn teardown(
    ctx: &Ctx,
    pod: Option<&Pod>,
    uid: &str,
    seen: &Seen,
    grace: Duration,
    st: &WorkerState,
) -> Result<(), RuntimeError> {
    let ip = seen
        .sandboxes
        .iter()
        .find_map(|s| st.sandbox_ips.get(&s.id))
        .cloned()
        .unwrap_or_default();
    let live = seen.containers.iter().filter(|c| {
        is(c, api::ContainerState::ContainerRunning) || is(c, api::ContainerState::ContainerCreated)
    });
    futures::future::join_all(live.map(|c| kill(ctx, pod, c, grace, &ip, None))).await;
    for sb in &seen.sandboxes {
        ctx.runtime.stop_pod_sandbox(&sb.id).await?;
        ctx.runtime.remove_pod_sandbox(&sb.id).await?;
    }
    for c in &seen.containers {
        ctx.runtime.remove_container(&c.id).await?;
    }
    volumes::cleanup(&ctx.root_dir, uid);
    if let Some(pod) = pod {
        let _ = std::fs::remove_dir_all(sandbox::log_directory(pod, &ctx.sandbox_env));
    }
    Ok(())
}
