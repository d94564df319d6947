//! `node-bench`: pod start-up latency on the single-machine cluster, as Kubernetes' SIG
//! Scalability measures it (create → Running and → Ready, observed by watch), side by side in
//! the same run with the CRI floor: RunPodSandbox + CreateContainer + StartContainer called
//! directly on the same containerd, in the same bursts. Also each component's resident memory,
//! idle and with the pods running.
//!
//! It starts a store, an apiserver, the scheduler, the controller-manager and the real agent on
//! a private containerd (the cluster-tests harness: everything under a temporary directory,
//! removed at the end). Progress goes to stderr, the results (Markdown tables) to stdout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use cluster_tests::{
    containerd::cri::{
        ContainerConfig, ContainerMetadata, CriClient, ImageSpec, LinuxPodSandboxConfig,
        PodSandboxConfig, PodSandboxMetadata,
    },
    rss_kib, ApiCluster, ApiConfig, Component, ContainerdNode, Identity, BUSYBOX_IMAGE,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    name = "node-bench",
    about = "Pod start-up latency (create → Running/Ready) vs the CRI floor, and memory."
)]
struct Args {
    /// Pods to start (each path).
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pods created at once in each burst (5 a second is what this 2-core machine's
    /// containerd sustains; 10 saturates it, see BENCHMARKS.md).
    #[arg(long, default_value_t = 5)]
    burst: usize,
    /// Pause between bursts, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Give up after this many seconds per path.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// The latencies of one path.
struct Latencies {
    /// Create → bound to the node (the API path only).
    scheduled: Vec<Duration>,
    running: Vec<Duration>,
    ready: Vec<Duration>,
}

impl Latencies {
    fn row(&self, path: &str, pods: usize) -> String {
        let (mut sch, mut run, mut rdy) = (
            self.scheduled.clone(),
            self.running.clone(),
            self.ready.clone(),
        );
        sch.sort();
        run.sort();
        rdy.sort();
        let cell = |v: &[Duration], p| {
            if v.is_empty() {
                "-".to_string()
            } else {
                ms(pct(v, p))
            }
        };
        format!(
            "| {path} | {}/{pods} | {} | {} | {} | {} | {} | {} |",
            run.len(),
            cell(&sch, 0.5),
            cell(&sch, 0.99),
            cell(&run, 0.5),
            cell(&run, 0.99),
            cell(&rdy, 0.5),
            cell(&rdy, 0.99)
        )
    }
}

/// Pods through the API: created in bursts, watched until each is Running and Ready.
async fn through_the_api(kc: &kube::Client, args: &Args) -> Result<Latencies> {
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<Mutex<[HashMap<String, Duration>; 3]>> = Arc::default();
    let watch = {
        let (pods, created, seen) = (pods.clone(), created.clone(), seen.clone());
        let total = args.pods;
        tokio::spawn(async move {
            let cfg = watcher::Config::default().labels("bench=node");
            let mut stream = watcher(pods, cfg).applied_objects().boxed();
            while let Ok(Some(p)) = stream.try_next().await {
                let now = Instant::now();
                let name = p.metadata.name.clone().unwrap_or_default();
                let Some(t0) = created.lock().ok().and_then(|c| c.get(&name).copied()) else {
                    continue;
                };
                let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                let status = p.status.unwrap_or_default();
                let running = status.phase.as_deref() == Some("Running");
                let ready = status
                    .conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                let Ok(mut s) = seen.lock() else { break };
                for (i, yes) in [bound, running, ready].into_iter().enumerate() {
                    if yes {
                        s[i].entry(name.clone()).or_insert(now - t0);
                    }
                }
                if s.iter().all(|m| m.len() >= total) {
                    break;
                }
            }
        })
    };
    // Let the watch start before the first pod.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let mut n = 0;
    while n < args.pods {
        let burst: Vec<usize> = (n..(n + args.burst).min(args.pods)).collect();
        n += burst.len();
        let creates = burst.into_iter().map(|i| {
            let (pods, created) = (pods.clone(), created.clone());
            async move {
                let name = format!("bench-{i}");
                let pod: Pod = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "labels": {"bench": "node"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "app", "image": BUSYBOX_IMAGE,
                                        "command": ["sleep", "3600"]}],
                    },
                }))?;
                if let Ok(mut c) = created.lock() {
                    c.insert(name, Instant::now());
                }
                pods.create(&PostParams::default(), &pod).await?;
                anyhow::Ok(())
            }
        });
        for r in futures::future::join_all(creates).await {
            r?;
        }
        eprint!("\r  created {n}/{}", args.pods);
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    eprintln!();
    let deadline = start + Duration::from_secs(args.timeout);
    loop {
        let (running, ready) = {
            let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            (s[1].len(), s[2].len())
        };
        eprint!(
            "\r  running {running:>4}/{}  ready {ready:>4}/{}",
            args.pods, args.pods
        );
        if ready >= args.pods && running >= args.pods {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("\n  timed out");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!();
    watch.abort();
    let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok(Latencies {
        scheduled: s[0].values().copied().collect(),
        running: s[1].values().copied().collect(),
        ready: s[2].values().copied().collect(),
    })
}

/// The floor: the three CRI calls of a pod with one container, straight to containerd, in
/// the same bursts. Returns the latencies and what to remove afterwards.
async fn cri_floor(node: &ContainerdNode, args: &Args) -> Result<(Latencies, Vec<String>)> {
    let cri = CriClient::connect(&node.containerd().socket()).await?;
    let logs = node.root().join("floor-logs");
    std::fs::create_dir_all(&logs)?;
    let mut times = Vec::new();
    let mut sandboxes = Vec::new();
    let mut n = 0;
    while n < args.pods {
        let burst: Vec<usize> = (n..(n + args.burst).min(args.pods)).collect();
        n += burst.len();
        let starts = burst.into_iter().map(|i| {
            let mut cri = cri.clone();
            let logs = logs.clone();
            async move {
                let t0 = Instant::now();
                let name = format!("floor-{i}");
                let sandbox = PodSandboxConfig {
                    metadata: Some(PodSandboxMetadata {
                        name: name.clone(),
                        uid: format!("floor-uid-{i}"),
                        namespace: "bench".into(),
                        attempt: 0,
                    }),
                    hostname: name.clone(),
                    log_directory: logs.join(&name).display().to_string(),
                    linux: Some(LinuxPodSandboxConfig::default()),
                    ..Default::default()
                };
                let id = cri.run_pod_sandbox(sandbox.clone()).await?;
                let container = ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "app".into(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: BUSYBOX_IMAGE.into(),
                        ..Default::default()
                    }),
                    command: vec!["sleep".into(), "3600".into()],
                    log_path: "app/0.log".into(),
                    ..Default::default()
                };
                let cid = cri.create_container(&id, container, sandbox).await?;
                cri.start_container(&cid).await?;
                anyhow::Ok((t0.elapsed(), id))
            }
        });
        for r in futures::future::join_all(starts).await {
            let (t, id) = r?;
            times.push(t);
            sandboxes.push(id);
        }
        eprint!("\r  started {n}/{}", args.pods);
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    eprintln!();
    Ok((
        Latencies {
            scheduled: Vec::new(),
            running: times.clone(),
            ready: times,
        },
        sandboxes,
    ))
}

