//! `pctl` against the apiserver: everyday commands print as kubectl's and change what they
//! should; `certs generate` and `kubeconfig` make a working identity.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_tests::{output_or_panic, ApiCluster, ApiConfig, Identity::Admin};
use common::api::{api, cell, cells, header, kubectl_apply, start_api};
use common::pctl::{ok, pctl, pctl_bin, pctl_command, pctl_stdin};
use common::{stderr, stdout};

/// A pod with containers of `localhost/busybox:1.36` named `containers`, bound to `node` unless
/// it is empty.
fn pod(name: &str, node: &str, containers: &[&str]) -> String {
    let containers: Vec<String> = containers
        .iter()
        .map(|c| format!("{{name: {c}, image: localhost/busybox:1.36}}"))
        .collect();
    let node = if node.is_empty() {
        String::new()
    } else {
        format!("nodeName: {node}, ")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n\
         spec: {{{node}containers: [{}]}}\n",
        containers.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn everyday_commands() {
    let c = api().await;
    let examples = cluster_tests::examples_dir();
    let out = ok(&c, &["apply", "-f", &examples.to_string_lossy()]);
    let names = stdout(&c.kubectl(
        Admin,
        &["get", "-f", &examples.to_string_lossy(), "-o", "name"],
    ));
    let mut created: Vec<&str> = out.lines().collect();
    let mut expected: Vec<String> = names.lines().map(|n| format!("{n} created")).collect();
    created.sort_unstable();
    expected.sort_unstable();
    assert!(
        expected.iter().any(|l| l == "pod/busybox created"),
        "{names}"
    );
    assert_eq!(created, expected, "{out}");
    let again = ok(
        &c,
        &[
            "apply",
            "-f",
            &examples.join("deployment-web.yaml").to_string_lossy(),
        ],
    );
    assert_eq!(
        again,
        "deployment.apps/web unchanged\nservice/web unchanged\n"
    );
    let pods = ok(&c, &["get", "pods"]);
    assert_eq!(
        header(&pods),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(cell(&pods, "busybox", "STATUS"), "Pending", "{pods}");
    let wide = ok(&c, &["get", "pods", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ],
        "{wide}"
    );
    // Two tables, each with its header, the rows named kind/name.
    let both = ok(&c, &["get", "deploy,svc"]);
    let (deploys, services) = both
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("two tables expected:\n{both}"));
    assert_eq!(
        header(deploys),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{both}"
    );
    assert_eq!(
        cell(deploys, "deployment.apps/web", "READY"),
        "0/3",
        "{both}"
    );
    assert_eq!(header(services)[..2], ["NAME", "TYPE"], "{both}");
    assert_eq!(cell(services, "service/web", "TYPE"), "ClusterIP", "{both}");
    assert_eq!(
        ok(&c, &["get", "pod", "busybox", "-o", "name"]),
        "pod/busybox\n"
    );
    let yaml = ok(&c, &["get", "pod", "busybox", "-o", "yaml"]);
    assert!(
        yaml.starts_with("apiVersion: v1\n") && yaml.lines().any(|l| l == "  name: busybox"),
        "{yaml}"
    );
    assert_eq!(
        header(&ok(&c, &["get", "pods", "-A"]))[..2],
        ["NAMESPACE", "NAME"]
    );
    assert_eq!(
        ok(&c, &["label", "pod", "busybox", "tier=web"]),
        "pod/busybox labeled\n"
    );
    let refused = pctl(&c, &["label", "pod", "busybox", "tier=db"]);
    assert!(
        stderr(&refused).contains("'tier' already has a value (web), and --overwrite is false"),
        "{}",
        stderr(&refused)
    );
    ok(&c, &["annotate", "pod", "busybox", "note=hi"]);
    assert_eq!(
        ok(&c, &["get", "pods", "-l", "tier=web", "-o", "name"]),
        "pod/busybox\n"
    );
    assert_eq!(
        ok(&c, &["scale", "deploy", "web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    let web: serde_json::Value =
        serde_json::from_str(&ok(&c, &["get", "deploy", "web", "-o", "json"])).unwrap();
    assert_eq!(web["spec"]["replicas"], 5, "{web}");
    assert_eq!(
        ok(
            &c,
            &[
                "create",
                "deployment",
                "d2",
                "--image=localhost/busybox:1.36"
            ]
        ),
        "deployment.apps/d2 created\n"
    );
    assert_eq!(
        ok(&c, &["create", "namespace", "team"]),
        "namespace/team created\n"
    );
    assert_eq!(
        ok(&c, &["rollout", "restart", "deployment/web"]),
        "deployment.apps/web restarted\n"
    );
    // As kubectl's, line for line (pctl_parity compares more kinds).
    let describe = ok(&c, &["describe", "pod", "busybox"]);
    assert_eq!(
        describe,
        stdout(&c.kubectl(Admin, &["describe", "pod", "busybox"]))
    );
    // annotate key- removes the annotation.
    assert_eq!(
        ok(&c, &["annotate", "pod", "busybox", "note-"]),
        "pod/busybox annotated\n"
    );
    ok(&c, &["annotate", "pod", "busybox", "other=x"]);
    assert_eq!(
        stdout(&c.kubectl(Admin, &["annotate", "pod", "busybox", "other-"])),
        "pod/busybox annotated\n"
    );
    let annotations = stdout(&c.kubectl(
        Admin,
        &[
            "get",
            "pod",
            "busybox",
            "-o",
            "jsonpath={.metadata.annotations}",
        ],
    ));
    assert!(!annotations.contains("\"note\""), "{annotations}");
    // create -f - reads the manifest from stdin.
    let manifests = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: from-stdin}}\ndata: {{k: v}}\n\
         ---\n{}",
        pod("piped", "", &["c"])
    );
    let created = pctl_stdin(&c, &["create", "-f", "-"], &manifests);
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(
        stdout(&created),
        "configmap/from-stdin created\npod/piped created\n"
    );
    assert_eq!(
        stdout(&c.kubectl(
            Admin,
            &["get", "cm", "from-stdin", "-o", "jsonpath={.data.k}"]
        )),
        "v"
    );
    let again = pctl_stdin(
        &c,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-stdin}\n",
    );
    // kubectl names the manifest's source in the server's error.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-stdin}\n";
    assert_eq!(
        stderr(&again),
        stderr(&c.kubectl_stdin(Admin, &["create", "-f", "-"], manifest))
    );
    assert_eq!(
        stderr(&again).trim(),
        "Error from server (AlreadyExists): error when creating \"STDIN\": configmaps \
         \"from-stdin\" already exists"
    );
    // get -w: the list, then each change as it happens, until stopped.
    get_watch(&c);
    // KUBECONFIG is read when --kubeconfig is not given (and the flag wins over it).
    let home = c.store.dir().join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let with_env = |kubeconfig: &str, args: &[&str]| {
        output_or_panic(
            Command::new(pctl_bin())
                .env("KUBECONFIG", kubeconfig)
                .env("HOME", &home)
                .args(args)
                .stdin(Stdio::null()),
            None,
        )
    };
    let admin = c.kubeconfig(Admin).display().to_string();
    let out = with_env(&admin, &["get", "ns", "default", "-o", "name"]);
    assert_eq!(stdout(&out), "namespace/default\n", "{}", stderr(&out));
    let missing = home.join("missing.kubeconfig").display().to_string();
    assert!(!with_env(&missing, &["get", "ns", "default", "-o", "name"])
        .status
        .success());
    let flag = with_env(
        &missing,
        &[
            &format!("--kubeconfig={admin}"),
            "get",
            "ns",
            "default",
            "-o",
            "name",
        ],
    );
    assert_eq!(stdout(&flag), "namespace/default\n", "{}", stderr(&flag));
    // Nodes.
    let node = c.kubectl_stdin(
        Admin,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
    );
    assert!(node.status.success(), "{}", stderr(&node));
    assert_eq!(
        ok(&c, &["taint", "nodes", "n1", "dedicated=batch:NoSchedule"]),
        "node/n1 tainted\n"
    );
    assert_eq!(ok(&c, &["cordon", "n1"]), "node/n1 cordoned\n");
    let nodes = ok(&c, &["get", "nodes"]);
    assert_eq!(
        cell(&nodes, "n1", "STATUS"),
        "Unknown,SchedulingDisabled",
        "{nodes}"
    );
    assert_eq!(
        ok(&c, &["taint", "nodes", "n1", "dedicated:NoSchedule-"]),
        "node/n1 untainted\n"
    );
    assert_eq!(ok(&c, &["uncordon", "n1"]), "node/n1 uncordoned\n");
    // Errors as kubectl prints them.
    let missing = pctl(&c, &["get", "pod", "nope"]);
    assert_eq!(
        stderr(&missing).trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );
    let unknown = pctl(&c, &["get", "widgets"]);
    assert!(
        stderr(&unknown).contains("the server doesn't have a resource type \"widgets\""),
        "{}",
        stderr(&unknown)
    );
    // top: the apiserver serves metrics.k8s.io from the agents; here no agent reports usage
    // (the nodes have none), and kubectl and pctl say so alike.
    for args in [
        &["top", "nodes"][..],
        &["top", "pods", "-A"],
        &["top", "pod", "busybox", "--containers"],
    ] {
        let out = pctl(&c, args);
        let kubectl = c.kubectl(Admin, args);
        assert_eq!(
            (out.status.code(), stderr(&out).trim()),
            (kubectl.status.code(), stderr(&kubectl).trim()),
            "pctl {args:?} differs from kubectl"
        );
        assert_ne!(
            out.status.code(),
            Some(0),
            "pctl {args:?}: {}",
            stdout(&out)
        );
        eprintln!("top {args:?}: {}", stderr(&out).trim());
    }
    // Deleting.
    assert_eq!(
        ok(&c, &["delete", "pod", "busybox"]),
        "pod \"busybox\" deleted\n"
    );
    ok(
        &c,
        &[
            "delete",
            "-f",
            &examples.join("deployment-web.yaml").to_string_lossy(),
        ],
    );
    assert!(!pctl(&c, &["get", "deploy", "web"]).status.success());

    // certs + kubeconfig make an identity the apiserver accepts when it trusts that CA: here
    // we only check the files and the kubeconfig's shape.
    let dir = c.store.dir().join("pctl-pki");
    let out = ok(
        &c,
        &[
            "certs",
            "generate",
            "--dir",
            &dir.to_string_lossy(),
            "--nodes",
            "n1",
        ],
    );
    assert!(out.contains("node-n1.crt (CN=system:node:n1)"), "{out}");
    let kc = ok(
        &c,
        &[
            "kubeconfig",
            "--certs-dir",
            &dir.to_string_lossy(),
            "--user",
            "viewer",
        ],
    );
    assert!(
        kc.contains("client-certificate-data:") && kc.contains("current-context: viewer@cluster"),
        "{kc}"
    );
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(dir.join("admin.crt"))
        .output()
        .unwrap();
    assert!(
        stdout(&subject).contains("O = system:masters") && stdout(&subject).contains("CN = admin"),
        "{}",
        stdout(&subject)
    );
}

/// `pctl get pods -w` prints the list, then a line for a pod created while it watches.
fn get_watch(c: &ApiCluster) {
    let mut watch = pctl_command(c, &["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running pctl get -w");
    let out = watch.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = vec![rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default()];
    kubectl_apply(c, &pod("watched", "", &["c"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l| l.starts_with("watched ")) && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        seen[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l.starts_with("busybox ")), "{seen:?}");
    assert!(
        seen.iter()
            .any(|l| l.starts_with("watched ") && l.contains("Pending")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_evicts_pods_through_the_eviction_api() {
    let c = api().await;
    kubectl_apply(&c, "apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n");
    // One pod no controller manages, one owned by a replica set; both bound to n2.
    kubectl_apply(&c, &pod("lone", "n2", &["c"]));
    kubectl_apply(
        &c,
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: rs}\n\
         spec: {selector: {matchLabels: {app: rs}}, template: {metadata: {labels: {app: rs}}, \
         spec: {containers: [{name: c, image: localhost/busybox:1.36}]}}}\n",
    );
    let rs_uid = stdout(&c.kubectl(
        Admin,
        &["get", "rs", "rs", "-o", "jsonpath={.metadata.uid}"],
    ));
    let owned = pod("owned", "n2", &["c"]).replace(
        "{name: owned}",
        &format!(
            "{{name: owned, labels: {{app: rs}}, ownerReferences: [{{apiVersion: apps/v1, \
             kind: ReplicaSet, name: rs, uid: {rs_uid}, controller: true}}]}}"
        ),
    );
    kubectl_apply(&c, &owned);
    // The eviction subresource is advertised as kubectl drain looks for it.
    let (code, body) = c.curl(Admin, "GET", "/api/v1", None);
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let eviction = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .expect("pods/eviction in discovery");
    assert_eq!(
        (
            eviction["group"].as_str(),
            eviction["version"].as_str(),
            eviction["kind"].as_str()
        ),
        (Some("policy"), Some("v1"), Some("Eviction"))
    );
    // An eviction whose name does not match the URL is refused.
    let (code, body) = c.curl(
        Admin,
        "POST",
        "/api/v1/namespaces/default/pods/lone/eviction",
        Some((
            "application/json",
            br#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"other"}}"#,
        )),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("name in URL does not match name in Eviction object"),
        "{body}"
    );
    // A viewer may not evict.
    let viewer = c.kubectl(cluster_tests::Identity::Viewer, &["drain", "n2", "--force"]);
    assert!(
        !viewer.status.success()
            && stderr(&viewer).contains(
                "nodes \"n2\" is forbidden: User \"viewer\" cannot patch resource \"nodes\""
            ),
        "{}",
        stderr(&viewer)
    );

    // Without --force, the unmanaged pod blocks the drain; nothing is evicted.
    let refused = pctl(&c, &["drain", "n2", "--grace-period=0"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(
            "cannot delete Pods declare no controller (use --force to override): default/lone"
        ),
        "{}",
        stderr(&refused)
    );
    assert!(c.kubectl(Admin, &["get", "pod", "owned"]).status.success());
    // With --force, both are evicted and the node is left cordoned.
    let out = ok(
        &c,
        &[
            "drain",
            "n2",
            "--force",
            "--grace-period=0",
            "--timeout=60s",
        ],
    );
    assert!(
        out.contains("node/n2 already cordoned")
            && out.contains("evicting pod default/lone")
            && out.contains("pod/owned evicted")
            && out.ends_with("node/n2 drained\n"),
        "{out}"
    );
    let left = c.kubectl(Admin, &["get", "pods", "-o", "name"]);
    assert!(
        left.status.success() && stdout(&left).is_empty(),
        "pods left after the drain: {}",
        stdout(&left)
    );
    let node = ok(&c, &["get", "node", "n2"]);
    assert_eq!(
        cell(&node, "n2", "STATUS"),
        "Unknown,SchedulingDisabled",
        "{node}"
    );

    // The real kubectl drains through the same API (graceful eviction: the pod stays until
    // its agent confirms, so it is checked for a deletionTimestamp rather than waited for).
    kubectl_apply(&c, &pod("again", "n2", &["c"]));
    let out = c.kubectl(Admin, &["drain", "n2", "--force", "--timeout=2s"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l == "evicting pod default/again"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let ts = stdout(&c.kubectl(
        Admin,
        &[
            "get",
            "pod",
            "again",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ],
    ));
    assert!(!ts.is_empty(), "evicted pod has no deletionTimestamp");
}

#[tokio::test(flavor = "multi_thread")]
async fn rollout_status_history_and_undo() {
    let c = api().await;
    ok(
        &c,
        &[
            "create",
            "deployment",
            "web",
            "--image=localhost/busybox:1.36",
        ],
    );
    let uid = stdout(&c.kubectl(
        Admin,
        &["get", "deploy", "web", "-o", "jsonpath={.metadata.uid}"],
    ));
    // The replica sets the deployment controller would have made for two revisions.
    for (rev, image) in [(1, "localhost/busybox:1.35"), (2, "localhost/busybox:1.36")] {
        kubectl_apply(
            &c,
            &format!(
                "apiVersion: apps/v1\nkind: ReplicaSet\n\
             metadata: {{name: web-{rev}, labels: {{app: web, pod-template-hash: h{rev}}}, \
             annotations: {{deployment.kubernetes.io/revision: \"{rev}\", \
             kubernetes.io/change-cause: \"image {image}\"}}, ownerReferences: [{{apiVersion: \
             apps/v1, kind: Deployment, name: web, uid: {uid}, controller: true}}]}}\n\
             spec: {{selector: {{matchLabels: {{app: web, pod-template-hash: h{rev}}}}}, \
             template: {{metadata: {{labels: {{app: web, pod-template-hash: h{rev}}}}}, \
             spec: {{containers: [{{name: busybox, image: \"{image}\"}}]}}}}}}\n"
            ),
        );
    }
    let history = ok(&c, &["rollout", "history", "deployment/web"]);
    assert_eq!(
        history,
        "deployment.apps/web \nREVISION   CHANGE-CAUSE\n1          image localhost/busybox:1.35\n\
         2          image localhost/busybox:1.36\n\n"
    );
    assert!(
        ok(&c, &["rollout", "history", "deploy/web", "--revision=1"])
            .contains("Image:\tlocalhost/busybox:1.35")
    );
    let image = || {
        stdout(&c.kubectl(
            Admin,
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        ))
    };
    assert_eq!(
        ok(&c, &["rollout", "undo", "deployment/web"]),
        "deployment.apps/web rolled back\n"
    );
    assert_eq!(image(), "localhost/busybox:1.35");
    assert_eq!(
        ok(
            &c,
            &["rollout", "undo", "deployment/web", "--to-revision=1"]
        ),
        "deployment.apps/web skipped rollback (current template already matches revision 1)\n"
    );
    ok(
        &c,
        &["rollout", "undo", "deployment/web", "--to-revision=2"],
    );
    assert_eq!(image(), "localhost/busybox:1.36");
    let missing = pctl(
        &c,
        &["rollout", "undo", "deployment/web", "--to-revision=9"],
    );
    assert_eq!(
        stderr(&missing).trim(),
        "error: unable to find specified revision 9 in history"
    );

    // Status follows what the controller reports in status.
    let waiting = ok(
        &c,
        &["rollout", "status", "deployment/web", "--watch=false"],
    );
    assert_eq!(
        waiting,
        "Waiting for deployment spec update to be observed...\n"
    );
    let generation = stdout(&c.kubectl(
        Admin,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}",
        ],
    ));
    let status = serde_json::json!({"status": {
        "observedGeneration": generation.parse::<i64>().expect("a generation"),
        "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}})
    .to_string();
    let patched = c.kubectl(
        Admin,
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ],
    );
    assert!(patched.status.success(), "{}", stderr(&patched));
    assert_eq!(
        ok(&c, &["rollout", "status", "deploy/web", "--timeout=30s"]),
        "deployment \"web\" successfully rolled out\n"
    );
    // kubectl agrees.
    assert!(
        stdout(&c.kubectl(Admin, &["rollout", "status", "deploy/web"]))
            .contains("successfully rolled out")
    );
    assert!(
        stdout(&c.kubectl(Admin, &["rollout", "history", "deploy/web"]))
            .contains("image localhost/busybox:1.35")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn store_members_and_backups() {
    let mut cfg = ApiConfig::new();
    cfg.store = cluster_tests::ClusterConfig::new(3);
    let c = start_api(cfg).await;
    let endpoints = format!("--endpoints={}", c.store.client_urls().join(","));
    let list = ok(&c, &["store", &endpoints, "member", "list"]);
    assert_eq!(
        header(&list),
        [
            "ID",
            "STATUS",
            "NAME",
            "PEER URLS",
            "CLIENT URLS",
            "IS LEARNER"
        ]
    );
    let statuses: Vec<&str> = list.lines().skip(1).map(|l| cells(l)[1]).collect();
    assert_eq!(statuses, ["started"; 3], "{list}");
    let nope = pctl(
        &c,
        &["store", &endpoints, "member", "remove", "no-such-member"],
    );
    assert_eq!(
        stderr(&nope).trim(),
        "error: member no-such-member not found in the cluster"
    );
    // etcd's backup format is etcd's own (bbolt), restored with etcdctl: only ours here.
    if c.store.flavor() == cluster_tests::Flavor::Ours {
        backup_and_restore(&c, &endpoints);
    }
    // Remove the third member by name (two keep quorum), then add a member that is not
    // started yet and remove it again by the ID `member add` printed.
    // A follower, so that no election runs while the member list changes (that case is the
    // etcdctl suite's).
    let leader = c.store.leader().await.expect("a store leader");
    let gone = if leader == 2 { 1 } else { 2 };
    let stay = (0..3)
        .find(|i| *i != gone && *i != leader)
        .unwrap_or(leader);
    let third = c.store.member_name(gone).to_string();
    // Asked of the members that stay: a member that applies its own removal stops, and its
    // client gets "etcdserver: server stopped" (etcd's and ours), though the removal is done.
    let two = format!(
        "--endpoints={},{}",
        c.store.client_url(leader),
        c.store.client_url(stay)
    );
    // etcd refuses a removal until its members have been connected for 5 s ("unhealthy cluster").
    let mut attempt = 0;
    let removed = loop {
        let out = pctl(&c, &["store", &two, "member", "remove", &third]);
        attempt += 1;
        if out.status.success() || attempt > 40 || !stderr(&out).contains("unhealthy cluster") {
            assert!(out.status.success(), "member remove: {}", stderr(&out));
            break stdout(&out);
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert!(
        removed.starts_with("Member ") && removed.contains("removed from cluster"),
        "{removed}"
    );
    assert_eq!(
        ok(&c, &["store", &two, "member", "list"]).lines().count(),
        3
    );
    let added = ok(
        &c,
        &[
            "store",
            &two,
            "member",
            "add",
            "extra",
            "--peer-urls=http://127.0.0.1:1",
        ],
    );
    assert!(
        added.contains("--initial-cluster-state existing")
            && added.contains("extra=http://127.0.0.1:1"),
        "{added}"
    );
    let id = added.split_whitespace().nth(1).unwrap().to_string();
    assert!(ok(&c, &["store", &two, "member", "list"]).contains("unstarted"));
    let removed = ok(&c, &["store", &two, "member", "remove", &id]);
    assert!(
        removed.starts_with(&format!("Member {id} removed from cluster")),
        "{removed}"
    );
}

/// `store snapshot save`, then `restore` into a new data dir that a store can start from.
fn backup_and_restore(c: &ApiCluster, endpoints: &str) {
    ok(c, &["create", "namespace", "backed-up"]);
    let file = c.store.dir().join("backup.db");
    let saved = ok(
        c,
        &[
            "store",
            endpoints,
            "snapshot",
            "save",
            &file.to_string_lossy(),
        ],
    );
    assert!(
        saved.starts_with(&format!("Snapshot saved at {}", file.display())),
        "{saved}"
    );
    let data = c.store.dir().join("restored.store");
    let restored = ok(
        c,
        &[
            "store",
            "snapshot",
            "restore",
            &file.to_string_lossy(),
            "--name=r1",
            &format!("--data-dir={}", data.display()),
        ],
    );
    assert!(restored.contains("Snapshot restored into"), "{restored}");
    let again = pctl(
        c,
        &[
            "store",
            "snapshot",
            "restore",
            &file.to_string_lossy(),
            &format!("--data-dir={}", data.display()),
        ],
    );
    assert!(
        stderr(&again).contains("exists; restore into a new directory"),
        "{}",
        stderr(&again)
    );
    let corrupt = c.store.dir().join("corrupt.db");
    std::fs::write(&corrupt, b"not a backup").unwrap();
    let bad = pctl(
        c,
        &[
            "store",
            "snapshot",
            "restore",
            &corrupt.to_string_lossy(),
            &format!("--data-dir={}", c.store.dir().join("bad.store").display()),
        ],
    );
    assert!(
        !bad.status.success() && !c.store.dir().join("bad.store").exists(),
        "{}",
        stderr(&bad)
    );
    // A member started on the restored dir serves the backed-up namespace.
    let port = cluster_tests::ports::allocate().unwrap();
    let peer = cluster_tests::ports::allocate().unwrap();
    let mut member = Command::new(cluster_tests::Flavor::Ours.binary())
        .args(["--name=r1", &format!("--data-dir={}", data.display())])
        .arg(format!("--listen-client-urls=http://127.0.0.1:{port}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=r1=http://127.0.0.1:{peer}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut found = String::new();
    for _ in 0..100 {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                &format!("--endpoints=http://127.0.0.1:{port}"),
                "get",
                "--prefix",
                "--keys-only",
                "/registry/namespaces/backed-up",
            ])
            .output()
            .unwrap();
        found = stdout(&out);
        if found.contains("backed-up") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = member.kill();
    let _ = member.wait();
    assert!(
        found.contains("/registry/namespaces/backed-up"),
        "restored store does not hold the namespace: {found:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_and_exec_through_the_agent() {
    let c = api().await;
    let agent = c.start_agent_double("n3").await.expect("agent double");
    kubectl_apply(&c, "apiVersion: v1\nkind: Node\nmetadata: {name: n3}\n");
    let status = serde_json::json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}}}})
    .to_string();
    let patched = c.kubectl(
        Admin,
        &[
            "patch",
            "node",
            "n3",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ],
    );
    assert!(patched.status.success(), "{}", stderr(&patched));
    kubectl_apply(&c, "apiVersion: v1\nkind: Node\nmetadata: {name: n4}\n");
    for (name, node, containers) in [
        ("app", "n3", &["main"][..]),
        ("two", "n3", &["a", "b"]),
        ("waiting", "n3", &["main"]),
        ("pending", "", &["main"]),
        ("lost", "n4", &["main"]),
    ] {
        kubectl_apply(&c, &pod(name, node, containers));
    }
    let lines = |from: usize| {
        (from..=5)
            .map(|i| format!("default/app/main line {i}\n"))
            .collect::<String>()
    };

    // Logs, with kubectl and pctl.
    assert_eq!(stdout(&c.kubectl(Admin, &["logs", "app"])), lines(1));
    assert_eq!(
        stdout(&c.kubectl(Admin, &["logs", "pod/app", "--tail=2"])),
        lines(4)
    );
    assert_eq!(ok(&c, &["logs", "app", "--tail=2"]), lines(4));
    assert_eq!(
        ok(&c, &["logs", "two", "-c", "b", "--tail=1"]),
        "default/two/b line 5\n"
    );
    // Several containers: the server wants a name; kubectl and pctl default to the first.
    let (code, body) = c.curl(
        Admin,
        "GET",
        "/api/v1/namespaces/default/pods/two/log",
        None,
    );
    assert_eq!(code, 400);
    assert!(
        body.contains("a container name must be specified for pod two, choose one of: [a b]"),
        "{body}"
    );
    for out in [
        c.kubectl(Admin, &["logs", "two", "--tail=1"]),
        pctl(&c, &["logs", "two", "--tail=1"]),
    ] {
        assert_eq!(stdout(&out), "default/two/a line 5\n");
        assert!(
            stderr(&out).contains("Defaulted container \"a\" out of: a, b"),
            "{}",
            stderr(&out)
        );
    }
    let bad = pctl(&c, &["logs", "app", "-c", "nope"]);
    assert_eq!(
        stderr(&bad).trim(),
        "Error from server (BadRequest): container nope is not valid for pod app"
    );
    let waiting = c.kubectl(Admin, &["logs", "waiting"]);
    assert_eq!(
        stderr(&waiting).trim(),
        "Error from server (BadRequest): container \"main\" in pod \"waiting\" is waiting to \
         start: ContainerCreating"
    );
    let pending = c.kubectl(Admin, &["logs", "pending"]);
    assert!(
        pending.status.success() && stdout(&pending).is_empty(),
        "{}",
        stderr(&pending)
    );
    let lost = pctl(&c, &["logs", "lost"]);
    assert!(
        stderr(&lost).contains("node \"n4\" does not report an agent endpoint"),
        "{}",
        stderr(&lost)
    );
    let negative = c.curl(
        Admin,
        "GET",
        "/api/v1/namespaces/default/pods/app/log?tailLines=-1",
        None,
    );
    assert_eq!(negative.0, 422, "{}", negative.1);
    // -f streams until stopped.
    let follow = output_or_panic(
        Command::new("timeout")
            .args([
                "-k",
                "5",
                "3",
                &pctl_bin().to_string_lossy(),
                &format!("--kubeconfig={}", c.kubeconfig(Admin).display()),
                "logs",
                "-f",
                "app",
            ])
            .stdin(Stdio::null()),
        None,
    );
    assert!(
        stdout(&follow).starts_with(&lines(1)) && stdout(&follow).contains("tick 3\n"),
        "{}",
        stdout(&follow)
    );
    // --previous and --timestamps reach the agent as the kubelet's query parameters.
    assert_eq!(
        ok(&c, &["logs", "app", "--previous", "--tail=1"]),
        "default/app/main previous line 5\n"
    );
    assert_eq!(
        ok(&c, &["logs", "app", "-p", "-f"]),
        (1..=5)
            .map(|i| format!("default/app/main previous line {i}\n"))
            .collect::<String>()
    );
    let stamped = "2024-01-01T00:00:04.000000000Z default/app/main line 4\n\
                   2024-01-01T00:00:05.000000000Z default/app/main line 5\n";
    assert_eq!(
        ok(&c, &["logs", "app", "--timestamps", "--tail=2"]),
        stamped
    );
    assert_eq!(
        stdout(&c.kubectl(Admin, &["logs", "app", "--timestamps", "--tail=2"])),
        stamped
    );
    assert_eq!(
        ok(
            &c,
            &["logs", "two", "-c", "b", "-p", "--timestamps", "--tail=1"]
        ),
        "2024-01-01T00:00:05.000000000Z default/two/b previous line 5\n"
    );
    // A viewer may read logs.
    assert_eq!(
        stdout(&c.kubectl(
            cluster_tests::Identity::Viewer,
            &["logs", "app", "--tail=1"]
        )),
        lines(5)
    );

    // Exec, with kubectl and pctl: output, exit codes, stdin.
    let hello = c.kubectl(Admin, &["exec", "app", "--", "echo", "hello"]);
    assert_eq!(stdout(&hello), "hello\n", "{}", stderr(&hello));
    assert_eq!(
        ok(&c, &["exec", "app", "--", "echo", "hello", "world"]),
        "hello world\n"
    );
    let failed = c.kubectl(
        Admin,
        &["exec", "app", "--", "sh", "-c", "echo oops >&2; exit 3"],
    );
    assert_eq!(failed.status.code(), Some(3), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("oops")
            && stderr(&failed).contains("command terminated with exit code 3"),
        "{}",
        stderr(&failed)
    );
    let failed = pctl(&c, &["exec", "app", "--", "sh", "-c", "exit 4"]);
    assert_eq!(failed.status.code(), Some(4));
    assert_eq!(
        stderr(&failed).trim(),
        "command terminated with exit code 4"
    );
    let piped = c.kubectl_stdin(
        Admin,
        &["exec", "-i", "app", "--", "wc", "-c"],
        "twelve bytes",
    );
    assert_eq!(stdout(&piped).trim(), "12", "{}", stderr(&piped));
    let piped = output_or_panic(
        pctl_command(&c, &["exec", "-i", "two", "-c", "a", "--", "wc", "-c"])
            .stdin(std::fs::File::open("/etc/hostname").unwrap()),
        None,
    );
    let expected = std::fs::read("/etc/hostname").unwrap().len().to_string();
    assert_eq!(stdout(&piped).trim(), expected, "{}", stderr(&piped));
    exec_with_a_terminal(&c, &agent);
    // Refusals.
    let viewer = c.kubectl(
        cluster_tests::Identity::Viewer,
        &["exec", "app", "--", "true"],
    );
    assert!(
        stderr(&viewer).contains("cannot create resource \"pods/exec\""),
        "{}",
        stderr(&viewer)
    );
    let pending = c.kubectl(Admin, &["exec", "pending", "--", "true"]);
    assert!(
        stderr(&pending).contains("pod pending does not have a host assigned"),
        "{}",
        stderr(&pending)
    );
    let (code, body) = c.curl(
        Admin,
        "POST",
        "/api/v1/namespaces/default/pods/app/exec?stdout=true",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("you must specify at least 1 command"),
        "{body}"
    );
}

/// `exec -it`: without a terminal on stdin, kubectl's warning and no TTY (pctl as kubectl);
/// with one (a pty from `script`), a TTY session in raw mode that sends the terminal size on
/// the resize channel at start and on SIGWINCH, and leaves the terminal as it found it.
fn exec_with_a_terminal(c: &ApiCluster, agent: &cluster_tests::agent_double::AgentDouble) {
    let warning = "Unable to use a TTY - input is not a terminal or the right kind of file";
    for kubectl in [false, true] {
        let before = agent.execs().len();
        let args = [
            "exec",
            "-it",
            "app",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ];
        let out = if kubectl {
            c.kubectl_stdin(Admin, &args, "")
        } else {
            pctl_stdin(c, &args, "")
        };
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "out\n");
        assert_eq!(
            stderr(&out).lines().collect::<Vec<_>>(),
            [warning, "err"],
            "kubectl: {kubectl}"
        );
        let execs = agent.execs();
        assert_eq!(execs.len(), before + 1);
        let last = &execs[before];
        assert!(
            last.stdin && !last.tty && last.resizes.is_empty(),
            "kubectl: {kubectl}: {last:?}"
        );
    }
    // -t without -i: no TTY and no warning, as kubectl.
    let out = pctl(c, &["exec", "-t", "app", "--", "echo", "plain"]);
    assert_eq!(
        (stdout(&out).as_str(), stderr(&out).as_str()),
        ("plain\n", "")
    );
    assert!(agent.execs().last().is_some_and(|e| !e.tty && !e.stdin));

    // A real terminal: script(1) gives pctl a pty of 91x37; a background job resizes it to
    // 120x50 once `flag` exists, which the kernel signals with SIGWINCH.
    let flag = c.store.dir().join("resize-now");
    let cmd = format!(
        "stty cols 91 rows 37; before=$(stty -g); \
         (while [ ! -e {flag} ]; do sleep 0.1; done; stty cols 120 rows 50 </dev/tty) & \
         {pctl} --kubeconfig={kc} exec -it app -- \
         sh -c 'read line; echo got:$line; echo oops >&2; exit 5'; echo pctl-exit:$?; \
         wait; [ \"$(stty -g)\" = \"$before\" ] && echo terminal-restored",
        flag = flag.display(),
        pctl = pctl_bin().display(),
        kc = c.kubeconfig(Admin).display(),
    );
    let before = agent.execs().len();
    let mut script = Command::new("timeout")
        .args(["-k", "10", "90", "script", "-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running script(1)");
    let mut input = script.stdin.take().expect("piped stdin");
    let wait_for = |what: &str, done: &dyn Fn(&cluster_tests::agent_double::ExecRecord) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(e) = agent.execs().get(before) {
                if done(e) {
                    return e.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                agent.execs().get(before)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let first = wait_for("the initial size", &|e| !e.resizes.is_empty());
    assert!(first.tty && first.stdin, "{first:?}");
    assert_eq!(first.resizes[0], (91, 37));
    std::fs::write(&flag, b"").unwrap();
    let resized = wait_for("the new size", &|e| e.resizes.contains(&(120, 50)));
    // `stty cols 120 rows 50` may change the size in two steps (120x37, then 120x50), each a
    // SIGWINCH: the session must start at 91x37 and end at 120x50, with nothing else between.
    assert_eq!(
        resized.resizes.first(),
        Some(&(91, 37)),
        "{:?}",
        resized.resizes
    );
    assert_eq!(
        resized.resizes.last(),
        Some(&(120, 50)),
        "{:?}",
        resized.resizes
    );
    assert!(
        resized
            .resizes
            .iter()
            .all(|&(c, r)| (c == 91 && r == 37) || c == 120),
        "unexpected sizes: {:?}",
        resized.resizes
    );
    input.write_all(b"hello\n").unwrap();
    let out = script.wait_with_output().expect("waiting for script(1)");
    drop(input);
    let text = stdout(&out);
    // With a TTY, stderr comes on the terminal too; the exit code is the command's.
    assert!(
        text.contains("got:hello") && text.contains("oops"),
        "{text}\n{}",
        stderr(&out)
    );
    assert!(
        text.contains("command terminated with exit code 5") && text.contains("pctl-exit:5"),
        "{text}"
    );
    assert!(text.contains("terminal-restored"), "{text}");
}
