//! `controller-bench`: the controller-manager's throughput, as issue 12 asks: a Deployment of
//! N replicas from create to every pod created, bound and ready, then a rollout of it
//! (`kubectl rollout restart`) until every replica is updated and available.
//!
//! It starts a store, an apiserver, the scheduler, the controller-manager and hollow nodes:
//! real agents on the fake runtime (`agent --runtime fake`, each with `--max-pods`), so pods
//! become Running and Ready as on real nodes and the rollout's maxUnavailable/maxSurge
//! arithmetic is exercised for real. The hollow agents use the admin identity (one
//! certificate for all). Progress goes to stderr, the results (a Markdown table) to stdout,
//! with each component's resident memory.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use cluster_tests::{ports, rss_kib, ApiCluster, ApiConfig, Component, Identity, BUSYBOX_IMAGE};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Node, Pod},
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    name = "controller-bench",
    about = "A Deployment of N replicas: create → all created/bound/ready, then a rollout."
)]
struct Args {
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 10_000)]
    replicas: usize,
    /// Hollow nodes (agents on the fake runtime).
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// Pods each hollow node takes.
    #[arg(long, default_value_t = 220)]
    max_pods: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

/// Pods seen by the watch: every name, those bound, those ready (current generation only).
#[derive(Default)]
struct Seen {
    created: HashSet<String>,
    bound: HashSet<String>,
    ready: HashSet<String>,
}

fn spawn_watch(pods: Api<Pod>, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let cfg = watcher::Config::default().labels("app=bench");
        let mut stream = watcher(pods, cfg).applied_objects().boxed();
        while let Ok(Some(p)) = stream.try_next().await {
            let name = p.metadata.name.clone().unwrap_or_default();
            let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let Ok(mut s) = seen.lock() else { break };
            s.created.insert(name.clone());
            if bound {
                s.bound.insert(name.clone());
            }
            if ready {
                s.ready.insert(name);
            }
        }
    })
}

