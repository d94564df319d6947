//! pctl and kubectl side by side: running a command with both and comparing what they print
//! and how they end, in one namespace or in twin namespaces (k for kubectl, p for pctl) for
//! commands that change objects; and the objects the parity suites describe.

use std::process::Output;

use cluster_tests::{ApiCluster, Identity::Admin};

use super::api::{kubectl_apply, kubectl_ok, kubectl_ok_stdin};
use super::pctl::{pctl, pctl_stdin};
use super::{stderr, stdout};

/// What a run printed and how it ended.
pub fn result(out: &Output) -> (String, String, Option<i32>) {
    (stdout(out), stderr(out), out.status.code())
}

/// The first line where `a` and `b` differ, for messages.
pub fn first_difference(a: &str, b: &str) -> String {
    let (mut la, mut lb) = (a.lines(), b.lines());
    for n in 1.. {
        match (la.next(), lb.next()) {
            (None, None) => break,
            (x, y) if x != y => return format!("line {n}:\n  pctl:    {x:?}\n  kubectl: {y:?}"),
            _ => {}
        }
    }
    "no line differs".into()
}

/// Asserts that two runs printed the same and ended the same.
#[track_caller]
pub fn assert_same(
    p: &(String, String, Option<i32>),
    k: &(String, String, Option<i32>),
    args: &[&str],
) {
    assert!(
        p == k,
        "pctl and kubectl differ for {args:?}\nstdout {}\nstderr {}\nexit: {:?} {:?}\n\
         --- pctl stdout ---\n{}--- kubectl stdout ---\n{}",
        first_difference(&p.0, &k.0),
        first_difference(&p.1, &k.1),
        p.2,
        k.2,
        p.0,
        k.0
    );
}

/// Runs `args` with kubectl and with pctl and asserts the same stdout, stderr and exit code.
#[track_caller]
pub fn same(c: &ApiCluster, args: &[&str]) -> String {
    let k = result(&c.kubectl(Admin, args));
    let p = result(&pctl(c, args));
    assert_same(&p, &k, args);
    p.0
}

/// [`same`] with `input` on stdin.
#[track_caller]
pub fn same_stdin(c: &ApiCluster, args: &[&str], input: &str) -> String {
    let k = result(&c.kubectl_stdin(Admin, args, input));
    let p = result(&pctl_stdin(c, args, input));
    assert_same(&p, &k, args);
    p.0
}

