//! `describe pod`, and the Pod Template section deployments and `rollout history --revision`
//! show: volumes, QoS class, tolerations here, the containers in [`containers`](super::containers).

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::containers::containers;
use super::text::{arr, num, rfc1123z, s, since, strings, Text};
use super::Describer;

pub struct Pod;

impl Describer for Pod {
    fn write(&self, w: &mut Text, p: &Value, _related: &[Value], now: Timestamp) {
        w.w(0, &format!("Name:\t{}\n", s(p, "/metadata/name")));
        w.w(0, &format!("Namespace:\t{}\n", s(p, "/metadata/namespace")));
        if let Some(prio) = p.pointer("/spec/priority").and_then(Value::as_i64) {
            w.w(0, &format!("Priority:\t{prio}\n"));
        }
        let pcn = s(p, "/spec/priorityClassName");
        if !pcn.is_empty() {
            w.w(0, &format!("Priority Class Name:\t{pcn}\n"));
        }
        let rcn = s(p, "/spec/runtimeClassName");
        if !rcn.is_empty() {
            w.w(0, &format!("Runtime Class Name:\t{rcn}\n"));
        }
        let sa = s(p, "/spec/serviceAccountName");
        if !sa.is_empty() {
            w.w(0, &format!("Service Account:\t{sa}\n"));
        }
        match s(p, "/spec/nodeName") {
            "" => w.w(0, "Node:\t<none>\n"),
            n => w.w(0, &format!("Node:\t{n}/{}\n", s(p, "/status/hostIP"))),
        }
        let start = s(p, "/status/startTime");
        if !start.is_empty() {
            w.w(0, &format!("Start Time:\t{}\n", rfc1123z(start)));
        }
        w.labels("Labels", p.pointer("/metadata/labels"));
        w.annotations("Annotations", p.pointer("/metadata/annotations"));
        let phase = s(p, "/status/phase");
        let deleting = s(p, "/metadata/deletionTimestamp");
        if !deleting.is_empty() && phase != "Failed" && phase != "Succeeded" {
            w.w(
                0,
                &format!("Status:\tTerminating (lasts {})\n", since(deleting, now)),
            );
            w.w(
                0,
                &format!(
                    "Termination Grace Period:\t{}s\n",
                    num(p, "/metadata/deletionGracePeriodSeconds")
                ),
            );
        } else {
            w.w(0, &format!("Status:\t{phase}\n"));
        }
        for (field, title) in [("/status/reason", "Reason"), ("/status/message", "Message")] {
            if !s(p, field).is_empty() {
                w.w(0, &format!("{title}:\t{}\n", s(p, field)));
            }
        }
        w.w(0, &format!("IP:\t{}\n", s(p, "/status/podIP")));
        let ips = arr(p.pointer("/status/podIPs"));
        if ips.is_empty() {
            w.w(0, "IPs:\t<none>\n");
        } else {
            w.w(0, "IPs:\n");
            for ip in ips {
                w.w(1, &format!("IP:\t{}\n", s(ip, "/ip")));
            }
        }
        if let Some(owner) = arr(p.pointer("/metadata/ownerReferences"))
            .iter()
            .find(|o| o["controller"] == Value::Bool(true))
        {
            w.w(
                0,
                &format!(
                    "Controlled By:\t{}/{}\n",
                    s(owner, "/kind"),
                    s(owner, "/name")
                ),
            );
        }
        let nominated = s(p, "/status/nominatedNodeName");
        if !nominated.is_empty() {
            w.w(0, &format!("NominatedNodeName:\t{nominated}\n"));
        }
        let statuses = |field: &str| arr(p.pointer(&format!("/status/{field}"))).to_vec();
        if !arr(p.pointer("/spec/initContainers")).is_empty() {
            containers(
                w,
                "Init Containers",
                arr(p.pointer("/spec/initContainers")),
                Some(&statuses("initContainerStatuses")[..]),
                "",
            );
        }
        containers(
            w,
            "Containers",
            arr(p.pointer("/spec/containers")),
            Some(&statuses("containerStatuses")[..]),
            "",
        );
        let conditions = arr(p.pointer("/status/conditions"));
        if !conditions.is_empty() {
            w.w(0, "Conditions:\n  Type\tStatus\n");
            for c in conditions {
                w.w(1, &format!("{} \t{} \n", s(c, "/type"), s(c, "/status")));
            }
        }
        volumes(w, arr(p.pointer("/spec/volumes")), "");
        let qos = match s(p, "/status/qosClass") {
            "" => qos_class(p),
            q => q.to_string(),
        };
        w.w(0, &format!("QoS Class:\t{qos}\n"));
        w.labels("Node-Selectors", p.pointer("/spec/nodeSelector"));
        w.tolerations("Tolerations", p.pointer("/spec/tolerations"));
    }
}

