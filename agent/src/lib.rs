//! The node agent (our kubelet): registers its Node, renews its Lease, reports node status,
//! and runs the Pods bound to it through a [`runtime::Runtime`]: containerd's CRI, or an
//! in-memory fake for hollow nodes. Everything is reconciled from the desired Pod spec and
//! what the runtime reports, so a restarted agent adopts what it finds.

pub mod config;
pub mod logs;
pub mod machine;
pub mod node;
pub mod pods;
pub mod runtime;
pub mod server;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio::sync::Mutex;

use config::{Flags, RuntimeKind};
use machine::PressureSource;
use node::NodeCtx;
use pods::{
    backoff::Backoff, events::Recorder, sandbox::SandboxEnv, status_writer::StatusWriter, PodCtx,
};
use runtime::{
    cri::CriRuntime,
    fake::{FakeConfig, FakeRuntime},
    Runtime,
};

/// Runs the agent until the process ends.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    std::fs::create_dir_all(&flags.root_dir)
        .with_context(|| format!("creating the root dir {}", flags.root_dir.display()))?;
    let (client, _) = client::from_kubeconfig(Some(&flags.kubeconfig), None)
        .await
        .context("loading the kubeconfig")?;
    let runtime: Arc<dyn Runtime> = match flags.runtime {
        RuntimeKind::Cri => Arc::new(
            CriRuntime::connect(
                &flags.container_runtime_endpoint,
                flags.runtime_request_timeout,
            )
            .context("the CRI endpoint")?,
        ),
        RuntimeKind::Fake => Arc::new(FakeRuntime::new(fake_config(
            &flags,
            Some(flags.root_dir.join("fake-runtime.json")),
        ))),
    };
    let machine = machine::read_machine(&flags.root_dir);
    let pressure = PressureSource::Host(flags.root_dir.clone());
    run_node(Setup {
        flags: Arc::new(flags),
        client,
        runtime,
        machine,
        pressure,
        serve_api: true,
    })
    .await
}

/// The fake runtime as the flags describe it; `state_file` keeps its state across restarts.
pub fn fake_config(flags: &Flags, state_file: Option<std::path::PathBuf>) -> FakeConfig {
    FakeConfig {
        start_latency: flags.fake_start_latency,
        fail_rate: flags.fake_fail_rate,
        images: (!flags.fake_images.is_empty()).then(|| flags.fake_images.clone()),
        state_file,
        pod_cidr: flags.pod_cidr.clone().unwrap_or_default(),
    }
}

/// What one agent runs with. A process hosting many agents (hollow nodes) gives each its own
/// flags and runtime, shares the API clients and the machine's description, and reads no
/// pressure.
pub struct Setup {
    pub flags: Arc<Flags>,
    pub client: kube::Client,
    pub runtime: Arc<dyn Runtime>,
    pub machine: machine::MachineInfo,
    pub pressure: PressureSource,
    /// Serve the agent API (logs, exec, stats) when the flags give its TLS files.
    pub serve_api: bool,
}

