//! Command-line flags (kube-controller-manager's names) with `CONTROLLER_MANAGER_*`
//! environment fallbacks, and the `--controllers` selection.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{ArgAction, Parser};

/// The controller-manager: runs the controllers that make the cluster match its objects.
#[derive(Debug, Clone, Parser)]
#[command(name = "controller-manager", version, about)]
pub struct Config {
    /// Kubeconfig to reach the apiserver (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "CONTROLLER_MANAGER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Controllers to run: `*` (all), `foo` (enable), `-foo` (disable), comma separated.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_CONTROLLERS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub controllers: Vec<String>,
    /// Requests per second to the apiserver, on average (0 or negative: no limit). Leader
    /// election has a bucket of its own, so a busy controller never misses a renewal.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_KUBE_API_QPS",
        default_value_t = 20.0,
        allow_hyphen_values = true
    )]
    pub kube_api_qps: f32,
    /// Requests to the apiserver at once before --kube-api-qps holds them.
    #[arg(long, env = "CONTROLLER_MANAGER_KUBE_API_BURST", default_value_t = 30)]
    pub kube_api_burst: u32,
    /// Run only while holding the leader Lease (so replicas can stand by).
    #[arg(long, env = "CONTROLLER_MANAGER_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,
    /// How long a leader's Lease lasts without renewal.
    #[arg(long, env = "CONTROLLER_MANAGER_LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = api::duration::parse)]
    pub leader_elect_lease_duration: Duration,
    /// How often candidates try to acquire or renew the Lease.
    #[arg(long, env = "CONTROLLER_MANAGER_LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = api::duration::parse)]
    pub leader_elect_retry_period: Duration,
    /// Namespace of the leader Lease.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_LEADER_ELECT_RESOURCE_NAMESPACE",
        default_value = "kube-system"
    )]
    pub leader_elect_resource_namespace: String,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_LEADER_ELECT_RESOURCE_NAME",
        default_value = "kube-controller-manager"
    )]
    pub leader_elect_resource_name: String,
    /// Address of the plain-HTTP `/healthz` and `/metrics` endpoint.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_BIND_ADDRESS",
        default_value = "127.0.0.1"
    )]
    pub bind_address: IpAddr,
    /// Port of `/healthz` and `/metrics` (0: none).
    #[arg(long, env = "CONTROLLER_MANAGER_PORT", default_value_t = 10257)]
    pub port: u16,
    /// Give every node a `spec.podCIDR` from --cluster-cidr.
    #[arg(long, env = "CONTROLLER_MANAGER_ALLOCATE_NODE_CIDRS", default_value_t = false, action = ArgAction::Set)]
    pub allocate_node_cidrs: bool,
    /// Range of pod addresses that node CIDRs are cut from (e.g. 10.244.0.0/16).
    #[arg(long, env = "CONTROLLER_MANAGER_CLUSTER_CIDR")]
    pub cluster_cidr: Option<String>,
    /// Prefix length of each node's pod CIDR.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_NODE_CIDR_MASK_SIZE",
        default_value_t = 24
    )]
    pub node_cidr_mask_size: u8,
    /// How long a node may go without renewing its Lease before it is marked unreachable.
    #[arg(long, env = "CONTROLLER_MANAGER_NODE_MONITOR_GRACE_PERIOD", default_value = "40s", value_parser = api::duration::parse)]
    pub node_monitor_grace_period: Duration,
    /// How often node health is checked.
    #[arg(long, env = "CONTROLLER_MANAGER_NODE_MONITOR_PERIOD", default_value = "5s", value_parser = api::duration::parse)]
    pub node_monitor_period: Duration,
    /// Pods evicted per second from unhealthy nodes.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_NODE_EVICTION_RATE",
        default_value_t = 0.1
    )]
    pub node_eviction_rate: f64,
    /// Terminated pods kept before the pod GC deletes the oldest (0: never).
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_TERMINATED_POD_GC_THRESHOLD",
        default_value_t = 12500
    )]
    pub terminated_pod_gc_threshold: usize,
    /// Workers of the ReplicaSet controller.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_CONCURRENT_REPLICASET_SYNCS",
        default_value_t = 5
    )]
    pub concurrent_replicaset_syncs: usize,
    /// Workers of the Deployment controller.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_CONCURRENT_DEPLOYMENT_SYNCS",
        default_value_t = 5
    )]
    pub concurrent_deployment_syncs: usize,
    /// Workers of the Endpoints controller.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_CONCURRENT_ENDPOINT_SYNCS",
        default_value_t = 5
    )]
    pub concurrent_endpoint_syncs: usize,
    /// Workers of the Namespace controller.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_CONCURRENT_NAMESPACE_SYNCS",
        default_value_t = 10
    )]
    pub concurrent_namespace_syncs: usize,
    /// Workers of the garbage collector.
    #[arg(
        long,
        env = "CONTROLLER_MANAGER_CONCURRENT_GC_SYNCS",
        default_value_t = 20
    )]
    pub concurrent_gc_syncs: usize,
}

/// Whether controller `name` runs under the `--controllers` list (kube-controller-manager's
/// rules: an explicit `-name` disables, an explicit `name` enables, else `*` enables).
pub fn enabled(list: &[String], name: &str) -> bool {
    if list.iter().any(|c| c.strip_prefix('-') == Some(name)) {
        return false;
    }
    if list.iter().any(|c| c == name) {
        return true;
    }
    list.iter().any(|c| c == "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_selection() {
        let l = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        assert!(enabled(&l("*"), "replicaset"));
        assert!(!enabled(&l("*,-replicaset"), "replicaset"));
        assert!(enabled(&l("*,-replicaset"), "deployment"));
        assert!(enabled(&l("replicaset"), "replicaset"));
        assert!(!enabled(&l("replicaset"), "deployment"));
    }
}
