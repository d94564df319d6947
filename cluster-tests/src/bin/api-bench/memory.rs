//! `api-bench --memory-pods N`: each control-plane process's resident memory per pod (issue 17).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cluster_tests::{memory, rss_kib, ApiCluster, Identity};

use crate::Args;

/// Waits until `pid`'s resident memory has changed by less than 1% over 3 s (the process has
/// taken in what it lists), at most `limit`; returns it in KiB.
async fn settled_rss(pid: u32, limit: Duration) -> u64 {
    let start = Instant::now();
    let mut last = rss_kib(pid).unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = rss_kib(pid).unwrap_or(0);
        if now.abs_diff(last) * 100 <= last || start.elapsed() >= limit {
            return now;
        }
        last = now;
    }
}

pub async fn run(api: &ApiCluster, args: &Args) -> Result<()> {
    let client = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await?
        .0;
    let apiserver = api
        .apiserver_pid(0)
        .context("the apiserver is not running")?;
    let store = api.store.pid(0).context("the store is not running")?;
    let mut work = memory::Pods::new(args.memory_pods);
    if args.memory_controllers {
        work.nodes = args.memory_pods.div_ceil(30);
        work.create_nodes = true;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_api = rss_kib(apiserver).unwrap_or(0);
    let idle_store = rss_kib(store).unwrap_or(0);
    let mut idle_controllers = (0, 0);
    if args.memory_controllers {
        eprintln!("api-bench: scheduler and controller-manager on the empty cluster");
        let (s, c) = api.start_controllers_with(&[cluster_tests::UNTHROTTLED])?;
        let (sp, cp) = (s.pid().unwrap_or(0), c.pid().unwrap_or(0));
        idle_controllers = (
            settled_rss(sp, Duration::from_secs(20)).await,
            settled_rss(cp, Duration::from_secs(20)).await,
        );
    }
    eprintln!(
        "api-bench: {} pods over {} nodes, then a status update of each",
        work.pods, work.nodes
    );
    let t = Instant::now();
    memory::create_pods(&client, &work).await?;
    eprintln!("api-bench: written in {:.1} s", t.elapsed().as_secs_f64());
    let api_kib = settled_rss(apiserver, Duration::from_secs(30)).await;
    let sizes = memory::object_sizes(&client, "/api/v1/pods").await?;
    // The list itself allocates in the apiserver: the figure is the one taken before it.
    let mut rows = vec![
        memory::ObjectMemory {
            process: "apiserver".into(),
            idle_kib: idle_api,
            after_kib: api_kib,
            objects: sizes.count,
            mean_object_bytes: sizes.mean_bytes,
        },
        memory::object_memory("store", store, idle_store, &sizes).context("the store is gone")?,
    ];
    if args.memory_controllers {
        eprintln!("api-bench: scheduler and controller-manager on the full cluster");
        let (s, c) = api.start_controllers_with(&[cluster_tests::UNTHROTTLED])?;
        let (sp, cp) = (s.pid().unwrap_or(0), c.pid().unwrap_or(0));
        let s_kib = settled_rss(sp, Duration::from_secs(120)).await;
        let c_kib = settled_rss(cp, Duration::from_secs(120)).await;
        for (process, idle, after) in [
            ("scheduler", idle_controllers.0, s_kib),
            ("controller-manager", idle_controllers.1, c_kib),
        ] {
            rows.push(memory::ObjectMemory {
                process: process.into(),
                idle_kib: idle,
                after_kib: after,
                objects: sizes.count,
                mean_object_bytes: sizes.mean_bytes,
            });
        }
    }
    println!(
        "\nMemory per pod: {} pods like a Deployment's (each created, then its status updated), \
         {} nodes; 1-member store\n",
        sizes.count, work.nodes
    );
    print!("{}", memory::table(&rows));
    let total: u64 = rows.iter().map(|r| r.after_kib).sum();
    println!(
        "\ncontrol plane in all: {:.1} MiB resident",
        total as f64 / 1024.0
    );
    Ok(())
}