/// Runs one agent (registration, lease, node status, pods) until the process ends.
pub async fn run_node(setup: Setup) -> anyhow::Result<()> {
    let Setup {
        flags,
        client,
        runtime,
        machine,
        pressure,
        serve_api,
    } = setup;
    let name = flags.node_name();
    let ip = match &flags.node_ip {
        Some(ip) => ip.parse().with_context(|| format!("--node-ip {ip:?}"))?,
        None => machine::default_ip(),
    };
    std::fs::create_dir_all(&flags.root_dir)
        .with_context(|| format!("creating the root dir {}", flags.root_dir.display()))?;
    let runtime_name = match tokio::time::timeout(Duration::from_secs(5), runtime.version()).await {
        Ok(Ok(v)) => {
            tracing::info!(runtime = %v.runtime_name, version = %v.runtime_version, "container runtime");
            v.runtime_name
        }
        _ => match flags.runtime {
            RuntimeKind::Cri => "containerd".into(),
            RuntimeKind::Fake => "fake".into(),
        },
    };
    let node_ctx = NodeCtx {
        client: client.clone(),
        name: name.clone(),
        ip,
        flags: flags.clone(),
        machine: machine.clone(),
        pressure,
        runtime: runtime.clone(),
    };
    loop {
        match node::registration::register(&node_ctx).await {
            Ok(()) => break,
            Err(e @ node::registration::RegistrationError::BadFlag(_)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "registering the node; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    tokio::spawn(node::lease::run(node_ctx.clone()));
    tokio::spawn(node::pod_cidr::run(node_ctx.clone()));
    tokio::spawn(node::status::run(node_ctx));
    let log_root = flags.root_dir.join("logs");
    if runtime.writes_container_logs() {
        tokio::spawn(logs::rotate::run(
            runtime.clone(),
            name.clone(),
            log_root.clone(),
            logs::rotate::Limits {
                max_size: flags.container_log_max_size,
                max_files: flags.container_log_max_files,
            },
            flags.container_log_monitor_interval,
        ));
    }
    if serve_api {
        start_api(&flags, &name, runtime.clone(), log_root.clone()).await?;
    }
    let host_dns = pods::sandbox::parse_resolv_conf(
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    );
    let ctx = Arc::new(PodCtx {
        client: client.clone(),
        runtime,
        node: name.clone(),
        host_ip: ip.to_string(),
        runtime_name,
        root_dir: flags.root_dir.clone(),
        allow_privileged: flags.allow_privileged,
        sync_frequency: flags.sync_frequency,
        node_cpus: machine.cpus,
        node_memory: machine.memory_bytes,
        sandbox_env: SandboxEnv {
            node: name.clone(),
            log_root,
            cgroup_root: match flags.runtime {
                RuntimeKind::Cri => flags.cgroup_root.clone(),
                RuntimeKind::Fake => String::new(),
            },
            cluster_dns: flags.cluster_dns.clone(),
            cluster_domain: flags.cluster_domain.clone(),
            host_dns,
            node_memory: machine.memory_bytes,
        },
        events: Recorder::start(client.clone(), name.clone()),
        status: StatusWriter::start(client),
        backoff: Mutex::new(Backoff::containers()),
        image_backoff: Mutex::new(Backoff::containers()),
    });
    tracing::info!(node = %name, ip = %ip, "agent running");
    pods::manager::run(ctx, flags.relist_period).await;
    Ok(())
}

/// Starts the agent API (logs, exec, stats, health, metrics) when its TLS files are given.
async fn start_api(
    flags: &Flags,
    node: &str,
    runtime: Arc<dyn Runtime>,
    log_root: std::path::PathBuf,
) -> anyhow::Result<()> {
    let Some(tls) = server::tls_files(
        flags.tls_cert_file.as_deref(),
        flags.tls_private_key_file.as_deref(),
        flags.client_ca_file.as_deref(),
    ) else {
        tracing::warn!(
            "the agent API is not served: --tls-cert-file, --tls-private-key-file and \
             --client-ca-file are all needed (kubectl logs/exec/top will fail for this node)"
        );
        return Ok(());
    };
    let ctx = Arc::new(server::ServerCtx {
        runtime,
        node: node.to_string(),
        log_root,
        policy: server::auth::Policy::new(&flags.authorized_users, &flags.authorized_groups),
        stats: Default::default(),
        metrics: Default::default(),
    });
    // Bind before going on, so that a taken port or a bad certificate stops the agent.
    let config = server::tls_config(&tls)?;
    let listener = tokio::net::TcpListener::bind((flags.address.as_str(), flags.port))
        .await
        .with_context(|| format!("binding the agent API to {}:{}", flags.address, flags.port))?;
    tracing::info!(address = %flags.address, port = flags.port, "serving the agent API (HTTPS)");
    tokio::spawn(server::stats::run(ctx.clone()));
    tokio::spawn(server::accept(listener, config, server::router(ctx)));
    Ok(())
}
