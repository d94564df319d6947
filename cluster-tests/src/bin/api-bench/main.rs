//! `api-bench`: the apiserver against the store it stands on, side by side in one run.
//!
//! It starts a 3-member store cluster (ours, or etcd 3.4 with `--store etcd`) and an apiserver
//! in front of it, then runs each workload twice: through the Kubernetes API (kube-rs, the
//! client our components use, HTTP/2 over TLS) and directly against the store (etcd-client, the
//! same JSON under the same keys). Progress goes to stderr, the table to stdout.

mod memory;
#[path = "../store-bench/stats.rs"]
#[allow(dead_code)]
mod stats;
mod workloads;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use cluster_tests::{ApiCluster, ApiConfig, ClusterConfig, Flavor};

/// The store under the apiserver.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Store {
    Ours,
    Etcd,
}

#[derive(Debug, Parser)]
#[command(
    name = "api-bench",
    about = "Measures the apiserver against direct store access (same store, same data) and \
             prints both."
)]
pub struct Args {
    /// The store under the apiserver.
    #[arg(long, value_enum, default_value = "ours")]
    store: Store,
    /// Operations measured by each create/get line.
    #[arg(long, default_value_t = 1000)]
    pub ops: usize,
    /// Concurrent clients of the concurrent create line.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Pods in the big LIST.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Watchers of the fan-out line.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Updates the fan-out writer makes.
    #[arg(long, default_value_t = 100)]
    pub events: usize,
    /// Instead of the workloads: create this many pods like a Deployment's (then update each
    /// one's status) on a 1-member store and print each process's memory per pod (issue 17).
    #[arg(long, default_value_t = 0)]
    pub memory_pods: usize,
    /// With --memory-pods: also create Nodes (one per 30 pods) and measure the scheduler and
    /// the controller-manager, started before the pods (idle) and again after them.
    #[arg(long)]
    pub memory_controllers: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let flavor = match args.store {
        Store::Ours => Flavor::Ours,
        Store::Etcd => Flavor::Etcd,
    };
    let members = if args.memory_pods > 0 { 1 } else { 3 };
    let mut cfg = ApiConfig::new();
    cfg.store = ClusterConfig {
        flavor,
        ..ClusterConfig::new(members)
    };
    eprintln!(
        "api-bench: starting a {members}-member {} cluster and an apiserver",
        flavor.name()
    );
    let cluster = ApiCluster::start(cfg)
        .await
        .context("starting the API cluster")?;
    if args.memory_pods > 0 {
        return memory::run(&cluster, &args).await;
    }
    let rows = workloads::run(&cluster, &args).await?;
    let store_name = match args.store {
        Store::Ours => "our store",
        Store::Etcd => "etcd 3.4",
    };
    println!(
        "\nAPI (kube-rs over HTTPS) vs the store directly (etcd-client); {store_name}, 3 members, \
         one apiserver\n"
    );
    println!("| workload | API | store direct | API p99 |");
    println!("|---|---|---|---|");
    let mut worst_p99: f64 = 0.0;
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.name,
            r.api,
            r.direct,
            r.api_p99_ms
                .map(|p| format!("{p:.1} ms"))
                .unwrap_or_else(|| "-".into())
        );
        if r.single_object {
            worst_p99 = worst_p99.max(r.api_p99_ms.unwrap_or(0.0));
        }
    }
    println!(
        "\nsingle-object API calls: worst p99 {worst_p99:.1} ms — target p99 < 50 ms {}",
        if worst_p99 < 50.0 { "holds" } else { "NOT met" }
    );
    Ok(())
}
