//! Cluster harness: starts members of our store (or real etcd) as processes on loopback.
//!
//! The same harness drives the etcdctl compatibility tests, the fault-injection tests and the
//! benchmark. Every member listens on `127.0.0.1` only, keeps its data and its log in a
//! per-cluster temporary directory, and is killed when the [`Cluster`] is dropped.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cluster_tests::{Cluster, ClusterConfig};
//! let cluster = Cluster::start(ClusterConfig::new(3)).await?;
//! let out = cluster.etcdctl(&["put", "k", "v"]);
//! assert!(out.status.success());
//! # Ok(()) }
//! ```

pub mod agent_double;
mod apiserver;
mod clients;
mod cluster;
mod component;
pub mod containerd;
mod etcdctl;
pub mod history;
pub mod http;
pub mod jepsen;
mod member;
mod membership;
pub mod memory;
mod node;
pub mod ports;
mod process;
mod restart_many;
mod tls;
pub mod wait;

use std::path::PathBuf;

pub use apiserver::{
    apiserver_binary, ApiCluster, ApiConfig, Identity, ADMIN_TOKEN, KUBECTL_BIN, UNTHROTTLED,
    VIEWER_TOKEN,
};
pub use cluster::Cluster;
pub use component::{component_binary, Component};
pub use containerd::{Containerd, BUSYBOX_IMAGE, PAUSE_IMAGE};
pub use etcdctl::{Etcdctl, EtcdctlProcess, ETCDCTL_BIN};
pub use node::ContainerdNode;
pub use process::{cpu_seconds, output_or_panic, rss_kib};
pub use tls::TlsFiles;

/// Re-exported so users of the harness need not name the exact crate version.
pub use etcd_client;

/// Which server binary the members run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Our `store` binary.
    Ours,
    /// The reference etcd 3.4 installed at `/usr/bin/etcd`.
    Etcd,
}

/// Path of the reference etcd server.
pub const ETCD_BIN: &str = "/usr/bin/etcd";

impl Flavor {
    /// `STORE_FLAVOR=etcd` selects [`Flavor::Etcd`]; anything else (or nothing) [`Flavor::Ours`].
    pub fn from_env() -> Flavor {
        match std::env::var("STORE_FLAVOR") {
            Ok(v) if v.eq_ignore_ascii_case("etcd") => Flavor::Etcd,
            _ => Flavor::Ours,
        }
    }

    /// The server binary of this flavor.
    ///
    /// For [`Flavor::Ours`]: `$STORE_BIN` if set, else `<target dir>/debug/store`, where the
    /// target dir is `$CARGO_TARGET_DIR` (relative paths are taken from the workspace root) or
    /// `<workspace root>/target`.
    pub fn binary(&self) -> PathBuf {
        match self {
            Flavor::Etcd => PathBuf::from(ETCD_BIN),
            Flavor::Ours => {
                if let Some(bin) = std::env::var_os("STORE_BIN").filter(|v| !v.is_empty()) {
                    return PathBuf::from(bin);
                }
                debug_dir().join("store")
            }
        }
    }

    /// Short lower-case name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Flavor::Ours => "store",
            Flavor::Etcd => "etcd",
        }
    }
}

/// `<target dir>/debug`, where the target dir is `$CARGO_TARGET_DIR` (relative paths are
/// taken from the workspace root) or `<workspace root>/target`.
pub fn debug_dir() -> PathBuf {
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    target.join("debug")
}

/// The users' example manifests: `$EXAMPLES_DIR` if set, else `<workspace root>/examples`.
pub fn examples_dir() -> PathBuf {
    let dir = std::env::var_os("EXAMPLES_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| workspace_root().join("examples"), PathBuf::from);
    assert!(
        dir.is_dir(),
        "the example manifests are not at {} (set EXAMPLES_DIR to their folder)",
        dir.display()
    );
    dir
}

/// The workspace root: the parent of this crate's manifest directory, fixed at compile time.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// What [`Cluster::start`] starts.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Number of members (1 or more).
    pub members: usize,
    /// Which binary to run.
    pub flavor: Flavor,
    /// Client and peer TLS with client-certificate authentication on both.
    pub tls: bool,
    /// Appended to every member's command line (e.g. `--quota-backend-bytes=...`).
    pub extra_args: Vec<String>,
}

impl ClusterConfig {
    /// `members` members of the flavor chosen by `STORE_FLAVOR`, plain text, no extra flags.
    pub fn new(members: usize) -> ClusterConfig {
        ClusterConfig {
            members,
            flavor: Flavor::from_env(),
            tls: false,
            extra_args: Vec::new(),
        }
    }

    /// Switches client and peer TLS on or off.
    pub fn tls(mut self, tls: bool) -> ClusterConfig {
        self.tls = tls;
        self
    }

    /// Adds one flag to every member's command line.
    pub fn arg(mut self, arg: impl Into<String>) -> ClusterConfig {
        self.extra_args.push(arg.into());
        self
    }
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig::new(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_manifests_ship_with_the_workspace() {
        let dir = workspace_root().join("examples");
        for file in ["README.md", "deployment-web.yaml", "pod-busybox.yaml"] {
            assert!(
                dir.join(file).is_file(),
                "{} is missing",
                dir.join(file).display()
            );
        }
    }
}
