//! Command-line flags (kube-apiserver's names) with `APISERVER_*` environment fallbacks.

use std::{net::IpAddr, path::PathBuf};

use clap::Parser;

/// The Kubernetes API server: stateless, serving the REST API from the store.
#[derive(Debug, Clone, Parser)]
#[command(name = "apiserver", version, about)]
pub struct Config {
    /// Store (or etcd) client URLs, comma separated.
    #[arg(
        long,
        env = "APISERVER_ETCD_SERVERS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd_servers: Vec<String>,
    /// CA bundle that signed the store's serving certificate.
    #[arg(long, env = "APISERVER_ETCD_CAFILE")]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate presented to the store.
    #[arg(long, env = "APISERVER_ETCD_CERTFILE")]
    pub etcd_certfile: Option<PathBuf>,
    /// Key of --etcd-certfile.
    #[arg(long, env = "APISERVER_ETCD_KEYFILE")]
    pub etcd_keyfile: Option<PathBuf>,
    /// Address to serve HTTPS on.
    #[arg(long, env = "APISERVER_BIND_ADDRESS", default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// Port to serve HTTPS on.
    #[arg(long, env = "APISERVER_SECURE_PORT", default_value_t = 6443)]
    pub secure_port: u16,
    /// Serving certificate (PEM).
    #[arg(long, env = "APISERVER_TLS_CERT_FILE")]
    pub tls_cert_file: PathBuf,
    /// Serving key (PEM).
    #[arg(long, env = "APISERVER_TLS_PRIVATE_KEY_FILE")]
    pub tls_private_key_file: PathBuf,
    /// CA that signs client certificates; their CN is the user and O the groups.
    #[arg(long, env = "APISERVER_CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// Static bearer tokens, CSV lines `token,user,uid,"group1,group2"`.
    #[arg(long, env = "APISERVER_TOKEN_AUTH_FILE")]
    pub token_auth_file: Option<PathBuf>,
    /// Extra role bindings (YAML list of {user|group, role: cluster-admin|edit|view}).
    #[arg(long, env = "APISERVER_AUTHORIZATION_POLICY_FILE")]
    pub authorization_policy_file: Option<PathBuf>,
    /// Range that Service cluster IPs are allocated from.
    #[arg(
        long,
        env = "APISERVER_SERVICE_CLUSTER_IP_RANGE",
        default_value = "10.96.0.0/12"
    )]
    pub service_cluster_ip_range: String,
    /// Range of NodePorts, `first-last`.
    #[arg(
        long,
        env = "APISERVER_SERVICE_NODE_PORT_RANGE",
        default_value = "30000-32767"
    )]
    pub service_node_port_range: String,
    /// Where to write one audit line (JSON) per mutating request; `-` for standard output.
    #[arg(long, env = "APISERVER_AUDIT_LOG_PATH")]
    pub audit_log_path: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "APISERVER_MAX_REQUEST_BYTES", default_value_t = 3 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// How often one apiserver compacts the store's history, in seconds (0 disables).
    #[arg(
        long,
        env = "APISERVER_ETCD_COMPACTION_INTERVAL",
        default_value_t = 300
    )]
    pub etcd_compaction_interval: u64,
    /// Client certificate the apiserver presents to agents (pods/log, pods/exec).
    #[arg(
        long,
        env = "APISERVER_KUBELET_CLIENT_CERTIFICATE",
        requires = "kubelet_client_key"
    )]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// Key of --kubelet-client-certificate.
    #[arg(
        long,
        env = "APISERVER_KUBELET_CLIENT_KEY",
        requires = "kubelet_client_certificate"
    )]
    pub kubelet_client_key: Option<PathBuf>,
    /// CA that signed the agents' serving certificates (unset: not verified, as kube-apiserver).
    #[arg(long, env = "APISERVER_KUBELET_CERTIFICATE_AUTHORITY")]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// Node address types to reach an agent at, in order.
    #[arg(
        long,
        env = "APISERVER_KUBELET_PREFERRED_ADDRESS_TYPES",
        value_delimiter = ',',
        default_value = "InternalIP,Hostname,InternalDNS,ExternalIP,ExternalDNS"
    )]
    pub kubelet_preferred_address_types: Vec<String>,
    /// How long the store keeps an Event after its last write (`1h`, `30m`, `90s`; 0 keeps
    /// Events until they are deleted).
    #[arg(
        long,
        env = "APISERVER_EVENT_TTL",
        default_value = "1h",
        value_parser = api::duration::parse
    )]
    pub event_ttl: std::time::Duration,
    /// How often watches with allowWatchBookmarks get a BOOKMARK, in seconds.
    #[arg(long, env = "APISERVER_BOOKMARK_INTERVAL", default_value_t = 10)]
    pub bookmark_interval: u64,
}
