//! `scheduler-bench`: the scheduler's throughput in the way of Kubernetes' scheduler_perf.
//!
//! It starts a store and an apiserver, creates N Node objects directly (ready, allocatable
//! set; no agents), starts the `scheduler` binary, then creates M pods and watches them
//! through the API: pods bound per second (as the API reports them) and the p50/p99 of
//! create → bound. Each workload runs in its own namespace on the same nodes: `plain` pods
//! (only requests), and `mixed` ones (a quarter each with required node affinity, a toleration
//! of the taint every tenth node has plus a preferred affinity, a controller owner to spread,
//! and plain). Progress goes to stderr, the results to stdout, with the scheduler's resident
//! memory and the CPU each process (store, apiserver, scheduler, the benchmark's own clients)
//! used per pod, which tells where the machine's two cores went.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use cluster_tests::{
    cpu_seconds, ports, rss_kib, ApiCluster, ApiConfig, ClusterConfig, Component, Identity,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    Plain,
    Mixed,
    Both,
}

#[derive(Debug, Parser)]
#[command(
    name = "scheduler-bench",
    about = "Pods scheduled per second and create→bound latency."
)]
struct Args {
    /// Node objects to create.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Pods per workload.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Which pods.
    #[arg(long, value_enum, default_value = "both")]
    workload: Workload,
    /// Concurrent create requests.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Store members.
    #[arg(long, default_value_t = 1)]
    members: usize,
    /// Give up on a workload after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

fn node(i: usize) -> Value {
    let mut labels = json!({"kubernetes.io/hostname": format!("node-{i}"),
        "topology.kubernetes.io/zone": format!("zone-{}", i % 10)});
    if i.is_multiple_of(2) {
        labels["disk"] = json!("ssd");
    }
    let taints = if i.is_multiple_of(10) {
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    } else {
        json!([])
    };
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{i}"), "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})
}

fn pod(i: usize, mixed: bool) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i}")},
        "spec": {"containers": [{"name": "c", "image": "localhost/busybox:1.36",
            "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]}});
    if !mixed {
        return p;
    }
    match i % 4 {
        0 => {
            p["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}});
        }
        1 => {
            p["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);
            p["spec"]["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-0", "zone-1"]}]}}]}});
        }
        2 => {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("rs-{}", i % 20), "uid": format!("00000000-0000-0000-0000-{:012}", i % 20),
                "controller": true}]);
        }
        _ => {}
    }
    p
}

/// Percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

struct Outcome {
    bound: usize,
    elapsed: Duration,
    peak_per_sec: usize,
    p50: Duration,
    p99: Duration,
}

