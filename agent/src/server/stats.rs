//! `GET /stats/summary`: the kubelet's Summary API (`stats/v1alpha1` Summary), the numbers
//! `kubectl top` is built on. Documented fields:
//!
//! - `node`: `nodeName`, `startTime` (boot), `cpu` (`time`, `usageCoreNanoSeconds`: CPU time
//!   of the whole machine since boot from `/proc/stat`, all states but idle and iowait;
//!   `usageNanoCores`: its rate, CPU nanoseconds per second) and `memory` (`time`,
//!   `usageBytes` = MemTotal − MemFree, `workingSetBytes` = usage − Inactive(file),
//!   `availableBytes` = MemTotal − working set, `rssBytes` = AnonPages, from `/proc/meminfo`).
//! - `pods[]`: each running pod of this node (`podRef` name, namespace, uid; `startTime` of
//!   its sandbox), `containers[]` with each running container's `name`, `startTime`, `cpu`
//!   and `memory` from CRI ListContainerStats (`workingSetBytes`, `usageBytes`, `rssBytes`
//!   as the runtime reports them), and the pod's `cpu` and `memory`: the sums over its
//!   containers (the sandbox's pause process is not counted).
//!
//! `usageNanoCores` is computed by the agent from two samples of `usageCoreNanoSeconds`:
//! a [`Sampler`] keeps the last sample of the node and of each container, refreshed every
//! [`SAMPLE_PERIOD`] in the background, so a request is answered with the rate over the last
//! period (absent only before a first sample exists, right after the agent or container
//! started).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use api::status::StatusError;
use axum::{extract::State, response::IntoResponse, response::Response, Json};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::{status, Ctx};
use crate::{machine::meminfo_bytes, pods::labels, runtime::api as cri};

/// How often the background sampler refreshes the samples rates are computed from.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(10);
/// Samples closer than this to the kept one do not replace it (rates over tiny intervals
/// are noise).
const MIN_INTERVAL_NS: i64 = 1_000_000_000;
/// The kernel's USER_HZ: /proc/stat counts in 1/100 s on every Linux architecture we run.
const NS_PER_TICK: u64 = 10_000_000;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: String,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: String,
    pub containers: Vec<ContainerStats>,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
}

/// The Summary API answer.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

/// The last CPU sample of the node (key `""`) and of each container (its id).
#[derive(Debug, Default)]
pub struct Sampler {
    last: Mutex<HashMap<String, (i64, u64)>>,
}

impl Sampler {
    /// Records a sample (time in ns since the epoch, cumulative CPU ns) and returns the rate
    /// since the kept sample, in CPU nanoseconds per second.
    pub fn rate(&self, key: &str, time_ns: i64, cpu_ns: u64) -> Option<u64> {
        let mut last = self.last.lock().ok()?;
        let Some(&(t0, c0)) = last.get(key) else {
            last.insert(key.to_string(), (time_ns, cpu_ns));
            return None;
        };
        if cpu_ns < c0 || time_ns < t0 {
            // A restarted container (same id cannot restart, but be safe) or a clock jump.
            last.insert(key.to_string(), (time_ns, cpu_ns));
            return None;
        }
        if time_ns - t0 >= MIN_INTERVAL_NS {
            last.insert(key.to_string(), (time_ns, cpu_ns));
        }
        let dt = (time_ns - t0) as u128;
        (dt > 0).then(|| ((cpu_ns - c0) as u128 * 1_000_000_000 / dt) as u64)
    }

    /// Forgets the samples of containers that are gone.
    fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        if let Ok(mut last) = self.last.lock() {
            last.retain(|k, _| k.is_empty() || keep(k));
        }
    }
}

