//! `pctl` against the apiserver: everyday commands print as kubectl's and change what they
//! should; `certs generate` and `kubeconfig` make a working identity.

mod common;

use std::process::{Command, Output};

use cluster_tests::{apiserver_binary, ApiCluster, ApiConfig, Identity::Admin};
use common::{stderr, stdout};

fn pctl(c: &ApiCluster, args: &[&str]) -> Output {
    Command::new(apiserver_binary().with_file_name("pctl"))
        .arg(format!("--kubeconfig={}", c.kubeconfig(Admin).display()))
        .args(args)
        .output()
        .expect("running pctl (build it with `cargo build -p pctl`)")
}

fn ok(c: &ApiCluster, args: &[&str]) -> String {
    let out = pctl(c, args);
    assert!(out.status.success(), "pctl {args:?} failed:\nstdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn everyday_commands() {
    let c = match ApiCluster::start(ApiConfig::new()).await {
        Ok(c) => c,
        Err(e) => panic!("API cluster did not start: {e:#}"),
    };
    let examples = cluster_tests::examples_dir();
    let out = ok(&c, &["apply", "-f", &examples.to_string_lossy()]);
    assert!(out.contains("deployment.apps/web created") && out.contains("pod/busybox created"), "{out}");
    let again = ok(&c, &["apply", "-f", &examples.join("deployment-web.yaml").to_string_lossy()]);
    assert_eq!(again, "deployment.apps/web unchanged\nservice/web unchanged\n");
    let pods = ok(&c, &["get", "pods"]);
    assert_eq!(pods.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(pods.lines().any(|l| l.starts_with("busybox ") && l.contains("Pending")), "{pods}");
    assert!(ok(&c, &["get", "pods", "-o", "wide"]).lines().next().unwrap().contains("NOMINATED NODE"));
    assert!(ok(&c, &["get", "deploy,svc"]).contains("deployment.apps/web"));
    assert_eq!(ok(&c, &["get", "pod", "busybox", "-o", "name"]), "pod/busybox\n");
    assert!(ok(&c, &["get", "pod", "busybox", "-o", "yaml"]).contains("name: busybox"));
    assert!(ok(&c, &["get", "pods", "-A"]).starts_with("NAMESPACE"));
    assert!(ok(&c, &["label", "pod", "busybox", "tier=web"]).contains("pod/busybox labeled"));
    let refused = pctl(&c, &["label", "pod", "busybox", "tier=db"]);
    assert!(stderr(&refused).contains("'tier' already has a value (web), and --overwrite is false"), "{}", stderr(&refused));
    ok(&c, &["annotate", "pod", "busybox", "note=hi"]);
    assert_eq!(ok(&c, &["get", "pods", "-l", "tier=web", "-o", "name"]), "pod/busybox\n");
    assert!(ok(&c, &["scale", "deploy", "web", "--replicas=5"]).contains("deployment.apps/web scaled"));
    assert!(ok(&c, &["get", "deploy", "web", "-o", "json"]).contains("\"replicas\": 5"));
    assert!(ok(&c, &["create", "deployment", "d2", "--image=localhost/busybox:1.36"]).contains("deployment.apps/d2 created"));
    assert!(ok(&c, &["create", "namespace", "team"]).contains("namespace/team created"));
    assert!(ok(&c, &["rollout", "restart", "deployment/web"]).contains("deployment.apps/web restarted"));
    let describe = ok(&c, &["describe", "pod", "busybox"]);
    assert!(describe.contains("Name:           busybox") && describe.contains("Events:"), "{describe}");
    // Nodes.
    let node = c.kubectl_stdin(Admin, &["create", "-f", "-"], "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n");
    assert!(node.status.success());
    assert_eq!(ok(&c, &["taint", "nodes", "n1", "dedicated=batch:NoSchedule"]), "node/n1 tainted\n");
    assert_eq!(ok(&c, &["cordon", "n1"]), "node/n1 cordoned\n");
    assert!(ok(&c, &["get", "nodes"]).contains("SchedulingDisabled"));
    assert_eq!(ok(&c, &["taint", "nodes", "n1", "dedicated:NoSchedule-"]), "node/n1 untainted\n");
    assert_eq!(ok(&c, &["uncordon", "n1"]), "node/n1 uncordoned\n");
    // Errors as kubectl prints them.
    let missing = pctl(&c, &["get", "pod", "nope"]);
    assert_eq!(stderr(&missing).trim(), "Error from server (NotFound): pods \"nope\" not found");
    let unknown = pctl(&c, &["get", "widgets"]);
    assert!(stderr(&unknown).contains("the server doesn't have a resource type \"widgets\""), "{}", stderr(&unknown));
    // Deleting.
    assert_eq!(ok(&c, &["delete", "pod", "busybox"]), "pod \"busybox\" deleted\n");
    ok(&c, &["delete", "-f", &examples.join("deployment-web.yaml").to_string_lossy()]);
    assert!(!pctl(&c, &["get", "deploy", "web"]).status.success());

    // certs + kubeconfig make an identity the apiserver accepts when it trusts that CA: here
    // we only check the files and the kubeconfig's shape.
    let dir = c.store.dir().join("pctl-pki");
    let out = ok(&c, &["certs", "generate", "--dir", &dir.to_string_lossy(), "--nodes", "n1"]);
    assert!(out.contains("node-n1.crt (CN=system:node:n1)"), "{out}");
    let kc = ok(&c, &["kubeconfig", "--certs-dir", &dir.to_string_lossy(), "--user", "viewer"]);
    assert!(kc.contains("client-certificate-data:") && kc.contains("current-context: viewer@cluster"), "{kc}");
    let subject = Command::new("openssl").args(["x509", "-noout", "-subject", "-in"]).arg(dir.join("admin.crt")).output().unwrap();
    assert!(stdout(&subject).contains("O = system:masters") && stdout(&subject).contains("CN = admin"), "{}", stdout(&subject));
}
