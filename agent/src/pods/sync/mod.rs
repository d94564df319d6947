//! One reconciliation of one pod: observe what the runtime has for it (by the pod-uid label),
//! compare with the desired spec, act (sandbox, images, init containers one at a time, app
//! containers with restart policy and back-off, teardown on deletion), then compute the status
//! and hand it to the writer. Nothing is assumed from earlier syncs except the waiting
//! reasons shown between attempts; a restarted agent adopts what it finds.
//!
//! The parts: [`teardown`] (stopping containers gracefully, removing a pod), [`pod_sandbox`]
//! (the pod's sandbox and IP), [`containers`] (init and app containers, restarts, hooks) and
//! [`image`] (the pull policy).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::{Container, Pod},
    jiff::Timestamp,
};
use kube::{
    api::{DeleteParams, Preconditions},
    Api,
};

use super::{
    container, env,
    events::Kind::{Normal, Warning},
    hooks, images, labels,
    objects::{self, Objects},
    probes, sandbox, status, volumes, Ctx,
};
use crate::runtime::{api, RuntimeError};

mod containers;
mod image;
mod pod_sandbox;
mod teardown;

use containers::{earliest, Run};
use pod_sandbox::ensure_sandbox;
use teardown::{kill, teardown};

/// What a worker remembers between syncs (none of it is authoritative).
#[derive(Default)]
pub struct WorkerState {
    /// Waiting reasons shown while a container cannot start.
    pub waiting: status::Waiting,
    /// Pod IPs of sandboxes already asked about.
    pub sandbox_ips: HashMap<String, String>,
    /// The pod as last seen (to tear it down once it is gone from the API).
    pub last_pod: Option<Arc<Pod>>,
    /// The probes of the pod's running containers and their results.
    pub probes: probes::PodProbes,
    /// Wakes this pod's worker (probe results use it).
    pub notify: Arc<tokio::sync::Notify>,
    /// The pod's volumes as last set up, and when they are due again.
    pub volumes: volumes::Refresh,
}

/// What the worker does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The pod is gone and cleaned up: the worker ends.
    pub done: bool,
    /// Sync again after this long even without news.
    pub wake: Option<Duration>,
}

/// The runtime's records of one pod.
pub struct Seen {
    pub sandboxes: Vec<api::PodSandbox>,
    pub containers: Vec<api::ContainerStatus>,
}

/// Go's duration format for whole seconds (`10s`, `1m20s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// Whether a container that exited with `code` is restarted under `policy`.
pub fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

fn is(c: &api::ContainerStatus, s: api::ContainerState) -> bool {
    c.state == s as i32
}

fn ts(ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(Timestamp::UNIX_EPOCH)
}

async fn observe(ctx: &Ctx, uid: &str) -> Result<Seen, RuntimeError> {
    let sel = labels::pod_selector(&ctx.node, uid);
    let sandboxes = ctx
        .runtime
        .list_pod_sandbox(api::PodSandboxFilter {
            label_selector: sel.clone(),
            ..Default::default()
        })
        .await?;
    let list = ctx
        .runtime
        .list_containers(api::ContainerFilter {
            label_selector: sel,
            ..Default::default()
        })
        .await?;
    let mut containers = Vec::with_capacity(list.len());
    for c in list {
        match ctx.runtime.container_status(&c.id).await {
            Ok(s) => containers.push(s),
            Err(RuntimeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Seen {
        sandboxes,
        containers,
    })
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(secs as u64)
}

fn spec_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

fn ports(c: &Container) -> Vec<(String, i32)> {
    c.ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone().map(|n| (n, p.container_port)))
        .collect()
}

/// Reconciles the pod with uid `uid` (`pod`: its current object; None: gone from the API).
pub async fn sync(
    ctx: &Ctx,
    uid: &str,
    pod: Option<Arc<Pod>>,
    st: &mut WorkerState,
) -> Result<Outcome, RuntimeError> {
    let seen = observe(ctx, uid).await?;
    let Some(pod) = pod else {
        st.probes = probes::PodProbes::default();
        let last = st.last_pod.clone();
        let grace = last
            .as_deref()
            .map(grace_of)
            .unwrap_or(Duration::from_secs(2))
            .min(Duration::from_secs(2));
        teardown(ctx, last.as_deref(), uid, &seen, grace, st).await?;
        tracing::info!(uid, "pod gone from the API; its containers are removed");
        return Ok(Outcome {
            done: true,
            wake: None,
        });
    };
    st.last_pod = Some(pod.clone());
    let (name, ns, _) = sandbox::ids(&pod);
    if pod.metadata.deletion_timestamp.is_some() {
        st.probes = probes::PodProbes::default();
        teardown(ctx, Some(&pod), uid, &seen, grace_of(&pod), st).await?;
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        return match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{name}"), "pod stopped and deleted");
                Ok(Outcome {
                    done: true,
                    wake: None,
                })
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(Outcome {
                done: true,
                wake: None,
            }),
            Err(e) => {
                tracing::warn!(pod = %name, error = %e, "confirming the pod's deletion");
                Ok(Outcome {
                    done: false,
                    wake: Some(Duration::from_secs(1)),
                })
            }
        };
    }
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if terminal {
        st.probes = probes::PodProbes::default();
        stop_everything(ctx, &pod, &seen, st).await?;
        publish(ctx, &pod, &seen, st, None);
        return Ok(Outcome {
            done: false,
            wake: None,
        });
    }
    let mut wake: Option<Duration> = None;
    let Some((sandbox_id, ip)) = ensure_sandbox(ctx, &pod, &seen, st, &mut wake).await? else {
        publish(ctx, &pod, &seen, st, None);
        return Ok(Outcome { done: false, wake });
    };
    let seen = if seen.sandboxes.iter().any(|s| s.id == sandbox_id) {
        seen
    } else {
        observe(ctx, uid).await?
    };
    let setup = volumes::SetUp {
        pod: &pod,
        root: &ctx.root_dir,
        objects: &ctx.client,
        node: (ctx.node_cpus, ctx.node_memory),
    };
    let refreshed = st.volumes.refresh(&setup, ctx.sync_frequency).await;
    if let Some(failed) = refreshed.failed {
        tracing::warn!(pod = %format!("{ns}/{name}"), error = %failed, "volume set-up failed");
        ctx.events
            .emit(&pod, None, Warning, "FailedMount", failed.to_string());
    }
    if let Some(retry) = refreshed.retry {
        earliest(&mut wake, retry);
    }
    let Some(vols) = refreshed.volumes else {
        publish(ctx, &pod, &seen, st, Some((&sandbox_id, &ip)));
        return Ok(Outcome { done: false, wake });
    };
    let run = Run {
        ctx,
        pod: &pod,
        sandbox_id: &sandbox_id,
        ip: &ip,
        volumes: &vols,
    };
    run.containers(&seen, st, &mut wake).await?;
    // Keep the newest two instances of each container (the current one and the previous,
    // for `logs --previous`); remove older ones.
    let names: HashSet<String> = seen.containers.iter().map(labels::container_name).collect();
    for n in names {
        for old in status::instances(&seen.containers, &n).iter().skip(2) {
            if is(old, api::ContainerState::ContainerExited) {
                ctx.runtime.remove_container(&old.id).await?;
            }
        }
    }
    let seen = observe(ctx, uid).await?;
    probe_running(ctx, &pod, &seen, st, &ip);
    let st_now = publish(ctx, &pod, &seen, st, Some((&sandbox_id, &ip)));
    if matches!(st_now.as_deref(), Some("Succeeded" | "Failed")) {
        stop_everything(ctx, &pod, &seen, st).await?;
    }
    Ok(Outcome { done: false, wake })
}

