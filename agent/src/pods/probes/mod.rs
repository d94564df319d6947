//! Container probes, as the kubelet's prober runs them: one task per running container and
//! probe kind (liveness, readiness, startup), each sending its probe every `periodSeconds`
//! after `initialDelaySeconds` from the container's start, through the handler the probe
//! names (one file each: [`exec`], [`http`], [`tcp`], [`grpc`]), and keeping the result only
//! after `successThreshold` / `failureThreshold` equal outcomes in a row ([`worker::Tally`]).
//!
//! What the results mean is read by the pod's sync: readiness drives the container's `ready`
//! (and so the Ready and ContainersReady conditions), a startup probe holds back `started`,
//! liveness and readiness until it succeeds, and a failed liveness or startup probe has the
//! container killed (the restart policy and back-off then apply). A failed probe sends an
//! `Unhealthy` warning event with the probe's output. Tasks belong to the pod's worker
//! ([`PodProbes`]) and end when their container stops running or the pod's worker ends.

pub mod exec;
mod grpc;
pub mod http;
mod tcp;
pub mod worker;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use k8s_openapi::{
    api::core::v1::{Container, Pod, Probe},
    apimachinery::pkg::util::intstr::IntOrString,
};
use tokio::{sync::Notify, task::AbortHandle};

use super::events::Recorder;
use crate::runtime::{api, Runtime};

/// The three kinds of probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// As the kubelet names it in events (`Liveness probe failed: ...`).
    pub fn title(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    /// The container's probe of this kind.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            Kind::Liveness => c.liveness_probe.as_ref(),
            Kind::Readiness => c.readiness_probe.as_ref(),
            Kind::Startup => c.startup_probe.as_ref(),
        }
    }
}

const KINDS: [Kind; 3] = [Kind::Startup, Kind::Liveness, Kind::Readiness];

/// What one probe attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The probe failed; the text is its output or error, as events show it.
    Failure(String),
}

/// Where a probe is sent: the container (for exec) and the pod's address (for the network
/// probes), with the container's named ports.
pub struct Target {
    pub runtime: Arc<dyn Runtime>,
    pub container_id: String,
    pub pod_ip: String,
    pub ports: Vec<(String, i32)>,
}

impl Target {
    /// A probe's port, by number or by the name of one of the container's ports.
    pub fn port(&self, port: &IntOrString) -> Result<i32, String> {
        match port {
            IntOrString::Int(p) => Ok(*p),
            IntOrString::String(name) => match name.parse::<i32>() {
                Ok(p) => Ok(p),
                Err(_) => self
                    .ports
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| *p)
                    .ok_or_else(|| format!("unable to find port {name:?} in the container")),
            },
        }
    }

    /// The host a network probe dials: its own `host` when set, else the pod's IP.
    pub fn host(&self, host: Option<&String>) -> String {
        host.filter(|h| !h.is_empty())
            .cloned()
            .unwrap_or_else(|| self.pod_ip.clone())
    }
}

/// One way of probing (exec, httpGet, tcpSocket, grpc).
#[async_trait]
pub trait Handler: Send + Sync {
    /// One attempt, bounded by `timeout`.
    async fn check(&self, target: &Target, timeout: Duration) -> Outcome;
}

/// The handler a probe names; Err when it names none (the apiserver's validation refuses
/// such probes, so this is only a guard).
pub fn handler(p: &Probe) -> Result<Box<dyn Handler>, String> {
    if let Some(e) = &p.exec {
        return Ok(Box::new(exec::Exec::new(e)));
    }
    if let Some(h) = &p.http_get {
        return Ok(Box::new(http::HttpGet::new(h)));
    }
    if let Some(t) = &p.tcp_socket {
        return Ok(Box::new(tcp::TcpSocket::new(t)));
    }
    if let Some(g) = &p.grpc {
        return Ok(Box::new(grpc::Grpc::new(g)));
    }
    Err("the probe names no handler (exec, httpGet, tcpSocket or grpc)".into())
}

/// A probe's timing and thresholds with Kubernetes' defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    /// From the probe's fields (defaults: delay 0, period 10 s, timeout 1 s, thresholds 1
    /// and 3; liveness and startup probes succeed on one success).
    pub fn of(p: &Probe, kind: Kind) -> Timing {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        let success = match kind {
            Kind::Readiness => p.success_threshold.unwrap_or(1).max(1) as u32,
            Kind::Liveness | Kind::Startup => 1,
        };
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: success,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Results kept by the probe tasks: (container id, kind) → whether the last kept result is a
/// success. No entry: no result yet (not ready, not started; alive).
pub type Results = Arc<Mutex<HashMap<(String, Kind), bool>>>;

fn read<R>(results: &Results, f: impl FnOnce(&HashMap<(String, Kind), bool>) -> R) -> R {
    match results.lock() {
        Ok(m) => f(&m),
        Err(poisoned) => f(&poisoned.into_inner()),
    }
}

/// How a running container looks to the status: `started` and `ready` after its probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub started: bool,
    pub ready: bool,
}

/// Aborts a task when dropped.
struct Task(AbortHandle);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The probe tasks of one pod and their results.
#[derive(Default)]
pub struct PodProbes {
    tasks: HashMap<(String, Kind), Task>,
    results: Results,
}

