//! A pod's status as Kubernetes reports it, computed from the desired spec and what the
//! runtime reports (plus the waiting reasons of the last sync, e.g. ErrImagePull or
//! CrashLoopBackOff): phase, conditions, IPs, and one status per container with its state,
//! last state, restart count, image and container ids. Pure.

use std::collections::HashMap;

use k8s_openapi::{
    api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};

use super::{container::qos_class, labels, probes::View};
use crate::runtime::api;

/// A container's waiting reason and message, set by the last sync.
pub type Waiting = HashMap<String, (String, String)>;

/// What a pod's status is computed from.
pub struct Input<'a> {
    pub pod: &'a Pod,
    pub host_ip: &'a str,
    /// Prefix of container ids (`containerd://...`).
    pub runtime_name: &'a str,
    pub sandbox_ip: Option<String>,
    pub sandbox_ready: bool,
    /// Every container of the pod the runtime knows, any attempt.
    pub containers: &'a [api::ContainerStatus],
    pub waiting: &'a Waiting,
    /// Started and ready of a running container (spec, container id), after its probes.
    pub probes: &'a dyn Fn(&Container, &str) -> View,
    pub now: Timestamp,
}

fn time(ns: i64) -> Option<Time> {
    (ns > 0)
        .then(|| Timestamp::from_second(ns / 1_000_000_000).ok())
        .flatten()
        .map(Time)
}

fn state_is(c: &api::ContainerStatus, s: api::ContainerState) -> bool {
    c.state == s as i32
}

/// The instances of container `name`, newest attempt first.
pub fn instances<'a>(all: &'a [api::ContainerStatus], name: &str) -> Vec<&'a api::ContainerStatus> {
    let mut v: Vec<&api::ContainerStatus> = all
        .iter()
        .filter(|c| labels::container_name(c) == name)
        .collect();
    v.sort_by_key(|c| std::cmp::Reverse((labels::attempt(c), c.created_at)));
    v
}

/// A CRI status that ended, as a terminated state.
pub fn terminated(c: &api::ContainerStatus, runtime: &str) -> ContainerStateTerminated {
    let reason = if !c.reason.is_empty() {
        c.reason.clone()
    } else if c.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    ContainerStateTerminated {
        container_id: Some(format!("{runtime}://{}", c.id)),
        exit_code: c.exit_code,
        finished_at: time(c.finished_at),
        message: (!c.message.is_empty()).then(|| c.message.clone()),
        reason: Some(reason),
        signal: None,
        started_at: time(c.started_at),
    }
}

fn waiting(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
        ..Default::default()
    }
}

/// One container's status; `not_started_reason` is the waiting reason while it has no
/// instance and no reason of its own.
fn container_status(
    spec: &Container,
    input: &Input<'_>,
    not_started_reason: &str,
    init: bool,
) -> ContainerStatus {
    let list = instances(input.containers, &spec.name);
    let (latest, previous) = (list.first().copied(), list.get(1).copied());
    let rt = input.runtime_name;
    let own_waiting = input.waiting.get(&spec.name);
    let mut last_state = previous
        .filter(|p| state_is(p, api::ContainerState::ContainerExited))
        .map(|p| ContainerState {
            terminated: Some(terminated(p, rt)),
            ..Default::default()
        });
    let (state, ready, started) = match latest {
        Some(l) if state_is(l, api::ContainerState::ContainerRunning) => {
            let probed = (input.probes)(spec, &l.id);
            (
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: time(l.started_at),
                    }),
                    ..Default::default()
                },
                !init && probed.ready,
                probed.started,
            )
        }
        Some(l) if state_is(l, api::ContainerState::ContainerExited) => match own_waiting {
            Some((reason, message)) => {
                last_state = Some(ContainerState {
                    terminated: Some(terminated(l, rt)),
                    ..Default::default()
                });
                (waiting(reason, Some(message)), false, false)
            }
            None => {
                let t = terminated(l, rt);
                let done = init && t.exit_code == 0;
                (
                    ContainerState {
                        terminated: Some(t),
                        ..Default::default()
                    },
                    done,
                    false,
                )
            }
        },
        Some(_) => match own_waiting {
            Some((reason, message)) => (waiting(reason, Some(message)), false, false),
            None => (waiting("ContainerCreating", None), false, false),
        },
        None => match own_waiting {
            Some((reason, message)) => (waiting(reason, Some(message)), false, false),
            None => (waiting(not_started_reason, None), false, false),
        },
    };
    ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: latest.map(|l| l.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|l| format!("{rt}://{}", l.id)),
        restart_count: latest.map(|l| labels::attempt(l) as i32).unwrap_or(0),
        ready,
        started: Some(started),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..Default::default()
    }
}

