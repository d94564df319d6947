//! The node status: conditions (Ready, MemoryPressure, DiskPressure, PIDPressure), capacity,
//! addresses, daemon endpoint and node info. Checked every `--node-status-update-frequency`,
//! sent when a condition changes and at least every `--node-status-report-frequency`.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::core::v1::{
        DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
        NodeSystemInfo,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    api::{Patch, PatchParams},
    Api,
};
use serde_json::json;

use super::{arch, registration::capacity, NodeCtx};
use crate::{machine::Pressure, runtime::Runtime};

/// Whether the runtime can run pods: Ok, or the reason it cannot (the Ready message).
pub async fn runtime_ready(runtime: &dyn Runtime) -> Result<(), String> {
    let status = runtime
        .status()
        .await
        .map_err(|e| format!("container runtime is down: {e}"))?;
    for required in ["RuntimeReady", "NetworkReady"] {
        match status.conditions.iter().find(|c| c.r#type == required) {
            Some(c) if c.status => {}
            Some(c) => {
                let what = if required == "NetworkReady" {
                    "container runtime network not ready"
                } else {
                    "container runtime not ready"
                };
                return Err(format!(
                    "{what}: {required}=false reason:{} message:{}",
                    c.reason, c.message
                ));
            }
            None => {
                return Err(format!(
                    "container runtime status check may not have completed yet: {required} missing"
                ))
            }
        }
    }
    Ok(())
}

fn condition(kind: &str, on: bool, reason: &str, message: &str) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: if on { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: None,
        last_transition_time: None,
    }
}

/// The conditions for this state, with heartbeat `now`; a condition whose status did not
/// change since `previous` keeps its transition time.
pub fn conditions(
    previous: &[NodeCondition],
    ready: &Result<(), String>,
    p: Pressure,
    now: Timestamp,
) -> Vec<NodeCondition> {
    let mut list = vec![
        if p.memory {
            condition(
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            )
        } else {
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            )
        },
        if p.disk {
            condition(
                "DiskPressure",
                true,
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
            )
        } else {
            condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            )
        },
        if p.pids {
            condition(
                "PIDPressure",
                true,
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            )
        } else {
            condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            )
        },
        match ready {
            Ok(()) => condition(
                "Ready",
                true,
                "KubeletReady",
                "kubelet is posting ready status",
            ),
            Err(why) => condition("Ready", false, "KubeletNotReady", why),
        },
    ];
    for c in &mut list {
        c.last_heartbeat_time = Some(Time(now));
        let kept = previous
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
            .and_then(|p| p.last_transition_time.clone());
        c.last_transition_time = Some(kept.unwrap_or(Time(now)));
    }
    list
}

/// Whether two condition lists differ in anything but heartbeat times.
pub fn changed(a: &[NodeCondition], b: &[NodeCondition]) -> bool {
    let key = |l: &[NodeCondition]| {
        let mut v: Vec<(String, String, Option<String>, Option<String>)> = l
            .iter()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                )
            })
            .collect();
        v.sort();
        v
    };
    key(a) != key(b)
}

/// The whole status as sent.
fn status(ctx: &NodeCtx, conditions: Vec<NodeCondition>, runtime_version: &str) -> NodeStatus {
    let cap = capacity(ctx);
    NodeStatus {
        capacity: Some(cap.clone()),
        allocatable: Some(cap),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ctx.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: ctx.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(ctx.flags.port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: arch().into(),
            operating_system: "linux".into(),
            boot_id: ctx.machine.boot_id.clone(),
            machine_id: ctx.machine.machine_id.clone(),
            system_uuid: ctx.machine.machine_id.clone(),
            kernel_version: ctx.machine.kernel_version.clone(),
            os_image: ctx.machine.os_image.clone(),
            container_runtime_version: runtime_version.into(),
            kubelet_version: format!("v1.33.0-agent.{}", env!("CARGO_PKG_VERSION")),
            kube_proxy_version: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Keeps the node status current for ever.
pub async fn run(ctx: NodeCtx) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut sent: Option<(Vec<NodeCondition>, Instant)> = None;
    let mut runtime_version = String::new();
    loop {
        if runtime_version.is_empty() {
            if let Ok(v) = ctx.runtime.version().await {
                runtime_version = format!("{}://{}", v.runtime_name, v.runtime_version);
            }
        }
        let ready = runtime_ready(ctx.runtime.as_ref()).await;
        let pressure = ctx.pressure.read();
        let previous = sent.as_ref().map(|s| s.0.clone()).unwrap_or_default();
        let now = Timestamp::now();
        let next = conditions(&previous, &ready, pressure, now);
        let due = match &sent {
            None => true,
            Some((prev, at)) => {
                changed(prev, &next) || at.elapsed() >= ctx.flags.node_status_report_frequency
            }
        };
        let mut wait = jittered(ctx.flags.node_status_update_frequency);
        if due {
            let body = json!({"status": status(&ctx, next.clone(), &runtime_version)});
            match nodes
                .patch_status(&ctx.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {
                    if sent.as_ref().is_none_or(|(p, _)| changed(p, &next)) {
                        tracing::info!(ready = ready.is_ok(), "node status updated");
                    }
                    sent = Some((next, Instant::now()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "updating the node status");
                    wait = Duration::from_secs(1);
                }
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// `period` lengthened by up to 4%, as the kubelet's status loop (`wait.JitterUntil` with
/// 0.04): nodes started together drift apart instead of reporting in one wave for ever.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + 0.04 * rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALM: Pressure = Pressure {
        memory: false,
        disk: false,
        pids: false,
    };

    #[test]
    fn the_status_period_is_lengthened_by_up_to_four_percent() {
        let period = Duration::from_secs(10);
        let waits: Vec<Duration> = (0..200).map(|_| jittered(period)).collect();
        assert!(waits
            .iter()
            .all(|w| *w >= period && *w <= Duration::from_millis(10_400)));
        assert!(waits.iter().any(|w| *w != waits[0]), "the waits differ");
    }

    #[test]
    fn transitions_keep_their_time_and_heartbeats_do_not_count() {
        let t0 = Timestamp::from_second(1000).unwrap();
        let t1 = Timestamp::from_second(1010).unwrap();
        let first = conditions(&[], &Ok(()), CALM, t0);
        assert_eq!(first.len(), 4);
        let ready = first.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        let second = conditions(&first, &Ok(()), CALM, t1);
        assert!(!changed(&first, &second));
        let r2 = second.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(r2.last_transition_time, Some(Time(t0)));
        assert_eq!(r2.last_heartbeat_time, Some(Time(t1)));
        let down = conditions(&second, &Err("container runtime is down".into()), CALM, t1);
        assert!(changed(&second, &down));
        let r3 = down.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(r3.status, "False");
        assert_eq!(r3.last_transition_time, Some(Time(t1)));
        let mem = down.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(mem.last_transition_time, Some(Time(t0)));
    }
}
