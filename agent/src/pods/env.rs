//! A container's environment as the kubelet builds it: `envFrom` sources first, then `env`
//! entries (literal values with `$(VAR)` expansion, `fieldRef`, `resourceFieldRef`,
//! `configMapKeyRef`, `secretKeyRef`), later ones overriding earlier ones. ConfigMaps and
//! Secrets are fetched before ([`Sources`]), so building is pure.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};

/// A referenced ConfigMap or Secret that does not exist, or lacks a key (the container then
/// waits with reason CreateContainerConfigError and this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

/// The ConfigMaps and Secrets of the pod's namespace that the environment refers to
/// (name → data; absent: the object does not exist).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub config_maps: HashMap<String, BTreeMap<String, String>>,
    pub secrets: HashMap<String, BTreeMap<String, String>>,
}

/// The ConfigMap and Secret names a container's environment refers to.
pub fn referenced(c: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for f in c.env_from.iter().flatten() {
        if let Some(r) = &f.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &f.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        if let Some(v) = &e.value_from {
            if let Some(r) = &v.config_map_key_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &v.secret_key_ref {
                secrets.push(r.name.clone());
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is a literal `$`,
/// anything else (an undefined variable, a lone `$`) stays as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            let ch = input[i..].chars().next().unwrap_or('$');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        match bytes[i + 1] {
            b'$' => {
                out.push('$');
                i += 2;
            }
            b'(' => match input[i + 2..].find(')') {
                Some(end) => {
                    let name = &input[i + 2..i + 2 + end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&input[i..i + 3 + end]),
                    }
                    i += 3 + end;
                }
                None => {
                    out.push_str(&input[i..]);
                    i = bytes.len();
                }
            },
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    out
}

/// The value of a `fieldRef` path.
pub fn field_value(pod: &Pod, path: &str, host_ip: &str, pod_ip: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    if let Some(k) = quoted("metadata.labels['") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&k).cloned())
            .unwrap_or_default());
    }
    if let Some(k) = quoted("metadata.annotations['") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k).cloned())
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        other => return Err(EnvError(format!("unsupported fieldRef path {other:?}"))),
    })
}

/// The value of a `resourceFieldRef`: the container's limit or request divided by the divisor
/// (rounded up); a missing limit is the node's allocatable (`node_cpus`, `node_memory`).
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    node_cpus: u64,
    node_memory: u64,
) -> Result<String, EnvError> {
    let res = c.resources.as_ref();
    let get = |limits: bool, name: &str| {
        res.and_then(|r| {
            if limits {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            }
        })
        .and_then(|m| m.get(name))
        .and_then(|q| api::quantity::parse(&q.0).ok())
        .map(|q| q.value())
    };
    let value = match resource {
        "limits.cpu" => get(true, "cpu").unwrap_or(node_cpus as f64),
        "limits.memory" => get(true, "memory").unwrap_or(node_memory as f64),
        "requests.cpu" => get(false, "cpu").unwrap_or(0.0),
        "requests.memory" => get(false, "memory").unwrap_or(0.0),
        "limits.ephemeral-storage" => get(true, "ephemeral-storage").unwrap_or(0.0),
        "requests.ephemeral-storage" => get(false, "ephemeral-storage").unwrap_or(0.0),
        other => return Err(EnvError(format!("unsupported resourceFieldRef {other:?}"))),
    };
    let divisor = match divisor {
        Some(d) if !d.is_empty() => api::quantity::parse(d)
            .map_err(|e| EnvError(e.to_string()))?
            .value(),
        _ => 1.0,
    };
    if divisor <= 0.0 {
        return Err(EnvError("resourceFieldRef divisor must be positive".into()));
    }
    Ok(format!(
        "{}",
        (value / divisor - 1e-9).ceil().max(0.0) as i64
    ))
}

