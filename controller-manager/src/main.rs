//! The controller-manager binary: flags, `/healthz` and `/metrics`, leader election through a
//! Lease, then every enabled controller on the shared runner. Losing the Lease ends the process
//! (as kube-controller-manager does), so a restarted replica starts from fresh caches.

mod config;
mod controllers;
mod http;
mod pod_view;
mod pods;
mod pool;

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use client::leader;

use crate::config::Config;

/// jemalloc instead of glibc's malloc (BENCHMARKS.md, "Memory per object": measured with and
/// without at 30,000 pods).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Purge freed memory from a background thread: jemalloc otherwise returns it only
    // during later allocator calls, so after its first big list an idle process kept the
    // list's garbage resident (BENCHMARKS.md, "Memory per object").
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background purging not enabled");
    }
    let config = Config::parse();
    if let Err(e) = run(config).await {
        eprintln!("controller-manager: {e:#}");
        std::process::exit(1);
    }
}

fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

async fn run(config: Config) -> Result<()> {
    let throttle =
        client::throttle::Throttle::from_flags(config.kube_api_qps, config.kube_api_burst);
    let (client, _) =
        client::from_kubeconfig_throttled(config.kubeconfig.as_deref(), None, throttle)
            .await
            .context("building the API client")?;
    let registry = prometheus::Registry::new();
    let metrics = client::controller::Metrics::register(&registry)?;
    let leading = if config.leader_elect {
        let id = identity();
        tracing::info!(identity = %id, lease = %config.leader_elect_resource_name, "waiting to lead");
        // As client-go's, leader election has its own client and bucket.
        let (election, _) =
            client::from_kubeconfig_throttled(config.kubeconfig.as_deref(), None, throttle)
                .await
                .context("building the leader election client")?;
        Some(leader::run(
            election,
            leader::Config {
                namespace: config.leader_elect_resource_namespace.clone(),
                name: config.leader_elect_resource_name.clone(),
                identity: id,
                lease_duration: config.leader_elect_lease_duration,
                retry_period: config.leader_elect_retry_period,
            },
        ))
    } else {
        None
    };
    if config.port != 0 {
        let addr = std::net::SocketAddr::new(config.bind_address, config.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        tokio::spawn(http::serve(listener, Arc::new(registry)));
    }
    if let Some(mut rx) = leading.clone() {
        rx.wait_for(|l| *l)
            .await
            .context("leader election stopped")?;
        tracing::info!("became leader; starting controllers");
    }
    let ctx = controllers::Ctx::new(client, config, metrics);
    let running = tokio::spawn(controllers::run(ctx));
    match leading {
        Some(mut rx) => {
            // Leadership lost: stop at once, before another replica acts on the same objects.
            let _ = rx.wait_for(|l| !*l).await;
            running.abort();
            anyhow::bail!("leader election lost")
        }
        None => {
            running.await.context("controllers ended")?;
            Ok(())
        }
    }
}