/// Total non-idle CPU time since boot (ns) from `/proc/stat`'s `cpu` line, and the boot time.
pub fn parse_proc_stat(stat: &str) -> (Option<u64>, Option<i64>) {
    let cpu = stat.lines().find(|l| l.starts_with("cpu ")).and_then(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is within user).
        let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| f.get(*i)).sum();
        (f.len() >= 4).then_some(busy * NS_PER_TICK)
    });
    let boot = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok());
    (cpu, boot)
}

/// The node's memory figures from `/proc/meminfo`.
pub fn node_memory(meminfo: &str, time: String) -> MemoryStats {
    let get = |k: &str| meminfo_bytes(meminfo, k);
    let (total, free) = (get("MemTotal"), get("MemFree"));
    let usage = total.zip(free).map(|(t, f)| t.saturating_sub(f));
    let working_set = usage.map(|u| u.saturating_sub(get("Inactive(file)").unwrap_or(0)));
    MemoryStats {
        time,
        available_bytes: total.zip(working_set).map(|(t, w)| t.saturating_sub(w)),
        usage_bytes: usage,
        working_set_bytes: working_set,
        rss_bytes: get("AnonPages"),
    }
}

fn rfc3339(ns: i64) -> String {
    Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn node_stats(ctx: &Ctx) -> NodeStats {
    let now = Timestamp::now().as_nanosecond() as i64;
    let (cpu, boot) = parse_proc_stat(&std::fs::read_to_string("/proc/stat").unwrap_or_default());
    NodeStats {
        node_name: ctx.node.clone(),
        start_time: boot.map(|b| rfc3339(b * 1_000_000_000)),
        cpu: CpuStats {
            time: rfc3339(now),
            usage_nano_cores: cpu.and_then(|c| ctx.stats.rate("", now, c)),
            usage_core_nano_seconds: cpu,
        },
        memory: node_memory(
            &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
            rfc3339(now),
        ),
    }
}

fn value(v: &Option<cri::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// The summary of the node and its running pods; also refreshes the samples.
pub async fn collect(ctx: &Ctx) -> Result<Summary, StatusError> {
    let selector = labels::node_selector(&ctx.node);
    let unavailable = |e: crate::runtime::RuntimeError| {
        StatusError::internal(format!(
            "failed to get stats from the container runtime: {e}"
        ))
    };
    let sandboxes = ctx
        .runtime
        .list_pod_sandbox(cri::PodSandboxFilter {
            state: Some(cri::PodSandboxStateValue {
                state: cri::PodSandboxState::SandboxReady as i32,
            }),
            label_selector: selector.clone(),
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    let running: HashMap<String, cri::Container> = ctx
        .runtime
        .list_containers(cri::ContainerFilter {
            state: Some(cri::ContainerStateValue {
                state: cri::ContainerState::ContainerRunning as i32,
            }),
            label_selector: selector.clone(),
            ..Default::default()
        })
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let stats = ctx
        .runtime
        .list_container_stats(cri::ContainerStatsFilter {
            label_selector: selector,
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    let mut by_sandbox: HashMap<String, Vec<ContainerStats>> = HashMap::new();
    for s in stats {
        let Some(attrs) = s.attributes.as_ref() else {
            continue;
        };
        let Some(c) = running.get(&attrs.id) else {
            continue;
        };
        let cpu = s.cpu.unwrap_or_default();
        let mem = s.memory.unwrap_or_default();
        let total = value(&cpu.usage_core_nano_seconds);
        by_sandbox
            .entry(c.pod_sandbox_id.clone())
            .or_default()
            .push(ContainerStats {
                name: c
                    .labels
                    .get(labels::CONTAINER_NAME)
                    .cloned()
                    .unwrap_or_default(),
                start_time: rfc3339(c.created_at),
                cpu: CpuStats {
                    time: rfc3339(cpu.timestamp),
                    usage_nano_cores: total.and_then(|t| ctx.stats.rate(&c.id, cpu.timestamp, t)),
                    usage_core_nano_seconds: total,
                },
                memory: MemoryStats {
                    time: rfc3339(mem.timestamp),
                    available_bytes: value(&mem.available_bytes),
                    usage_bytes: value(&mem.usage_bytes),
                    working_set_bytes: value(&mem.working_set_bytes),
                    rss_bytes: value(&mem.rss_bytes),
                },
            });
    }
    ctx.stats.retain(&|id| running.contains_key(id));
    let node = node_stats(ctx);
    let mut pods = Vec::new();
    for sb in sandboxes {
        let Some(pod) = labels::pod_of(&sb.labels) else {
            continue;
        };
        let mut containers = by_sandbox.remove(&sb.id).unwrap_or_default();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut cpu = CpuStats {
            time: node.cpu.time.clone(),
            ..Default::default()
        };
        let mut memory = MemoryStats {
            time: node.memory.time.clone(),
            ..Default::default()
        };
        for c in &containers {
            cpu.usage_nano_cores = sum(cpu.usage_nano_cores, c.cpu.usage_nano_cores);
            cpu.usage_core_nano_seconds =
                sum(cpu.usage_core_nano_seconds, c.cpu.usage_core_nano_seconds);
            memory.usage_bytes = sum(memory.usage_bytes, c.memory.usage_bytes);
            memory.working_set_bytes = sum(memory.working_set_bytes, c.memory.working_set_bytes);
            memory.rss_bytes = sum(memory.rss_bytes, c.memory.rss_bytes);
        }
        pods.push(PodStats {
            pod_ref: PodReference {
                name: pod.name,
                namespace: pod.namespace,
                uid: pod.uid,
            },
            start_time: rfc3339(sb.created_at),
            containers,
            cpu,
            memory,
        });
    }
    pods.sort_by(|a, b| {
        (&a.pod_ref.namespace, &a.pod_ref.name).cmp(&(&b.pod_ref.namespace, &b.pod_ref.name))
    });
    Ok(Summary { node, pods })
}

pub async fn summary(State(ctx): State<Ctx>) -> Response {
    match collect(&ctx).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => status(e),
    }
}

/// Keeps the samples fresh, so rates are available when a summary is asked for.
pub async fn run(ctx: Ctx) {
    let mut tick = tokio::time::interval(SAMPLE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = collect(&ctx).await {
            tracing::debug!(error = %e, "sampling usage");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_two_samples() {
        let s = Sampler::default();
        assert_eq!(s.rate("c", 0, 0), None);
        // Half a core over two seconds.
        assert_eq!(s.rate("c", 2_000_000_000, 1_000_000_000), Some(500_000_000));
        // A sample 0.5 s later is measured against the kept one (at 2 s), and not kept.
        assert_eq!(
            s.rate("c", 2_500_000_000, 1_500_000_000),
            Some(1_000_000_000)
        );
        assert_eq!(s.rate("c", 3_000_000_000, 1_500_000_000), Some(500_000_000));
        // A counter going back starts over.
        assert_eq!(s.rate("c", 4_000_000_000, 10), None);
    }

    #[test]
    fn node_figures_from_proc() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 1 2 3 4\nbtime 1700000000\n";
        let (cpu, boot) = parse_proc_stat(stat);
        assert_eq!(cpu, Some((100 + 5 + 50 + 3 + 2 + 1) * NS_PER_TICK));
        assert_eq!(boot, Some(1_700_000_000));
        let meminfo = "MemTotal: 1000 kB\nMemFree: 400 kB\nInactive(file): 100 kB\n\
                       AnonPages: 250 kB\n";
        let m = node_memory(meminfo, "t".into());
        assert_eq!(m.usage_bytes, Some(600 * 1024));
        assert_eq!(m.working_set_bytes, Some(500 * 1024));
        assert_eq!(m.available_bytes, Some(500 * 1024));
        assert_eq!(m.rss_bytes, Some(250 * 1024));
        assert_eq!(rfc3339(1_700_000_000_500_000_000), "2023-11-14T22:13:20Z");
    }
}
