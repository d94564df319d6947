//! The real kubectl against our apiserver (on our store, or on real etcd with
//! `STORE_FLAVOR=etcd`): discovery, the example manifests, everyday commands on pods, nodes,
//! namespaces, deployments and services, `get -w`, graceful deletion, several apiservers.

mod common;

use std::time::{Duration, Instant};

use cluster_tests::{ApiCluster, ApiConfig, Identity::*};
use common::api::{
    api, cell, event_types, header, kubectl_json as json, kubectl_ok as ok,
    kubectl_ok_stdin as ok_stdin, row, start_api, Curl,
};
use common::{stderr, stdout};
use serde_json::Value;

/// The resourceVersion of a pod list, straight from the server (kubectl prints its own List).
fn list_rv(c: &ApiCluster) -> String {
    let (code, body) = c.curl(Admin, "GET", "/api/v1/namespaces/default/pods", None);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!rv.is_empty());
    rv
}

fn examples() -> Vec<std::path::PathBuf> {
    let dir = cluster_tests::examples_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("deployment-web.yaml")),
        "no deployment-web.yaml among the examples in {}: {files:?}",
        dir.display()
    );
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_version_and_explain() {
    let c = api().await;
    let v = ok(&c, &["version"]);
    assert!(v.contains("Server Version: v1."), "{v}");
    let resources = ok(&c, &["api-resources"]);
    for (name, short) in [
        ("pods", "po"),
        ("nodes", "no"),
        ("namespaces", "ns"),
        ("services", "svc"),
        ("deployments", "deploy"),
        ("replicasets", "rs"),
        ("endpoints", "ep"),
        ("events", "ev"),
        ("configmaps", "cm"),
    ] {
        assert!(
            resources
                .lines()
                .any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some(short)),
            "{name}/{short} missing:\n{resources}"
        );
    }
    let versions = ok(&c, &["api-versions"]);
    for gv in ["v1", "apps/v1", "coordination.k8s.io/v1"] {
        assert!(versions.lines().any(|l| l == gv), "{versions}");
    }
    let explain = ok(&c, &["explain", "pods.spec"]);
    assert!(
        explain.contains("FIELD: spec <PodSpec>") && explain.contains("containers"),
        "{explain}"
    );
    let ns = ok(&c, &["get", "ns"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert_eq!(cell(&ns, n, "STATUS"), "Active", "{ns}");
    }
    assert_eq!(ok(&c, &["get", "--raw", "/readyz"]).trim(), "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn example_manifests_apply_unmodified() {
    let c = api().await;
    for f in examples() {
        let path = f.to_string_lossy().to_string();
        let out = ok(&c, &["apply", "-f", &path]);
        let names = ok(&c, &["get", "-f", &path, "-o", "name"]);
        let objects: Vec<&str> = names.lines().collect();
        assert!(!objects.is_empty(), "{path}: no objects");
        let each = |how: &dyn Fn(&str) -> &'static str| {
            objects
                .iter()
                .map(|o| format!("{o} {}\n", how(o)))
                .collect::<String>()
        };
        assert_eq!(out, each(&|_| "created"), "{path}");
        // Re-applying changes nothing. A pod that lists tolerations is reported "configured":
        // its atomic toleration list is re-sent, and the server adds its default tolerations
        // again, which leaves the stored pod as it was.
        let manifest = std::fs::read_to_string(&f).expect("reading the example");
        let before = ok(
            &c,
            &[
                "get",
                "-f",
                &path,
                "-o",
                "jsonpath={.items[*].metadata.resourceVersion}",
            ],
        );
        let again = ok(&c, &["apply", "-f", &path]);
        let reapplied = |o: &str| {
            if o.starts_with("pod/") && manifest.contains("tolerations:") {
                "configured"
            } else {
                "unchanged"
            }
        };
        assert_eq!(again, each(&reapplied), "{path}");
        let after = ok(
            &c,
            &[
                "get",
                "-f",
                &path,
                "-o",
                "jsonpath={.items[*].metadata.resourceVersion}",
            ],
        );
        assert_eq!(before, after, "{path}: re-applying changed a stored object");
    }
    // A change is applied as a strategic merge: replicas and a container env var.
    let web =
        std::fs::read_to_string(cluster_tests::examples_dir().join("deployment-web.yaml")).unwrap();
    let image = "        image: localhost/busybox:1.36\n";
    assert!(
        web.contains("replicas: 3\n") && web.contains(image),
        "{web}"
    );
    let env = "        env:\n        - name: MODE\n          value: test\n";
    let changed = web
        .replace("replicas: 3\n", "replicas: 4\n")
        .replace(image, &format!("{image}{env}"));
    let out = ok_stdin(&c, &["apply", "-f", "-"], &changed);
    assert_eq!(
        out,
        "deployment.apps/web configured\nservice/web unchanged\n"
    );
    let d = json(&c, &["get", "deploy", "web"]);
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"],
        "MODE"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"],
        "http"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    // Defaults the server filled in.
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    let pod = json(&c, &["get", "pod", "busybox"]);
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
    // kubectl's usual columns, and -o wide.
    let pods = ok(&c, &["get", "pods"]);
    assert_eq!(
        header(&pods),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{pods}"
    );
    assert_eq!(
        row(&pods, "twocontainers")[..4],
        ["twocontainers", "0/2", "Pending", "0"],
        "{pods}"
    );
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
    let deploy = ok(&c, &["get", "deploy"]);
    assert_eq!(
        header(&deploy),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert_eq!(
        row(&deploy, "web")[..4],
        ["web", "0/4", "0", "0"],
        "{deploy}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_label_annotate_patch_describe_delete() {
    let c = api().await;
    ok_stdin(
        &c,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p1, labels: {app: a}}\n\
         spec: {nodeName: n1, containers: [{name: c, image: 'busybox:1.36', \
         command: [sleep, '3600']}]}\n",
    );
    assert_eq!(ok(&c, &["get", "pod", "p1", "-o", "name"]).trim(), "pod/p1");
    assert!(ok(&c, &["get", "pod", "p1", "-o", "yaml"]).contains("name: p1"));
    assert!(ok(&c, &["label", "pod", "p1", "tier=web"]).contains("pod/p1 labeled"));
    let refused = c.kubectl(Admin, &["label", "pod", "p1", "tier=db"]);
    assert!(
        !refused.status.success() && stderr(&refused).contains("already has a value (web)"),
        "{}",
        stderr(&refused)
    );
    ok(&c, &["label", "pod", "p1", "tier=db", "--overwrite"]);
    ok(&c, &["annotate", "pod", "p1", "note=hello"]);
    ok(&c, &["label", "pod", "p1", "app-"]);
    let p = json(&c, &["get", "pod", "p1"]);
    assert_eq!(p["metadata"]["labels"], serde_json::json!({"tier": "db"}));
    assert_eq!(p["metadata"]["annotations"]["note"], "hello");
    // The three patch types.
    ok(
        &c,
        &[
            "patch",
            "pod",
            "p1",
            "-p",
            r#"{"spec":{"containers":[{"name":"c","image":"busybox:1.37"}]}}"#,
        ],
    );
    ok(
        &c,
        &[
            "patch",
            "pod",
            "p1",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"m":"1"}}}"#,
        ],
    );
    ok(
        &c,
        &[
            "patch",
            "pod",
            "p1",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/metadata/labels/j","value":"2"}]"#,
        ],
    );
    let p = json(&c, &["get", "pod", "p1"]);
    assert_eq!(p["spec"]["containers"][0]["image"], "busybox:1.37");
    assert_eq!(p["spec"]["containers"][0]["command"][0], "sleep");
    assert_eq!(
        (
            p["metadata"]["labels"]["m"].as_str(),
            p["metadata"]["labels"]["j"].as_str()
        ),
        (Some("1"), Some("2"))
    );
    // A forbidden pod spec change is refused with Kubernetes' message.
    let bad = c.kubectl(
        Admin,
        &[
            "patch",
            "pod",
            "p1",
            "-p",
            r#"{"spec":{"containers":[{"name":"c","command":["true"]}]}}"#,
        ],
    );
    assert!(
        !bad.status.success()
            && stderr(&bad).contains("pod updates may not change fields other than"),
        "{}",
        stderr(&bad)
    );
    let describe = ok(&c, &["describe", "pod", "p1"]);
    let field = |name: &str| {
        describe
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
    };
    assert_eq!(
        (field("Name:"), field("Image:")),
        (Some("p1"), Some("busybox:1.37")),
        "{describe}"
    );
    // Graceful deletion: a pod bound to a node stays, marked, until its agent confirms.
    let out = ok(&c, &["delete", "pod", "p1", "--wait=false"]);
    assert!(out.contains("pod \"p1\" deleted"), "{out}");
    let p = json(&c, &["get", "pod", "p1"]);
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(
        cell(&ok(&c, &["get", "pod", "p1"]), "p1", "STATUS"),
        "Terminating"
    );
    let out = ok(&c, &["delete", "pod", "p1", "--grace-period=0", "--force"]);
    assert!(out.contains("force deleted"), "{out}");
    let gone = c.kubectl(Admin, &["get", "pod", "p1"]);
    assert_eq!(
        stderr(&gone).trim(),
        "Error from server (NotFound): pods \"p1\" not found"
    );
    // An unscheduled pod goes at once.
    ok(&c, &["run", "loose", "--image=busybox"]);
    ok(&c, &["delete", "pod", "loose"]);
    let gone = c.kubectl(Admin, &["get", "pod", "loose"]);
    assert_eq!(
        stderr(&gone).trim(),
        "Error from server (NotFound): pods \"loose\" not found"
    );
    // The audit log has one line per mutating request.
    let audit = c.audit_log(0);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"verb\":\"delete\"") && l.contains("\"name\":\"p1\"")),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_watch_prints_changes() {
    let c = api().await;
    let out_file = c.store.dir().join("watch.out");
    let mut watch = c.kubectl_background(Admin, &["get", "pods", "-w"], &out_file);
    std::thread::sleep(Duration::from_millis(1500));
    ok(&c, &["run", "w1", "--image=busybox"]);
    ok(&c, &["label", "pod", "w1", "x=y"]);
    ok(&c, &["delete", "pod", "w1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&out_file).unwrap_or_default();
        if text.lines().filter(|l| l.starts_with("w1")).count() >= 3 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        text.lines().next().is_some_and(|l| l.starts_with("NAME")),
        "{text}"
    );
    assert!(
        text.lines()
            .filter(|l| l.starts_with("w1") && l.contains("Pending"))
            .count()
            >= 3,
        "{text}"
    );
    // A watch from a resourceVersion sees exactly the later events, as JSON.
    let rv = list_rv(&c);
    ok(&c, &["run", "w2", "--image=busybox"]);
    let (code, body) = c.curl(
        Admin,
        "GET",
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&timeoutSeconds=2"
        ),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("watch line is JSON"))
        .collect();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "w2");
}