fn condition(
    previous: &[PodCondition],
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(since),
        last_probe_time: None,
        observed_generation: None,
    }
}

/// Whether an init container completed (its newest instance exited 0).
pub fn init_done(all: &[api::ContainerStatus], name: &str) -> bool {
    instances(all, name)
        .first()
        .is_some_and(|l| state_is(l, api::ContainerState::ContainerExited) && l.exit_code == 0)
}

/// The pod's phase (a terminal phase already reported is kept).
pub fn phase(pod: &Pod, init: &[ContainerStatus], app: &[ContainerStatus]) -> &'static str {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => return "Succeeded",
        Some("Failed") => return "Failed",
        _ => {}
    }
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let term = |s: &ContainerStatus| s.state.as_ref().and_then(|st| st.terminated.clone());
    for s in init {
        match term(s) {
            Some(t) if t.exit_code == 0 => {}
            Some(_) if policy == "Never" => return "Failed",
            _ => return "Pending",
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in app {
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .is_some_and(|l| l.terminated.is_some())
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped == app.len() && stopped > 0 {
        if policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

/// The pod's status.
pub fn compute(input: &Input<'_>) -> PodStatus {
    let pod = input.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let init_pending = inits.iter().any(|c| !init_done(input.containers, &c.name));
    let mut first_pending = true;
    let init_statuses: Vec<ContainerStatus> = inits
        .iter()
        .map(|c| {
            let reason = if first_pending && !init_done(input.containers, &c.name) {
                first_pending = false;
                "ContainerCreating"
            } else {
                "PodInitializing"
            };
            container_status(c, input, reason, true)
        })
        .collect();
    let app_reason = if init_pending {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let app_statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, input, app_reason, false))
        .collect();
    let phase = phase(pod, &init_statuses, &app_statuses);
    let now = input.now;
    let names = |v: Vec<&str>| format!("[{}]", v.join(" "));
    let unready: Vec<&str> = app_statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let incomplete: Vec<&str> = inits
        .iter()
        .filter(|c| !init_done(input.containers, &c.name))
        .map(|c| c.name.as_str())
        .collect();
    let completed = phase == "Succeeded" || phase == "Failed";
    let host_network = spec.host_network == Some(true);
    let mut conditions = vec![condition(
        &old_conditions,
        "PodReadyToStartContainers",
        input.sandbox_ready,
        None,
        None,
        now,
    )];
    conditions.push(if incomplete.is_empty() || (completed && !init_pending) {
        condition(&old_conditions, "Initialized", true, None, None, now)
    } else {
        condition(
            &old_conditions,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                names(incomplete.clone())
            )),
            now,
        )
    });
    for kind in ["Ready", "ContainersReady"] {
        conditions.push(if completed {
            condition(
                &old_conditions,
                kind,
                false,
                Some("PodCompleted"),
                None,
                now,
            )
        } else if unready.is_empty() {
            condition(&old_conditions, kind, true, None, None, now)
        } else {
            condition(
                &old_conditions,
                kind,
                false,
                Some("ContainersNotReady"),
                Some(format!(
                    "containers with unready status: {}",
                    names(unready.clone())
                )),
                now,
            )
        });
    }
    conditions.push(
        old_conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled")
            .cloned()
            .unwrap_or_else(|| condition(&[], "PodScheduled", true, None, None, now)),
    );
    let pod_ip = if host_network {
        Some(input.host_ip.to_string())
    } else {
        input.sandbox_ip.clone().filter(|ip| !ip.is_empty())
    };
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(input.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: input.host_ip.to_string(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: old.start_time.clone().or(Some(Time(now))),
        qos_class: old
            .qos_class
            .clone()
            .or_else(|| Some(qos_class(pod).into())),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(app_statuses),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    fn pod(policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
        let c = |n: &&str| Container {
            name: n.to_string(),
            image: Some("img".into()),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                init_containers: (!inits.is_empty()).then(|| inits.iter().map(c).collect()),
                containers: apps.iter().map(c).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn cri(
        name: &str,
        attempt: u32,
        state: api::ContainerState,
        exit: i32,
    ) -> api::ContainerStatus {
        api::ContainerStatus {
            id: format!("{name}-{attempt}"),
            metadata: Some(api::ContainerMetadata {
                name: name.into(),
                attempt,
            }),
            state: state as i32,
            created_at: 1,
            started_at: 2_000_000_000,
            finished_at: if state == api::ContainerState::ContainerExited {
                3_000_000_000
            } else {
                0
            },
            exit_code: exit,
            image_ref: "sha256:img".into(),
            ..Default::default()
        }
    }

    fn run(pod: &Pod, containers: &[api::ContainerStatus], waiting: &Waiting) -> PodStatus {
        let healthy = View {
            started: true,
            ready: true,
        };
        run_probed(pod, containers, waiting, healthy)
    }

    fn run_probed(
        pod: &Pod,
        containers: &[api::ContainerStatus],
        waiting: &Waiting,
        view: View,
    ) -> PodStatus {
        compute(&Input {
            pod,
            host_ip: "192.168.1.2",
            runtime_name: "containerd",
            sandbox_ip: Some("10.88.0.4".into()),
            sandbox_ready: true,
            containers,
            waiting,
            probes: &|_, _| view,
            now: Timestamp::from_second(100).unwrap(),
        })
    }

    fn cond<'a>(s: &'a PodStatus, kind: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == kind)
            .unwrap()
    }

    #[test]
    fn running_pod() {
        let p = pod("Always", &[], &["app"]);
        let s = run(
            &p,
            &[cri("app", 0, api::ContainerState::ContainerRunning, 0)],
            &Waiting::new(),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.88.0.4"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        assert_eq!(cond(&s, "Ready").status, "True");
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert!(c.ready);
        assert_eq!(c.container_id.as_deref(), Some("containerd://app-0"));
        assert_eq!(c.image_id, "sha256:img");
        assert!(c.state.as_ref().unwrap().running.is_some());
    }

    #[test]
    fn probes_hold_back_ready_and_started() {
        let p = pod("Always", &[], &["app"]);
        let all = [cri("app", 0, api::ContainerState::ContainerRunning, 0)];
        let starting = View {
            started: false,
            ready: false,
        };
        let s = run_probed(&p, &all, &Waiting::new(), starting);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let ready = cond(&s, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(cond(&s, "ContainersReady").status, "False");
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert!(!c.ready);
        assert_eq!(c.started, Some(false));
        let unready = View {
            started: true,
            ready: false,
        };
        let c = run_probed(&p, &all, &Waiting::new(), unready)
            .container_statuses
            .unwrap()[0]
            .clone();
        assert_eq!((c.ready, c.started), (false, Some(true)));
    }

    #[test]
    fn crash_loop_keeps_running_phase_with_last_state() {
        let p = pod("Always", &[], &["app"]);
        let all = [
            cri("app", 0, api::ContainerState::ContainerExited, 1),
            cri("app", 1, api::ContainerState::ContainerExited, 1),
        ];
        let mut w = Waiting::new();
        w.insert(
            "app".into(),
            (
                "CrashLoopBackOff".into(),
                "back-off 10s restarting failed container=app pod=p_default()".into(),
            ),
        );
        let s = run(&p, &all, &w);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(c.restart_count, 1);
        let st = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(st.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert_eq!(
            cond(&s, "ContainersReady").message.as_deref(),
            Some("containers with unready status: [app]")
        );
    }

    #[test]
    fn init_containers_then_completion() {
        let p = pod("OnFailure", &["init"], &["app"]);
        let s = run(
            &p,
            &[cri("init", 0, api::ContainerState::ContainerRunning, 0)],
            &Waiting::new(),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Initialized").status, "False");
        let app = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            app.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        let done = [
            cri("init", 0, api::ContainerState::ContainerExited, 0),
            cri("app", 0, api::ContainerState::ContainerExited, 0),
        ];
        let s = run(&p, &done, &Waiting::new());
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        let init = &s.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            init.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Completed")
        );
        // A failed init container with restartPolicy Never fails the pod.
        let p = pod("Never", &["init"], &["app"]);
        let s = run(
            &p,
            &[cri("init", 0, api::ContainerState::ContainerExited, 2)],
            &Waiting::new(),
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn waiting_reasons_and_failed_never_pods() {
        let p = pod("Never", &[], &["app"]);
        let mut w = Waiting::new();
        w.insert("app".into(), ("ErrImagePull".into(), "no registry".into()));
        let s = run(&p, &[], &w);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ErrImagePull")
        );
        let s = run(
            &p,
            &[cri("app", 0, api::ContainerState::ContainerExited, 3)],
            &Waiting::new(),
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }
}
