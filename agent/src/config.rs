//! The agent's command line, in the kubelet's spirit; each flag also reads `AGENT_<FLAG>`
//! from the environment (upper case, `-` as `_`).

use std::{path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// Which runtime implementation runs the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// containerd (or any CRI runtime) on `--container-runtime-endpoint`.
    Cri,
    /// In memory: nothing runs (hollow nodes, scale tests).
    Fake,
}

/// Parses a size as a Kubernetes quantity (`10Mi`, `500k`, `1048576`) into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let q = api::quantity::parse(s).map_err(|e| format!("invalid size {s:?}: {e}"))?;
    let v = q.value();
    if v < 1.0 {
        return Err(format!("invalid size {s:?}: must be at least 1 byte"));
    }
    Ok(v as u64)
}

/// The node agent.
#[derive(Debug, Clone, Parser)]
#[command(name = "agent", version, about)]
pub struct Flags {
    /// Kubeconfig with this node's credentials (a client certificate for system:node:NAME).
    #[arg(long, env = "AGENT_KUBECONFIG")]
    pub kubeconfig: PathBuf,

    /// The Node's name (default: the host name, lower case).
    #[arg(long, env = "AGENT_HOSTNAME_OVERRIDE", alias = "node-name")]
    pub hostname_override: Option<String>,

    /// The address the Node advertises (InternalIP) and pods see as hostIP
    /// (default: the address of the default route's interface, else 127.0.0.1).
    #[arg(long, env = "AGENT_NODE_IP")]
    pub node_ip: Option<String>,

    /// Which runtime runs the pods.
    #[arg(long, env = "AGENT_RUNTIME", value_enum, default_value = "cri")]
    pub runtime: RuntimeKind,

    /// The CRI runtime's socket.
    #[arg(
        long,
        env = "AGENT_CONTAINER_RUNTIME_ENDPOINT",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    pub container_runtime_endpoint: String,

    /// Timeout of a runtime call.
    #[arg(long, env = "AGENT_RUNTIME_REQUEST_TIMEOUT", value_parser = api::duration::parse, default_value = "2m")]
    pub runtime_request_timeout: Duration,

    /// The agent's directory: pod directories (/etc/hosts), container logs, fake runtime state.
    #[arg(long, env = "AGENT_ROOT_DIR", default_value = "/var/lib/agent")]
    pub root_dir: PathBuf,

    /// The pods' address range on this node (also `Node.spec.podCIDR`).
    #[arg(long, env = "AGENT_POD_CIDR")]
    pub pod_cidr: Option<String>,

    /// Labels the Node is registered with (`key=value,...`).
    #[arg(long, env = "AGENT_NODE_LABELS", value_delimiter = ',')]
    pub node_labels: Vec<String>,

    /// Taints the Node is registered with (`key=value:Effect,...`).
    #[arg(long, env = "AGENT_REGISTER_WITH_TAINTS", value_delimiter = ',')]
    pub register_with_taints: Vec<String>,

    /// Pods this node accepts (capacity `pods`).
    #[arg(long, env = "AGENT_MAX_PODS", default_value_t = 110)]
    pub max_pods: u32,

    /// The port the Node advertises for the agent's API (`daemonEndpoints.kubeletEndpoint`).
    #[arg(long, env = "AGENT_PORT", default_value_t = 10250)]
    pub port: u16,

    /// The address the agent's HTTPS API (logs, exec, stats) listens on.
    #[arg(long, env = "AGENT_ADDRESS", default_value = "0.0.0.0")]
    pub address: String,

    /// The agent API's serving certificate (PEM); with the key and the client CA, the API is
    /// served; without them it is not (and `kubectl logs`/`exec` fail for this node).
    #[arg(long, env = "AGENT_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// The private key of `--tls-cert-file`.
    #[arg(long, env = "AGENT_TLS_PRIVATE_KEY_FILE")]
    pub tls_private_key_file: Option<PathBuf>,

