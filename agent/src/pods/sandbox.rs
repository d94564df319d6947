//! A pod's sandbox configuration (RunPodSandbox): metadata and labels that identify the pod,
//! hostname, DNS, host ports, namespaces, cgroup parent and the pod's aggregated resources;
//! and the pod's `/etc/hosts`. Pure: the same pod always gives the same configuration.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use super::{container::linux_resources, labels};
use crate::runtime::api;

/// What the sandbox configuration depends on besides the pod.
#[derive(Debug, Clone, Default)]
pub struct SandboxEnv {
    pub node: String,
    pub log_root: std::path::PathBuf,
    pub cgroup_root: String,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// The host's resolv.conf (servers, searches, options) for dnsPolicy Default.
    pub host_dns: api::DnsConfig,
    pub node_memory: u64,
}

/// The pod's name, namespace and uid.
pub fn ids(pod: &Pod) -> (String, String, String) {
    let m = &pod.metadata;
    (
        m.name.clone().unwrap_or_default(),
        m.namespace.clone().unwrap_or_else(|| "default".into()),
        m.uid.clone().unwrap_or_default(),
    )
}

/// Parses a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> api::DnsConfig {
    let mut c = api::DnsConfig::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => c.servers.extend(f.next().map(str::to_string)),
            Some("search") => c.searches = f.map(str::to_string).collect(),
            Some("options") => c.options = f.map(str::to_string).collect(),
            _ => {}
        }
    }
    c
}

/// The pod's DNS configuration by `dnsPolicy` (ClusterFirst without cluster DNS servers
/// falls back to the host's, as the kubelet does), plus its `dnsConfig`.
pub fn dns_config(pod: &Pod, env: &SandboxEnv) -> api::DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let (_, ns, _) = ids(pod);
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first =
        (policy == "ClusterFirst" && !host_network) || policy == "ClusterFirstWithHostNet";
    let mut c = match policy {
        "None" => api::DnsConfig::default(),
        _ if cluster_first && !env.cluster_dns.is_empty() => {
            let d = &env.cluster_domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.extend(env.host_dns.searches.iter().cloned());
            api::DnsConfig {
                servers: env.cluster_dns.clone(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => env.host_dns.clone(),
    };
    if let Some(extra) = &spec.dns_config {
        c.servers
            .extend(extra.nameservers.iter().flatten().cloned());
        c.searches.extend(extra.searches.iter().flatten().cloned());
        for o in extra.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            c.options
                .retain(|x| x.split(':').next() != Some(name.as_str()));
            c.options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    c
}

/// The pod's hostname (spec.hostname, else its name, at most 63 characters).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let mut h = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| ids(pod).0);
    h.truncate(63);
    h.trim_end_matches(['-', '.']).to_string()
}

/// The namespaces the pod's containers share (copied into every container's configuration).
pub fn namespace_options(pod: &Pod) -> api::NamespaceOption {
    let spec = pod.spec.clone().unwrap_or_default();
    let mode = |host: Option<bool>, shared: api::NamespaceMode| {
        if host == Some(true) {
            api::NamespaceMode::Node as i32
        } else {
            shared as i32
        }
    };
    api::NamespaceOption {
        network: mode(spec.host_network, api::NamespaceMode::Pod),
        pid: mode(
            spec.host_pid,
            if spec.share_process_namespace == Some(true) {
                api::NamespaceMode::Pod
            } else {
                api::NamespaceMode::Container
            },
        ),
        ipc: mode(spec.host_ipc, api::NamespaceMode::Pod),
        target_id: String::new(),
    }
}

/// The pod's cgroup parent (none when the cgroup root is empty).
pub fn cgroup_parent(pod: &Pod, env: &SandboxEnv) -> String {
    if env.cgroup_root.is_empty() {
        return String::new();
    }
    format!(
        "{}/pod{}",
        env.cgroup_root.trim_end_matches('/'),
        ids(pod).2
    )
}

/// The directory of the pod's container logs.
pub fn log_directory(pod: &Pod, env: &SandboxEnv) -> std::path::PathBuf {
    let (name, ns, uid) = ids(pod);
    crate::logs::pod_dir(&env.log_root, &ns, &name, &uid)
}

/// The sandbox configuration of `pod`, attempt `attempt`.
pub fn config(pod: &Pod, attempt: u32, env: &SandboxEnv) -> api::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let (name, ns, uid) = ids(pod);
    let mut sandbox_labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    sandbox_labels.insert(labels::POD_NAME.into(), name.clone());
    sandbox_labels.insert(labels::POD_NAMESPACE.into(), ns.clone());
    sandbox_labels.insert(labels::POD_UID.into(), uid.clone());
    sandbox_labels.insert(labels::NODE.into(), env.node.clone());
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| api::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp as i32,
                Some("SCTP") => api::Protocol::Sctp as i32,
                _ => api::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let psc = spec.security_context.clone().unwrap_or_default();
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    // The pod's resources: the sum of its containers' limits.
    let mut total = api::LinuxContainerResources::default();
    for c in &spec.containers {
        let r = linux_resources(c, "", env.node_memory);
        total.cpu_quota += r.cpu_quota;
        total.cpu_shares += r.cpu_shares;
        total.memory_limit_in_bytes += r.memory_limit_in_bytes;
    }
    if total.cpu_quota > 0 {
        total.cpu_period = 100_000;
    }
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name,
            uid,
            namespace: ns,
            attempt,
        }),
        hostname: if spec.host_network == Some(true) {
            String::new()
        } else {
            hostname(pod)
        },
        log_directory: log_directory(pod, env).display().to_string(),
        dns_config: Some(dns_config(pod, env)),
        port_mappings,
        labels: sandbox_labels,
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(pod, env),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: psc.run_as_user.map(|value| api::Int64Value { value }),
                run_as_group: psc.run_as_group.map(|value| api::Int64Value { value }),
                supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
                privileged,
                readonly_rootfs: false,
            }),
            sysctls: psc
                .sysctls
                .iter()
                .flatten()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            overhead: None,
            resources: Some(total),
        }),
    }
}

