//! pctl side by side with kubectl, continued: describe, explain, the everyday commands
//! (jsonpath, custom columns, create configmap/secret, label, patch, set image, wait, ...), edit
//! and diff.

mod common;

use cluster_tests::Identity::Admin;
use common::api::{api, kubectl_apply, kubectl_ok};
use common::parity::{assert_same, describe_objects, result, same, same_in_twins, twins};
use common::pctl::ok;

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
        let out = cluster_tests::output_or_panic(
            std::process::Command::new(program)
                .env("KUBE_EDITOR", editor)
                .arg(format!("--kubeconfig={kubeconfig}"))
                .args(["-n", ns])
                .args(args)
                .stdin(std::process::Stdio::null()),
            None,
        );
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
