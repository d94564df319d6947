//! The node agent against a real store and apiserver, on its in-memory (fake) runtime: the
//! node registers and is Ready with a renewed Lease; a pod bound to it runs with the status
//! Kubernetes reports; a crashing container reaches CrashLoopBackOff; a deleted pod is stopped
//! and removed; an agent killed with SIGKILL and restarted adopts its pods and starts nothing
//! twice. (Tests on containerd need the private containerd harness and images.)

use std::{path::Path, time::Duration};

use cluster_tests::{
    wait::{self, condition, container_state},
    ApiCluster, ApiConfig, Component, Identity,
};
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Event, Node, Pod},
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

async fn admin(c: &ApiCluster) -> kube::Client {
    client::from_kubeconfig(Some(&c.kubeconfig(Identity::Admin)), None)
        .await
        .expect("client from kubeconfig")
        .0
}

fn start_agent(c: &ApiCluster, node: &str, id: Identity, extra: &[&str]) -> Component {
    let root = c.dir().join(format!("agent-{node}"));
    let mut args: Vec<String> = vec![
        format!("--kubeconfig={}", c.kubeconfig(id).display()),
        format!("--hostname-override={node}"),
        "--node-ip=127.0.0.1".into(),
        "--runtime=fake".into(),
        format!("--root-dir={}", root.display()),
        "--node-lease-renew-interval=1s".into(),
        "--node-status-update-frequency=1s".into(),
        "--relist-period=200ms".into(),
        "--node-labels=zone=test".into(),
        "--register-with-taints=dedicated=tests:PreferNoSchedule".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Component::start("agent", &args, c.dir()).expect("starting the agent")
}

/// Waits (up to `secs`) until `check` gives a value; fails with the agent's log.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, agent: &Component, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait::until(what, secs, || agent.log_tail(40), check).await
}

fn pod(name: &str, node: &str, policy: &str, command: &[&str]) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "main",
                "image": "localhost/busybox:1.36",
                "command": command,
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            }],
        },
    }))
    .unwrap()
}

