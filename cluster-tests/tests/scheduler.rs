//! The scheduler against a real store + apiserver, with Node objects the tests create (ready,
//! allocatable set) since no agent runs: nodeSelector placement, taints added and removed with
//! kubectl, the unschedulable condition and event with kube-scheduler's message and the pod
//! placed once a fitting node appears, no overcommit under a burst of pods, and fail-over
//! between two replicas through the Lease without both binding.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cluster_tests::{ports, ApiCluster, ApiConfig, Component, Identity::Admin};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start() -> (ApiCluster, kube::Client) {
    let c = match ApiCluster::start(ApiConfig::new()).await {
        Ok(c) => c,
        Err(e) => panic!("API cluster did not start: {e:#}"),
    };
    let client = client::from_kubeconfig(Some(&c.kubeconfig(Admin)), None)
        .await
        .expect("client from kubeconfig")
        .0;
    (c, client)
}

/// Starts a scheduler replica; returns it and its metrics port.
fn scheduler(c: &ApiCluster, extra: &[&str]) -> (Component, u16) {
    let port = ports::allocate().expect("a free port");
    let mut args = vec![
        format!("--kubeconfig={}", c.kubeconfig(Admin).display()),
        format!("--port={port}"),
        "--leader-elect-lease-duration=3s".to_string(),
        "--leader-elect-retry-period=500ms".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let comp = Component::start("scheduler", &args, c.dir()).expect("starting the scheduler");
    (comp, port)
}

/// A Ready node with the given allocatable cpu, labels and taints.
async fn add_node(client: &kube::Client, name: &str, cpu: &str, labels: Value, taints: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "10Gi"},
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "10Gi"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status"}],
    });
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": status,
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("creating a node");
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .expect("setting the node's status");
}

fn pod(name: &str, cpu: &str, extra_spec: Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "localhost/busybox:1.36",
        "resources": {"requests": {"cpu": cpu}}}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

async fn create(pods: &Api<Pod>, p: Pod) {
    pods.create(&PostParams::default(), &p)
        .await
        .expect("creating a pod");
}

async fn node_of(pods: &Api<Pod>, name: &str) -> Option<String> {
    pods.get(name)
        .await
        .ok()
        .and_then(|p| p.spec.and_then(|s| s.node_name))
}