struct Procs<'a> {
    api: &'a ApiCluster,
    node: &'a ContainerdNode,
    scheduler: &'a Component,
    cm: &'a Component,
}

impl Procs<'_> {
    /// (component, RSS KiB) of each control-plane process and the agent.
    fn rss(&self) -> Vec<(&'static str, u64)> {
        let get = |pid: Option<u32>| pid.and_then(rss_kib).unwrap_or(0);
        vec![
            ("store", get(self.api.store.pid(0))),
            ("apiserver", get(self.api.apiserver_pid(0))),
            ("scheduler", get(self.scheduler.pid())),
            ("controller-manager", get(self.cm.pid())),
            ("agent", get(self.node.agent.pid())),
        ]
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    eprintln!("starting store, apiserver, containerd, agent, scheduler, controller-manager...");
    let api = ApiCluster::start(ApiConfig::new()).await?;
    let node = ContainerdNode::start(&api, Identity::Node1, &[]).await?;
    let (scheduler, cm) = api.start_controllers_with(&[cluster_tests::UNTHROTTLED])?;
    let kc = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await?
        .0;
    let nodes: Api<Node> = Api::all(kc.clone());
    let t = Instant::now();
    loop {
        let ready = nodes
            .get_opt("n1")
            .await
            .ok()
            .flatten()
            .and_then(|n| n.status?.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("node n1 did not become Ready:\n{}", node.logs(40));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let procs = Procs {
        api: &api,
        node: &node,
        scheduler: &scheduler,
        cm: &cm,
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = procs.rss();

    eprintln!(
        "CRI floor: {} pods in bursts of {} every {} ms, straight to containerd",
        args.pods, args.burst, args.interval_ms
    );
    let (floor, sandboxes) = cri_floor(&node, &args).await?;
    let mut cri = CriClient::connect(&node.containerd().socket()).await?;
    for id in &sandboxes {
        cri.stop_pod_sandbox(id).await.ok();
        cri.remove_pod_sandbox(id).await.ok();
    }

    eprintln!(
        "through the API: {} pods in bursts of {} every {} ms (scheduler, agent, containerd)",
        args.pods, args.burst, args.interval_ms
    );
    let api_path = through_the_api(&kc, &args).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = procs.rss();

    eprintln!("deleting the pods...");
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("bench=node"),
    )
    .await
    .context("deleting the pods")?;
    let t = Instant::now();
    while !pods
        .list(&ListParams::default().labels("bench=node"))
        .await?
        .items
        .is_empty()
        && t.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    println!(
        "\nnode-bench: {} pods per path, bursts of {} every {} ms, one node (real containerd)\n",
        args.pods, args.burst, args.interval_ms
    );
    println!("| path | started | → bound p50 | p99 | → Running p50 | p99 | → Ready p50 | p99 |");
    println!("|---|---|---|---|---|---|---|---|");
    println!("{}", api_path.row("API (create → watch)", args.pods));
    println!("{}", floor.row("CRI floor (3 calls)", args.pods));
    let (mut a, mut f) = (api_path.ready.clone(), floor.ready.clone());
    a.sort();
    f.sort();
    if !f.is_empty() && !a.is_empty() {
        println!(
            "\nReady p99 / floor p99: {:.1}x; p50 / p50: {:.1}x",
            pct(&a, 0.99).as_secs_f64() / pct(&f, 0.99).as_secs_f64().max(1e-9),
            pct(&a, 0.5).as_secs_f64() / pct(&f, 0.5).as_secs_f64().max(1e-9)
        );
    }
    println!("\n| process | RSS idle | RSS with {} pods |", args.pods);
    println!("|---|---|---|");
    let mut totals = (0, 0);
    for ((name, i), (_, l)) in idle.iter().zip(loaded.iter()) {
        totals.0 += i;
        totals.1 += l;
        println!(
            "| {name} | {:.1} MiB | {:.1} MiB |",
            *i as f64 / 1024.0,
            *l as f64 / 1024.0
        );
    }
    println!(
        "| **total** | {:.1} MiB | {:.1} MiB |",
        totals.0 as f64 / 1024.0,
        totals.1 as f64 / 1024.0
    );
    drop(scheduler);
    drop(cm);
    drop(node);
    Ok(())
}
