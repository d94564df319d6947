//! The `scheduler` binary: flags (each with a `SCHEDULER_<FLAG>` environment fallback), the
//! configuration file, informers, leader election on a Lease, the HTTP endpoints and the
//! scheduling loop.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Parser};
use scheduler::{
    config::FileConfig,
    http,
    metrics::Metrics,
    run::{Scheduler, Settings},
};
use tokio::sync::watch;

/// jemalloc instead of glibc's malloc (BENCHMARKS.md, "Memory per object": measured with and
/// without at 30,000 pods).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Places pending pods on nodes.
#[derive(Debug, Parser)]
#[command(name = "scheduler", version)]
struct Opts {
    /// Kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "SCHEDULER_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Scheduler configuration file (KubeSchedulerConfiguration subset, YAML).
    #[arg(long, env = "SCHEDULER_CONFIG")]
    config: Option<PathBuf>,
    /// Pods whose spec.schedulerName is this are scheduled (the file's profile may set it).
    #[arg(
        long,
        env = "SCHEDULER_SCHEDULER_NAME",
        default_value = "default-scheduler"
    )]
    scheduler_name: String,
    /// Requests per second to the apiserver, on average (0 or negative: no limit). Leader
    /// election has a bucket of its own.
    #[arg(
        long,
        env = "SCHEDULER_KUBE_API_QPS",
        default_value_t = 50.0,
        allow_hyphen_values = true
    )]
    kube_api_qps: f32,
    /// Requests to the apiserver at once before --kube-api-qps holds them.
    #[arg(long, env = "SCHEDULER_KUBE_API_BURST", default_value_t = 100)]
    kube_api_burst: u32,
    /// Elect a leader among replicas through a Lease; only the leader schedules.
    #[arg(long, env = "SCHEDULER_LEADER_ELECT", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    leader_elect: bool,
    /// How long a Lease held by another replica must stay unrenewed before taking it over.
    #[arg(long, env = "SCHEDULER_LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = api::duration::parse)]
    leader_elect_lease_duration: Duration,
    /// How often to try to acquire or renew the Lease.
    #[arg(long, env = "SCHEDULER_LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = api::duration::parse)]
    leader_elect_retry_period: Duration,
    /// Name of the Lease.
    #[arg(
        long,
        env = "SCHEDULER_LEADER_ELECT_RESOURCE_NAME",
        default_value = "scheduler"
    )]
    leader_elect_resource_name: String,
    /// Namespace of the Lease.
    #[arg(
        long,
        env = "SCHEDULER_LEADER_ELECT_RESOURCE_NAMESPACE",
        default_value = "kube-system"
    )]
    leader_elect_resource_namespace: String,
    /// Address for /healthz and /metrics.
    #[arg(long, env = "SCHEDULER_BIND_ADDRESS", default_value = "127.0.0.1")]
    bind_address: std::net::IpAddr,
    /// Port for /healthz and /metrics (0: none).
    #[arg(long, env = "SCHEDULER_PORT", default_value_t = 10251)]
    port: u16,
}

fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "scheduler".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // Purge freed memory from a background thread: jemalloc otherwise returns it only
    // during later allocator calls, so after its first big list an idle process kept the
    // list's garbage resident (BENCHMARKS.md, "Memory per object").
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background purging not enabled");
    }
    let opts = Opts::parse();
    let file = match &opts.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let framework = file.framework().context("the scheduler configuration")?;
    let scheduler_name = file
        .scheduler_name()
        .unwrap_or(&opts.scheduler_name)
        .to_string();
    if opts.leader_elect && opts.leader_elect_lease_duration < Duration::from_secs(1) {
        bail!("--leader-elect-lease-duration must be at least 1s");
    }
    let throttle = client::throttle::Throttle::from_flags(opts.kube_api_qps, opts.kube_api_burst);
    let (client, _) = client::from_kubeconfig_throttled(opts.kubeconfig.as_deref(), None, throttle)
        .await
        .context("building the API client")?;
    let identity = identity();
    let settings = Settings {
        scheduler_name: scheduler_name.clone(),
        identity: identity.clone(),
    };
    let sched = Scheduler::new(client.clone(), framework, settings, Metrics::new()?);
    if opts.port != 0 {
        let addr = SocketAddr::new(opts.bind_address, opts.port);
        let listener_sched = sched.clone();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        tokio::spawn(async move {
            if let Err(e) = http::serve(listener, listener_sched).await {
                tracing::error!(error = %e, "HTTP server stopped");
                std::process::exit(1);
            }
        });
    }
    let (pods, nodes) = sched.informers();
    tokio::spawn(pods);
    tokio::spawn(nodes);
    tokio::spawn(sched.clone().flush_loop());
    while !sched.synced() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(scheduler_name, %identity, "caches synced");
    let leading = if opts.leader_elect {
        // As client-go's, leader election has its own client and bucket.
        let (election, _) =
            client::from_kubeconfig_throttled(opts.kubeconfig.as_deref(), None, throttle)
                .await
                .context("building the leader election client")?;
        let rx = client::leader::run(
            election,
            client::leader::Config {
                namespace: opts.leader_elect_resource_namespace.clone(),
                name: opts.leader_elect_resource_name.clone(),
                identity: identity.clone(),
                lease_duration: opts.leader_elect_lease_duration,
                retry_period: opts.leader_elect_retry_period,
            },
        );
        let mut log_rx = rx.clone();
        tokio::spawn(async move {
            let mut was = false;
            loop {
                let now = *log_rx.borrow_and_update();
                if now != was {
                    if now {
                        tracing::info!("became the leader; scheduling");
                    } else {
                        tracing::warn!("lost the lease; not scheduling");
                    }
                    was = now;
                }
                if log_rx.changed().await.is_err() {
                    return;
                }
            }
        });
        rx
    } else {
        // Keep the sender alive for the life of the process.
        let (tx, rx) = watch::channel(true);
        std::mem::forget(tx);
        rx
    };
    tokio::select! {
        _ = sched.clone().run(leading) => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let o = Opts::try_parse_from(["scheduler", "--leader-elect=false", "--port", "0"]).unwrap();
        assert!(!o.leader_elect);
        let o = Opts::try_parse_from(["scheduler", "--leader-elect"]).unwrap();
        assert!(o.leader_elect);
        assert_eq!(o.scheduler_name, "default-scheduler");
        assert_eq!(o.leader_elect_resource_name, "scheduler");
        assert_eq!(o.leader_elect_resource_namespace, "kube-system");
    }
}