/// Waits (up to `secs`) until the pod is bound; returns its node.
async fn bound(pods: &Api<Pod>, name: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(n) = node_of(pods, name).await {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} was not bound within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the pod's PodScheduled condition is False/Unschedulable; returns its message.
async fn unschedulable_message(pods: &Api<Pod>, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let p = pods.get(name).await.expect("getting the pod");
        assert!(
            p.spec.as_ref().unwrap().node_name.is_none(),
            "{name} was bound"
        );
        let cond = p
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        if let Some(c) = cond {
            assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
            return c.message.unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "{name} got no PodScheduled=False condition"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The messages of the FailedScheduling events of a pod.
async fn failed_scheduling(client: &kube::Client, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    events
        .list(&ListParams::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
        .inspect(|e| {
            assert_eq!(e.type_.as_deref(), Some("Warning"));
            assert_eq!(
                e.source.as_ref().and_then(|s| s.component.as_deref()),
                Some("default-scheduler")
            );
        })
        .filter_map(|e| e.message)
        .collect()
}

fn kubectl_ok(c: &ApiCluster, args: &[&str]) -> String {
    let out = c.kubectl(Admin, args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// GET http://127.0.0.1:port/path (None while nothing answers).
async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The value of the first sample of `metric` whose line contains `labels`.
async fn metric(port: u16, metric: &str, labels: &str) -> f64 {
    let body = http_get(port, "/metrics").await.unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(metric) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .next()
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn placement_taints_and_unschedulable_pods() {
    let (c, client) = start().await;
    add_node(&client, "n1", "4", json!({"disk": "ssd"}), json!([])).await;
    add_node(&client, "n2", "4", json!({}), json!([])).await;
    add_node(&client, "n3", "4", json!({}), json!([])).await;
    let (mut sched, port) = scheduler(&c, &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while http_get(port, "/healthz").await.as_deref() != Some("ok") {
        assert!(
            Instant::now() < deadline,
            "no /healthz: {}",
            sched.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // nodeSelector.
    create(
        &pods,
        pod("ssd-1", "100m", json!({"nodeSelector": {"disk": "ssd"}})),
    )
    .await;
    assert_eq!(
        bound(&pods, "ssd-1", 15).await,
        "n1",
        "{}",
        sched.log_tail(30)
    );

    // A taint keeps new pods off n1...
    kubectl_ok(&c, &["taint", "nodes", "n1", "key=value:NoSchedule"]);
    create(
        &pods,
        pod("ssd-2", "100m", json!({"nodeSelector": {"disk": "ssd"}})),
    )
    .await;
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, \
                2 node(s) didn't match Pod's node affinity/selector.";
    assert_eq!(unschedulable_message(&pods, "ssd-2").await, want);
    for _ in 0..10 {
        // Plain pods go elsewhere.
        create(
            &pods,
            pod(
                &format!("plain-{}", rand::random::<u32>()),
                "10m",
                json!({}),
            ),
        )
        .await;
    }
    let list = pods.list(&ListParams::default()).await.unwrap().items;
    for p in list
        .iter()
        .filter(|p| p.metadata.name.as_deref().unwrap().starts_with("plain-"))
    {
        let name = p.metadata.name.as_deref().unwrap();
        assert_ne!(
            bound(&pods, name, 15).await,
            "n1",
            "{name} went to the tainted node"
        );
    }
    // ... a pod tolerating it may go there ...
    create(&pods, pod("tolerant", "100m", json!({"nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "key", "operator": "Equal", "value": "value", "effect": "NoSchedule"}]}))).await;
    assert_eq!(bound(&pods, "tolerant", 15).await, "n1");
    // ... and removing the taint lets the waiting pod in.
    kubectl_ok(&c, &["taint", "nodes", "n1", "key:NoSchedule-"]);
    assert_eq!(bound(&pods, "ssd-2", 15).await, "n1");
    assert!(failed_scheduling(&client, "ssd-2")
        .await
        .iter()
        .any(|m| m == want));

    // Too big for every node: condition and event with the exact message...
    create(&pods, pod("big", "6", json!({}))).await;
    let want = "0/3 nodes are available: 3 Insufficient cpu.";
    assert_eq!(unschedulable_message(&pods, "big").await, want);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !failed_scheduling(&client, "big")
        .await
        .iter()
        .any(|m| m == want)
    {
        assert!(
            Instant::now() < deadline,
            "no FailedScheduling event for big"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let described = kubectl_ok(&c, &["describe", "pod", "big"]);
    assert!(described.contains("FailedScheduling"), "{described}");
    // ... and it is placed as soon as a node that fits appears.
    add_node(&client, "n4", "8", json!({}), json!([])).await;
    assert_eq!(bound(&pods, "big", 15).await, "n4");

    // Cordoned nodes take nothing new.
    for n in ["n1", "n2", "n3", "n4"] {
        kubectl_ok(&c, &["cordon", n]);
    }
    create(&pods, pod("cordoned", "100m", json!({}))).await;
    assert_eq!(
        unschedulable_message(&pods, "cordoned").await,
        "0/4 nodes are available: 4 node(s) were unschedulable."
    );
    kubectl_ok(&c, &["uncordon", "n3"]);
    assert_eq!(bound(&pods, "cordoned", 15).await, "n3");

    let m = http_get(port, "/metrics").await.unwrap_or_default();
    for name in [
        "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"}",
        "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"unschedulable\"}",
        "scheduler_e2e_scheduling_duration_seconds_bucket",
        "scheduler_pending_pods{queue=\"active\"}",
    ] {
        assert!(m.contains(name), "{name} missing from:\n{m}");
    }
    assert!(sched.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_overcommit_when_many_pods_arrive_at_once() {
    let (c, client) = start().await;
    for n in ["n1", "n2", "n3"] {
        add_node(&client, n, "2", json!({}), json!([])).await;
    }
    let (sched, port) = scheduler(&c, &["--leader-elect=false"]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let creates = (0..20).map(|i| create(&pods, pod(&format!("p{i}"), "500m", json!({}))));
    futures::future::join_all(creates).await;
    // 3 nodes × 2 cpu hold 12 pods of 500m; the other 8 wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let unsched = metric(port, "scheduler_pending_pods", "unschedulable").await;
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        let bound = list
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().node_name.is_some())
            .count();
        if bound == 12 && unsched == 8.0 {
            let mut per_node: HashMap<String, usize> = HashMap::new();
            for p in &list {
                if let Some(n) = p.spec.as_ref().unwrap().node_name.clone() {
                    *per_node.entry(n).or_default() += 1;
                }
            }
            assert!(per_node.values().all(|v| *v == 4), "{per_node:?}");
            break;
        }
        assert!(bound <= 12, "overcommitted: {bound} pods bound");
        assert!(
            Instant::now() < deadline,
            "bound {bound}, unschedulable {unsched}: {}",
            sched.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        unschedulable_message(&pods, &pending_name(&pods).await).await,
        "0/3 nodes are available: 3 Insufficient cpu."
    );
    // Deleting a bound pod frees room for exactly one waiting pod.
    let victim = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.spec.as_ref().unwrap().node_name.is_some())
        .unwrap();
    // No agent confirms a graceful deletion here, so delete at once (grace period 0), as the
    // agent would once the containers stopped.
    pods.delete(
        victim.metadata.name.as_deref().unwrap(),
        &kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        let bound = list
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().node_name.is_some())
            .count();
        if bound == 12 && list.len() == 19 {
            break;
        }
        assert!(Instant::now() < deadline, "{bound} bound of {}", list.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn pending_name(pods: &Api<Pod>) -> String {
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.spec.as_ref().unwrap().node_name.is_none())
        .and_then(|p| p.metadata.name)
        .expect("a pending pod")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_replica_takes_over_within_one_lease_duration() {
    let (c, client) = start().await;
    add_node(&client, "n1", "64", json!({}), json!([])).await;
    let (a, port_a) = scheduler(&c, &[]);
    let (b, port_b) = scheduler(&c, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut leader, mut follower, port_leader, port_follower) = loop {
        let la = metric(port_a, "leader_election_master_status", "").await;
        let lb = metric(port_b, "leader_election_master_status", "").await;
        match (la, lb) {
            (1.0, 0.0) => break (a, b, port_a, port_b),
            (0.0, 1.0) => break (b, a, port_b, port_a),
            (1.0, 1.0) => panic!("both replicas lead"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "nobody leads:\n{}\n{}",
            a.log_tail(20),
            b.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..10 {
        create(&pods, pod(&format!("before-{i}"), "100m", json!({}))).await;
    }
    for i in 0..10 {
        bound(&pods, &format!("before-{i}"), 15).await;
    }
    let binds = |port| metric(port, "scheduler_bindings_total", "result=\"ok\"");
    assert_eq!(binds(port_leader).await, 10.0);
    assert_eq!(binds(port_follower).await, 0.0, "the follower bound pods");
    assert_eq!(
        metric(port_follower, "scheduler_schedule_attempts_total", "").await,
        0.0
    );

    leader.kill();
    let killed = Instant::now();
    for i in 0..10 {
        create(&pods, pod(&format!("after-{i}"), "100m", json!({}))).await;
    }
    // Lease 3 s: the follower takes over once it has seen the record unchanged that long.
    for i in 0..10 {
        bound(&pods, &format!("after-{i}"), 15).await;
    }
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(3) + Duration::from_secs(2),
        "take-over took {took:?}:\n{}",
        follower.log_tail(30)
    );
    assert_eq!(binds(port_follower).await, 10.0);
    assert_eq!(
        metric(port_follower, "leader_election_master_status", "").await,
        1.0
    );
    let lease = kubectl_ok(
        &c,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "scheduler",
            "-o",
            "json",
        ],
    );
    let lease: Value = serde_json::from_str(&lease).unwrap();
    assert!(lease["spec"]["holderIdentity"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));
    assert!(follower.is_running());
}