/// What the probe tasks of a pod share with it.
pub struct Shared {
    pub pod: Arc<Pod>,
    pub events: Recorder,
    pub runtime: Arc<dyn Runtime>,
    pub pod_ip: String,
    /// Wakes the pod's worker when a result changes.
    pub notify: Arc<Notify>,
}

impl PodProbes {
    /// Runs the probes of the `running` containers (spec, runtime status) and stops the tasks
    /// of containers that no longer run.
    pub fn sync(&mut self, shared: &Shared, running: &[(&Container, &api::ContainerStatus)]) {
        let live: std::collections::HashSet<&str> =
            running.iter().map(|(_, s)| s.id.as_str()).collect();
        self.tasks.retain(|(id, _), _| live.contains(id.as_str()));
        match self.results.lock() {
            Ok(mut m) => m.retain(|(id, _), _| live.contains(id.as_str())),
            Err(poisoned) => poisoned
                .into_inner()
                .retain(|(id, _), _| live.contains(id.as_str())),
        }
        for (spec, status) in running {
            for kind in KINDS {
                let Some(probe) = kind.of(spec) else { continue };
                let key = (status.id.clone(), kind);
                if self.tasks.contains_key(&key) {
                    continue;
                }
                let job = worker::Job {
                    kind,
                    container: spec.name.clone(),
                    has_startup: spec.startup_probe.is_some(),
                    timing: Timing::of(probe, kind),
                    handler: handler(probe),
                    started_at: status.started_at,
                    target: Target {
                        runtime: shared.runtime.clone(),
                        container_id: status.id.clone(),
                        pod_ip: shared.pod_ip.clone(),
                        ports: spec
                            .ports
                            .iter()
                            .flatten()
                            .filter_map(|p| p.name.clone().map(|n| (n, p.container_port)))
                            .collect(),
                    },
                    pod: shared.pod.clone(),
                    events: shared.events.clone(),
                    results: self.results.clone(),
                    notify: shared.notify.clone(),
                };
                let handle = tokio::spawn(worker::run(job)).abort_handle();
                self.tasks.insert(key, Task(handle));
            }
        }
    }

    /// Started and ready, for container `c` running as `id`.
    pub fn view(&self, c: &Container, id: &str) -> View {
        read(&self.results, |m| {
            let ok = |k: Kind| m.get(&(id.to_string(), k)).copied();
            let started = c.startup_probe.is_none() || ok(Kind::Startup) == Some(true);
            let ready =
                started && (c.readiness_probe.is_none() || ok(Kind::Readiness) == Some(true));
            View { started, ready }
        })
    }

    /// The probe whose failure means container `id` must be restarted (liveness or startup).
    pub fn failed(&self, id: &str) -> Option<Kind> {
        read(&self.results, |m| {
            [Kind::Startup, Kind::Liveness]
                .into_iter()
                .find(|k| m.get(&(id.to_string(), *k)) == Some(&false))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ExecAction;

    fn probe() -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn timing_defaults_and_liveness_success_threshold() {
        let t = Timing::of(&probe(), Kind::Readiness);
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        let mut p = probe();
        p.success_threshold = Some(3);
        p.period_seconds = Some(0);
        assert_eq!(Timing::of(&p, Kind::Readiness).success_threshold, 3);
        assert_eq!(Timing::of(&p, Kind::Liveness).success_threshold, 1);
        assert_eq!(
            Timing::of(&p, Kind::Liveness).period,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn views_follow_results() {
        let probes = PodProbes::default();
        let mut c = Container {
            name: "app".into(),
            ..Default::default()
        };
        assert_eq!(
            probes.view(&c, "id1"),
            View {
                started: true,
                ready: true
            }
        );
        c.readiness_probe = Some(probe());
        c.startup_probe = Some(probe());
        assert_eq!(
            probes.view(&c, "id1"),
            View {
                started: false,
                ready: false
            }
        );
        let set = |k, v| {
            probes
                .results
                .lock()
                .unwrap()
                .insert(("id1".to_string(), k), v)
        };
        set(Kind::Startup, true);
        assert_eq!(
            probes.view(&c, "id1"),
            View {
                started: true,
                ready: false
            }
        );
        set(Kind::Readiness, true);
        assert!(probes.view(&c, "id1").ready);
        assert_eq!(probes.failed("id1"), None);
        set(Kind::Liveness, false);
        assert_eq!(probes.failed("id1"), Some(Kind::Liveness));
    }

    #[test]
    fn named_ports() {
        let t = Target {
            runtime: Arc::new(crate::runtime::fake::FakeRuntime::new(Default::default())),
            container_id: "c".into(),
            pod_ip: "10.0.0.1".into(),
            ports: vec![("http".into(), 8080)],
        };
        assert_eq!(t.port(&IntOrString::String("http".into())), Ok(8080));
        assert_eq!(t.port(&IntOrString::Int(81)), Ok(81));
        assert!(t.port(&IntOrString::String("grpc".into())).is_err());
        assert_eq!(t.host(None), "10.0.0.1");
        assert_eq!(t.host(Some(&"127.0.0.1".to_string())), "127.0.0.1");
    }
}