/// Events are not kept in the apiserver's cache (as Kubernetes' default watch cache sizes):
/// gets, lists and watches of them still behave as for any cached resource, read from the
/// store and fed from the cache's event window.
#[tokio::test(flavor = "multi_thread")]
async fn events_are_listed_and_watched_without_the_cache() {
    let c = api().await;
    let event = |name: &str, reason: &str| {
        format!(
            "apiVersion: v1\nkind: Event\nmetadata:\n  name: {name}\n  namespace: default\n\
             involvedObject:\n  kind: Pod\n  name: p1\n  namespace: default\n\
             reason: {reason}\nmessage: m\ntype: Normal\n"
        )
    };
    ok_stdin(&c, &["apply", "-f", "-"], &event("e1", "Pulled"));
    assert_eq!(json(&c, &["get", "event", "e1"])["reason"], "Pulled");
    let names = ok(&c, &["get", "events", "-o", "name"]);
    assert!(names.contains("event/e1"), "{names}");
    // A watch without a resourceVersion starts with the current events, then follows.
    let (code, body) = c.curl(
        Admin,
        "GET",
        "/api/v1/namespaces/default/events?watch=true&timeoutSeconds=1",
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(event_types(&body), ["ADDED"], "{body}");
    // From a resourceVersion: exactly the later changes, and a change that takes an event
    // out of a field selector is DELETED for that watch (the cache has its previous state).
    let (code, list) = c.curl(Admin, "GET", "/api/v1/namespaces/default/events", None);
    assert_eq!(code, 200, "{list}");
    let v: Value = serde_json::from_str(&list).unwrap();
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    ok_stdin(&c, &["apply", "-f", "-"], &event("e2", "Created"));
    ok_stdin(&c, &["apply", "-f", "-"], &event("e1", "Started"));
    let (code, body) = c.curl(
        Admin,
        "GET",
        &format!(
            "/api/v1/namespaces/default/events?watch=true&resourceVersion={rv}\
             &fieldSelector=reason%3DPulled&timeoutSeconds=2"
        ),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(event_types(&body), ["DELETED"], "{body}");
    let (code, body) = c.curl(
        Admin,
        "GET",
        &format!(
            "/api/v1/namespaces/default/events?watch=true&resourceVersion={rv}&timeoutSeconds=2"
        ),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(event_types(&body), ["ADDED", "MODIFIED"], "{body}");
}

/// `--event-ttl`: the store drops an Event that long after its last write (through a lease
/// the Events of about the same time share), and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn events_expire_after_the_event_ttl() {
    let c = start_api(ApiConfig {
        extra_args: vec!["--event-ttl=2s".into()],
        ..ApiConfig::new()
    })
    .await;
    ok_stdin(
        &c,
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: e1\n  namespace: default\n\
         involvedObject:\n  kind: Pod\n  name: p1\n  namespace: default\n\
         reason: Pulled\nmessage: m\ntype: Normal\n",
    );
    ok(&c, &["create", "configmap", "stays", "--from-literal=k=v"]);
    assert_eq!(json(&c, &["get", "event", "e1"])["reason"], "Pulled");
    let written = Instant::now();
    let gone = loop {
        let out = c.kubectl(Admin, &["get", "event", "e1", "-o", "name"]);
        if !out.status.success() {
            assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
            break written.elapsed();
        }
        assert!(
            written.elapsed() < Duration::from_secs(30),
            "the event outlived its 2 s ttl by 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The store may round a lease up to its minimum time to live; never down.
    assert!(gone >= Duration::from_millis(1500), "gone after {gone:?}");
    assert_eq!(json(&c, &["get", "configmap", "stays"])["data"]["k"], "v");
}

/// GET with a resourceVersion is served from the watch cache (a state at least that recent;
/// 0: any), as kubelets read their Node; a resourceVersion that is not a number is a 400.
#[tokio::test(flavor = "multi_thread")]
async fn get_with_a_resource_version_reads_the_watch_cache() {
    let c = api().await;
    ok(&c, &["create", "configmap", "cm1", "--from-literal=k=v"]);
    let path = "/api/v1/namespaces/default/configmaps/cm1";
    let (code, body) = c.curl(Admin, "GET", path, None);
    assert_eq!(code, 200, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap();
    for at in ["0", rv] {
        let (code, body) = c.curl(Admin, "GET", &format!("{path}?resourceVersion={at}"), None);
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["k"], "v", "{body}");
        assert_eq!(v["metadata"]["resourceVersion"], rv, "{body}");
    }
    let (code, body) = c.curl(
        Admin,
        "GET",
        "/api/v1/namespaces/default/configmaps/absent?resourceVersion=0",
        None,
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = c.curl(Admin, "GET", &format!("{path}?resourceVersion=abc"), None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid resource version"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_services_and_nodes() {
    let c = api().await;
    ok(
        &c,
        &[
            "apply",
            "-f",
            &cluster_tests::examples_dir()
                .join("deployment-web.yaml")
                .to_string_lossy(),
        ],
    );
    assert_eq!(
        ok(&c, &["scale", "deployment", "web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(json(&c, &["get", "deploy", "web"])["spec"]["replicas"], 5);
    let scale = ok(
        &c,
        &[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ],
    );
    let scale: Value = serde_json::from_str(&scale).expect("a Scale as JSON");
    assert_eq!(
        (
            &scale["kind"],
            &scale["spec"]["replicas"],
            &scale["status"]["selector"]
        ),
        (
            &Value::from("Scale"),
            &Value::from(5),
            &Value::from("app=web")
        ),
        "{scale}"
    );
    // Services: a cluster IP from the range (the default 10.96.0.0/12), node ports from
    // theirs, a taken port refused.
    let svc = json(&c, &["get", "svc", "web"]);
    let ip: std::net::Ipv4Addr = svc["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no IPv4 cluster IP: {svc}"));
    let [a, b, ..] = ip.octets();
    assert!(
        a == 10 && (96..=111).contains(&b),
        "{ip} is outside 10.96.0.0/12"
    );
    assert_ne!(
        ip,
        std::net::Ipv4Addr::new(10, 96, 0, 1),
        "the kubernetes service's IP"
    );
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    ok_stdin(
        &c,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: np}\n\
         spec: {type: NodePort, selector: {app: web}, ports: [\
         {port: 80, name: main, nodePort: 30080}, {port: 81, name: other, nodePort: 0}]}\n",
    );
    let np = json(&c, &["get", "svc", "np"]);
    assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080);
    let other = np["spec"]["ports"][1]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&other), "{other}");
    // `kubectl replace` of a manifest without the allocated values keeps them (Kubernetes'
    // patchAllocatedValues); naming another cluster IP is refused.
    let np_ip = np["spec"]["clusterIP"].as_str().unwrap().to_string();
    let replaced = ok_stdin(
        &c,
        &["replace", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: np, labels: {replaced: 'yes'}}\n\
         spec: {type: NodePort, selector: {app: web}, ports: [\
         {port: 80, name: main}, {port: 81, name: other}]}\n",
    );
    assert_eq!(replaced.trim(), "service/np replaced");
    let np = json(&c, &["get", "svc", "np"]);
    assert_eq!(
        (np["spec"]["clusterIP"].as_str(), &np["spec"]["clusterIPs"]),
        (Some(np_ip.as_str()), &serde_json::json!([np_ip]))
    );
    assert_eq!(
        (
            np["spec"]["ports"][0]["nodePort"].as_i64(),
            np["spec"]["ports"][1]["nodePort"].as_i64()
        ),
        (Some(30080), Some(other))
    );
    assert_eq!(np["metadata"]["labels"]["replaced"], "yes");
    let other_ip = if np_ip == "10.96.0.250" {
        "10.96.0.251"
    } else {
        "10.96.0.250"
    };
    let moved = c.kubectl_stdin(
        Admin,
        &["replace", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: np}}\nspec: {{type: NodePort, \
             clusterIP: {other_ip}, ports: [{{port: 80, name: main}}]}}\n"
        ),
    );
    assert_eq!(
        stderr(&moved).trim(),
        format!(
            "The Service \"np\" is invalid: spec.clusterIPs[0]: Invalid value: \
             []string{{\"{other_ip}\"}}: may not change once set"
        )
    );
    assert_eq!(
        json(&c, &["get", "svc", "np"])["spec"]["clusterIP"].as_str(),
        Some(np_ip.as_str())
    );
    let node_port = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n\
             spec: {{type: NodePort, ports: [{{port: 80, nodePort: 30080}}]}}\n"
        )
    };
    let dup = c.kubectl_stdin(Admin, &["create", "-f", "-"], &node_port("np2"));
    assert!(
        stderr(&dup).contains("provided port is already allocated"),
        "{}",
        stderr(&dup)
    );
    let svcs = ok(&c, &["get", "svc"]);
    assert!(
        svcs.lines()
            .any(|l| l.starts_with("np ") && l.contains("NodePort") && l.contains("80:30080/TCP")),
        "{svcs}"
    );
    assert!(
        svcs.lines()
            .any(|l| l.starts_with("kubernetes") && l.contains("10.96.0.1")),
        "{svcs}"
    );
    // Deleting the service frees its port for the next one.
    ok(&c, &["delete", "svc", "np"]);
    ok_stdin(&c, &["create", "-f", "-"], &node_port("np3"));
    // Nodes: create, label, taint, cordon.
    ok_stdin(
        &c,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {kubernetes.io/hostname: n1}}\n\
         status: {conditions: [{type: Ready, status: 'True'}]}\n",
    );
    ok(&c, &["label", "node", "n1", "disktype=ssd"]);
    assert!(
        ok(&c, &["taint", "nodes", "n1", "dedicated=batch:NoSchedule"]).contains("node/n1 tainted")
    );
    ok(&c, &["cordon", "n1"]);
    let node = json(&c, &["get", "node", "n1"]);
    assert_eq!(node["spec"]["taints"][0]["key"], "dedicated");
    assert_eq!(node["spec"]["unschedulable"], true);
    let nodes = ok(&c, &["get", "nodes"]);
    assert_eq!(
        nodes
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    );
    assert_eq!(
        cell(&nodes, "n1", "STATUS"),
        "Ready,SchedulingDisabled",
        "{nodes}"
    );
    ok(&c, &["taint", "nodes", "n1", "dedicated:NoSchedule-"]);
    ok(&c, &["uncordon", "n1"]);
    let node = json(&c, &["get", "node", "n1"]);
    assert!(
        node["spec"]["taints"]
            .as_array()
            .is_none_or(|t| t.is_empty()),
        "{node}"
    );
    assert_eq!(
        ok(&c, &["get", "nodes", "-l", "disktype=ssd", "-o", "name"]).trim(),
        "node/n1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_selectors_and_pagination() {
    let c = api().await;
    ok_stdin(
        &c,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    );
    for i in 0..12 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        ok(
            &c,
            &[
                "-n",
                "team",
                "run",
                &format!("p{i:02}"),
                "--image=busybox",
                &format!("--labels=tier={tier},i=n{i}"),
            ],
        );
    }
    // `-o name` of the pods in team that `selection` picks.
    let picked = |selection: &[&str]| {
        let mut args = vec!["-n", "team", "get", "pods", "-o", "name"];
        args.extend(selection);
        ok(&c, &args)
    };
    let pods = |numbers: &[usize]| {
        numbers
            .iter()
            .map(|i| format!("pod/p{i:02}\n"))
            .collect::<String>()
    };
    let every: Vec<usize> = (0..12).collect();
    let even: Vec<usize> = (0..12).step_by(2).collect();
    assert_eq!(picked(&["-l", "tier=front"]), pods(&even));
    assert_eq!(
        picked(&["-l", "tier in (front,back),i notin (n0,n1)"]),
        pods(&every[2..])
    );
    assert_eq!(picked(&["-l", "!tier"]), "");
    assert_eq!(
        picked(&["--field-selector", "metadata.name=p03"]),
        pods(&[3])
    );
    assert_eq!(
        picked(&["--field-selector", "status.phase=Pending"]),
        pods(&every)
    );
    assert_eq!(picked(&["--chunk-size=5"]), pods(&every));
    let all = ok(&c, &["get", "pods", "-A"]);
    assert_eq!(
        header(&all),
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{all}"
    );
    let page = c.kubectl(
        Admin,
        &["get", "--raw", "/api/v1/namespaces/team/pods?limit=5"],
    );
    let page: Value = serde_json::from_str(&stdout(&page)).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert_eq!(page["metadata"]["remainingItemCount"], 7);
    // deletecollection: the verb with a selector, then kubectl's `delete -l` and `--all`.
    let (code, body) = c.curl(
        Admin,
        "DELETE",
        "/api/v1/namespaces/team/pods?labelSelector=i%3Dn0",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let gone: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = gone["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["p00"], "{body}");
    assert_eq!(picked(&[]), pods(&every[1..]));
    let deleted = ok(&c, &["delete", "pods", "-l", "tier=front", "-n", "team"]);
    assert_eq!(
        deleted,
        ["p02", "p04", "p06", "p08", "p10"]
            .iter()
            .map(|p| format!("pod \"{p}\" deleted\n"))
            .collect::<String>()
    );
    let odd: Vec<usize> = (1..12).step_by(2).collect();
    assert_eq!(picked(&[]), pods(&odd));
    assert_eq!(picked(&["-l", "tier=back"]), pods(&odd));
    let deleted = ok(&c, &["delete", "pods", "--all", "-n", "team"]);
    assert_eq!(
        deleted,
        odd.iter()
            .map(|i| format!("pod \"p{i:02}\" deleted\n"))
            .collect::<String>()
    );
    let none = c.kubectl(Admin, &["-n", "team", "get", "pods"]);
    assert_eq!(
        (stdout(&none).as_str(), stderr(&none).trim()),
        ("", "No resources found in team namespace.")
    );
    // A missing namespace refuses objects; a terminating one too.
    let missing = c.kubectl(Admin, &["-n", "nope", "run", "x", "--image=busybox"]);
    assert!(
        stderr(&missing).contains("namespaces \"nope\" not found"),
        "{}",
        stderr(&missing)
    );
    ok(&c, &["delete", "ns", "team", "--wait=false"]);
    assert_eq!(
        cell(&ok(&c, &["get", "ns", "team"]), "team", "STATUS"),
        "Terminating"
    );
    let refused = c.kubectl(Admin, &["-n", "team", "run", "late", "--image=busybox"]);
    assert!(
        stderr(&refused).contains("because it is being terminated"),
        "{}",
        stderr(&refused)
    );
    let builtin = c.kubectl(Admin, &["delete", "ns", "default"]);
    assert!(
        stderr(&builtin).contains("this namespace may not be deleted"),
        "{}",
        stderr(&builtin)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_apiservers_share_one_store() {
    let mut cfg = ApiConfig::new();
    cfg.replicas = 2;
    cfg.store = cluster_tests::ClusterConfig::new(3).tls(true);
    let c = start_api(cfg).await;
    ok_stdin(
        &c,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {k: v}\n",
    );
    // The second apiserver sees the object and a stale update through it is a conflict.
    let path = "/api/v1/namespaces/default/configmaps/shared";
    let (code, body) = c.curl(Admin, "GET", path, None);
    assert_eq!(code, 200, "{body}");
    let mut cm: Value = serde_json::from_str(&body).unwrap();
    let second = Curl::new(&c, 1, Admin);
    let (code, body) = second.request("GET", path, None);
    assert_eq!(code, 200, "{body}");
    let via1: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(via1["data"]["k"], "v");
    ok(
        &c,
        &[
            "patch",
            "configmap",
            "shared",
            "--type=merge",
            "-p",
            r#"{"data":{"k":"w"}}"#,
        ],
    );
    cm["data"]["k"] = Value::from("stale");
    let (code, body) = second.request("PUT", path, Some(&cm.to_string()));
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains(
            "the object has been modified; please apply your changes to the latest version and \
             try again"
        ),
        "{body}"
    );
    // Concurrent creates of the same name through both: exactly one wins.
    let handles: Vec<_> = [Curl::new(&c, 0, Admin), second]
        .into_iter()
        .map(|curl| {
            std::thread::spawn(move || {
                let race = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"race"}}"#;
                curl.request("POST", "/api/v1/namespaces/default/configmaps", Some(race))
                    .0
            })
        })
        .collect();
    let mut codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [201, 409]);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_bookmarks_gone_and_metrics() {
    let mut c = api().await;
    ok(&c, &["run", "b1", "--image=busybox"]);
    // Bookmarks every second (the harness sets --bookmark-interval=1) when asked for.
    let (code, body) = c.curl(
        Admin,
        "GET",
        "/api/v1/namespaces/default/pods?watch=true&allowWatchBookmarks=true&timeoutSeconds=3",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let types = event_types(&body);
    assert_eq!(types.first().map(String::as_str), Some("ADDED"), "{body}");
    assert!(types.iter().any(|t| t == "BOOKMARK"), "{body}");
    // A resourceVersion older than the watch cache's window (a restarted apiserver's cache
    // begins at the store's current revision): 410 Gone (Expired).
    c.restart_apiserver(0).expect("apiserver restarts");
    let (code, body) = c.curl(
        Admin,
        "GET",
        "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1&timeoutSeconds=2",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let ev: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    // Selector transitions: a pod leaving the selection is DELETED for that watcher.
    let rv = list_rv(&c);
    ok(&c, &["label", "pod", "b1", "sel=yes"]);
    ok(&c, &["label", "pod", "b1", "sel-"]);
    let (code, body) = c.curl(
        Admin,
        "GET",
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&labelSelector=sel%3Dyes\
             &resourceVersion={rv}&timeoutSeconds=2"
        ),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let types = event_types(&body);
    assert_eq!(types, ["ADDED", "DELETED"], "{body}");
    let metrics = ok(&c, &["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"patch\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("apiserver_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert_eq!(ok(&c, &["get", "--raw", "/livez"]).trim(), "ok");
}

/// A watch of one node's pods (`fieldSelector=spec.nodeName=N`, every agent's) is fed only
/// the events of pods that were or are on N: the watch cache indexes such watches by node.
#[tokio::test(flavor = "multi_thread")]
async fn watches_of_one_node_see_only_its_pods() {
    let c = api().await;
    let rv = list_rv(&c);
    ok(&c, &["run", "i1", "--image=busybox"]);
    ok(
        &c,
        &[
            "run",
            "i2",
            "--image=busybox",
            "--overrides={\"spec\":{\"nodeName\":\"n2\"}}",
        ],
    );
    let (code, body) = c.curl(
        Admin,
        "POST",
        "/api/v1/namespaces/default/pods/i1/binding",
        Some((
            "application/json",
            br#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"i1"},"target":{"kind":"Node","name":"n1"}}"#,
        )),
    );
    assert_eq!(code, 201, "{body}");
    ok(&c, &["delete", "pod", "i1", "--grace-period=0", "--force"]);
    let watch = |selector: &str| {
        let (code, body) = c.curl(
            Admin,
            "GET",
            &format!(
                "/api/v1/namespaces/default/pods?watch=true&fieldSelector={selector}\
                 &resourceVersion={rv}&timeoutSeconds=2"
            ),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let names: Vec<String> = body
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|e| {
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap_or(""),
                    e["object"]["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect();
        names
    };
    // Bound to n1: ADDED for n1's watch; deleted: DELETED.
    assert_eq!(watch("spec.nodeName%3Dn1"), ["ADDED i1", "DELETED i1"]);
    assert_eq!(watch("spec.nodeName%3Dn2"), ["ADDED i2"]);
    // The unscheduled pods' watch (the scheduler's): i1 appears, then leaves at its binding.
    assert_eq!(watch("spec.nodeName%3D"), ["ADDED i1", "DELETED i1"]);
    assert!(watch("spec.nodeName%3Dn3").is_empty());
    // A list of one node's pods (read from the cache's index).
    let names = ok(
        &c,
        &[
            "get",
            "pods",
            "--field-selector=spec.nodeName=n2",
            "-o",
            "name",
        ],
    );
    assert_eq!(names, "pod/i2\n");
    // A node without events still gets bookmarks at the current revision, so that its agent
    // resumes from a recent one (not from its list's, long gone from the window).
    let now: i64 = list_rv(&c).parse().unwrap();
    let (code, body) = c.curl(
        Admin,
        "GET",
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&fieldSelector=spec.nodeName%3Dn3\
             &resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=3"
        ),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let bookmarks: Vec<i64> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "BOOKMARK")
        .filter_map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        bookmarks.last().is_some_and(|b| *b >= now),
        "bookmarks {bookmarks:?} before revision {now}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_create_commands_send_protobuf() {
    let c = api().await;
    for (args, created) in [
        (&["namespace", "team"][..], "namespace/team"),
        (
            &[
                "deployment",
                "web",
                "--image=localhost/busybox:1.36",
                "--replicas=2",
                "--port=8080",
            ],
            "deployment.apps/web",
        ),
        (&["configmap", "cfg", "--from-literal=a=b"], "configmap/cfg"),
        (
            &["secret", "generic", "sec", "--from-literal=p=q"],
            "secret/sec",
        ),
        (&["serviceaccount", "robot"], "serviceaccount/robot"),
        (
            &["service", "nodeport", "np", "--tcp=81:8081"],
            "service/np",
        ),
    ] {
        let mut all = vec!["create"];
        all.extend(args);
        assert_eq!(ok(&c, &all), format!("{created} created\n"));
    }
    let d = json(&c, &["get", "deploy", "web"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8080
    );
    assert_eq!(json(&c, &["get", "cm", "cfg"])["data"]["a"], "b");
    assert_eq!(json(&c, &["get", "secret", "sec"])["data"]["p"], "cQ==");
    let svc = json(&c, &["get", "svc", "np"]);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8081);
    assert!(
        svc["spec"]["ports"][0]["nodePort"]
            .as_i64()
            .is_some_and(|p| (30000..=32767).contains(&p)),
        "{svc}"
    );
    assert_eq!(
        cell(&ok(&c, &["get", "ns", "team"]), "team", "STATUS"),
        "Active"
    );
}
