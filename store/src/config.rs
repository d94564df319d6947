//! Command-line configuration, in etcd's flag vocabulary, with `STORE_*` environment
//! fallbacks (e.g. `STORE_NAME`, `STORE_DATA_DIR`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// An etcd-compatible replicated key-value store.
#[derive(Debug, Parser)]
#[command(name = "store", version, about)]
pub struct Cli {
    /// What to do; with none, run a member.
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Member flags.
    #[command(flatten)]
    pub server: ServerConfig,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Backup files.
    Snapshot {
        /// What to do with a backup.
        #[command(subcommand)]
        op: SnapshotOp,
    },
}

/// Backup operations.
#[derive(Debug, Subcommand)]
pub enum SnapshotOp {
    /// Creates a new member data dir from a backup (`etcdctl snapshot save` file); run it
    /// for every member with the same file and start them with `--initial-cluster-state new`.
    Restore(RestoreArgs),
}

/// `store snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// Member name of the restored data dir.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Where to create the data dir (must not exist).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Initial cluster state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterState {
    /// Bootstrap a new cluster with every member of `--initial-cluster`.
    New,
    /// Join a running cluster (after `member add`).
    Existing,
}

/// Flags of a member.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Human-readable name of this member.
    #[arg(long, env = "STORE_NAME", default_value = "default")]
    pub name: String,
    /// Directory of this member's database (default: `<name>.store`).
    #[arg(long, env = "STORE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic (comma-separated).
    #[arg(
        long,
        env = "STORE_LISTEN_CLIENT_URLS",
        default_value = "http://127.0.0.1:2379"
    )]
    pub listen_client_urls: String,
    /// Client URLs to advertise to the cluster (default: the listen URLs).
    #[arg(long, env = "STORE_ADVERTISE_CLIENT_URLS")]
    pub advertise_client_urls: Option<String>,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "STORE_LISTEN_PEER_URLS",
        default_value = "http://127.0.0.1:2380"
    )]
    pub listen_peer_urls: String,
    /// Peer URLs of this member as the others reach it.
    #[arg(
        long,
        env = "STORE_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://127.0.0.1:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster: `name=peer-url,...` (default: this member alone).
    #[arg(long, env = "STORE_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// `new` to bootstrap, `existing` to join.
    #[arg(
        long,
        env = "STORE_INITIAL_CLUSTER_STATE",
        value_enum,
        default_value = "new"
    )]
    pub initial_cluster_state: ClusterState,
    /// Token distinguishing clusters bootstrapped with the same members.
    #[arg(
        long,
        env = "STORE_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// URLs serving /health and /metrics over plain HTTP.
    #[arg(long, env = "STORE_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, env = "STORE_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Raft election timeout in milliseconds.
    #[arg(long, env = "STORE_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Applied entries between Raft snapshots (then the log is compacted).
    #[arg(long, env = "STORE_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Largest client request in bytes.
    #[arg(long, env = "STORE_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: usize,
    /// Most operations in one txn branch.
    #[arg(long, env = "STORE_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Refuse membership changes that could cost the cluster its quorum, as etcd's
    /// `--strict-reconfig-check`: adding a voter needs every voter connected for 5 s and
    /// enough started members; removing one needs the rest to keep a connected quorum.
    #[arg(
        long,
        env = "STORE_STRICT_RECONFIG_CHECK",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub strict_reconfig_check: bool,
    /// Backend quota in bytes; 0 means the default of 2 GiB.
    #[arg(long, env = "STORE_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Seconds between progress notifications to watchers that asked for them.
    #[arg(
        long,
        env = "STORE_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value_t = 600
    )]
    pub watch_progress_notify_interval: u64,
    /// Client server TLS certificate (PEM).
    #[arg(long, env = "STORE_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Client server TLS key (PEM).
    #[arg(long, env = "STORE_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// CA that signs client certificates.
    #[arg(long, env = "STORE_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate signed by `--trusted-ca-file`.
    #[arg(long, env = "STORE_CLIENT_CERT_AUTH")]
    pub client_cert_auth: bool,
    /// Peer TLS certificate (PEM), also presented as client certificate to peers.
    #[arg(long, env = "STORE_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// Peer TLS key (PEM).
    #[arg(long, env = "STORE_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// CA that signs peer certificates.
    #[arg(long, env = "STORE_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Require peers to present a certificate signed by `--peer-trusted-ca-file`.
    #[arg(long, env = "STORE_PEER_CLIENT_CERT_AUTH")]
    pub peer_client_cert_auth: bool,
}

/// Splits a comma-separated URL list.
pub fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

impl ServerConfig {
    /// The data dir, defaulting to `<name>.store`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.store", self.name)))
    }

    /// Advertised client URLs.
    pub fn client_urls(&self) -> Vec<String> {
        split_urls(
            self.advertise_client_urls
                .as_deref()
                .unwrap_or(&self.listen_client_urls),
        )
    }

    /// Advertised peer URLs.
    pub fn peer_urls(&self) -> Vec<String> {
        split_urls(&self.initial_advertise_peer_urls)
    }

    /// `--initial-cluster` as (name, peer URLs), in order of first appearance.
    pub fn initial_members(&self) -> anyhow::Result<Vec<(String, Vec<String>)>> {
        let default = format!("{}={}", self.name, self.initial_advertise_peer_urls);
        let spec = self.initial_cluster.clone().unwrap_or(default);
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for part in split_urls(&spec) {
            let (name, url) = part
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--initial-cluster: {part:?} is not name=url"))?;
            if !crate::node::valid_url(url) {
                anyhow::bail!(
                    "--initial-cluster: {url:?} is not a valid peer URL (scheme://host:port)"
                );
            }
            match out.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url.to_string()),
                None => out.push((name.to_string(), vec![url.to_string()])),
            }
        }
        Ok(out)
    }
}