/// Waits until `done` holds, printing progress; returns the time it took.
async fn phase<F, Fut>(what: &str, timeout: u64, mut done: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, String)>,
{
    let t = Instant::now();
    let mut last = Instant::now() - Duration::from_secs(10);
    loop {
        let (ok, progress) = done().await;
        if last.elapsed() >= Duration::from_secs(1) || ok {
            eprintln!("  [{:>5.1}s] {what}: {progress}", t.elapsed().as_secs_f64());
            last = Instant::now();
        }
        if ok {
            return Ok(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(timeout) {
            bail!("{what}: not done after {timeout} s ({progress})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.agents * args.max_pods < args.replicas {
        bail!(
            "{} hollow nodes × {} pods cannot hold {} replicas",
            args.agents,
            args.max_pods,
            args.replicas
        );
    }
    eprintln!("starting store, apiserver, scheduler, controller-manager...");
    let api = ApiCluster::start(ApiConfig::new()).await?;
    let kubeconfig = format!("--kubeconfig={}", api.kubeconfig(Identity::Admin).display());
    let (scheduler, cm) = api.start_controllers_with(&[cluster_tests::UNTHROTTLED])?;
    eprintln!(
        "starting {} hollow nodes (--max-pods {})...",
        args.agents, args.max_pods
    );
    let mut agents = Vec::new();
    for i in 0..args.agents {
        let root = api.dir().join(format!("hollow-{i}"));
        agents.push(Component::start(
            "agent",
            &[
                kubeconfig.clone(),
                format!("--hostname-override=hollow-{i}"),
                "--node-ip=127.0.0.1".into(),
                "--runtime=fake".into(),
                format!("--root-dir={}", root.display()),
                format!("--max-pods={}", args.max_pods),
                format!("--port={}", ports::allocate()?),
            ],
            api.dir(),
        )?);
    }
    let kc = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await?
        .0;
    let nodes: Api<Node> = Api::all(kc.clone());
    phase("hollow nodes Ready", 120, || async {
        let ready = nodes
            .list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|n| {
                        n.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count()
            })
            .unwrap_or(0);
        (ready >= args.agents, format!("{ready}/{}", args.agents))
    })
    .await?;

    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let watch = spawn_watch(pods.clone(), seen.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deployments: Api<Deployment> = Api::namespaced(kc.clone(), "default");
    let n = args.replicas;
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": n,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "app", "image": BUSYBOX_IMAGE,
                                         "command": ["sleep", "infinity"]}]},
            },
        },
    }))?;
    eprintln!("Deployment of {n} replicas:");
    let t0 = Instant::now();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .context("creating the deployment")?;
    let counts = |seen: &Arc<Mutex<Seen>>| {
        let s = seen
            .lock()
            .map(|s| (s.created.len(), s.bound.len(), s.ready.len()));
        s.unwrap_or((0, 0, 0))
    };
    let created = phase("created", args.timeout, || async {
        let (c, b, r) = counts(&seen);
        (c >= n, format!("created {c} bound {b} ready {r}"))
    })
    .await?;
    let bound = phase("bound", args.timeout, || async {
        let (c, b, r) = counts(&seen);
        (b >= n, format!("created {c} bound {b} ready {r}"))
    })
    .await?
        + created;
    let ready = phase("available", args.timeout, || async {
        let status = deployments.get("bench").await.ok().and_then(|d| d.status);
        let avail = status.and_then(|s| s.available_replicas).unwrap_or(0) as usize;
        let (_, _, r) = counts(&seen);
        (
            avail >= n,
            format!("pods ready {r}, deployment available {avail}"),
        )
    })
    .await?
        + bound;
    let rss_steady = [
        ("store", api.store.pid(0)),
        ("apiserver", api.apiserver_pid(0)),
        ("scheduler", scheduler.pid()),
        ("controller-manager", cm.pid()),
    ]
    .map(|(name, pid)| (name, pid.and_then(rss_kib).unwrap_or(0)));
    let _ = t0;

    eprintln!("rollout (kubectl rollout restart):");
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": k8s_openapi::jiff::Timestamp::now().to_string()}}}}});
    let generation = deployments
        .patch("bench", &PatchParams::default(), &Patch::Merge(&patch))
        .await?
        .metadata
        .generation
        .unwrap_or(0);
    let rollout = phase("rolled out", args.timeout, || async {
        let d = deployments.get("bench").await.ok();
        let s = d
            .as_ref()
            .and_then(|d| d.status.clone())
            .unwrap_or_default();
        let done = s.observed_generation.unwrap_or(0) >= generation
            && s.updated_replicas.unwrap_or(0) as usize == n
            && s.available_replicas.unwrap_or(0) as usize == n
            && s.replicas.unwrap_or(0) as usize == n;
        (
            done,
            format!(
                "updated {} available {} total {}",
                s.updated_replicas.unwrap_or(0),
                s.available_replicas.unwrap_or(0),
                s.replicas.unwrap_or(0)
            ),
        )
    })
    .await?;
    watch.abort();

    println!(
        "\ncontroller-bench: a Deployment of {n} replicas on {} hollow nodes (fake runtime, --max-pods {})\n",
        args.agents, args.max_pods
    );
    println!("| phase | time | pods/s |");
    println!("|---|---|---|");
    let rate = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    for (what, d) in [
        ("create → all pods created", created),
        ("create → all pods bound", bound),
        ("create → all available", ready),
        ("rollout restart → all updated and available", rollout),
    ] {
        println!("| {what} | {:.1} s | {:.0} |", d.as_secs_f64(), rate(d));
    }
    println!("\n| process | RSS with {n} pods |");
    println!("|---|---|");
    for (name, kib) in rss_steady {
        println!("| {name} | {:.1} MiB |", kib as f64 / 1024.0);
    }
    let agents_rss: u64 = agents
        .iter()
        .map(|a| a.pid().and_then(rss_kib).unwrap_or(0))
        .sum();
    println!(
        "| {} hollow agents | {:.1} MiB in all |",
        args.agents,
        agents_rss as f64 / 1024.0
    );
    drop(agents);
    Ok(())
}
