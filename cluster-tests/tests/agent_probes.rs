//! Probes on real containerd: the real agent on a private containerd, with a store and an
//! apiserver. A failing liveness probe restarts its container (Unhealthy and Killing events
//! with the probe's output); readiness drives the Ready condition both ways; a startup probe
//! holds back `started` until it succeeds; a probe on a closed port keeps the pod unready and
//! says why, while the node's other pods are served. Needs root, containerd, runc and the CNI
//! plugins (scripts/setup.sh).

use cluster_tests::{
    wait::{self, condition, container_state},
    ApiCluster, ApiConfig, ContainerdNode, Identity,
};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

fn pod(name: &str, command: &str, probes: serde_json::Value) -> Pod {
    let mut container = json!({
        "name": "app",
        "image": "localhost/busybox:1.36",
        "command": ["sh", "-c", command],
    });
    for (k, v) in probes.as_object().cloned().unwrap_or_default() {
        container[k] = v;
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": "n1",
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
        },
    }))
    .expect("a valid pod")
}

fn ready(p: &Pod) -> bool {
    condition(p, "Ready").as_deref() == Some("True")
}

fn started(p: &Pod) -> Option<bool> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .started
}

/// The messages of the pod's events with `reason`.
async fn messages(events: &Api<Event>, pod: &str, reason: &str) -> Vec<String> {
    let list = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_on_containerd() {
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
    let logs = || node.logs(60);
    let nodes: Api<Node> = Api::all(kc.clone());
    wait::until("node n1 Ready", 60, logs, || async {
        let n = nodes.get_opt("n1").await.ok().flatten()?;
        let conds = n.status?.conditions?;
        conds
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let events: Api<Event> = Api::namespaced(kc.clone(), "default");
    let create = |p: Pod| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &p)
                .await
                .expect("pod created")
        }
    };
    // Liveness: healthy for 3 s, then the file goes and the exec probe fails twice in a row.
    create(pod(
        "liveness",
        "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 600",
        json!({"livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                                 "periodSeconds": 1, "failureThreshold": 2}}),
    ))
    .await;
    // Readiness by httpGet: 404 until the page exists (after 6 s), then 200.
    create(pod(
        "readiness",
        "mkdir -p /www; httpd -p 8080 -h /www; sleep 6; echo ok > /www/index.html; sleep 600",
        json!({"readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080},
                                  "periodSeconds": 1}}),
    ))
    .await;
    // A startup probe on a port that opens after 15 s, then a liveness probe on it.
    create(pod(
        "startup",
        "sleep 15; mkdir -p /www; exec httpd -f -p 8080 -h /www",
        json!({"startupProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 30},
               "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}),
    ))
    .await;
    // Bad input: a readiness probe on a port nothing listens on.
    create(pod(
        "closed-port",
        "sleep 600",
        json!({"readinessProbe": {"tcpSocket": {"port": 81}, "periodSeconds": 1}}),
    ))
    .await;

    // The readiness pod runs unready first, then becomes Ready.
    wait::until("readiness running but not Ready", 60, logs, || async {
        let p = pods.get("readiness").await.ok()?;
        (container_state(&p).0 == "running" && !ready(&p)).then_some(())
    })
    .await;
    wait::until("readiness Ready", 30, logs, || async {
        ready(&pods.get("readiness").await.ok()?).then_some(())
    })
    .await;

    // The startup pod is running with started=false, then started and Ready.
    wait::until("startup running but not started", 60, logs, || async {
        let p = pods.get("startup").await.ok()?;
        (container_state(&p).0 == "running" && started(&p) == Some(false)).then_some(())
    })
    .await;
    wait::until("startup started and Ready", 30, logs, || async {
        let p = pods.get("startup").await.ok()?;
        (started(&p) == Some(true) && ready(&p)).then_some(())
    })
    .await;

    // The liveness pod's container is restarted once its probe fails.
    wait::until("liveness restarted", 60, logs, || async {
        let p = pods.get("liveness").await.ok()?;
        (container_state(&p).1 >= 1).then_some(())
    })
    .await;
    let unhealthy = messages(&events, "liveness", "Unhealthy").await;
    assert!(
        unhealthy
            .iter()
            .any(|m| m.starts_with("Liveness probe failed: cat: can't open '/tmp/healthy'")),
        "{unhealthy:?}"
    );
    let killing = messages(&events, "liveness", "Killing").await;
    assert!(
        killing.contains(&"Container app failed liveness probe, will be restarted".to_string()),
        "{killing:?}"
    );

    // The closed port: running, never ready, never restarted, and the event says why.
    let p = pods.get("closed-port").await.expect("closed-port pod");
    let (state, restarts, _) = container_state(&p);
    assert_eq!((state.as_str(), restarts), ("running", 0), "{:?}", p.status);
    assert!(!ready(&p));
    let ip = p.status.and_then(|s| s.pod_ip).expect("a pod IP");
    let unhealthy = wait::until("the closed port's Unhealthy event", 20, logs, || async {
        let m = messages(&events, "closed-port", "Unhealthy").await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(
        unhealthy,
        vec![format!(
            "Readiness probe failed: dial tcp {ip}:81: connect: connection refused"
        )]
    );
    // The other pods stayed as they were.
    for name in ["readiness", "startup"] {
        let p = pods.get(name).await.expect("pod");
        assert!(ready(&p), "{name}: {:?}", p.status);
        assert_eq!(container_state(&p).1, 0, "{name} restarted");
    }
}
