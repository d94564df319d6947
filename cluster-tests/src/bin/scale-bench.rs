//! `scale-bench`: N hollow nodes and pods through Deployments, measured as Kubernetes' SIG
//! Scalability measures its density test (ClusterLoader2):
//!
//! - API call latency, p99 per verb and resource, from the apiserver's own
//!   `apiserver_request_duration_seconds` histogram over the run (as ClusterLoader2's
//!   APIResponsiveness does), against the SLOs: single-object calls ≤ 1 s, LIST ≤ 30 s;
//! - pod start-up latency, as the density test takes it: once the saturation pods run,
//!   latency pods (single-replica Deployments) are created at a steady rate, and each one's
//!   creation (seen by a watch) to Running with every container ready (seen by the same
//!   watch) gives p50/p90/p99 against the SLO of 5 s;
//! - scheduling throughput: pods bound per second, average and peak;
//! - each process's resident memory (idle, peak) and CPU (while pods are created, and at rest
//!   once all run: the cost of holding N nodes), the store's database size, and the
//!   bytes each holds per stored object next to the objects' serialized size.
//!
//! It starts a store, an apiserver, the scheduler, the controller-manager and one
//! `hollow-nodes` process (the real agent, many in one process, on the fake runtime).
//! Progress goes to stderr, the results (Markdown) to stdout.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use cluster_tests::{
    component_binary, cpu_seconds, rss_kib, ApiCluster, ApiConfig, ClusterConfig, Component,
    Identity, BUSYBOX_IMAGE,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Node, Pod},
};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    name = "scale-bench",
    about = "N hollow nodes, pods through Deployments; API latency, pod start-up, scheduling \
             throughput, memory and CPU, as SIG Scalability measures them."
)]
struct Args {
    /// Hollow nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Pods per node (the density test's 30).
    #[arg(long, default_value_t = 30)]
    pods_per_node: usize,
    /// Replicas of each Deployment (the last one takes the rest).
    #[arg(long, default_value_t = 500)]
    replicas: usize,
    /// Namespaces the Deployments are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Store members.
    #[arg(long, default_value_t = 1)]
    members: usize,
    /// Hollow nodes started per second.
    #[arg(long, default_value_t = 200.0)]
    start_rate: f64,
    /// Latency pods (single-replica Deployments) created after the saturation pods run.
    #[arg(long, default_value_t = 500)]
    latency_pods: usize,
    /// Latency pods created per second.
    #[arg(long, default_value_t = 10.0)]
    latency_qps: f64,
    /// The scheduler's and controller-manager's `--kube-api-qps` (Kubernetes' 5,000-node
    /// scalability job runs both at 100; -1 lifts the limit).
    #[arg(long, default_value_t = 100.0, allow_hyphen_values = true)]
    kube_api_qps: f32,
    /// Their `--kube-api-burst` (the same job: 100).
    #[arg(long, default_value_t = 100)]
    kube_api_burst: u32,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Seconds of rest measured once every pod runs: each process's CPU with nothing but the
    /// nodes' heartbeats and the agents' own loops (what holding N nodes costs).
    #[arg(long, default_value_t = 30)]
    steady: u64,
    /// Keep the cluster running this many seconds after the results, for profiling (the
    /// processes' PIDs are printed on stderr).
    #[arg(long, default_value_t = 0)]
    hold: u64,
}

/// The Deployment `name` in `ns` of `replicas` pods labelled `phase` (saturation or latency).
fn deployment(name: &str, replicas: usize, phase: &str) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "scale-bench": phase}},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "app", "image": BUSYBOX_IMAGE,
                                         "command": ["sleep", "infinity"],
                                         "resources": {"requests": {"cpu": "1m", "memory": "10Mi"}}}]},
            },
        },
    }))?)
}

/// What the watch saw of one pod: when it appeared, was bound, and ran with every
/// container ready.
#[derive(Default, Clone, Copy)]
struct PodTimes {
    /// A latency pod (else a saturation one).
    latency: bool,
    created: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
}