/// A deployment, a service, a node with its status and lease, pods on it, and events, for
/// `describe`.
pub fn describe_objects(c: &ApiCluster) {
    kubectl_apply(
        c,
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {node-role.kubernetes.io/worker: \"\", \
         kubernetes.io/hostname: n1}}\nspec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24], \
         taints: [{key: dedicated, value: gpu, effect: NoSchedule}]}\n---\n\
         apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: n1, namespace: kube-node-lease}\n\
         spec: {holderIdentity: n1, renewTime: \"2026-01-01T00:00:00.000000Z\"}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {app: web}, \
         annotations: {team: core}}\nspec: {replicas: 2, selector: {matchLabels: {app: web}}, \
         template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, \
         image: localhost/busybox:1.36, command: [sh, -c, sleep 1d], ports: [{containerPort: 80}], \
         env: [{name: MODE, value: fast}, {name: SECRET, valueFrom: {secretKeyRef: {name: s, key: k}}}], \
         resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m, memory: 64Mi}}, \
         readinessProbe: {httpGet: {path: /healthz, port: 80}}, \
         volumeMounts: [{name: data, mountPath: /data}, {name: cfg, mountPath: /etc/cfg, readOnly: true}]}], \
         volumes: [{name: data, emptyDir: {}}, {name: cfg, configMap: {name: cfg}}]}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web}\n\
         spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: p1, labels: {app: web, tier: front}}\n\
         spec: {nodeName: n1, priority: 0, containers: [{name: c, image: localhost/busybox:1.36, \
         args: [\"multi\\nline\"], resources: {requests: {cpu: 500m, memory: 128Mi}}}], \
         tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}, \
         {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 300}]}\n",
    );
    kubectl_ok(
        c,
        &[
            "patch",
            "node",
            "n1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.5"},
                              {"type": "Hostname", "address": "n1"}],
                "nodeInfo": {"machineID": "m", "systemUUID": "u", "bootID": "b",
                  "kernelVersion": "6.1", "osImage": "Debian", "containerRuntimeVersion": "containerd://1.7",
                  "kubeletVersion": "v1.33.0", "kubeProxyVersion": "", "operatingSystem": "linux",
                  "architecture": "amd64"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                  "message": "kubelet is posting ready status",
                  "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}"#,
        ],
    );
    let uid = kubectl_ok(c, &["get", "pod", "p1", "-o", "jsonpath={.metadata.uid}"]);
    kubectl_apply(
        c,
        &format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: p1.1}}\n\
             involvedObject: {{kind: Pod, name: p1, namespace: default, uid: {uid}, apiVersion: v1}}\n\
             type: Warning\nreason: BackOff\nmessage: \"Back-off restarting failed container \"\n\
             count: 3\nfirstTimestamp: \"2020-01-01T00:00:00Z\"\nlastTimestamp: \"2020-01-02T00:00:00Z\"\n\
             source: {{component: kubelet, host: n1}}\n---\n\
             apiVersion: v1\nkind: Event\nmetadata: {{name: p1.2}}\n\
             involvedObject: {{kind: Pod, name: p1, namespace: default, uid: {uid}, apiVersion: v1}}\n\
             type: Normal\nreason: Scheduled\nmessage: Successfully assigned default/p1 to n1\n\
             count: 1\nfirstTimestamp: \"2019-12-31T00:00:00Z\"\nlastTimestamp: \"2019-12-31T00:00:00Z\"\n\
             source: {{component: default-scheduler}}\n"
        ),
    );
}

/// The same deployment and pods in namespaces k (for kubectl) and p (for pctl).
pub fn twins(c: &ApiCluster) {
    for ns in ["k", "p"] {
        kubectl_ok(c, &["create", "namespace", ns]);
        kubectl_ok_stdin(
            c,
            &["apply", "-n", ns, "-f", "-"],
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1, \
             selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, \
             spec: {containers: [{name: web, image: localhost/busybox:1.36}]}}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: p1, labels: {app: web}}\n\
             spec: {containers: [{name: c, image: localhost/busybox:1.36}]}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: p2}\n\
             spec: {containers: [{name: c, image: localhost/busybox:1.36}]}\n",
        );
    }
}

/// `text` with the values that differ between two objects made alike (uid, resourceVersion,
/// creation time) masked, in YAML and JSON.
pub fn mask(text: &str) -> String {
    let keys = ["uid", "resourceVersion", "creationTimestamp"];
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            let masked = keys.iter().any(|k| {
                (t.starts_with(&format!("{k}: ")) || t.starts_with(&format!("\"{k}\": ")))
                    && !t.ends_with("null")
                    && !t.ends_with("\"\"")
            });
            if masked {
                format!("{}: <masked>\n", &l[..l.find(':').unwrap_or(0)])
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// [`same`] for commands that change objects: kubectl acts in namespace k, pctl in p.
#[track_caller]
pub fn same_in_twins(c: &ApiCluster, args: &[&str]) {
    let with = |ns: &'static str| {
        let mut all = args.to_vec();
        all.extend(["-n", ns]);
        all
    };
    let k = result(&c.kubectl(Admin, &with("k")));
    let p = result(&pctl(c, &with("p")));
    let twin = |s: String| {
        s.replace(" k namespace", " p namespace")
            .replace("namespace: k\n", "namespace: p\n")
            .replace("\"namespace\": \"k\"", "\"namespace\": \"p\"")
    };
    let k = (mask(&twin(k.0)), twin(k.1), k.2);
    let p = (mask(&p.0), p.1, p.2);
    assert_same(&p, &k, args);
}