/// How many containers the fake runtime's state file holds for the pod with `uid`.
fn fake_containers(root: &Path, uid: &str) -> usize {
    let text = std::fs::read_to_string(root.join("fake-runtime.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["containers"]
        .as_object()
        .map(|m| {
            m.values()
                .filter(|c| c["status"]["labels"]["io.kubernetes.pod.uid"] == uid)
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_runs_pods_on_the_fake_runtime() {
    let c = ApiCluster::start(ApiConfig::new())
        .await
        .unwrap_or_else(|e| panic!("API cluster did not start: {e:#}"));
    let kc = admin(&c).await;
    let mut agent = start_agent(&c, "n1", Identity::Node1, &[]);
    let nodes: Api<Node> = Api::all(kc.clone());

    // The node registers, with its labels, taints, capacity and a Ready condition.
    let node = wait_for("node n1 Ready", 20, &agent, || async {
        let n = nodes.get_opt("n1").await.ok().flatten()?;
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(n)
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["kubernetes.io/hostname"], "n1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["zone"], "test");
    let spec = node.spec.clone().unwrap_or_default();
    assert_eq!(spec.taints.unwrap()[0].key, "dedicated");
    let status = node.status.unwrap();
    let cap = status.capacity.unwrap();
    assert_eq!(cap["pods"].0, "110");
    assert!(
        cap.contains_key("cpu")
            && cap.contains_key("memory")
            && cap.contains_key("ephemeral-storage")
    );
    assert_eq!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        10250
    );
    let info = status.node_info.unwrap();
    assert!(
        info.container_runtime_version.starts_with("fake://"),
        "{}",
        info.container_runtime_version
    );
    let addresses = status.addresses.unwrap();
    assert!(addresses
        .iter()
        .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"));
    let conditions = status.conditions.unwrap();
    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(conditions.iter().any(|c| c.type_ == kind), "{kind} missing");
    }

    // The Lease is renewed.
    let leases: Api<Lease> = Api::namespaced(kc.clone(), "kube-node-lease");
    let first = wait_for("the node lease", 10, &agent, || async {
        leases.get_opt("n1").await.ok().flatten()?.spec?.renew_time
    })
    .await;
    wait_for("a renewal of the lease", 10, &agent, || async {
        let t = leases
            .get_opt("n1")
            .await
            .ok()
            .flatten()?
            .spec?
            .renew_time?;
        (t.0 > first.0).then_some(())
    })
    .await;

    // A pod bound to the node runs.
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod("sleeper", "n1", "Always", &["sleep", "3600"]),
    )
    .await
    .unwrap();
    let running = wait_for("sleeper Running and Ready", 20, &agent, || async {
        let p = pods.get("sleeper").await.ok()?;
        let phase = p.status.as_ref()?.phase.clone()?;
        (phase == "Running" && condition(&p, "Ready").as_deref() == Some("True")).then_some(p)
    })
    .await;
    let st = running.status.clone().unwrap();
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        st.pod_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.88.")),
        "{:?}",
        st.pod_ip
    );
    assert!(st.start_time.is_some());
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(condition(&running, kind).as_deref(), Some("True"), "{kind}");
    }
    let (state, restarts, id) = container_state(&running);
    assert_eq!((state.as_str(), restarts), ("running", 0));
    let id = id.unwrap();
    assert!(id.starts_with("fake://"), "{id}");
    let cs = &st.container_statuses.unwrap()[0];
    assert!(cs.ready && cs.started == Some(true));
    assert_eq!(cs.image, "localhost/busybox:1.36");
    // Events: Created and Started.
    let events: Api<Event> = Api::namespaced(kc.clone(), "default");
    wait_for("Created and Started events", 10, &agent, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let reasons: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("sleeper"))
            .filter_map(|e| e.reason.clone())
            .collect();
        (reasons.iter().any(|r| r == "Created") && reasons.iter().any(|r| r == "Started"))
            .then_some(())
    })
    .await;

    // A crashing container reaches CrashLoopBackOff with restarts counted.
    pods.create(
        &PostParams::default(),
        &pod(
            "crasher",
            "n1",
            "Always",
            &["sh", "-c", "echo failing; exit 1"],
        ),
    )
    .await
    .unwrap();
    let crashed = wait_for("crasher in CrashLoopBackOff", 30, &agent, || async {
        let p = pods.get("crasher").await.ok()?;
        let (state, restarts, _) = container_state(&p);
        (state == "CrashLoopBackOff" && restarts >= 1).then_some(p)
    })
    .await;
    let cs = &crashed
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(
        crashed.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert_eq!(condition(&crashed, "Ready").as_deref(), Some("False"));

    // A pod with restartPolicy Never whose container exits 0 succeeds.
    pods.create(
        &PostParams::default(),
        &pod("once", "n1", "Never", &["sh", "-c", "exit 0"]),
    )
    .await
    .unwrap();
    wait_for("once Succeeded", 20, &agent, || async {
        let p = pods.get("once").await.ok()?;
        (p.status?.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;

    // Killed with SIGKILL and restarted, the agent adopts the running pod: same container,
    // no restart, nothing started twice.
    let uid = running.metadata.uid.clone().unwrap();
    let root = c.dir().join("agent-n1");
    assert_eq!(fake_containers(&root, &uid), 1);
    agent.kill();
    agent.restart().expect("restarting the agent");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = pods.get("sleeper").await.unwrap();
    let (state, restarts, again) = container_state(&p);
    assert_eq!(
        (state.as_str(), restarts),
        ("running", 0),
        "{}",
        agent.log_tail(30)
    );
    assert_eq!(again.as_deref(), Some(id.as_str()));
    assert_eq!(fake_containers(&root, &uid), 1, "{}", agent.log_tail(30));

    // A deleted pod is stopped, then removed by the agent (grace period 0).
    pods.delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("sleeper removed", 20, &agent, || async {
        pods.get_opt("sleeper").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(fake_containers(&root, &uid), 0);

    // A pod deleted while the agent is down is cleaned up when it comes back.
    let crasher_uid = crashed.metadata.uid.clone().unwrap();
    agent.kill();
    pods.delete(
        "crasher",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    agent.restart().expect("restarting the agent");
    wait_for("the crasher's containers removed", 30, &agent, || async {
        (fake_containers(&root, &crasher_uid) == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_reports_image_and_config_problems() {
    let c = ApiCluster::start(ApiConfig::new())
        .await
        .unwrap_or_else(|e| panic!("API cluster did not start: {e:#}"));
    let kc = admin(&c).await;
    let agent = start_agent(
        &c,
        "n2",
        Identity::Node2,
        &["--fake-images=localhost/busybox:1.36"],
    );
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let mut missing = pod("missing", "n2", "Always", &["sleep", "10"]);
    missing.spec.as_mut().unwrap().containers[0].image = Some("localhost/nothere:1".into());
    pods.create(&PostParams::default(), &missing).await.unwrap();
    let mut never = pod("never", "n2", "Always", &["sleep", "10"]);
    never.spec.as_mut().unwrap().containers[0].image = Some("localhost/nothere:1".into());
    never.spec.as_mut().unwrap().containers[0].image_pull_policy = Some("Never".into());
    pods.create(&PostParams::default(), &never).await.unwrap();
    let mut config = pod("config", "n2", "Always", &["sleep", "10"]);
    config.spec.as_mut().unwrap().containers[0].env = Some(vec![serde_json::from_value(
        serde_json::json!({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}),
    )
    .unwrap()]);
    pods.create(&PostParams::default(), &config).await.unwrap();
    for (name, reasons) in [
        ("missing", &["ErrImagePull", "ImagePullBackOff"][..]),
        ("never", &["ErrImageNeverPull"][..]),
        ("config", &["CreateContainerConfigError"][..]),
    ] {
        wait_for(
            &format!("{name} waiting with {reasons:?}"),
            20,
            &agent,
            || async {
                let p = pods.get(name).await.ok()?;
                let (state, _, _) = container_state(&p);
                reasons.contains(&state.as_str()).then_some(())
            },
        )
        .await;
    }
    // The back-off follows the failed pull.
    wait_for("missing in ImagePullBackOff", 20, &agent, || async {
        let p = pods.get("missing").await.ok()?;
        (container_state(&p).0 == "ImagePullBackOff").then_some(())
    })
    .await;
    let p = pods.get("config").await.unwrap();
    let w = p.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(w.message.as_deref(), Some("configmap \"absent\" not found"));
}
