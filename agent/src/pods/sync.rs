//! One reconciliation of one pod: observe what the runtime has for it (by the pod-uid label),
//! compare with the desired spec, act (sandbox, images, init containers one at a time, app
//! containers with restart policy and back-off, teardown on deletion), then compute the status
//! and hand it to the writer. Nothing is assumed from earlier syncs except the waiting
//! reasons shown between attempts; a restarted agent adopts what it finds.

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

/// Stops one container: preStop first (within the grace period), then SIGTERM and SIGKILL
/// after what is left of the grace period (at least 2 s, as the kubelet). `why`: the Killing
/// event's message when it is not a plain stop.
async fn kill(
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
async fn teardown(
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

/// The pod's ready sandbox and IP, created when there is none (None: it could not be made,
/// or the pod needs none any more).
async fn ensure_sandbox(
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

/// The container part of a sync, for a pod with a ready sandbox.
struct Run<'a> {
    ctx: &'a Ctx,
    pod: &'a Pod,
    sandbox_id: &'a str,
    ip: &'a str,
    volumes: &'a volumes::Volumes,
}

fn earliest(wake: &mut Option<Duration>, d: Duration) {
    *wake = Some(wake.map_or(d, |w| w.min(d)));
}

impl Run<'_> {
    async fn containers(
        &self,
        seen: &Seen,
        st: &mut WorkerState,
        wake: &mut Option<Duration>,
    ) -> Result<(), RuntimeError> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        for c in spec.init_containers.iter().flatten() {
            let list = status::instances(&seen.containers, &c.name);
            match list.first() {
                None => {
                    self.start(c, 0, st, wake).await?;
                    return Ok(());
                }
                Some(l) if is(l, api::ContainerState::ContainerExited) => {
                    if l.exit_code == 0 {
                        continue;
                    }
                    if policy != "Never" {
                        self.restart(c, l, st, wake).await?;
                    }
                    return Ok(());
                }
                Some(l) if is(l, api::ContainerState::ContainerCreated) => {
                    self.start_created(c, l, st).await;
                    return Ok(());
                }
                Some(_) => return Ok(()),
            }
        }
        for c in &spec.containers {
            let list = status::instances(&seen.containers, &c.name);
            match list.first() {
                None => self.start(c, 0, st, wake).await?,
                Some(l) if is(l, api::ContainerState::ContainerRunning) => {
                    let image = l.annotations.get(labels::SPEC_IMAGE);
                    let why = if image.is_some_and(|i| Some(i) != c.image.as_ref()) {
                        Some(format!(
                            "Container {} definition changed, will be restarted",
                            c.name
                        ))
                    } else {
                        st.probes.failed(&l.id).map(|kind| {
                            format!(
                                "Container {} failed {} probe, will be restarted",
                                c.name,
                                kind.title().to_lowercase()
                            )
                        })
                    };
                    if let Some(why) = why {
                        kill(
                            self.ctx,
                            Some(self.pod),
                            l,
                            grace_of(self.pod),
                            self.ip,
                            Some(why),
                        )
                        .await;
                        earliest(wake, Duration::from_millis(100));
                    }
                }
                Some(l) if is(l, api::ContainerState::ContainerExited) => {
                    if should_restart(&policy, l.exit_code) {
                        self.restart(c, l, st, wake).await?;
                    } else {
                        st.waiting.remove(&c.name);
                    }
                }
                Some(l) if is(l, api::ContainerState::ContainerCreated) => {
                    self.start_created(c, l, st).await
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Restarts an exited container unless its back-off is still running.
    async fn restart(
        &self,
        c: &Container,
        latest: &api::ContainerStatus,
        st: &mut WorkerState,
        wake: &mut Option<Duration>,
    ) -> Result<(), RuntimeError> {
        let (name, ns, uid) = sandbox::ids(self.pod);
        let key = format!("{uid}/{}", c.name);
        let finished = ts(latest.finished_at);
        let now = Timestamp::now();
        let remaining = {
            let b = self.ctx.backoff.lock().await;
            b.remaining(&key, finished, now).zip(b.delay(&key))
        };
        if let Some((left, delay)) = remaining {
            st.waiting.insert(
                c.name.clone(),
                (
                    "CrashLoopBackOff".into(),
                    format!(
                        "back-off {} restarting failed container={} pod={name}_{ns}({uid})",
                        go_duration(delay),
                        c.name
                    ),
                ),
            );
            self.ctx.events.emit(
                self.pod,
                Some(&c.name),
                Warning,
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {name}_{ns}({uid})",
                    c.name
                ),
            );
            earliest(wake, left + Duration::from_millis(50));
            return Ok(());
        }
        self.ctx.backoff.lock().await.next(&key, finished);
        self.start(c, labels::attempt(latest) + 1, st, wake).await
    }

    /// Starts a container that was created but never started (the agent stopped in between).
    async fn start_created(&self, c: &Container, l: &api::ContainerStatus, st: &mut WorkerState) {
        match self.ctx.runtime.start_container(&l.id).await {
            Ok(()) => {
                st.waiting.remove(&c.name);
                self.ctx.events.emit(
                    self.pod,
                    Some(&c.name),
                    Normal,
                    "Started",
                    format!("Started container {}", c.name),
                );
            }
            Err(e) => self.failed(c, "RunContainerError", e.to_string(), st),
        }
    }

    fn failed(&self, c: &Container, reason: &str, message: String, st: &mut WorkerState) {
        self.ctx.events.emit(
            self.pod,
            Some(&c.name),
            Warning,
            "Failed",
            format!("Error: {message}"),
        );
        st.waiting.insert(c.name.clone(), (reason.into(), message));
    }

    /// Image, configuration, create, start: instance `attempt` of container `c`.
    async fn start(
        &self,
        c: &Container,
        attempt: u32,
        st: &mut WorkerState,
        wake: &mut Option<Duration>,
    ) -> Result<(), RuntimeError> {
        let Some(image_ref) = self.image(c, st, wake).await? else {
            return Ok(());
        };
        let env = match self.environment(c).await {
            Ok(e) => e,
            Err(msg) => {
                self.failed(c, "CreateContainerConfigError", msg, st);
                earliest(wake, Duration::from_secs(10));
                return Ok(());
            }
        };
        let mut mounts = match volumes::mounts(c, self.volumes) {
            Ok(m) => m,
            Err(e) => {
                self.failed(c, "CreateContainerConfigError", e.to_string(), st);
                earliest(wake, Duration::from_secs(10));
                return Ok(());
            }
        };
        let spec = self.pod.spec.clone().unwrap_or_default();
        if spec.host_network != Some(true)
            && !mounts.iter().any(|m| m.container_path == "/etc/hosts")
        {
            let (_, _, uid) = sandbox::ids(self.pod);
            let dir = volumes::pod_dir(&self.ctx.root_dir, &uid);
            let hosts = dir.join("etc-hosts");
            let text = sandbox::hosts_file(self.pod, self.ip, &self.ctx.sandbox_env.cluster_domain);
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&hosts, text))
            {
                self.failed(
                    c,
                    "CreateContainerConfigError",
                    format!("writing /etc/hosts: {e}"),
                    st,
                );
                return Ok(());
            }
            mounts.push(api::Mount {
                container_path: "/etc/hosts".into(),
                host_path: hosts.display().to_string(),
                ..Default::default()
            });
        }
        let config = match container::config(
            self.pod,
            c,
            container::Inputs {
                node: &self.ctx.node,
                attempt,
                image_ref: &image_ref,
                env: &env,
                mounts,
                allow_privileged: self.ctx.allow_privileged,
                node_memory: self.ctx.node_memory,
            },
        ) {
            Ok(cfg) => cfg,
            Err(e) => {
                self.failed(c, "CreateContainerConfigError", e.0, st);
                return Ok(());
            }
        };
        let sandbox_config = sandbox::config(self.pod, 0, &self.ctx.sandbox_env);
        let id = match self
            .ctx
            .runtime
            .create_container(self.sandbox_id, config, sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(e @ RuntimeError::Unavailable(_)) => return Err(e),
            Err(e) => {
                self.failed(c, "CreateContainerError", e.to_string(), st);
                earliest(wake, Duration::from_secs(10));
                return Ok(());
            }
        };
        self.ctx.events.emit(
            self.pod,
            Some(&c.name),
            Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        match self.ctx.runtime.start_container(&id).await {
            Ok(()) => {
                st.waiting.remove(&c.name);
                self.ctx.events.emit(
                    self.pod,
                    Some(&c.name),
                    Normal,
                    "Started",
                    format!("Started container {}", c.name),
                );
                self.post_start(c, &id).await;
            }
            Err(e) => {
                // The instance stays (exited) so the restart policy and back-off apply.
                self.failed(c, "RunContainerError", e.to_string(), st);
                earliest(wake, Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// Runs the postStart handler; a failure kills the container (the restart policy follows).
    async fn post_start(&self, c: &Container, id: &str) {
        let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return;
        };
        let timeout = grace_of(self.pod).max(Duration::from_secs(2));
        if let Err(msg) = hooks::run(&self.ctx.runtime, id, self.ip, &ports(c), h, timeout).await {
            self.ctx.events.emit(
                self.pod,
                Some(&c.name),
                Warning,
                "FailedPostStartHook",
                format!("PostStartHook failed: {msg}"),
            );
            let _ = self
                .ctx
                .runtime
                .stop_container(id, Duration::from_secs(2))
                .await;
        }
    }

    /// The image reference to run, after the pull policy; None: the container waits.
    async fn image(
        &self,
        c: &Container,
        st: &mut WorkerState,
        wake: &mut Option<Duration>,
    ) -> Result<Option<String>, RuntimeError> {
        let image = c.image.clone().unwrap_or_default();
        if let Err(p) = images::validate(&image) {
            self.ctx.events.emit(
                self.pod,
                Some(&c.name),
                Warning,
                "InspectFailed",
                p.message.clone(),
            );
            self.failed(c, p.reason, p.message, st);
            return Ok(None);
        }
        let policy = images::policy(&image, c.image_pull_policy.as_deref());
        let present = self.ctx.runtime.image_status(&image).await?;
        match images::decide(&image, &policy, present.is_some()) {
            images::Decision::Use => {
                self.ctx.events.emit(
                    self.pod,
                    Some(&c.name),
                    Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                Ok(present.map(|i| if i.id.is_empty() { image.clone() } else { i.id }))
            }
            images::Decision::NeverPull(p) => {
                self.ctx.events.emit(
                    self.pod,
                    Some(&c.name),
                    Warning,
                    "ErrImageNeverPull",
                    p.message.clone(),
                );
                self.failed(c, p.reason, p.message, st);
                earliest(wake, Duration::from_secs(10));
                Ok(None)
            }
            images::Decision::Pull => {
                let (_, _, uid) = sandbox::ids(self.pod);
                let key = format!("{uid}/{}/{image}", c.name);
                let now = Timestamp::now();
                let last_failure = st
                    .waiting
                    .get(&c.name)
                    .filter(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff");
                if last_failure.is_some() {
                    let left = {
                        let b = self.ctx.image_backoff.lock().await;
                        b.last(&key).and_then(|at| b.remaining(&key, at, now))
                    };
                    if let Some(left) = left {
                        let msg = format!("Back-off pulling image \"{image}\"");
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Normal,
                            "BackOff",
                            msg.clone(),
                        );
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Warning,
                            "Failed",
                            "Error: ImagePullBackOff".into(),
                        );
                        st.waiting
                            .insert(c.name.clone(), ("ImagePullBackOff".into(), msg));
                        earliest(wake, left);
                        return Ok(None);
                    }
                }
                self.ctx.events.emit(
                    self.pod,
                    Some(&c.name),
                    Normal,
                    "Pulling",
                    format!("Pulling image \"{image}\""),
                );
                let started = Instant::now();
                match self.ctx.runtime.pull_image(&image).await {
                    Ok(r) => {
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Normal,
                            "Pulled",
                            format!(
                                "Successfully pulled image \"{image}\" in {:?}",
                                started.elapsed()
                            ),
                        );
                        Ok(Some(r))
                    }
                    Err(e) => {
                        let msg = format!("Failed to pull image \"{image}\": {e}");
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Warning,
                            "Failed",
                            msg.clone(),
                        );
                        let mut b = self.ctx.image_backoff.lock().await;
                        b.next(&key, Timestamp::now());
                        let delay = b.delay(&key).unwrap_or(Duration::from_secs(10));
                        drop(b);
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Warning,
                            "Failed",
                            "Error: ErrImagePull".into(),
                        );
                        // The next sync shows ImagePullBackOff until the back-off ends.
                        st.waiting
                            .insert(c.name.clone(), ("ErrImagePull".into(), msg));
                        earliest(wake, delay.min(Duration::from_secs(1)));
                        Ok(None)
                    }
                }
            }
        }
    }

    /// The container's environment (ConfigMaps and Secrets fetched now).
    async fn environment(&self, c: &Container) -> Result<Vec<(String, String)>, String> {
        let (_, ns, _) = sandbox::ids(self.pod);
        let (cms, secrets) = env::referenced(c);
        let mut sources = env::Sources::default();
        let client = &self.ctx.client;
        for n in cms {
            match client.config_map(&ns, &n).await {
                Ok(Some(cm)) => {
                    sources.config_maps.insert(n, cm.data.unwrap_or_default());
                }
                Ok(None) => {}
                Err(e) => return Err(format!("getting configmap {n:?}: {e}")),
            }
        }
        for n in secrets {
            match client.secret(&ns, &n).await {
                Ok(Some(s)) => {
                    let data = objects::secret_data(&s)
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                        .collect();
                    sources.secrets.insert(n, data);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("getting secret {n:?}: {e}")),
            }
        }
        env::build(
            self.pod,
            c,
            &sources,
            &self.ctx.host_ip,
            self.ip,
            (self.ctx.node_cpus, self.ctx.node_memory),
        )
        .map_err(|e| e.0)
    }
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
