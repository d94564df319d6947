//! Registering the Node: create it with labels, taints, capacity and addresses; when it exists
//! (the agent restarted), add our labels to it. Its status is then kept by [`super::status`].

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Node, NodeSpec, Taint},
    apimachinery::pkg::api::resource::Quantity,
};
use kube::{
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    Api,
};
use serde_json::json;

use super::{arch, NodeCtx};

/// Why the node could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// A `--node-labels` or `--register-with-taints` entry is malformed.
    #[error("{0}")]
    BadFlag(String),
    /// The apiserver refused or failed.
    #[error("registering node: {0}")]
    Api(#[from] kube::Error),
}

/// Parses `key=value` labels.
pub fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, RegistrationError> {
    items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    RegistrationError::BadFlag(format!("invalid node label {s:?} (key=value)"))
                })
        })
        .collect()
}

/// Parses `key=value:Effect` (or `key:Effect`) taints.
pub fn parse_taints(items: &[String]) -> Result<Vec<Taint>, RegistrationError> {
    items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bad =
                || RegistrationError::BadFlag(format!("invalid taint {s:?} (key=value:Effect)"));
            let (kv, effect) = s.rsplit_once(':').ok_or_else(bad)?;
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                return Err(bad());
            }
            let (key, value) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (kv, None),
            };
            if key.is_empty() {
                return Err(bad());
            }
            Ok(Taint {
                key: key.into(),
                value,
                effect: effect.into(),
                time_added: None,
            })
        })
        .collect()
}

/// The labels every node carries, then the flag's.
pub fn node_labels(name: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch().to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), arch().to_string()),
    ]);
    labels.extend(extra.clone());
    labels
}

/// Capacity (= allocatable: nothing is reserved for the system) from the machine.
pub fn capacity(ctx: &NodeCtx) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(ctx.machine.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", ctx.machine.memory_bytes / 1024)),
        ),
        ("pods".to_string(), Quantity(ctx.flags.max_pods.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity(format!("{}Ki", ctx.machine.ephemeral_storage_bytes / 1024)),
        ),
    ])
}

/// Creates the Node, or adds our labels to the existing one.
pub async fn register(ctx: &NodeCtx) -> Result<(), RegistrationError> {
    let labels = node_labels(&ctx.name, &parse_labels(&ctx.flags.node_labels)?);
    let taints = parse_taints(&ctx.flags.register_with_taints)?;
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(ctx.name.clone()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: ctx.flags.pod_cidr.clone(),
            pod_cidrs: ctx.flags.pod_cidr.clone().map(|c| vec![c]),
            taints: (!taints.is_empty()).then_some(taints),
            ..Default::default()
        }),
        status: None,
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {
            tracing::info!(node = %ctx.name, "node registered");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": labels}});
            nodes
                .patch(&ctx.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(node = %ctx.name, "node already registered; labels updated");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn labels_and_taints_from_flags() {
        let l = parse_labels(&s(&["zone=a", "gpu="])).unwrap();
        assert_eq!(l["zone"], "a");
        assert_eq!(l["gpu"], "");
        assert!(parse_labels(&s(&["nokey"])).is_err());
        let all = node_labels("n1", &l);
        assert_eq!(all["kubernetes.io/hostname"], "n1");
        assert_eq!(all["kubernetes.io/os"], "linux");
        let t = parse_taints(&s(&["dedicated=db:NoSchedule", "maint:NoExecute"])).unwrap();
        assert_eq!(t[0].key, "dedicated");
        assert_eq!(t[0].value.as_deref(), Some("db"));
        assert_eq!(t[1].value, None);
        assert_eq!(t[1].effect, "NoExecute");
        assert!(parse_taints(&s(&["a=b:Sometimes"])).is_err());
        assert!(parse_taints(&s(&["a=b"])).is_err());
    }
}