/// The pod's `/etc/hosts`, as the kubelet writes it.
pub fn hosts_file(pod: &Pod, pod_ip: &str, cluster_domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let (_, ns, _) = ids(pod);
    let host = hostname(pod);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if !pod_ip.is_empty() {
        match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => out.push_str(&format!(
                "{pod_ip}\t{host}.{sub}.{ns}.svc.{cluster_domain}\t{host}\n"
            )),
            None => out.push_str(&format!("{pod_ip}\t{host}\n")),
        }
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&a.ip);
            for h in a.hostnames.iter().flatten() {
                out.push('\t');
                out.push_str(h);
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, HostAlias, PodSpec};
    use kube::api::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u1".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                host_aliases: Some(vec![HostAlias {
                    ip: "1.2.3.4".into(),
                    hostnames: Some(vec!["a".into(), "b".into()]),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sandbox_config_identifies_the_pod() {
        let env = SandboxEnv {
            node: "n1".into(),
            log_root: "/logs".into(),
            cgroup_root: "/kubepods".into(),
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            ..Default::default()
        };
        let c = config(&pod(), 1, &env);
        assert_eq!(c.metadata.as_ref().unwrap().attempt, 1);
        assert_eq!(c.hostname, "web");
        assert_eq!(c.labels[labels::POD_UID], "u1");
        assert_eq!(c.labels[labels::NODE], "n1");
        assert_eq!(c.labels["app"], "web");
        assert_eq!(c.log_directory, "/logs/prod_web_u1");
        assert_eq!(c.port_mappings[0].host_port, 8080);
        let linux = c.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/kubepods/podu1");
        let ns = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.pid, api::NamespaceMode::Container as i32);
        let dns = c.dns_config.unwrap();
        assert_eq!(dns.servers, ["10.96.0.10"]);
        assert_eq!(dns.searches[0], "prod.svc.cluster.local");
        assert_eq!(dns.options, ["ndots:5"]);
    }

    #[test]
    fn hosts_file_and_resolv_conf() {
        let h = hosts_file(&pod(), "10.88.0.7", "cluster.local");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.88.0.7\tweb\n"));
        assert!(h.ends_with("# Entries added by HostAliases.\n1.2.3.4\ta\tb\n"));
        let r = parse_resolv_conf(
            "# c\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch a b\noptions edns0\n",
        );
        assert_eq!(r.servers, ["1.1.1.1", "8.8.8.8"]);
        assert_eq!(r.searches, ["a", "b"]);
        assert_eq!(r.options, ["edns0"]);
    }
}