    /// The CA whose client certificates the agent API accepts (the cluster CA); clients
    /// without one are refused during the handshake.
    #[arg(long, env = "AGENT_CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// Users (client certificate CN) allowed the agent API's pod endpoints (logs, exec, stats).
    #[arg(
        long,
        env = "AGENT_AUTHORIZED_USERS",
        value_delimiter = ',',
        default_value = "kube-apiserver-kubelet-client"
    )]
    pub authorized_users: Vec<String>,

    /// Groups (client certificate O) allowed the agent API's pod endpoints.
    #[arg(
        long,
        env = "AGENT_AUTHORIZED_GROUPS",
        value_delimiter = ',',
        default_value = "system:masters"
    )]
    pub authorized_groups: Vec<String>,

    /// A container's log file is rotated when it grows beyond this size.
    #[arg(long, env = "AGENT_CONTAINER_LOG_MAX_SIZE", value_parser = parse_size, default_value = "10Mi")]
    pub container_log_max_size: u64,

    /// Log files kept per container, the current one included (at least 2).
    #[arg(long, env = "AGENT_CONTAINER_LOG_MAX_FILES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(2..))]
    pub container_log_max_files: u32,

    /// How often container log sizes are checked for rotation.
    #[arg(long, env = "AGENT_CONTAINER_LOG_MONITOR_INTERVAL", value_parser = api::duration::parse, default_value = "10s")]
    pub container_log_monitor_interval: Duration,

    /// How often the Lease is renewed.
    #[arg(long, env = "AGENT_NODE_LEASE_RENEW_INTERVAL", value_parser = api::duration::parse, default_value = "10s")]
    pub node_lease_renew_interval: Duration,

    /// The Lease's duration.
    #[arg(long, env = "AGENT_NODE_LEASE_DURATION_SECONDS", default_value_t = 40)]
    pub node_lease_duration_seconds: i32,

    /// How often node conditions are checked (sent when they change).
    #[arg(long, env = "AGENT_NODE_STATUS_UPDATE_FREQUENCY", value_parser = api::duration::parse, default_value = "10s")]
    pub node_status_update_frequency: Duration,

    /// How often the node status is sent even without a change (the kubelet's default: the
    /// Lease, renewed every `--node-lease-renew-interval`, is what shows the node alive).
    #[arg(long, env = "AGENT_NODE_STATUS_REPORT_FREQUENCY", value_parser = api::duration::parse, default_value = "5m")]
    pub node_status_report_frequency: Duration,

    /// How often the runtime's containers are listed to notice exits.
    #[arg(long, env = "AGENT_RELIST_PERIOD", value_parser = api::duration::parse, default_value = "1s")]
    pub relist_period: Duration,

    /// How often a quiet pod is synced again: its ConfigMap, Secret and downward API volumes
    /// are re-read then, so an update reaches running containers within this period.
    #[arg(long, env = "AGENT_SYNC_FREQUENCY", value_parser = api::duration::parse, default_value = "1m")]
    pub sync_frequency: Duration,

    /// Whether containers may be privileged.
    #[arg(long, env = "AGENT_ALLOW_PRIVILEGED")]
    pub allow_privileged: bool,

    /// DNS servers given to pods with dnsPolicy ClusterFirst (`IP,...`); none: the host's.
    #[arg(long, env = "AGENT_CLUSTER_DNS", value_delimiter = ',')]
    pub cluster_dns: Vec<String>,

    /// The cluster's DNS domain.
    #[arg(long, env = "AGENT_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,

    /// The cgroup under which each pod gets its own (`<root>/pod<uid>`); empty: none.
    #[arg(long, env = "AGENT_CGROUP_ROOT", default_value = "/kubepods")]
    pub cgroup_root: String,

    /// Fake runtime: time each sandbox run and container start takes.
    #[arg(long, env = "AGENT_FAKE_START_LATENCY", value_parser = api::duration::parse, default_value = "0s")]
    pub fake_start_latency: Duration,

    /// Fake runtime: fraction (0..1) of container starts that fail.
    #[arg(long, env = "AGENT_FAKE_FAIL_RATE", default_value_t = 0.0)]
    pub fake_fail_rate: f64,

    /// Fake runtime: the images it has (`a,b`); none given: every image.
    #[arg(long, env = "AGENT_FAKE_IMAGES", value_delimiter = ',')]
    pub fake_images: Vec<String>,
}

impl Flags {
    /// The node name: the override, else the host name (lower case).
    pub fn node_name(&self) -> String {
        match &self.hostname_override {
            Some(n) if !n.is_empty() => n.to_lowercase(),
            _ => hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
                .to_lowercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10Mi"), Ok(10 << 20));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("ten").is_err());
    }

    #[test]
    fn flags_parse_with_defaults() {
        let f = Flags::try_parse_from(["agent", "--kubeconfig", "k", "--node-name", "N1"]).unwrap();
        assert_eq!(f.node_name(), "n1");
        assert_eq!(f.max_pods, 110);
        assert_eq!(f.runtime, RuntimeKind::Cri);
        assert_eq!(f.node_lease_renew_interval, Duration::from_secs(10));
        assert_eq!(f.sync_frequency, Duration::from_secs(60));
        assert_eq!(f.node_status_report_frequency, Duration::from_secs(300));
        assert_eq!(f.container_log_max_size, 10 << 20);
        assert_eq!(f.container_log_max_files, 5);
        assert_eq!(f.authorized_users, ["kube-apiserver-kubelet-client"]);
        assert_eq!(f.authorized_groups, ["system:masters"]);
    }
}
