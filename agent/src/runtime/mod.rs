//! The container runtime as the agent sees it: a trait mirroring CRI's runtime and image
//! services, with two implementations side by side: [`cri::CriRuntime`] (containerd's CRI
//! plugin over its Unix socket) and [`fake::FakeRuntime`] (in memory, for hollow nodes and
//! tests). Everything above this module knows only the trait.
//!
//! The request and answer types are the CRI's own (`proto::cri`), so the two implementations
//! and the pod logic speak the exact language of the kubelet's runtime interface.

mod cgroups;
pub mod cri;
pub mod fake;

use std::time::Duration;

use async_trait::async_trait;
pub use proto::cri as api;

/// Why a runtime call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// The sandbox, container or image does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The runtime could not be reached (socket missing, connection refused, restarting).
    #[error("container runtime unavailable: {0}")]
    Unavailable(String),
    /// A call's deadline passed.
    #[error("container runtime call timed out: {0}")]
    Timeout(String),
    /// The runtime refused or failed the call (bad config, failed to start, pull failed...).
    #[error("{0}")]
    Failed(String),
}

/// Result of a runtime call.
pub type Result<T> = std::result::Result<T, RuntimeError>;

/// One container as [`Runtime::container_states`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    /// CRI's `ContainerState` value.
    pub state: i32,
    /// The value of the label asked for ("" without it).
    pub label: String,
}

/// CRI's runtime and image services, the calls the agent makes. Every call is idempotent
/// where CRI says so (stop and remove of something already gone succeed).
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Runtime name and version (for `nodeInfo.containerRuntimeVersion`).
    async fn version(&self) -> Result<api::VersionResponse>;
    /// Runtime conditions (RuntimeReady, NetworkReady).
    async fn status(&self) -> Result<api::RuntimeStatus>;
    /// The pod CIDR new sandboxes take their IPs from (CRI UpdateRuntimeConfig).
    async fn update_runtime_config(&self, pod_cidr: &str) -> Result<()>;

    /// Creates and starts a sandbox; returns its id once it is ready.
    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String>;
    /// Stops every process of the sandbox and releases its network.
    async fn stop_pod_sandbox(&self, id: &str) -> Result<()>;
    /// Removes the sandbox and any container still in it.
    async fn remove_pod_sandbox(&self, id: &str) -> Result<()>;
    /// One sandbox's status (state, IP, labels); NotFound when it does not exist.
    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus>;
    /// The sandboxes matching `filter`.
    async fn list_pod_sandbox(&self, filter: api::PodSandboxFilter)
        -> Result<Vec<api::PodSandbox>>;

    /// Creates a container in a sandbox; returns its id.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String>;
    /// Starts a created container.
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Stops a container: SIGTERM, then SIGKILL after `timeout`.
    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()>;
    /// Removes a container.
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// The containers matching `filter`.
    async fn list_containers(&self, filter: api::ContainerFilter) -> Result<Vec<api::Container>>;
    /// What the relist compares between two listings (the kubelet's PLEG): the id and CRI
    /// state of each container matching `filter`, with its value of the label `key`. The
    /// default reads [`Runtime::list_containers`]; a runtime may answer without building
    /// whole container records (thousands of hollow nodes relist every second).
    async fn container_states(
        &self,
        filter: api::ContainerFilter,
        key: &str,
    ) -> Result<Vec<ContainerState>> {
        Ok(self
            .list_containers(filter)
            .await?
            .into_iter()
            .map(|c| ContainerState {
                label: c.labels.get(key).cloned().unwrap_or_default(),
                id: c.id,
                state: c.state,
            })
            .collect())
    }
    /// A number that changes whenever a sandbox or container may have changed: a relist (or
    /// housekeeping pass) that finds the same number as last time has nothing to compare.
    /// None (the default, and CRI's case): the runtime cannot tell, and every pass lists. The
    /// fake runtime counts its changes (thousands of hollow nodes relist every second,
    /// nearly always for nothing).
    async fn records_version(&self) -> Option<u64> {
        None
    }
    /// Whether the runtime writes container log files (that the agent rotates). The fake
    /// runtime writes none.
    fn writes_container_logs(&self) -> bool {
        true
    }
    /// One container's status (times, exit code, reason); NotFound when it does not exist.
    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus>;
    /// Runs a command in a container and waits for it (at most `timeout`).
    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse>;
    /// Prepares a streaming exec (`command`, with the streams and terminal it asks for) and
    /// returns the URL on the runtime's streaming server that serves it, once, to one client.
    async fn exec(&self, request: api::ExecRequest) -> Result<String>;
    /// Makes the runtime reopen the container's log file (after the agent renamed it to
    /// rotate it); a container that is not running has nothing to reopen and fails.
    async fn reopen_container_log(&self, id: &str) -> Result<()>;
    /// Usage of the containers matching `filter`.
    async fn list_container_stats(
        &self,
        filter: api::ContainerStatsFilter,
    ) -> Result<Vec<api::ContainerStats>>;

    /// The image if the runtime has it.
    async fn image_status(&self, image: &str) -> Result<Option<api::Image>>;
    /// Pulls an image; returns its reference.
    async fn pull_image(&self, image: &str) -> Result<String>;
}
