//! A container's configuration (CreateContainer): image, command and args with `$(VAR)`
//! expansion, environment, working directory, mounts, labels that tie it to its pod, log path,
//! CPU and memory (requests → shares, limits → CFS quota and memory limit, QoS → OOM score)
//! and the security context basics. Pure.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{env, labels, sandbox};
use crate::runtime::api;

/// Why a container cannot be configured (reason CreateContainerConfigError).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn quantity(c: &Container, limits: bool, name: &str) -> Option<f64> {
    let r = c.resources.as_ref()?;
    let m = if limits {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    }?;
    ::api::quantity::parse(&m.get(name)?.0)
        .ok()
        .map(|q| q.value())
}

/// The pod's QoS class, as Kubernetes computes it.
pub fn qos_class(pod: &Pod) -> &'static str {
    let spec = pod.spec.clone().unwrap_or_default();
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let any = all.iter().any(|c| {
        ["cpu", "memory"].iter().any(|r| {
            quantity(c, true, r).is_some_and(|v| v > 0.0)
                || quantity(c, false, r).is_some_and(|v| v > 0.0)
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = all.iter().all(|c| {
        ["cpu", "memory"]
            .iter()
            .all(|r| match quantity(c, true, r) {
                Some(l) if l > 0.0 => quantity(c, false, r).is_none_or(|q| q == l),
                _ => false,
            })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The OOM score adjustment of a container by its pod's QoS (the kubelet's policy).
pub fn oom_score_adj(qos: &str, c: &Container, node_memory: u64) -> i64 {
    match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let request = quantity(c, false, "memory").unwrap_or(0.0);
            if node_memory == 0 {
                return 999;
            }
            let adj = 1000 - (1000.0 * request / node_memory as f64) as i64;
            adj.clamp(2, 999)
        }
    }
}

/// CPU shares, CFS quota/period and memory limit of a container.
pub fn linux_resources(c: &Container, qos: &str, node_memory: u64) -> api::LinuxContainerResources {
    let cpu_request = quantity(c, false, "cpu").or_else(|| quantity(c, true, "cpu"));
    let cpu_limit = quantity(c, true, "cpu");
    let milli = |v: f64| (v * 1000.0).ceil() as i64;
    let shares = cpu_request
        .map(|r| (milli(r) * 1024 / 1000).max(2))
        .unwrap_or(2);
    let (period, quota) = match cpu_limit {
        Some(l) if l > 0.0 => (100_000, (milli(l) * 100_000 / 1000).max(1000)),
        _ => (0, 0),
    };
    api::LinuxContainerResources {
        cpu_period: period,
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: quantity(c, true, "memory").map(|m| m as i64).unwrap_or(0),
        oom_score_adj: if qos.is_empty() {
            0
        } else {
            oom_score_adj(qos, c, node_memory)
        },
        ..Default::default()
    }
}

/// Everything a container's configuration needs besides the pod and the container.
pub struct Inputs<'a> {
    pub node: &'a str,
    pub attempt: u32,
    /// The image reference to run (what ImageStatus answered).
    pub image_ref: &'a str,
    pub env: &'a [(String, String)],
    pub mounts: Vec<api::Mount>,
    pub allow_privileged: bool,
    pub node_memory: u64,
}

/// The container's configuration.
pub fn config(
    pod: &Pod,
    c: &Container,
    i: Inputs<'_>,
) -> Result<api::ContainerConfig, ConfigError> {
    let (name, ns, uid) = sandbox::ids(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let psc = spec.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged == Some(true);
    if privileged && !i.allow_privileged {
        return Err(ConfigError(format!(
            "container {:?} is privileged, and this node does not allow privileged containers (agent flag --allow-privileged)",
            c.name
        )));
    }
    let qos = qos_class(pod);
    let caps = sc.capabilities.clone().unwrap_or_default();
    let cap = |v: Option<Vec<String>>| -> Vec<String> {
        v.unwrap_or_default()
            .into_iter()
            .map(|c| {
                if c.starts_with("CAP_") || c == "ALL" {
                    c
                } else {
                    format!("CAP_{c}")
                }
            })
            .collect()
    };
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    Ok(api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: i.attempt,
        }),
        image: Some(api::ImageSpec {
            image: i.image_ref.to_string(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: env::expand_all(&c.command.clone().unwrap_or_default(), i.env),
        args: env::expand_all(&c.args.clone().unwrap_or_default(), i.env),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: i
            .env
            .iter()
            .map(|(key, value)| api::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: i.mounts,
        labels: [
            (labels::POD_NAME, name),
            (labels::POD_NAMESPACE, ns),
            (labels::POD_UID, uid),
            (labels::CONTAINER_NAME, c.name.clone()),
            (labels::NODE, i.node.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        annotations: [
            (labels::RESTART_COUNT, i.attempt.to_string()),
            (labels::SPEC_IMAGE, c.image.clone().unwrap_or_default()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        log_path: format!("{}/{}.log", c.name, i.attempt),
        stdin: c.stdin == Some(true),
        stdin_once: c.stdin_once == Some(true),
        tty: c.tty == Some(true),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(linux_resources(c, qos, i.node_memory)),
            security_context: Some(api::LinuxContainerSecurityContext {
                capabilities: Some(api::Capability {
                    add_capabilities: cap(caps.add),
                    drop_capabilities: cap(caps.drop),
                    add_ambient_capabilities: Vec::new(),
                }),
                privileged,
                namespace_options: Some(sandbox::namespace_options(pod)),
                run_as_user: run_as_user.map(|value| api::Int64Value { value }),
                run_as_group: run_as_group.map(|value| api::Int64Value { value }),
                run_as_username: String::new(),
                readonly_rootfs: sc.read_only_root_filesystem == Some(true),
                supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
                no_new_privs: sc.allow_privilege_escalation == Some(false),
            }),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        api::core::v1::{Capabilities, PodSpec, ResourceRequirements, SecurityContext},
        apimachinery::pkg::api::resource::Quantity,
    };

    fn container(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        let m = |v: &[(&str, &str)]| {
            (!v.is_empty()).then(|| {
                v.iter()
                    .map(|(k, q)| (k.to_string(), Quantity(q.to_string())))
                    .collect()
            })
        };
        Container {
            name: "app".into(),
            image: Some("localhost/busybox:1.36".into()),
            command: Some(vec!["echo".into(), "$(A)".into()]),
            resources: Some(ResourceRequirements {
                requests: m(req),
                limits: m(lim),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod_of(c: Container) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![c],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn qos_and_resources() {
        let be = container(&[], &[]);
        assert_eq!(qos_class(&pod_of(be.clone())), "BestEffort");
        let g = container(&[], &[("cpu", "200m"), ("memory", "64Mi")]);
        assert_eq!(qos_class(&pod_of(g.clone())), "Guaranteed");
        let b = container(
            &[("cpu", "100m"), ("memory", "32Mi")],
            &[("cpu", "200m"), ("memory", "64Mi")],
        );
        assert_eq!(qos_class(&pod_of(b.clone())), "Burstable");
        let r = linux_resources(&b, "Burstable", 1 << 30);
        assert_eq!(r.cpu_shares, 102);
        assert_eq!(r.cpu_quota, 20_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert_eq!(r.oom_score_adj, 969);
        let r = linux_resources(&be, "BestEffort", 1 << 30);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.oom_score_adj), (2, 0, 1000));
        assert_eq!(
            linux_resources(&g, "Guaranteed", 1 << 30).oom_score_adj,
            -997
        );
    }

    #[test]
    fn config_carries_identity_env_and_security() {
        let mut c = container(&[], &[]);
        c.security_context = Some(SecurityContext {
            run_as_user: Some(1000),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            ..Default::default()
        });
        let pod = pod_of(c.clone());
        let env = vec![("A".to_string(), "hi".to_string())];
        let inputs = |allow| Inputs {
            node: "n1",
            attempt: 2,
            image_ref: "sha256:abc",
            env: &env,
            mounts: Vec::new(),
            allow_privileged: allow,
            node_memory: 1 << 30,
        };
        let cfg = config(&pod, &c, inputs(false)).unwrap();
        assert_eq!(cfg.command, ["echo", "hi"]);
        assert_eq!(cfg.log_path, "app/2.log");
        assert_eq!(cfg.labels[labels::CONTAINER_NAME], "app");
        assert_eq!(cfg.annotations[labels::RESTART_COUNT], "2");
        let sc = cfg.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert!(sc.readonly_rootfs);
        assert_eq!(
            sc.capabilities.as_ref().unwrap().add_capabilities,
            ["CAP_NET_ADMIN"]
        );
        assert_eq!(sc.capabilities.unwrap().drop_capabilities, ["ALL"]);
        c.security_context = Some(SecurityContext {
            privileged: Some(true),
            ..Default::default()
        });
        assert!(config(&pod, &c, inputs(false)).is_err());
        assert!(
            config(&pod, &c, inputs(true))
                .unwrap()
                .linux
                .unwrap()
                .security_context
                .unwrap()
                .privileged
        );
    }
}
