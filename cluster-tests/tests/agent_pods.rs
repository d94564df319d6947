//! Pods on real containerd, run by the real agent (with a store and an apiserver): two
//! containers of one pod reach each other over localhost; an init container's file is seen by
//! the app container; a crashing container reaches CrashLoopBackOff with a growing back-off; a
//! memory hog is OOMKilled; a deleted pod runs its preStop hook and gets its grace period; an
//! agent killed with SIGKILL and restarted leaves every pod running exactly once. Needs root,
//! containerd, runc and the CNI plugins (scripts/setup.sh).

use std::time::{Duration, Instant};

use cluster_tests::{
    wait::{self, condition, container_state, container_state_of},
    ApiCluster, ApiConfig, ContainerdNode, Identity,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

/// The id and restart count of every container of the running pods, and how many containers
/// containerd holds in all.
async fn census(pods: &Api<Pod>, names: &[&str], node: &ContainerdNode) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    for name in names {
        let p = pods.get(name).await.expect("pod");
        for cs in p
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default()
        {
            ids.push(format!(
                "{name}/{} {:?} restarts={}",
                cs.name, cs.container_id, cs.restart_count
            ));
        }
    }
    let out = node
        .containerd()
        .ctr(&["containers", "ls", "-q"])
        .expect("ctr containers ls");
    let count = String::from_utf8_lossy(&out.stdout).lines().count();
    (ids, count)
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_on_containerd() {
    let api = ApiCluster::start(ApiConfig::new())
        .await
        .expect("store and apiserver");
    let mut node = ContainerdNode::start(&api, Identity::Node1, &[])
        .await
        .expect("containerd and the agent");
    let kc = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await
        .expect("admin client")
        .0;
    let nodes: Api<Node> = Api::all(kc.clone());
    wait::node_ready(&nodes, "n1", 60, || node.logs(60)).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let host_dir = node.root().join("hostdata");
    let specs = [
        node.pod(
            "pair",
            json!({"containers": [
                ContainerdNode::busybox("web", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 9876 -h /www"),
                ContainerdNode::busybox("client", "until wget -qO- localhost:9876/; do sleep 1; done; exec sleep 600"),
            ]}),
        ),
        node.pod(
            "init",
            json!({
                "initContainers": [ContainerdNode::busybox("prepare", "echo prepared by init > /work/msg")],
                "containers": [{
                    "name": "app", "image": "localhost/busybox:1.36",
                    "command": ["sh", "-c", "cat /work/msg; exec sleep 600"],
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                }],
                "volumes": [{"name": "work", "emptyDir": {}}],
            }),
        ),
        node.pod(
            "crasher",
            json!({"containers": [ContainerdNode::busybox("app", "echo crashing; exit 1")]}),
        ),
        node.pod(
            "hog",
            json!({"restartPolicy": "Never", "containers": [{
                "name": "app", "image": "localhost/busybox:1.36",
                // tail keeps the whole newline-free stream in memory.
                "command": ["sh", "-c", "head -c 200m /dev/zero | tail"],
                "resources": {"limits": {"memory": "32Mi"}},
            }]}),
        ),
        node.pod(
            "graceful",
            json!({
                "terminationGracePeriodSeconds": 6,
                "containers": [{
                    "name": "app", "image": "localhost/busybox:1.36",
                    // Ignores SIGTERM: only the SIGKILL at the end of the grace period stops it.
                    "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
                    "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /host/prestop"]}}},
                    "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                }],
                "volumes": [{"name": "host", "hostPath": {"path": host_dir.display().to_string(), "type": "DirectoryOrCreate"}}],
            }),
        ),
    ];
    // The init pod's spec needs its init container to see the volume too.
    let mut specs = specs;
    let init = specs[1].spec.as_mut().expect("spec");
    init.init_containers.as_mut().expect("init containers")[0].volume_mounts =
        Some(vec![serde_json::from_value(
            json!({"name": "work", "mountPath": "/work"}),
        )
        .expect("mount")]);
    for p in &specs {
        pods.create(&PostParams::default(), p)
            .await
            .expect("pod created");
    }
    let logs = || node.logs(60);

    // Two containers, one network namespace.
    let pair = wait::until("pair Running and Ready", 90, logs, || async {
        let p = pods.get("pair").await.ok()?;
        (condition(&p, "Ready").as_deref() == Some("True")).then_some(p)
    })
    .await;
    let seen = wait::until("the client's page from localhost", 30, logs, || async {
        let out = node.container_output(&pair, "client", 0);
        out.contains("hello from web").then_some(out)
    })
    .await;
    assert!(seen.contains("hello from web"), "{seen}");

    // The init container's file, read by the app container.
    let init = wait::until("init Running", 60, logs, || async {
        let p = pods.get("init").await.ok()?;
        (container_state(&p).0 == "running").then_some(p)
    })
    .await;
    assert_eq!(condition(&init, "Initialized").as_deref(), Some("True"));
    wait::until("the app's output of the init file", 20, logs, || async {
        node.container_output(&init, "app", 0)
            .contains("prepared by init")
            .then_some(())
    })
    .await;

    // The memory hog is OOMKilled (restartPolicy Never: the pod fails).
    let hog = wait::until("hog terminated", 60, logs, || async {
        let p = pods.get("hog").await.ok()?;
        let (state, _, _) = container_state(&p);
        (state == "OOMKilled" || state == "Error" || state == "Completed").then_some(p)
    })
    .await;
    let terminated = hog
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|l| l.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!(
        terminated.reason.as_deref(),
        Some("OOMKilled"),
        "{terminated:?}"
    );
    assert_eq!(terminated.exit_code, 137);

    // The crasher goes into CrashLoopBackOff, and its back-off grows (10 s, then 20 s).
    wait::until("crasher back-off 20s", 90, logs, || async {
        let p = pods.get("crasher").await.ok()?;
        let waiting = p
            .status?
            .container_statuses?
            .first()?
            .state
            .clone()?
            .waiting?;
        (waiting.reason.as_deref() == Some("CrashLoopBackOff")
            && waiting
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("back-off 20s")))
        .then_some(())
    })
    .await;
    let crasher = pods.get("crasher").await.expect("crasher");
    assert!(
        container_state_of(&crasher, "app").1 >= 2,
        "{:?}",
        crasher.status
    );

    // SIGKILL the agent, start it again: every running pod keeps its containers, nothing is
    // started twice.
    let running = ["pair", "init", "graceful"];
    wait::until("graceful Running", 30, logs, || async {
        let p = pods.get("graceful").await.ok()?;
        (container_state(&p).0 == "running").then_some(())
    })
    .await;
    let before = census(&pods, &running, &node).await;
    node.agent.kill();
    node.agent.restart().expect("agent restarted");
    let logs = || node.logs(60);
    wait::node_ready(&nodes, "n1", 60, || node.logs(60)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = census(&pods, &running, &node).await;
    assert_eq!(
        before.0, after.0,
        "containers changed after the agent's restart"
    );
    assert!(
        after.1 <= before.1,
        "containerd holds more containers: {before:?} -> {after:?}"
    );

    // Deleting the graceful pod runs preStop, then waits the grace period for SIGTERM to work
    // (it does not), then kills it; the pod is gone after about 6 s.
    let t = Instant::now();
    pods.delete("graceful", &DeleteParams::default())
        .await
        .expect("delete");
    wait::until("graceful gone", 30, logs, || async {
        pods.get_opt("graceful").await.ok()?.is_none().then_some(())
    })
    .await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(15),
        "deletion took {took:?}"
    );
    let prestop = std::fs::read_to_string(host_dir.join("prestop")).unwrap_or_default();
    assert_eq!(prestop.trim(), "stopping");
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_cidr_follows_the_node() {
    let api = ApiCluster::start(ApiConfig::new())
        .await
        .expect("store and apiserver");
    let node = ContainerdNode::start(&api, Identity::Node1, &["--pod-cidr="])
        .await
        .expect("containerd and the agent");
    let kc = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await
        .expect("admin client")
        .0;
    let nodes: Api<Node> = Api::all(kc.clone());
    let logs = || node.logs(60);
    // Registered, but NotReady: its network has no config until it has a pod CIDR.
    let registered = wait::until("node n1 registered", 30, logs, || async {
        nodes.get_opt("n1").await.ok().flatten()
    })
    .await;
    assert!(registered.spec.and_then(|s| s.pod_cidr).is_none());
    // The upper half of the node's network: the static CNI config would give .2 first.
    let base = node
        .containerd()
        .pod_cidr()
        .trim_end_matches(".0/24")
        .to_string();
    let cidr = format!("{base}.128/25");
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    nodes
        .patch(
            "n1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("podCIDR set");
    wait::until("the agent hands the pod CIDR over", 20, logs, || async {
        node.agent
            .log_tail(200)
            .contains("pod CIDR handed to the runtime")
            .then_some(())
    })
    .await;
    wait::node_ready(&nodes, "n1", 60, || node.logs(60)).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    pods.create(
        &PostParams::default(),
        &node.pod(
            "ip",
            json!({"containers": [ContainerdNode::busybox("app", "exec sleep 600")]}),
        ),
    )
    .await
    .expect("pod created");
    let ip = wait::until("the pod's IP", 60, logs, || async {
        pods.get("ip").await.ok()?.status?.pod_ip
    })
    .await;
    let last: u32 = ip
        .rsplit('.')
        .next()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    assert!(
        ip.starts_with(&format!("{base}.")) && last > 128,
        "pod IP {ip} not in {cidr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_survive_a_containerd_restart() {
    let api = ApiCluster::start(ApiConfig::new())
        .await
        .expect("store and apiserver");
    let node = ContainerdNode::start(&api, Identity::Node1, &[])
        .await
        .expect("containerd and the agent");
    let kc = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await
        .expect("admin client")
        .0;
    let nodes: Api<Node> = Api::all(kc.clone());
    wait::node_ready(&nodes, "n1", 60, || node.logs(60)).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    pods.create(
        &PostParams::default(),
        &node.pod(
            "before",
            json!({"containers": [ContainerdNode::busybox("app", "exec sleep 600")]}),
        ),
    )
    .await
    .expect("pod created");
    let logs = || node.logs(60);
    wait::until("before Running", 60, logs, || async {
        let p = pods.get("before").await.ok()?;
        (container_state(&p).0 == "running").then_some(())
    })
    .await;
    let census_before = census(&pods, &["before"], &node).await;
    node.containerd()
        .restart_daemon()
        .await
        .expect("containerd restarted");
    // The agent keeps the pod as it was and runs new pods on the restarted containerd.
    pods.create(
        &PostParams::default(),
        &node.pod(
            "after",
            json!({"containers": [ContainerdNode::busybox("app", "exec sleep 600")]}),
        ),
    )
    .await
    .expect("pod created");
    wait::until("after Running", 60, logs, || async {
        let p = pods.get("after").await.ok()?;
        (container_state(&p).0 == "running").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let census_after = census(&pods, &["before"], &node).await;
    assert_eq!(
        census_before.0, census_after.0,
        "the running pod's container changed"
    );
    wait::node_ready(&nodes, "n1", 60, || node.logs(60)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_reported_and_other_pods_keep_running() {
    let api = ApiCluster::start(ApiConfig::new())
        .await
        .expect("store and apiserver");
    let node = ContainerdNode::start(&api, Identity::Node1, &[])
        .await
        .expect("containerd and the agent");
    let kc = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await
        .expect("admin client")
        .0;
    let nodes: Api<Node> = Api::all(kc.clone());
    wait::node_ready(&nodes, "n1", 60, || node.logs(60)).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(kc.clone(), "default");
    let specs = [
        node.pod(
            "good",
            json!({"containers": [ContainerdNode::busybox("app", "exec sleep 600")]}),
        ),
        node.pod(
            "noimage",
            json!({"containers": [{"name": "app", "image": "localhost/no-such-image:1"}]}),
        ),
        node.pod(
            "nocommand",
            json!({"containers": [{"name": "app", "image": "localhost/busybox:1.36",
                                                 "command": ["no-such-binary"]}]}),
        ),
    ];
    for p in &specs {
        pods.create(&PostParams::default(), p)
            .await
            .expect("pod created");
    }
    let logs = || node.logs(60);
    let waiting = |p: &Pod| -> Option<(String, String)> {
        let w = p
            .status
            .clone()?
            .container_statuses?
            .first()?
            .state
            .clone()?
            .waiting?;
        Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
    };
    // A missing image: ErrImagePull, then ImagePullBackOff, with the reason in events.
    let (reason, message) = wait::until("noimage waiting on its image", 60, logs, || async {
        let p = pods.get("noimage").await.ok()?;
        waiting(&p).filter(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff")
    })
    .await;
    assert!(
        message.contains("localhost/no-such-image:1"),
        "{reason}: {message}"
    );
    let failed = wait::event_messages(&events, "noimage", "Failed").await;
    assert!(
        failed
            .iter()
            .any(|m| m.starts_with("Failed to pull image \"localhost/no-such-image:1\"")),
        "{failed:?}"
    );
    // A command that does not exist: the runtime's reason, then CrashLoopBackOff.
    let (reason, message) = wait::until("nocommand's start error", 60, logs, || async {
        let p = pods.get("nocommand").await.ok()?;
        waiting(&p).filter(|(r, _)| r == "RunContainerError" || r == "CrashLoopBackOff")
    })
    .await;
    let failed = wait::event_messages(&events, "nocommand", "Failed").await;
    assert!(
        failed.iter().any(|m| m.contains("no-such-binary")),
        "{reason}: {message}; events {failed:?}"
    );
    // The good pod is unaffected.
    wait::until("good Running", 30, logs, || async {
        let p = pods.get("good").await.ok()?;
        (container_state(&p).0 == "running" && container_state(&p).1 == 0).then_some(())
    })
    .await;
}
