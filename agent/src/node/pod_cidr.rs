//! The pod CIDR: `--pod-cidr`, or the Node's `spec.podCIDR` once it is set (by the
//! controller-manager's node IPAM, or an operator), handed to the runtime with CRI
//! UpdateRuntimeConfig so that new sandboxes take their IPs from it (containerd writes its CNI
//! config from its `conf_template`). Checked at every node status period until the Node's own
//! CIDR is in place, then at every status report period; a failed call is retried.

use k8s_openapi::api::core::v1::Node;
use kube::{api::GetParams, Api};

use super::NodeCtx;

/// The CIDR to use: the Node's own when set, else the flag's.
pub fn desired(node: Option<&Node>, flag: Option<&str>) -> Option<String> {
    node.and_then(|n| n.spec.as_ref())
        .and_then(|s| s.pod_cidr.clone())
        .filter(|c| !c.is_empty())
        .or_else(|| flag.map(str::to_string))
}

/// Keeps the runtime's pod CIDR equal to the desired one, for ever.
pub async fn run(ctx: NodeCtx) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut applied: Option<String> = None;
    loop {
        // resourceVersion=0, as the kubelet reads its Node: the apiserver's cache answers.
        let node = nodes.get_with(&ctx.name, &GetParams::any()).await.ok();
        let own = node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.pod_cidr.clone())
            .filter(|c| !c.is_empty());
        let want = desired(node.as_ref(), ctx.flags.pod_cidr.as_deref());
        if let Some(cidr) = want.filter(|c| applied.as_ref() != Some(c)) {
            match ctx.runtime.update_runtime_config(&cidr).await {
                Ok(()) => {
                    tracing::info!(node = %ctx.name, pod_cidr = %cidr, "pod CIDR handed to the runtime");
                    applied = Some(cidr);
                }
                Err(e) => {
                    tracing::warn!(node = %ctx.name, pod_cidr = %cidr, error = %e, "updating the runtime's pod CIDR")
                }
            }
        }
        // The Node's own CIDR, once set, does not change (Kubernetes refuses to change it):
        // check it again only at the status report period, so thousands of nodes do not ask
        // for their Node every 10 s for nothing.
        let settled = own.is_some() && own == applied;
        tokio::time::sleep(if settled {
            ctx.flags.node_status_report_frequency
        } else {
            ctx.flags.node_status_update_frequency
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;

    #[test]
    fn the_nodes_cidr_wins_over_the_flag() {
        let node = |cidr: Option<&str>| Node {
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            desired(None, Some("10.1.0.0/24")).as_deref(),
            Some("10.1.0.0/24")
        );
        assert_eq!(
            desired(Some(&node(Some("10.2.0.0/24"))), Some("10.1.0.0/24")).as_deref(),
            Some("10.2.0.0/24")
        );
        assert_eq!(desired(Some(&node(None)), None), None);
    }
}
