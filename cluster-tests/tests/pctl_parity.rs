//! pctl side by side with kubectl on the same objects: the same stdout, stderr and exit code
//! (ignoring only what must differ), plus what users do with the output (pipe `-o yaml` into
//! `kubectl apply`, stop reading half way). More in `pctl_parity_commands`.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use cluster_tests::{Component, Identity::Admin};
use common::api::{api, kubectl_apply, kubectl_ok};
use common::parity::{result, same, same_stdin};
use common::pctl::{ok, pctl, pctl_command, pctl_stdin};
use common::{stderr, stdout};

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
    let k = cluster_tests::output_or_panic(
        std::process::Command::new("kubectl")
            .env("KUBECONFIG", &list)
            .args(["get", "deploy"])
            .stdin(std::process::Stdio::null()),
        None,
    );
    let p = cluster_tests::output_or_panic(
        std::process::Command::new(common::pctl::pctl_bin())
            .env("KUBECONFIG", &list)
            .args(["get", "deploy"])
            .stdin(std::process::Stdio::null()),
        None,
    );
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