/// Runs the probes of the pod's running app containers (their newest instances).
fn probe_running(ctx: &Ctx, pod: &Arc<Pod>, seen: &Seen, st: &mut WorkerState, ip: &str) {
    let spec = pod.spec.clone().unwrap_or_default();
    let running: Vec<(&Container, &api::ContainerStatus)> = spec
        .containers
        .iter()
        .filter_map(|c| {
            status::instances(&seen.containers, &c.name)
                .first()
                .filter(|l| is(l, api::ContainerState::ContainerRunning))
                .map(|l| (c, *l))
        })
        .collect();
    let shared = probes::Shared {
        pod: pod.clone(),
        events: ctx.events.clone(),
        runtime: ctx.runtime.clone(),
        pod_ip: ip.to_string(),
        notify: st.notify.clone(),
    };
    st.probes.sync(&shared, &running);
}

/// Stops the containers and the sandbox of a pod that has finished.
async fn stop_everything(
    ctx: &Ctx,
    pod: &Pod,
    seen: &Seen,
    st: &WorkerState,
) -> Result<(), RuntimeError> {
    let ip = seen
        .sandboxes
        .iter()
        .find_map(|s| st.sandbox_ips.get(&s.id))
        .cloned()
        .unwrap_or_default();
    for c in seen
        .containers
        .iter()
        .filter(|c| is(c, api::ContainerState::ContainerRunning))
    {
        kill(ctx, Some(pod), c, grace_of(pod), &ip, None).await;
    }
    for sb in seen
        .sandboxes
        .iter()
        .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
    {
        ctx.runtime.stop_pod_sandbox(&sb.id).await?;
    }
    Ok(())
}

/// Computes the status and hands it to the writer; returns the phase.
fn publish(
    ctx: &Ctx,
    pod: &Pod,
    seen: &Seen,
    st: &WorkerState,
    sandbox: Option<(&str, &str)>,
) -> Option<String> {
    let ready_sandbox = seen
        .sandboxes
        .iter()
        .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
        .max_by_key(|s| s.created_at);
    let ip = sandbox
        .map(|(_, ip)| ip.to_string())
        .or_else(|| ready_sandbox.and_then(|s| st.sandbox_ips.get(&s.id).cloned()))
        .or_else(|| pod.status.as_ref().and_then(|s| s.pod_ip.clone()));
    let s = status::compute(&status::Input {
        pod,
        host_ip: &ctx.host_ip,
        runtime_name: &ctx.runtime_name,
        sandbox_ip: ip,
        sandbox_ready: ready_sandbox.is_some(),
        containers: &seen.containers,
        waiting: &st.waiting,
        probes: &|c: &Container, id: &str| st.probes.view(c, id),
        now: Timestamp::now(),
    });
    let phase = s.phase.clone();
    ctx.status.set(pod, &s);
    phase
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_and_durations() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("OnFailure", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
