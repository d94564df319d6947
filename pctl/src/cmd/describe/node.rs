//! `describe node`: roles, taints, its lease, conditions, addresses, capacity, system info,
//! the pods on it and what they request of it.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::text::{arr, rfc1123z, s, strings, Text};
use super::Describer;

pub struct Node;

/// The label prefix that gives a node its roles (`node-role.kubernetes.io/control-plane`).
const ROLE_PREFIX: &str = "node-role.kubernetes.io/";

impl Describer for Node {
    fn related(&self, n: &Value) -> Vec<String> {
        let name = s(n, "/metadata/name");
        vec![
            format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"),
            format!(
                "/api/v1/pods?fieldSelector=spec.nodeName%3D{name},\
                 status.phase!%3DFailed,status.phase!%3DSucceeded"
            ),
        ]
    }

    fn write(&self, w: &mut Text, n: &Value, related: &[Value], now: Timestamp) {
        w.w(0, &format!("Name:\t{}\n", s(n, "/metadata/name")));
        let labels = strings(n.pointer("/metadata/labels"));
        let mut roles: Vec<&str> = labels
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(ROLE_PREFIX)
                    .filter(|r| !r.is_empty())
                    .or_else(|| (k == "kubernetes.io/role").then_some(v.as_str()))
            })
            .collect();
        roles.sort_unstable();
        roles.dedup();
        let roles = if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        };
        w.w(0, &format!("Roles:\t{roles}\n"));
        w.labels("Labels", n.pointer("/metadata/labels"));
        w.annotations("Annotations", n.pointer("/metadata/annotations"));
        w.w(
            0,
            &format!(
                "CreationTimestamp:\t{}\n",
                rfc1123z(s(n, "/metadata/creationTimestamp"))
            ),
        );
        w.w(0, "Taints:\t");
        let taints = arr(n.pointer("/spec/taints"));
        if taints.is_empty() {
            w.w(0, "<none>\n");
        }
        for (i, t) in taints.iter().enumerate() {
            if i > 0 {
                w.w(0, "\t");
            }
            let value = match s(t, "/value") {
                "" => String::new(),
                v => format!("={v}"),
            };
            w.w(0, &format!("{}{value}:{}\n", s(t, "/key"), s(t, "/effect")));
        }
        let unschedulable = n.pointer("/spec/unschedulable") == Some(&Value::Bool(true));
        w.w(0, &format!("Unschedulable:\t{unschedulable}\n"));
        let lease = related.first().cloned().unwrap_or(Value::Null);
        let unset = |v: &str, time: bool| match v {
            "" => "<unset>".to_string(),
            v if time => rfc1123z(v),
            v => v.to_string(),
        };
        w.w(0, "Lease:\n");
        w.w(
            1,
            &format!(
                "HolderIdentity:\t{}\n",
                unset(s(&lease, "/spec/holderIdentity"), false)
            ),
        );
        w.w(
            1,
            &format!(
                "AcquireTime:\t{}\n",
                unset(s(&lease, "/spec/acquireTime"), true)
            ),
        );
        w.w(
            1,
            &format!(
                "RenewTime:\t{}\n",
                unset(s(&lease, "/spec/renewTime"), true)
            ),
        );
        let conditions = arr(n.pointer("/status/conditions"));
        if !conditions.is_empty() {
            w.w(
                0,
                "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
            );
            w.w(
                1,
                "----\t------\t-----------------\t------------------\t------\t-------\n",
            );
            for c in conditions {
                w.w(
                    1,
                    &format!(
                        "{} \t{} \t{} \t{} \t{} \t{}\n",
                        s(c, "/type"),
                        s(c, "/status"),
                        rfc1123z(s(c, "/lastHeartbeatTime")),
                        rfc1123z(s(c, "/lastTransitionTime")),
                        s(c, "/reason"),
                        s(c, "/message")
                    ),
                );
            }
        }
        w.w(0, "Addresses:\n");
        for a in arr(n.pointer("/status/addresses")) {
            w.w(1, &format!("{}:\t{}\n", s(a, "/type"), s(a, "/address")));
        }
        for (field, title) in [
            ("/status/capacity", "Capacity"),
            ("/status/allocatable", "Allocatable"),
        ] {
            let list = strings(n.pointer(field));
            if !list.is_empty() {
                w.w(0, &format!("{title}:\n"));
            }
            for (k, v) in list {
                w.w(0, &format!("  {k}:\t{v}\n"));
            }
        }
        w.w(0, "System Info:\n");
        for (field, title) in [
            ("machineID", "Machine ID"),
            ("systemUUID", "System UUID"),
            ("bootID", "Boot ID"),
            ("kernelVersion", "Kernel Version"),
            ("osImage", "OS Image"),
            ("operatingSystem", "Operating System"),
            ("architecture", "Architecture"),
            ("containerRuntimeVersion", "Container Runtime Version"),
            ("kubeletVersion", "Kubelet Version"),
            ("kubeProxyVersion", "Kube-Proxy Version"),
        ] {
            w.w(
                0,
                &format!(
                    "  {title}:\t{}\n",
                    s(n, &format!("/status/nodeInfo/{field}"))
                ),
            );
        }
        if !s(n, "/spec/podCIDR").is_empty() {
            w.w(0, &format!("PodCIDR:\t{}\n", s(n, "/spec/podCIDR")));
        }
        let cidrs: Vec<&str> = arr(n.pointer("/spec/podCIDRs"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if !cidrs.is_empty() {
            w.w(0, &format!("PodCIDRs:\t{}\n", cidrs.join(",")));
        }
        if !s(n, "/spec/providerID").is_empty() {
            w.w(0, &format!("ProviderID:\t{}\n", s(n, "/spec/providerID")));
        }
        let pods = related.get(1).map(|l| arr(l.get("items"))).unwrap_or(&[]);
        super::usage::node_pods(w, n, pods, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_sections() {
        let n = json!({
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "allocatable": {"cpu": "2", "memory": "1Gi"},
                "nodeInfo": {"kubeletVersion": "v1.33.0"}},
        });
        let pod = json!({"metadata": {"namespace": "default", "name": "p"},
            "spec": {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]}});
        let mut w = Text::default();
        let list = json!({"items": [pod]});
        Node.write(&mut w, &n, &[Value::Null, list], Timestamp::now());
        let out = w.finish();
        for line in [
            "Roles:              control-plane\n",
            "Taints:             k=v:NoSchedule\n",
            "  HolderIdentity:  <unset>\n",
            "  InternalIP:  10.0.0.1\n",
            "  Kubelet Version:            v1.33.0\n",
            "Non-terminated Pods:          (1 in total)\n",
            "  cpu                500m (25%)   0 (0%)\n",
            "  memory             256Mi (25%)  0 (0%)\n",
        ] {
            assert!(out.contains(line), "{line:?} not in\n{out}");
        }
    }
}
