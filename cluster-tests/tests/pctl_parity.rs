//! pctl side by side with kubectl on the same objects: the same stdout, stderr and exit code
//! (ignoring only what must differ), plus what users do with the output (pipe `-o yaml` into
//! `kubectl apply`, stop reading half way).

mod common;

use std::io::Read;
use std::process::{Output, Stdio};
use std::time::Duration;

use cluster_tests::{ApiCluster, Component, Identity::Admin};
use common::api::{api, kubectl_apply, kubectl_ok, kubectl_ok_stdin};
use common::pctl::{ok, pctl, pctl_command, pctl_stdin};
use common::{stderr, stdout};

/// What a run printed and how it ended.
fn result(out: &Output) -> (String, String, Option<i32>) {
    (stdout(out), stderr(out), out.status.code())
}

/// The first line where `a` and `b` differ, for messages.
fn first_difference(a: &str, b: &str) -> String {
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
fn assert_same(
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
fn same(c: &ApiCluster, args: &[&str]) -> String {
    let k = result(&c.kubectl(Admin, args));
    let p = result(&pctl(c, args));
    assert_same(&p, &k, args);
    p.0
}

/// [`same`] with `input` on stdin.
#[track_caller]
fn same_stdin(c: &ApiCluster, args: &[&str], input: &str) -> String {
    let k = result(&c.kubectl_stdin(Admin, args, input));
    let p = result(&pctl_stdin(c, args, input));
    assert_same(&p, &k, args);
    p.0
}

#[tokio::test(flavor = "multi_thread")]
async fn output_ends_quietly_when_the_reader_goes_away() {
    let c = api().await;
    kubectl_apply(
        &c,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1, \
         selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, \
         spec: {containers: [{name: web, image: localhost/busybox:1.36}]}}}\n",
    );
    for args in [
        &["describe", "deploy/web"][..],
        &["get", "deploy", "web", "-o", "yaml"],
        &["get", "deploy", "-w"],
        &["api-resources"],
    ] {
        let mut child = pctl_command(&c, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running pctl");
        // The reader goes away before pctl writes anything.
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("piped stderr")
            .read_to_string(&mut err)
            .expect("reading stderr");
        let status = child.wait().expect("waiting for pctl");
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn yaml_means_the_same_to_pctl_and_kubectl() {
    let c = api().await;
    // Strings a YAML 1.1 reader would take for booleans, numbers, nulls or timestamps.
    kubectl_apply(
        &c,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\n  labels: {a: \"y\", b: \"0777\", \
         c: \"on\", d: \"1e3\", e: \"null\", f: \"2024-01-01\", g: \"No\"}\n  annotations: \
         {t: \"2024-01-01T00:00:00Z\", s: \" lead\", h: \"# x\", m: \"a: b\", \
         l: \"line1\\nline2\\n\", n: \"~\", x: \"0x1F\", i: \".inf\"}\n\
         spec: {containers: [{name: c, image: localhost/busybox:1.36, \
         command: [sh, -c, \"echo 'it''s' && sleep 1d\"]}]}\n",
    );
    // Byte for byte what kubectl prints.
    let yaml = same(&c, &["get", "pod", "p1", "-o", "yaml"]);
    same(&c, &["get", "pod", "p1", "-o", "json"]);
    // And kubectl reads it back as the same object.
    kubectl_ok(&c, &["delete", "pod", "p1", "--wait=false"]);
    let applied = c.kubectl_stdin(Admin, &["apply", "-f", "-"], &yaml);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let labels = kubectl_ok(
        &c,
        &["get", "pod", "p1", "-o", "jsonpath={.metadata.labels}"],
    );
    assert_eq!(
        labels,
        r#"{"a":"y","b":"0777","c":"on","d":"1e3","e":"null","f":"2024-01-01","g":"No"}"#
    );

    // Manifests are read as kubectl reads them: `yes` is a boolean, refused in a ConfigMap.
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flags}\ndata: {enabled: yes}\n";
    // Refused as kubectl refuses it (same first line, same exit code), plus a note naming the
    // value YAML 1.1 read as a boolean.
    for verb in ["apply", "create"] {
        let k = result(&c.kubectl_stdin(Admin, &[verb, "-f", "-"], bad));
        let p = result(&pctl_stdin(&c, &[verb, "-f", "-"], bad));
        assert_eq!((&p.0, p.2), (&k.0, k.2), "{verb}");
        assert_eq!(
            p.1,
            format!(
                "{}note: data.enabled: yes is a boolean in YAML 1.1 (as kubectl reads it); \
                 write \"yes\" for the string\n",
                k.1
            ),
            "{verb}"
        );
    }
    let good = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flags}\n\
                data: {enabled: \"yes\", mode: \"0644\"}\n";
    // A missing object named by a manifest: the error names the manifest.
    same_stdin(
        &c,
        &["delete", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: missing}\n",
    );
    let created = pctl_stdin(&c, &["create", "-f", "-"], good);
    assert_eq!(
        stdout(&created),
        "configmap/flags created\n",
        "{}",
        stderr(&created)
    );
    assert_eq!(
        kubectl_ok(&c, &["get", "cm", "flags", "-o", "jsonpath={.data}"]),
        r#"{"enabled":"yes","mode":"0644"}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn several_kinds_print_as_one_list() {
    let c = api().await;
    kubectl_apply(
        &c,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p1, labels: {app: web}}\n\
         spec: {containers: [{name: c, image: localhost/busybox:1.36}]}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web}\n\
         spec: {selector: {app: web}, ports: [{port: 80}]}\n",
    );
    for fmt in ["json", "yaml", "name"] {
        same(&c, &["get", "pods,svc", "-o", fmt]);
        same(&c, &["get", "pod/p1", "svc/web", "-o", fmt]);
    }
    same(&c, &["get", "pods", "-o", "json"]);
    same(&c, &["get", "configmaps", "-l", "none=here", "-o", "yaml"]);
    same(&c, &["get", "all"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn edge_cases_as_kubectl() {
    let c = api().await;
    kubectl_apply(
        &c,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1, \
         selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, \
         spec: {containers: [{name: web, image: localhost/busybox:1.36}]}}}\n",
    );
    // No replica sets yet: no history.
    same(&c, &["rollout", "history", "deploy/web", "--revision=1"]);
    same(&c, &["rollout", "history", "deploy/web"]);

    // KUBECONFIG lists a missing file first: both skip it.
    let list = format!(
        "{}:{}",
        c.dir().join("missing.kubeconfig").display(),
        c.kubeconfig(Admin).display()
    );
    let k = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &list)
        .args(["get", "deploy"])
        .output()
        .expect("kubectl");
    let p = std::process::Command::new(common::pctl::pctl_bin())
        .env("KUBECONFIG", &list)
        .args(["get", "deploy"])
        .output()
        .expect("pctl");
    assert!(k.status.success(), "{}", stderr(&k));
    assert_eq!(result(&p), result(&k));

    // delete waits for the namespace to go (the controller-manager empties and finalizes it).
    let mut cm = Component::start(
        "controller-manager",
        &[
            "--kubeconfig".to_string(),
            c.kubeconfig(Admin).display().to_string(),
            "--port".into(),
            "0".into(),
            "--leader-elect=false".into(),
        ],
        c.dir(),
    )
    .expect("controller-manager starts");
    kubectl_ok(&c, &["create", "namespace", "doomed"]);
    kubectl_ok(&c, &["create", "configmap", "x", "-n", "doomed"]);
    assert_eq!(
        ok(&c, &["delete", "namespace", "doomed", "--timeout=60s"]),
        "namespace \"doomed\" deleted\n"
    );
    let gone = pctl(&c, &["get", "namespace", "doomed"]);
    assert_eq!(
        stderr(&gone),
        "Error from server (NotFound): namespaces \"doomed\" not found\n"
    );
    kubectl_ok(&c, &["create", "namespace", "later"]);
    assert_eq!(
        ok(&c, &["delete", "namespace", "later", "--wait=false"]),
        "namespace \"later\" deleted\n"
    );
    same(
        &c,
        &["delete", "configmap", "nothing", "--ignore-not-found"],
    );
    same(&c, &["delete", "configmap", "nothing"]);
    kubectl_ok(&c, &["create", "configmap", "a"]);
    kubectl_ok(&c, &["create", "configmap", "b"]);
    let all = ok(&c, &["delete", "configmaps", "--all"]);
    assert!(
        all.contains("configmap \"a\" deleted\nconfigmap \"b\" deleted\n"),
        "{all}"
    );
    cm.stop(Duration::from_secs(5));
}

/// A deployment, a service, a node with its status and lease, pods on it, and events, for
/// `describe`.
fn describe_objects(c: &ApiCluster) {
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

#[tokio::test(flavor = "multi_thread")]
async fn describe_as_kubectl() {
    let c = api().await;
    describe_objects(&c);
    for args in [
        &["describe", "pod", "p1"][..],
        &["describe", "deploy/web"],
        &["describe", "svc", "web"],
        &["describe", "node", "n1"],
        &["describe", "pods", "-l", "tier=front"],
        &["describe", "pods", "p"],
        &["describe", "ns", "default"],
        &["describe", "pod", "nope"],
    ] {
        same(&c, args);
    }
    // `rollout history --revision` prints the same Pod Template, unaligned.
    let uid = kubectl_ok(
        &c,
        &["get", "deploy", "web", "-o", "jsonpath={.metadata.uid}"],
    );
    let template = kubectl_ok(
        &c,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.template}"],
    );
    kubectl_apply(
        &c,
        &format!(
            "{{\"apiVersion\": \"apps/v1\", \"kind\": \"ReplicaSet\", \"metadata\": {{\"name\": \"web-1\", \
             \"labels\": {{\"app\": \"web\"}}, \"annotations\": {{\"deployment.kubernetes.io/revision\": \"1\"}}, \
             \"ownerReferences\": [{{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\", \"name\": \"web\", \
             \"uid\": \"{uid}\", \"controller\": true}}]}}, \"spec\": {{\"replicas\": 2, \
             \"selector\": {{\"matchLabels\": {{\"app\": \"web\"}}}}, \"template\": {template}}}}}"
        ),
    );
    same(&c, &["rollout", "history", "deploy/web", "--revision=1"]);
    same(&c, &["describe", "deploy/web"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn everyday_commands_as_kubectl() {
    let c = api().await;
    describe_objects(&c);
    same(&c, &["api-versions"]);
    for extra in [
        &[][..],
        &["-o", "wide"],
        &["-o", "name"],
        &["--namespaced=false"],
        &["--api-group=apps"],
        &["--sort-by=kind", "--no-headers"],
    ] {
        let mut args = vec!["api-resources"];
        args.extend(extra);
        same(&c, &args);
    }
    same(&c, &["cluster-info"]);
    let version = ok(&c, &["version"]);
    assert!(version.starts_with("Client Version: v0."), "{version}");
    assert!(version.contains("\nServer Version: v1."), "{version}");

    // get's formats and flags.
    same(&c, &["get", "pods", "--show-labels"]);
    same(&c, &["get", "pods", "-o", "wide", "--show-labels"]);
    same(
        &c,
        &["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    same(
        &c,
        &[
            "get",
            "pods",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}{"\t"}{.spec.containers[*].image}{"\n"}{end}"#,
        ],
    );
    same(
        &c,
        &["get", "pod", "p1", "-o", "jsonpath={.metadata.labels}"],
    );
    same(
        &c,
        &[
            "get",
            "pods",
            "-o",
            "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,X:.nope",
        ],
    );
    // kubectl sorts tables by the objects in the server's rows, which our apiserver leaves out
    // (kubectl then fails); pctl sorts by the listed objects, so compare other formats.
    same(
        &c,
        &["get", "svc", "--sort-by=.spec.ports[0].port", "-o", "name"],
    );
    same(
        &c,
        &[
            "get",
            "svc",
            "--sort-by={.metadata.name}",
            "-o",
            "custom-columns=N:.metadata.name",
        ],
    );
    let sorted = ok(&c, &["get", "svc", "--sort-by=.spec.ports[0].port"]);
    let names: Vec<&str> = sorted
        .lines()
        .skip(1)
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(names, ["web", "kubernetes"], "{sorted}");
    same(
        &c,
        &["get", "events", "--sort-by=.lastTimestamp", "-o", "name"],
    );

    // Commands that change objects: kubectl in namespace k, pctl in its twin p.
    twins(&c);
    let dir = c.dir().join("cm-src");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("a.txt"), "alpha\n").expect("write");
    std::fs::write(dir.join("b.conf"), "beta").expect("write");
    let env = c.dir().join("vars.env");
    std::fs::write(&env, "# comment\nA=1\n\nB=two words\n").expect("write");
    let (dir, env) = (dir.display().to_string(), env.display().to_string());
    let literals = ["--from-literal=x=1", "--from-literal=y=yes"];
    for args in [
        vec![
            "create",
            "configmap",
            "c1",
            literals[0],
            literals[1],
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "configmap",
            "c1",
            "--from-file",
            &dir,
            "--from-env-file",
            &env,
        ],
        vec![
            "create",
            "configmap",
            "c1",
            "--from-file",
            &dir,
            "--from-literal=z=2",
        ],
        vec![
            "create",
            "configmap",
            "c2",
            "--from-env-file",
            &env,
            "-o",
            "yaml",
        ],
        vec!["create", "configmap", "c3", "--from-literal=bad"],
        vec!["create", "configmap", "c1", "--from-literal=x=1"],
        vec![
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=k=v",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec!["create", "secret", "generic", "s1", "--from-literal=k=v"],
        vec!["get", "configmaps", "-o", "yaml"],
        vec!["label", "pods", "--all", "stage=test"],
        vec!["label", "pods", "-l", "app=web", "stage=test"],
        vec!["label", "pods", "-l", "app=web", "stage=prod"],
        vec!["annotate", "deploy", "--all", "note=x"],
        vec!["patch", "deploy", "web", "-p", r#"{"spec":{"replicas":3}}"#],
        vec!["patch", "deploy", "web", "-p", "spec: {replicas: 3}"],
        vec![
            "patch",
            "deploy/web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"m":"1"}}}"#,
        ],
        vec![
            "patch",
            "deploy/web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#,
        ],
        vec!["set", "image", "deploy/web", "web=localhost/busybox:1.35"],
        vec!["set", "image", "deploy/web", "web=localhost/busybox:1.35"],
        vec!["set", "image", "deploy/web", "nope=x"],
        vec!["wait", "--for=jsonpath={.spec.replicas}=1", "deploy/web"],
        vec!["wait", "--for=condition=Ready", "pod/p1", "--timeout=1s"],
        vec!["wait", "--for=delete", "pod/none", "--timeout=1s"],
        vec!["delete", "pods", "-l", "app=web"],
        // Names only: the twins were made a moment apart, so their ages may differ.
        vec!["get", "all", "-o", "name"],
    ] {
        same_in_twins(&c, &args);
    }
    same(
        &c,
        &["wait", "--for=condition=Ready", "node/n1", "--timeout=5s"],
    );
}

/// The same deployment and pods in namespaces k (for kubectl) and p (for pctl).
fn twins(c: &ApiCluster) {
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
fn mask(text: &str) -> String {
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
fn same_in_twins(c: &ApiCluster, args: &[&str]) {
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

#[tokio::test(flavor = "multi_thread")]
async fn edit_and_diff_as_kubectl() {
    let c = api().await;
    twins(&c);
    // An editor that changes the replicas, and one that changes nothing.
    let script = c.dir().join("edit.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/replicas: 1/replicas: 2/' \"$1\"\n",
    )
    .expect("writing the editor");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let script = script.display().to_string();
    let kubeconfig = c.kubeconfig(Admin).display().to_string();
    let run = |program: &str, ns: &str, editor: &str, args: &[&str]| {
        let program = if program == "pctl" {
            common::pctl::pctl_bin().display().to_string()
        } else {
            program.to_string()
        };
        let out = std::process::Command::new(program)
            .env("KUBE_EDITOR", editor)
            .arg(format!("--kubeconfig={kubeconfig}"))
            .args(["-n", ns])
            .args(args)
            .output()
            .expect("running");
        result(&out)
    };
    for editor in [script.as_str(), "true"] {
        let k = run("kubectl", "k", editor, &["edit", "deploy/web"]);
        let p = run("pctl", "p", editor, &["edit", "deploy/web"]);
        assert_same(&p, &k, &["edit", "deploy/web", editor]);
    }
    assert_eq!(
        kubectl_ok(
            &c,
            &[
                "get",
                "deploy",
                "web",
                "-n",
                "p",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "2"
    );

    // diff: the same changes, exit 1; nothing to change, exit 0.
    let (k_file, p_file) = (c.dir().join("k.yaml"), c.dir().join("p.yaml"));
    for (file, ns) in [(&k_file, "k"), (&p_file, "p")] {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}, \
             labels: {{tier: front}}}}\nspec: {{replicas: 3, selector: {{matchLabels: {{app: web}}}}, \
             template: {{metadata: {{labels: {{app: web}}}}, spec: {{containers: [{{name: web, \
             image: localhost/busybox:1.36}}]}}}}}}\n---\napiVersion: v1\nkind: ConfigMap\n\
             metadata: {{name: fresh, namespace: {ns}}}\ndata: {{a: \"1\"}}\n"
        );
        std::fs::write(file, text).expect("writing the manifest");
    }
    let body = |r: (String, String, Option<i32>)| {
        let lines: Vec<String> = r
            .0
            .lines()
            .filter(|l| !l.starts_with("diff ") && !l.starts_with("--- ") && !l.starts_with("+++ "))
            .map(|l| {
                l.replace("namespace: k", "namespace: p")
                    .replace("\"namespace\":\"k\"", "\"namespace\":\"p\"")
            })
            .map(|l| {
                if l.contains("uid: ")
                    || l.contains("creationTimestamp: ")
                    || l.contains("resourceVersion: ")
                {
                    "<masked>".into()
                } else {
                    l
                }
            })
            .collect();
        (lines.join("\n"), r.1, r.2)
    };
    let k = body(run(
        "kubectl",
        "k",
        "true",
        &["diff", "-f", &k_file.display().to_string()],
    ));
    let p = body(run(
        "pctl",
        "p",
        "true",
        &["diff", "-f", &p_file.display().to_string()],
    ));
    assert_same(&p, &k, &["diff"]);
    assert_eq!(p.2, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_as_kubectl() {
    let c = api().await;
    for args in [
        &["explain", "pods"][..],
        &["explain", "pods.spec.containers"],
        &["explain", "deploy.spec.replicas"],
        &["explain", "svc.spec.ports.port"],
        &["explain", "pods.spec.nope"],
        &["explain", "deployments"],
        &["explain", "pods.spec"],
        &["explain", "nodes.status.capacity"],
        &["explain", "cm.data"],
        &["explain", "widgets"],
    ] {
        same(&c, args);
    }
}