fn spawn_watch(
    pods: Api<Pod>,
    seen: Arc<Mutex<HashMap<String, PodTimes>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let cfg = watcher::Config::default().labels("scale-bench");
        let mut stream = watcher(pods, cfg).boxed();
        loop {
            let ev = match stream.try_next().await {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("  pod watch: {e}; resuming");
                    continue;
                }
            };
            let p = match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => p,
                _ => continue,
            };
            let now = Instant::now();
            let Some(uid) = p.metadata.uid.clone() else {
                continue;
            };
            let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let running = p.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("Running")
                    && s.conditions.as_ref().is_some_and(|c| {
                        c.iter()
                            .any(|c| c.type_ == "ContainersReady" && c.status == "True")
                    })
            });
            let Ok(mut s) = seen.lock() else { break };
            let latency = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("scale-bench"))
                .is_some_and(|v| v == "latency");
            let t = s.entry(uid).or_default();
            t.latency = latency;
            t.created.get_or_insert(now);
            if bound {
                t.bound.get_or_insert(now);
            }
            if running {
                t.running.get_or_insert(now);
            }
        }
    })
}

/// Waits until `done` holds, printing progress every few seconds; returns the time it took.
async fn phase<F>(what: &str, timeout: u64, mut done: F) -> Result<Duration>
where
    F: FnMut() -> (bool, String),
{
    let t = Instant::now();
    let mut last = Instant::now() - Duration::from_secs(60);
    loop {
        let (ok, progress) = done();
        if last.elapsed() >= Duration::from_secs(5) || ok {
            eprintln!("  [{:>6.1}s] {what}: {progress}", t.elapsed().as_secs_f64());
            last = Instant::now();
        }
        if ok {
            return Ok(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(timeout) {
            bail!("{what}: not done after {timeout} s ({progress})");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The processes measured, by name.
struct Procs(Vec<(&'static str, u32)>);

/// Samples each process's resident memory every second, keeping the peak.
fn spawn_rss_sampler(procs: Vec<(&'static str, u32)>) -> Arc<Mutex<BTreeMap<&'static str, u64>>> {
    let peaks: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
    let p = peaks.clone();
    tokio::spawn(async move {
        loop {
            for (name, pid) in &procs {
                let kib = rss_kib(*pid).unwrap_or(0);
                if let Ok(mut m) = p.lock() {
                    let e = m.entry(*name).or_insert(0);
                    *e = (*e).max(kib);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    peaks
}

/// One latency histogram: bucket bounds and cumulative counts.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    count: f64,
}

/// The apiserver's API call latency histograms by (verb, resource).
const API_CALLS: (&str, [&str; 2]) = ("apiserver_request_duration_seconds", ["verb", "resource"]);
/// The apiserver's store call latency histograms by (operation, type).
const STORE_CALLS: (&str, [&str; 2]) = ("etcd_request_duration_seconds", ["operation", "type"]);

/// The histograms of `metric` (API_CALLS, STORE_CALLS) by their two labels, from a /metrics
/// text.
fn parse_histograms(
    text: &str,
    (name, [a, b]): (&str, [&str; 2]),
) -> BTreeMap<(String, String), Histogram> {
    let mut out: BTreeMap<(String, String), Histogram> = BTreeMap::new();
    let key = |l: &BTreeMap<String, String>| {
        let get = |k: &str| l.get(k).cloned().unwrap_or_default();
        (get(a), get(b))
    };
    for (labels, value) in series(text, &format!("{name}_bucket")) {
        let le = match labels.get("le").map(String::as_str) {
            Some("+Inf") => f64::INFINITY,
            Some(v) => v.parse().unwrap_or(0.0),
            None => continue,
        };
        out.entry(key(&labels))
            .or_default()
            .buckets
            .push((le, value));
    }
    for (labels, value) in series(text, &format!("{name}_count")) {
        out.entry(key(&labels)).or_default().count = value;
    }
    for h in out.values_mut() {
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Every series of the metric `name` in a /metrics text: its labels and value.
fn series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let labels = if labels.is_empty() {
            ""
        } else {
            match labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
                Some(l) => l,
                None => continue,
            }
        };
        let labels = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        out.push((labels, value.parse().unwrap_or(0.0)));
    }
    out
}

/// One resource's part of the apiserver's watch cache, from its gauges.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct CacheSize {
    objects: f64,
    /// Of which held compressed.
    packed: f64,
    /// Bytes the objects take (the packed ones compressed).
    object_bytes: f64,
    window_events: f64,
    window_bytes: f64,
}

/// The apiserver's watch cache per resource, from its gauges.
fn cache_sizes(text: &str) -> BTreeMap<String, CacheSize> {
    let mut out: BTreeMap<String, CacheSize> = BTreeMap::new();
    let resource = |l: &BTreeMap<String, String>| l.get("resource").cloned().unwrap_or_default();
    for (l, v) in series(text, "apiserver_storage_objects") {
        out.entry(resource(&l)).or_default().objects = v;
    }
    for (l, v) in series(text, "apiserver_watch_cache_packed_objects") {
        out.entry(resource(&l)).or_default().packed = v;
    }
    for (l, v) in series(text, "apiserver_watch_cache_bytes") {
        let e = out.entry(resource(&l)).or_default();
        match l.get("part").map(String::as_str) {
            Some("objects") => e.object_bytes = v,
            Some("window") => e.window_bytes = v,
            _ => {}
        }
    }
    for (l, v) in series(text, "apiserver_watch_cache_window_events") {
        out.entry(resource(&l)).or_default().window_events = v;
    }
    out
}

/// `after - before`, bucket by bucket.
fn delta(after: &Histogram, before: Option<&Histogram>) -> Histogram {
    let Some(b) = before else {
        return after.clone();
    };
    Histogram {
        buckets: after
            .buckets
            .iter()
            .map(|(le, c)| {
                let prev = b
                    .buckets
                    .iter()
                    .find(|(l, _)| l == le)
                    .map(|x| x.1)
                    .unwrap_or(0.0);
                (*le, c - prev)
            })
            .collect(),
        count: after.count - b.count,
    }
}

/// The q-quantile as Prometheus' histogram_quantile computes it (linear within a bucket).
fn quantile(h: &Histogram, q: f64) -> Option<f64> {
    let total = h.buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, c) in &h.buckets {
        if c >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = c - lower.1;
            let frac = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * frac);
        }
        lower = (le, c);
    }
    Some(lower.0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

async fn metrics_text(kc: &kube::Client) -> Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    Ok(kc.request_text(req).await?)
}

/// The store's database size in bytes (Maintenance.Status of the first member).
async fn store_db_size(api: &ApiCluster) -> Option<i64> {
    let urls = api.store.client_urls();
    let mut c = cluster_tests::etcd_client::Client::connect(&urls[..1], None)
        .await
        .ok()?;
    c.status().await.ok().map(|s| s.db_size())
}

/// The first store member's /metrics text; None for a store that does not serve it.
async fn store_metrics_text(api: &ApiCluster) -> Option<String> {
    let url = format!("{}/metrics", api.store.metrics_url(0));
    match cluster_tests::http::get(&url).await {
        Ok((200, text)) => Some(text),
        _ => None,
    }
}

/// The store's memory by part (`store_memory_bytes`): RocksDB's memtables, table readers
/// and block cache. Empty for a store that does not export it (etcd).
fn store_memory(text: &str) -> Vec<(String, f64)> {
    series(text, "store_memory_bytes")
        .into_iter()
        .map(|(l, v)| (l.get("part").cloned().unwrap_or_default(), v))
        .collect()
}

/// The store's compactions: how many, the longest time one held the applier (the upper
/// bound of the highest bucket reached, seconds), records deleted in the background and
/// still waiting. None for a store that does not export them (etcd).
fn store_compactions(text: &str) -> Option<(f64, f64, f64, f64)> {
    let pause = parse_histograms(text, ("store_compaction_index_pause_seconds", ["", ""]));
    let h = pause.values().next()?;
    let longest = quantile(h, 1.0).unwrap_or(0.0);
    let one = |name: &str| series(text, name).first().map(|(_, v)| *v).unwrap_or(0.0);
    Some((
        h.count,
        longest,
        one("etcd_debugging_mvcc_db_compaction_keys_total"),
        one("store_compaction_pending_revisions"),
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let total = args.nodes * args.pods_per_node;
    if total == 0 || args.replicas == 0 || args.namespaces == 0 {
        bail!("--nodes, --pods-per-node, --replicas and --namespaces must be at least 1");
    }
    if !component_binary("hollow-nodes").is_file() {
        bail!(
            "hollow-nodes not found at {} (build it with `cargo build --workspace --bins`)",
            component_binary("hollow-nodes").display()
        );
    }
    eprintln!(
        "scale-bench: {} hollow nodes, {} pods ({} per node) in Deployments of {}",
        args.nodes, total, args.pods_per_node, args.replicas
    );
    eprintln!(
        "starting the store ({} member(s)), apiserver, scheduler, controller-manager...",
        args.members
    );
    let mut cfg = ApiConfig::new();
    cfg.store = ClusterConfig::new(args.members);
    // Every hollow node's pod watch asks for bookmarks: at the tests' one a second they were
    // thousands of bookmarks a second that no real cluster sends.
    cfg.bookmark_interval = None;
    let api = ApiCluster::start(cfg).await?;
    let admin = api.kubeconfig(Identity::Admin);
    let (scheduler, cm) = api.start_controllers_with(&[
        &format!("--kube-api-qps={}", args.kube_api_qps),
        &format!("--kube-api-burst={}", args.kube_api_burst),
    ])?;
    let kc = client::from_kubeconfig(Some(&admin), None).await?.0;

    eprintln!("starting {} hollow nodes...", args.nodes);
    let started = Instant::now();
    let hollow = Component::start(
        "hollow-nodes",
        &[
            format!("--nodes={}", args.nodes),
            format!("--kubeconfig={}", admin.display()),
            format!("--start-rate={}", args.start_rate),
            format!("--root-dir={}", api.dir().join("hollow").display()),
            "--".into(),
            "--node-ip=127.0.0.1".into(),
            format!("--max-pods={}", args.pods_per_node.max(110)),
        ],
        api.dir(),
    )?;
    let nodes: Api<Node> = Api::all(kc.clone());
    let ready_nodes = Arc::new(Mutex::new(0usize));
    {
        let ready_nodes = ready_nodes.clone();
        let nodes = nodes.clone();
        let want = args.nodes;
        tokio::spawn(async move {
            loop {
                let n = nodes
                    .list(&Default::default())
                    .await
                    .map(|l| l.items.iter().filter(|n| node_ready(n)).count())
                    .unwrap_or(0);
                if let Ok(mut r) = ready_nodes.lock() {
                    *r = n;
                }
                if n >= want {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
    let nodes_up = phase("hollow nodes Ready", args.timeout, || {
        let n = ready_nodes.lock().map(|r| *r).unwrap_or(0);
        (n >= args.nodes, format!("{n}/{}", args.nodes))
    })
    .await?;
    let _ = started;

    let procs = Procs(vec![
        ("store", api.store.pid(0).unwrap_or(0)),
        ("apiserver", api.apiserver_pid(0).unwrap_or(0)),
        ("scheduler", scheduler.pid().unwrap_or(0)),
        ("controller-manager", cm.pid().unwrap_or(0)),
        ("hollow-nodes", hollow.pid().unwrap_or(0)),
    ]);
    // Settle, then take the idle figures.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss: BTreeMap<&str, u64> = procs
        .0
        .iter()
        .map(|(n, pid)| (*n, rss_kib(*pid).unwrap_or(0)))
        .collect();
    let cpu_before: BTreeMap<&str, f64> = procs
        .0
        .iter()
        .map(|(n, pid)| (*n, cpu_seconds(*pid).unwrap_or(0.0)))
        .collect();
    let text_before = metrics_text(&kc).await?;
    let metrics_before = parse_histograms(&text_before, API_CALLS);
    let store_before = parse_histograms(&text_before, STORE_CALLS);
    let peaks = spawn_rss_sampler(procs.0.clone());

    let seen: Arc<Mutex<HashMap<String, PodTimes>>> = Arc::default();
    let watch = spawn_watch(Api::all(kc.clone()), seen.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    eprintln!(
        "creating {} namespaces and the Deployments...",
        args.namespaces
    );
    let namespaces: Api<Namespace> = Api::all(kc.clone());
    for i in 0..args.namespaces {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("scale-{i}")}}))?;
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace scale-{i}"))?;
    }
    let t0 = Instant::now();
    let mut left = total;
    let mut d_index = 0;
    while left > 0 {
        let n = args.replicas.min(left);
        left -= n;
        let ns = format!("scale-{}", d_index % args.namespaces);
        let name = format!("density-{d_index}");
        let d = deployment(&name, n, "saturation")?;
        Api::<Deployment>::namespaced(kc.clone(), &ns)
            .create(&PostParams::default(), &d)
            .await
            .with_context(|| format!("creating deployment {ns}/{name}"))?;
        d_index += 1;
    }
    eprintln!("{d_index} Deployments created; waiting for {total} pods to run:");
    let counts = |latency: bool| {
        seen.lock()
            .map(|s| {
                let of_phase = || s.values().filter(|t| t.latency == latency);
                let c = of_phase().count();
                let b = of_phase().filter(|t| t.bound.is_some()).count();
                let r = of_phase().filter(|t| t.running.is_some()).count();
                (c, b, r)
            })
            .unwrap_or((0, 0, 0))
    };
    let all_running = phase("saturation pods", args.timeout, || {
        let (c, b, r) = counts(false);
        (
            r >= total,
            format!(
                "created {c} bound {b} running {r} ({:.0}/s running)",
                r as f64 / t0.elapsed().as_secs_f64().max(1e-9)
            ),
        )
    })
    .await?;

    // Latency pods: single-replica Deployments at a steady rate on the loaded cluster.
    eprintln!(
        "creating {} latency pods at {}/s...",
        args.latency_pods, args.latency_qps
    );
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.latency_qps.max(0.01)));
    for i in 0..args.latency_pods {
        tick.tick().await;
        let ns = format!("scale-{}", i % args.namespaces);
        let name = format!("latency-{i}");
        Api::<Deployment>::namespaced(kc.clone(), &ns)
            .create(&PostParams::default(), &deployment(&name, 1, "latency")?)
            .await
            .with_context(|| format!("creating deployment {ns}/{name}"))?;
    }
    phase("latency pods", args.timeout, || {
        let (c, b, r) = counts(true);
        (
            r >= args.latency_pods,
            format!("created {c} bound {b} running {r}"),
        )
    })
    .await?;
    watch.abort();
    let measured = t0.elapsed();

    let cpu_after: BTreeMap<&str, f64> = procs
        .0
        .iter()
        .map(|(n, pid)| (*n, cpu_seconds(*pid).unwrap_or(0.0)))
        .collect();
    let steady_rss: BTreeMap<&str, u64> = procs
        .0
        .iter()
        .map(|(n, pid)| (*n, rss_kib(*pid).unwrap_or(0)))
        .collect();

    // LIST latency, as a client sees it, and the objects' serialized size.
    eprintln!("listing every pod 3 times...");
    let mut list_times = Vec::new();
    let mut pod_bytes = 0usize;
    let mut listed = 0usize;
    for _ in 0..3 {
        let t = Instant::now();
        let req = http::Request::get("/api/v1/pods").body(Vec::new())?;
        let text = kc.request_text(req).await?;
        list_times.push(t.elapsed());
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        listed = items.len();
        pod_bytes = items
            .iter()
            .map(|i| serde_json::to_vec(i).map(|b| b.len()).unwrap_or(0))
            .sum();
    }
    let metrics_text_after = metrics_text(&kc).await?;
    let metrics_after = parse_histograms(&metrics_text_after, API_CALLS);
    let store_after = parse_histograms(&metrics_text_after, STORE_CALLS);
    let caches = cache_sizes(&metrics_text_after);
    let db_size = store_db_size(&api).await;
    let store_text = store_metrics_text(&api).await.unwrap_or_default();
    let store_mem = store_memory(&store_text);
    let compactions = store_compactions(&store_text);

    // At rest: every pod runs, nothing is created; what is left is the nodes' own work.
    eprintln!("measuring {} s at rest...", args.steady);
    let rest_before: BTreeMap<&str, f64> = procs
        .0
        .iter()
        .map(|(n, pid)| (*n, cpu_seconds(*pid).unwrap_or(0.0)))
        .collect();
    let rest_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.steady)).await;
    let rest_secs = rest_started.elapsed().as_secs_f64().max(1e-9);
    let rest_cores: BTreeMap<&str, f64> = procs
        .0
        .iter()
        .map(|(n, pid)| {
            let used = cpu_seconds(*pid).unwrap_or(0.0) - rest_before.get(n).unwrap_or(&0.0);
            (*n, used / rest_secs)
        })
        .collect();
    let peaks = peaks.lock().map(|m| m.clone()).unwrap_or_default();

    // Pod start-up latency and scheduling throughput from the watch.
    let times: Vec<PodTimes> = seen
        .lock()
        .map(|s| s.values().copied().collect())
        .unwrap_or_default();
    let startup_of = |latency: bool| {
        let mut v: Vec<Duration> = times
            .iter()
            .filter(|t| t.latency == latency)
            .filter_map(|t| Some(t.running?.duration_since(t.created?)))
            .collect();
        v.sort();
        v
    };
    let startup = startup_of(true);
    let saturation_startup = startup_of(false);
    let mut bound_at: Vec<Instant> = times
        .iter()
        .filter(|t| !t.latency)
        .filter_map(|t| t.bound)
        .collect();
    bound_at.sort();
    let (sched_avg, sched_peak) = match (bound_at.first(), bound_at.last()) {
        (Some(first), Some(last)) => {
            let span = last.duration_since(*first).as_secs_f64().max(1e-9);
            let mut per_sec: BTreeMap<u64, usize> = BTreeMap::new();
            for b in &bound_at {
                *per_sec
                    .entry(b.duration_since(*first).as_secs())
                    .or_default() += 1;
            }
            (
                bound_at.len() as f64 / span,
                per_sec.values().copied().max().unwrap_or(0),
            )
        }
        _ => (0.0, 0),
    };

    let limits = if args.kube_api_qps > 0.0 {
        format!(
            "--kube-api-qps={} --kube-api-burst={}",
            args.kube_api_qps, args.kube_api_burst
        )
    } else {
        "no client-side limit".to_string()
    };
    println!(
        "\nscale-bench: {} hollow nodes, {} pods ({} per node), Deployments of {}, {} store \
         member(s); scheduler and controller-manager at {limits}\n",
        args.nodes, total, args.pods_per_node, args.replicas, args.members
    );
    println!("| phase | time |");
    println!("|---|---|");
    println!("| hollow nodes Ready | {:.1} s |", nodes_up.as_secs_f64());
    println!(
        "| saturation: Deployments created → all {total} pods running | {:.1} s ({:.0} pods/s) |",
        all_running.as_secs_f64(),
        total as f64 / all_running.as_secs_f64().max(1e-9)
    );

    println!(
        "\n| pod start-up latency (create → running, watched) | {} latency pods at {}/s | SLO | \
         (saturation pods, queued behind each other) |",
        startup.len(),
        args.latency_qps
    );
    println!("|---|---|---|---|");
    for (q, name) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
        let v = pct(&startup, q);
        let sat = pct(&saturation_startup, q);
        let ok = if q == 0.99 {
            if v <= Duration::from_secs(5) {
                "≤ 5 s: met"
            } else {
                "≤ 5 s: MISSED"
            }
        } else {
            ""
        };
        println!(
            "| {name} | {:.2} s | {ok} | {:.2} s |",
            v.as_secs_f64(),
            sat.as_secs_f64()
        );
    }
    println!(
        "\nscheduling throughput: {sched_avg:.0} pods/s on average (first to last bind), peak \
         {sched_peak} in one second\n"
    );

    println!("| API call (verb resource) | calls | p99 | SLO |");
    println!("|---|---|---|---|");
    for ((verb, resource), after) in &metrics_after {
        if verb.eq_ignore_ascii_case("watch") {
            continue;
        }
        let h = delta(after, metrics_before.get(&(verb.clone(), resource.clone())));
        if h.count < 1.0 {
            continue;
        }
        let p99 = quantile(&h, 0.99).unwrap_or(0.0);
        let slo = if verb.eq_ignore_ascii_case("list") {
            30.0
        } else {
            1.0
        };
        println!(
            "| {verb} {resource} | {:.0} | {:.0} ms | ≤ {slo:.0} s: {} |",
            h.count,
            p99 * 1000.0,
            if p99 <= slo { "met" } else { "MISSED" }
        );
    }
    println!(
        "\nThe apiserver's calls to the store in the same time (`etcd_request_duration_seconds`): \
         what of an API call's time the store took\n"
    );
    println!("| store call (operation type) | calls | p50 | p99 |");
    println!("|---|---|---|---|");
    for (key, after) in &store_after {
        let h = delta(after, store_before.get(key));
        if h.count < 1.0 {
            continue;
        }
        println!(
            "| {} {} | {:.0} | {:.0} ms | {:.0} ms |",
            key.0,
            key.1,
            h.count,
            quantile(&h, 0.5).unwrap_or(0.0) * 1000.0,
            quantile(&h, 0.99).unwrap_or(0.0) * 1000.0
        );
    }
    let mut lt = list_times.clone();
    lt.sort();
    println!(
        "\nLIST of all {listed} pods from a client: {:.2} s at worst of 3 (≤ 30 s); {:.0} bytes of \
         JSON per pod\n",
        lt.last().map(|d| d.as_secs_f64()).unwrap_or(0.0),
        pod_bytes as f64 / listed.max(1) as f64
    );

    println!("| process | RSS idle (nodes only) | RSS with all pods | peak | CPU while pods were created (both phases) | CPU at rest, all pods running |");
    println!("|---|---|---|---|---|---|");
    let mib = |k: u64| k as f64 / 1024.0;
    let mut control_plane = 0u64;
    for (name, _) in &procs.0 {
        let cpu = cpu_after.get(name).unwrap_or(&0.0) - cpu_before.get(name).unwrap_or(&0.0);
        let steady = steady_rss.get(name).copied().unwrap_or(0);
        if *name != "hollow-nodes" {
            control_plane += steady;
        }
        println!(
            "| {name} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} s ({:.2} cores) | {:.3} cores |",
            mib(idle_rss.get(name).copied().unwrap_or(0)),
            mib(steady),
            mib(peaks.get(name).copied().unwrap_or(0)),
            cpu,
            cpu / measured.as_secs_f64().max(1e-9),
            rest_cores.get(name).copied().unwrap_or(0.0)
        );
    }
    println!(
        "\ncontrol plane (store, apiserver, scheduler, controller-manager): {:.1} MiB resident \
         with all pods (goal < 1024 MiB)",
        mib(control_plane)
    );
    let per_pod = |name: &str| {
        let grew = steady_rss
            .get(name)
            .copied()
            .unwrap_or(0)
            .saturating_sub(idle_rss.get(name).copied().unwrap_or(0));
        grew as f64 * 1024.0 / total as f64
    };
    let ser = pod_bytes as f64 / listed.max(1) as f64;
    println!(
        "bytes per pod (growth of RSS from idle / pods; the pods' events and the Deployments' \
         ReplicaSets included): apiserver {:.0} ({:.1}× the {ser:.0}-byte pod), store {:.0} \
         ({:.1}×); store database {}",
        per_pod("apiserver"),
        per_pod("apiserver") / ser.max(1.0),
        per_pod("store"),
        per_pod("store") / ser.max(1.0),
        db_size
            .map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
            .unwrap_or_else(|| "unknown".into())
    );
    if !store_mem.is_empty() {
        let parts: Vec<String> = store_mem
            .iter()
            .map(|(part, v)| format!("{part} {:.1} MiB", v / 1048576.0))
            .collect();
        println!(
            "store memory held by RocksDB with all pods: {}",
            parts.join(", ")
        );
    }
    if let Some((count, longest, deleted, pending)) = compactions {
        println!(
            "store compactions: {count:.0}, the longest holding the applier up to {:.0} ms; \
             {deleted:.0} compacted records deleted in the background, {pending:.0} still \
             waiting",
            longest * 1000.0
        );
    }
    println!(
        "\n| apiserver watch cache | objects | of which packed (idle, compressed) | objects' bytes | window events | window JSON |"
    );
    println!("|---|---|---|---|---|---|");
    for (resource, c) in &caches {
        if c.objects == 0.0 && c.window_events == 0.0 {
            continue;
        }
        println!(
            "| {resource} | {:.0} | {:.0} | {:.1} MiB | {:.0} | {:.1} MiB |",
            c.objects,
            c.packed,
            c.object_bytes / 1048576.0,
            c.window_events,
            c.window_bytes / 1048576.0
        );
    }
    if args.hold > 0 {
        let pids: Vec<String> = procs.0.iter().map(|(n, p)| format!("{n}={p}")).collect();
        eprintln!(
            "holding the cluster for {} s for profiling: {}",
            args.hold,
            pids.join(" ")
        );
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }
    drop(hollow);
    Ok(())
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = r#"# HELP apiserver_request_duration_seconds x
apiserver_request_duration_seconds_bucket{verb="POST",resource="pods",le="0.1"} 90
apiserver_request_duration_seconds_bucket{verb="POST",resource="pods",le="0.2"} 99
apiserver_request_duration_seconds_bucket{verb="POST",resource="pods",le="0.4"} 100
apiserver_request_duration_seconds_bucket{verb="POST",resource="pods",le="+Inf"} 100
apiserver_request_duration_seconds_sum{verb="POST",resource="pods"} 5
apiserver_request_duration_seconds_count{verb="POST",resource="pods"} 100
"#;

    #[test]
    fn p99_from_the_histogram_as_prometheus_interpolates() {
        let h = parse_histograms(METRICS, API_CALLS);
        assert!(parse_histograms(METRICS, STORE_CALLS).is_empty());
        let post = &h[&("POST".to_string(), "pods".to_string())];
        assert_eq!(post.count, 100.0);
        assert_eq!(post.buckets.len(), 4);
        // Rank 99 is the 9th of the 9 calls between 0.1 and 0.2.
        let p99 = quantile(post, 0.99).unwrap();
        assert!((p99 - 0.2).abs() < 1e-9, "{p99}");
        let p50 = quantile(post, 0.5).unwrap();
        assert!((p50 - 0.1 * 50.0 / 90.0).abs() < 1e-9, "{p50}");
    }

    #[test]
    fn cache_sizes_come_from_the_gauges() {
        let text = "# HELP apiserver_storage_objects x\n\
            apiserver_storage_objects{resource=\"pods\"} 30\n\
            apiserver_watch_cache_bytes{part=\"objects\",resource=\"pods\"} 3000\n\
            apiserver_watch_cache_bytes{part=\"window\",resource=\"pods\"} 500\n\
            apiserver_watch_cache_window_events{resource=\"pods\"} 5\n\
            apiserver_watch_cache_packed_objects{resource=\"pods\"} 20\n\
            apiserver_storage_objects_other{resource=\"x\"} 1\n";
        let got = cache_sizes(text);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got["pods"],
            CacheSize {
                objects: 30.0,
                packed: 20.0,
                object_bytes: 3000.0,
                window_events: 5.0,
                window_bytes: 500.0
            }
        );
    }

    #[test]
    fn store_compactions_read_the_unlabelled_series() {
        let text = "# TYPE store_compaction_index_pause_seconds histogram
store_compaction_index_pause_seconds_bucket{le=\"0.001\"} 1
store_compaction_index_pause_seconds_bucket{le=\"0.002\"} 1
store_compaction_index_pause_seconds_bucket{le=\"0.004\"} 3
store_compaction_index_pause_seconds_bucket{le=\"0.008\"} 3
store_compaction_index_pause_seconds_bucket{le=\"+Inf\"} 3
store_compaction_index_pause_seconds_sum 0.009
store_compaction_index_pause_seconds_count 3
store_compaction_pending_revisions 12
etcd_debugging_mvcc_db_compaction_keys_total 4000
";
        assert_eq!(store_compactions(text), Some((3.0, 0.004, 4000.0, 12.0)));
        assert_eq!(store_compactions("etcd_server_has_leader 1\n"), None);
    }

    #[test]
    fn delta_subtracts_the_calls_before_the_run() {
        let before = parse_histograms(METRICS, API_CALLS);
        let key = ("POST".to_string(), "pods".to_string());
        let d = delta(&before[&key], before.get(&key));
        assert_eq!(d.count, 0.0);
        assert_eq!(quantile(&d, 0.99), None);
    }
}