/// A Pod Template section (deployments, replica sets, `rollout history --revision`).
pub fn template(w: &mut Text, t: &Value) {
    w.w(0, "Pod Template:\n");
    w.labels("  Labels", t.pointer("/metadata/labels"));
    if !strings(t.pointer("/metadata/annotations")).is_empty() {
        w.annotations("  Annotations", t.pointer("/metadata/annotations"));
    }
    let sa = s(t, "/spec/serviceAccountName");
    if !sa.is_empty() {
        w.w(1, &format!("Service Account:\t{sa}\n"));
    }
    if !arr(t.pointer("/spec/initContainers")).is_empty() {
        containers(
            w,
            "Init Containers",
            arr(t.pointer("/spec/initContainers")),
            None,
            "  ",
        );
    }
    containers(
        w,
        "Containers",
        arr(t.pointer("/spec/containers")),
        None,
        "  ",
    );
    volumes(w, arr(t.pointer("/spec/volumes")), "  ");
    let pcn = s(t, "/spec/priorityClassName");
    if !pcn.is_empty() {
        w.w(1, &format!("Priority Class Name:\t{pcn}\n"));
    }
    w.labels("  Node-Selectors", t.pointer("/spec/nodeSelector"));
    w.tolerations("  Tolerations", t.pointer("/spec/tolerations"));
}

fn volumes(w: &mut Text, list: &[Value], space: &str) {
    if list.is_empty() {
        w.w(0, &format!("{space}Volumes:\t<none>\n"));
        return;
    }
    w.w(0, &format!("{space}Volumes:\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in list {
        w.w(1, &format!("{name_indent}{}:\n", s(v, "/name")));
        let optional = |src: &Value| src["optional"] == Value::Bool(true);
        if let Some(h) = v.get("hostPath") {
            let t = match s(h, "/type") {
                "" => "<none>",
                t => t,
            };
            w.w(2, "Type:\tHostPath (bare host directory volume)\n");
            w.w(
                2,
                &format!("Path:\t{}\n    HostPathType:\t{t}\n", s(h, "/path")),
            );
        } else if let Some(e) = v.get("emptyDir") {
            let limit = match num(e, "/sizeLimit").as_str() {
                "" | "0" => "<unset>".to_string(),
                l => l.to_string(),
            };
            w.w(
                2,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n",
            );
            w.w(
                2,
                &format!("Medium:\t{}\n    SizeLimit:\t{limit}\n", s(e, "/medium")),
            );
        } else if let Some(sec) = v.get("secret") {
            w.w(2, "Type:\tSecret (a volume populated by a Secret)\n");
            w.w(
                2,
                &format!(
                    "SecretName:\t{}\n    Optional:\t{}\n",
                    s(sec, "/secretName"),
                    optional(sec)
                ),
            );
        } else if let Some(cm) = v.get("configMap") {
            w.w(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n");
            w.w(
                2,
                &format!(
                    "Name:\t{}\n    Optional:\t{}\n",
                    s(cm, "/name"),
                    optional(cm)
                ),
            );
        } else if let Some(pvc) = v.get("persistentVolumeClaim") {
            w.w(
                2,
                "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n",
            );
            w.w(
                2,
                &format!(
                    "ClaimName:\t{}\n    ReadOnly:\t{}\n",
                    s(pvc, "/claimName"),
                    pvc["readOnly"] == Value::Bool(true)
                ),
            );
        } else if v.get("projected").is_some() {
            w.w(
                2,
                "Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            );
        } else {
            w.w(1, "<unknown>\n");
        }
    }
}

/// Kubernetes' QoS class: BestEffort without any request or limit, Guaranteed when every
/// container's CPU and memory limits are set and equal to the requests, else Burstable.
fn qos_class(p: &Value) -> String {
    let all: Vec<&Value> = arr(p.pointer("/spec/containers"))
        .iter()
        .chain(arr(p.pointer("/spec/initContainers")))
        .collect();
    let res = |c: &Value, f: &str| strings(c.pointer(&format!("/resources/{f}")));
    if all
        .iter()
        .all(|c| res(c, "requests").is_empty() && res(c, "limits").is_empty())
    {
        return "BestEffort".into();
    }
    let guaranteed = all.iter().all(|c| {
        let (req, lim) = (res(c, "requests"), res(c, "limits"));
        ["cpu", "memory"].iter().all(|r| {
            lim.get(*r).is_some_and(|l| {
                req.get(*r)
                    .is_none_or(|q| api::quantity::parse(q).ok() == api::quantity::parse(l).ok())
            })
        })
    });
    let class = if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    };
    class.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_sections() {
        let p = json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"serviceAccountName": "default", "priority": 0, "containers": [{
                "name": "c", "image": "busybox", "command": ["sh", "-c"],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }], "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]},
            "status": {"phase": "Pending"},
        });
        let mut w = Text::default();
        Pod.write(&mut w, &p, &[], Timestamp::now());
        let out = w.finish();
        let want = "Name:             web\nNamespace:        default\nPriority:         0\n\
            Service Account:  default\nNode:             <none>\nLabels:           app=web\n\
            Annotations:      <none>\nStatus:           Pending\nIP:               \n\
            IPs:              <none>\nContainers:\n  c:\n    Image:      busybox\n\
            \x20   Port:       80/TCP\n    Host Port:  0/TCP\n    Command:\n      sh\n      -c\n\
            \x20   Environment:\n      A:  1\n    Mounts:\n      /data from data (rw)\n\
            Volumes:\n  data:\n\
            \x20   Type:        EmptyDir (a temporary directory that shares a pod's lifetime)\n\
            \x20   Medium:      \n    SizeLimit:   <unset>\nQoS Class:       BestEffort\n\
            Node-Selectors:  <none>\nTolerations:     k:NoSchedule op=Exists\n";
        assert_eq!(out, want);
    }
}