/// The container's environment, in order, names unique (later wins, keeping first place).
pub fn build(
    pod: &Pod,
    c: &Container,
    sources: &Sources,
    host_ip: &str,
    pod_ip: &str,
    node: (u64, u64),
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env
        .iter_mut()
        .find(|(n, _)| *n == k)
    {
        Some(e) => e.1 = v,
        None => env.push((k, v)),
    };
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        let (data, optional, what, name) = if let Some(r) = &f.config_map_ref {
            (
                sources.config_maps.get(&r.name),
                r.optional == Some(true),
                "configmap",
                &r.name,
            )
        } else if let Some(r) = &f.secret_ref {
            (
                sources.secrets.get(&r.name),
                r.optional == Some(true),
                "secret",
                &r.name,
            )
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    set(&mut env, format!("{prefix}{k}"), v.clone());
                }
            }
            None if optional => {}
            None => return Err(EnvError(format!("{what} \"{name}\" not found"))),
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(r) = &from.field_ref {
                field_value(pod, &r.field_path, host_ip, pod_ip)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    Some(n) if !n.is_empty() && n != c.name => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.iter().find(|x| x.name == n))
                        .ok_or_else(|| EnvError(format!("container {n:?} not found")))?,
                    _ => c,
                };
                resource_value(
                    target,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    node.0,
                    node.1,
                )?
            } else if let Some(r) = &from.config_map_key_ref {
                match sources.config_maps.get(&r.name).map(|d| d.get(&r.key)) {
                    Some(Some(v)) => v.clone(),
                    _ if r.optional == Some(true) => continue,
                    Some(None) => {
                        return Err(EnvError(format!(
                            "couldn't find key {} in ConfigMap {}/{}",
                            r.key,
                            pod.metadata.namespace.as_deref().unwrap_or(""),
                            r.name
                        )))
                    }
                    None => return Err(EnvError(format!("configmap \"{}\" not found", r.name))),
                }
            } else if let Some(r) = &from.secret_key_ref {
                match sources.secrets.get(&r.name).map(|d| d.get(&r.key)) {
                    Some(Some(v)) => v.clone(),
                    _ if r.optional == Some(true) => continue,
                    Some(None) => {
                        return Err(EnvError(format!(
                            "couldn't find key {} in Secret {}/{}",
                            r.key,
                            pod.metadata.namespace.as_deref().unwrap_or(""),
                            r.name
                        )))
                    }
                    None => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
                }
            } else {
                String::new()
            }
        } else {
            let current = env.clone();
            let lookup =
                move |n: &str| current.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            expand(e.value.as_deref().unwrap_or(""), &lookup)
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

/// Expands `$(VAR)` in a command or args list with the container's environment.
pub fn expand_all(list: &[String], env: &[(String, String)]) -> Vec<String> {
    let lookup = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    list.iter().map(|s| expand(s, &lookup)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        ResourceFieldSelector, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kube::api::ObjectMeta;

    fn lookup(n: &str) -> Option<String> {
        match n {
            "A" => Some("x".into()),
            "B" => Some("$(A)".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        assert_eq!(expand("$(A)-$(A)", &lookup), "x-x");
        assert_eq!(expand("$$(A)", &lookup), "$(A)");
        assert_eq!(expand("$(C)", &lookup), "$(C)");
        assert_eq!(expand("$(B)", &lookup), "$(A)");
        assert_eq!(expand("a$b$", &lookup), "a$b$");
        assert_eq!(expand("$(A", &lookup), "$(A");
        assert_eq!(expand("é$(A)é", &lookup), "éxé");
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    #[test]
    fn builds_env_in_order_with_sources() {
        let c = Container {
            name: "app".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(k8s_openapi::api::core::v1::ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                prefix: Some("CFG_".into()),
                secret_ref: None,
            }]),
            env: Some(vec![
                var("GREETING", "hello"),
                var("MSG", "$(GREETING) $(POD) $(CFG_k)"),
                EnvVar {
                    name: "POD".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    }),
                },
                EnvVar {
                    name: "MEM".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        resource_field_ref: Some(ResourceFieldSelector {
                            resource: "limits.memory".into(),
                            divisor: Some(Quantity("1Mi".into())),
                            container_name: None,
                        }),
                        ..Default::default()
                    }),
                },
                EnvVar {
                    name: "OPT".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "nope".into(),
                            key: "k".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                },
            ]),
            resources: Some(ResourceRequirements {
                limits: Some([("memory".to_string(), Quantity("64Mi".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![c.clone()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut sources = Sources::default();
        sources
            .config_maps
            .insert("cfg".into(), [("k".to_string(), "v".to_string())].into());
        let env = build(&pod, &c, &sources, "10.0.0.1", "10.88.0.2", (2, 1 << 30)).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_k"), Some("v"));
        // POD is defined after MSG: it stays unexpanded, as in Kubernetes.
        assert_eq!(get("MSG"), Some("hello $(POD) v"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("OPT"), None);
        assert_eq!(
            expand_all(&["echo $(MSG)".to_string()], &env),
            ["echo hello $(POD) v"]
        );
        let missing = build(&pod, &c, &Sources::default(), "", "", (1, 1)).unwrap_err();
        assert_eq!(missing.0, "configmap \"cfg\" not found");
        assert_eq!(
            referenced(&c),
            (vec!["cfg".to_string(), "nope".to_string()], vec![])
        );
    }

    #[test]
    fn resource_values_round_up() {
        let c = Container {
            resources: Some(ResourceRequirements {
                limits: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(resource_value(&c, "limits.cpu", None, 4, 0).unwrap(), "1");
        assert_eq!(
            resource_value(&c, "limits.cpu", Some("1m"), 4, 0).unwrap(),
            "250"
        );
        assert_eq!(
            resource_value(&c, "limits.memory", None, 4, 1024).unwrap(),
            "1024"
        );
        assert!(resource_value(&c, "limits.gpu", None, 4, 0).is_err());
    }
}
