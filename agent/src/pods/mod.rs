//! The pods bound to this node: an informer on them ([`manager`]), one worker per pod
//! ([`worker`]) that reconciles the desired spec with what the runtime reports ([`sync`]),
//! and the pure pieces it is built from: sandbox and container configuration, environment,
//! images, volumes (and the ConfigMaps and Secrets they read), back-off, status computation;
//! plus the batched status writer and the event recorder.

pub mod backoff;
pub mod container;
pub mod env;
pub mod events;
pub mod hooks;
pub mod images;
pub mod labels;
pub mod manager;
pub mod objects;
pub mod probes;
pub mod sandbox;
pub mod status;
pub mod status_writer;
pub mod sync;
pub mod volumes;
pub mod worker;

use std::{path::PathBuf, sync::Arc};

use tokio::sync::Mutex;

use crate::runtime::Runtime;

/// What every pod worker shares.
pub struct PodCtx {
    pub client: kube::Client,
    pub runtime: Arc<dyn Runtime>,
    pub node: String,
    pub host_ip: String,
    /// Prefix of container ids in statuses (`containerd`, `fake`).
    pub runtime_name: String,
    pub root_dir: PathBuf,
    pub allow_privileged: bool,
    /// How often a quiet pod is synced again (its ConfigMap, Secret and downward API
    /// volumes re-read), as the kubelet's `--sync-frequency`.
    pub sync_frequency: std::time::Duration,
    pub node_cpus: u64,
    pub node_memory: u64,
    pub sandbox_env: sandbox::SandboxEnv,
    pub events: events::Recorder,
    pub status: status_writer::StatusWriter,
    /// Container restarts.
    pub backoff: Mutex<backoff::Backoff>,
    /// Image pulls after a failure.
    pub image_backoff: Mutex<backoff::Backoff>,
}

/// Shared pod context.
pub type Ctx = Arc<PodCtx>;