async fn run_workload(
    client: &kube::Client,
    args: &Args,
    ns: &str,
    mixed: bool,
) -> Result<Outcome> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await
        .with_context(|| format!("creating namespace {ns}"))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let bound_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // Watch first, so no binding is missed.
    let watch = {
        let bound_at = bound_at.clone();
        let stream = watcher(pods.clone(), watcher::Config::default()).applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Ok(Some(p)) = stream.try_next().await {
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                    let name = p.metadata.name.unwrap_or_default();
                    bound_at
                        .lock()
                        .unwrap()
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    let creator = {
        let pods = pods.clone();
        let created = created.clone();
        let n = args.pods;
        let clients = args.clients;
        tokio::spawn(async move {
            futures::stream::iter(0..n)
                .map(|i| {
                    let pods = pods.clone();
                    let created = created.clone();
                    async move {
                        let p: Pod = serde_json::from_value(pod(i, mixed))?;
                        let t = Instant::now();
                        pods.create(&PostParams::default(), &p).await?;
                        created.lock().unwrap().insert(format!("pod-{i}"), t);
                        anyhow::Ok(())
                    }
                })
                .buffer_unordered(clients)
                .try_collect::<Vec<()>>()
                .await
        })
    };
    let deadline = start + Duration::from_secs(args.timeout);
    let mut last = 0;
    let mut peak = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (c, b) = (
            created.lock().unwrap().len(),
            bound_at.lock().unwrap().len(),
        );
        peak = peak.max(b - last);
        eprintln!(
            "  {ns}: {:>5.1}s created {c:>6}/{}  bound {b:>6}  (+{}/s)",
            start.elapsed().as_secs_f64(),
            args.pods,
            b - last
        );
        last = b;
        if b >= args.pods {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("  {ns}: timed out");
            break;
        }
        if creator.is_finished() && c < args.pods {
            break;
        }
    }
    if creator.is_finished() {
        creator.await??;
    }
    watch.abort();
    let created = created.lock().unwrap();
    let bound_at = bound_at.lock().unwrap();
    let mut lat: Vec<Duration> = bound_at
        .iter()
        .filter_map(|(n, b)| created.get(n).map(|c| b.saturating_duration_since(*c)))
        .collect();
    lat.sort();
    let last_bound = bound_at.values().max().copied().unwrap_or(start);
    Ok(Outcome {
        bound: bound_at.len(),
        elapsed: last_bound.saturating_duration_since(start),
        peak_per_sec: peak,
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut cfg = ApiConfig::new();
    cfg.store = ClusterConfig::new(args.members);
    eprintln!(
        "scheduler-bench: starting a {}-member store and an apiserver",
        args.members
    );
    let cluster = ApiCluster::start(cfg)
        .await
        .context("starting the API cluster")?;
    let kubeconfig = cluster.kubeconfig(Identity::Admin);
    let client = client::from_kubeconfig(Some(&kubeconfig), None).await?.0;

    eprintln!("creating {} nodes", args.nodes);
    let nodes: Api<Node> = Api::all(client.clone());
    let t = Instant::now();
    futures::stream::iter(0..args.nodes)
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                let v = node(i);
                let n: Node = serde_json::from_value(v.clone())?;
                nodes.create(&PostParams::default(), &n).await?;
                let name = format!("node-{i}");
                nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"status": v["status"]})),
                    )
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.clients)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "  {} nodes in {:.1}s",
        args.nodes,
        t.elapsed().as_secs_f64()
    );

    let port = ports::allocate()?;
    let sched = Component::start(
        "scheduler",
        &[
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--port={port}"),
            "--leader-elect=false".into(),
        ],
        cluster.dir(),
    )?;
    let pid = sched.pid().context("scheduler pid")?;
    // Wait until the scheduler has every node in its cache.
    let t = Instant::now();
    loop {
        let body = tokio::process::Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let nodes_cached = body
            .lines()
            .find(|l| l.starts_with("scheduler_cache_size{type=\"nodes\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<usize>().ok());
        if nodes_cached == Some(args.nodes) {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!(
                "the scheduler did not cache the nodes: {}",
                sched.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "scheduler synced {} nodes in {:.1}s, RSS {} KiB",
        args.nodes,
        t.elapsed().as_secs_f64(),
        rss_kib(pid).unwrap_or(0)
    );

    let mut rows = Vec::new();
    let workloads: &[(&str, bool)] = match args.workload {
        Workload::Plain => &[("plain", false)],
        Workload::Mixed => &[("mixed", true)],
        Workload::Both => &[("plain", false), ("mixed", true)],
    };
    let procs = [
        ("store", cluster.store.pid(0)),
        ("apiserver", cluster.apiserver_pid(0)),
        ("scheduler", Some(pid)),
        ("bench clients", Some(std::process::id())),
    ];
    let cpu = || procs.map(|(_, p)| p.and_then(cpu_seconds).unwrap_or(0.0));
    let mut cpu_rows = Vec::new();
    for (name, mixed) in workloads {
        eprintln!(
            "workload {name}: {} pods on {} nodes",
            args.pods, args.nodes
        );
        let before = cpu();
        let o = run_workload(&client, &args, &format!("bench-{name}"), *mixed).await?;
        let after = cpu();
        let rss = rss_kib(pid).unwrap_or(0);
        let per_pod: Vec<f64> = after
            .iter()
            .zip(before)
            .map(|(a, b)| (a - b) * 1e3 / o.bound.max(1) as f64)
            .collect();
        cpu_rows.push((name.to_string(), per_pod));
        rows.push((name.to_string(), o, rss));
    }
    println!(
        "\nscheduler-bench: {} nodes, {} pods per workload, {} create clients, {}-member store\n",
        args.nodes, args.pods, args.clients, args.members
    );
    println!("| workload | bound | pods/s (avg) | pods/s (peak 1 s) | create→bound p50 | p99 | scheduler RSS |");
    println!("|---|---|---|---|---|---|---|");
    for (name, o, rss) in &rows {
        let rate = o.bound as f64 / o.elapsed.as_secs_f64().max(1e-9);
        println!(
            "| {name} | {}/{} | {rate:.0} | {} | {:.0} ms | {:.0} ms | {:.1} MiB |",
            o.bound,
            args.pods,
            o.peak_per_sec,
            o.p50.as_secs_f64() * 1000.0,
            o.p99.as_secs_f64() * 1000.0,
            *rss as f64 / 1024.0
        );
    }
    println!("\nCPU per pod bound (ms; user + system):\n");
    println!("| workload | {} | all |", procs.map(|(n, _)| n).join(" | "));
    println!("|---|{}---|", "---|".repeat(procs.len()));
    for (name, per_pod) in &cpu_rows {
        let cells: Vec<String> = per_pod.iter().map(|v| format!("{v:.2}")).collect();
        println!(
            "| {name} | {} | {:.2} |",
            cells.join(" | "),
            per_pod.iter().sum::<f64>()
        );
    }
    drop(sched);
    Ok(())
}
