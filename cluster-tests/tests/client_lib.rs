//! The client library against the real apiserver: an indexed informer follows creates,
//! updates and deletes, and carries on after its apiserver restarts; leader election gives the
//! lease to one candidate at a time and hands it over when the leader stops; updates through
//! it, which the apiserver starts from its watch cache, lose nothing.

mod common;

use std::time::{Duration, Instant};

use client::{cache, leader};
use cluster_tests::{ApiCluster, Identity::Admin};
use common::api::api;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;

async fn admin_client(c: &ApiCluster) -> kube::Client {
    client::from_kubeconfig(Some(&c.kubeconfig(Admin)), None)
        .await
        .expect("client from kubeconfig")
        .0
}

fn pod(name: &str, node: Option<&str>) -> Pod {
    let mut v = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "localhost/busybox:1.36"}]}});
    if let Some(n) = node {
        v["spec"]["nodeName"] = serde_json::json!(n);
    }
    serde_json::from_value(v).unwrap()
}

/// Waits until `check` holds (10 s at most).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(pods: Vec<std::sync::Arc<Pod>>) -> Vec<String> {
    let mut n: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn indexed_informer_follows_the_api_across_restarts() {
    let mut c = api().await;
    let kc = admin_client(&c).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    pods.create(&PostParams::default(), &pod("before", Some("n1")))
        .await
        .unwrap();
    let (cache, run) = cache::indexed_informer(
        pods.clone(),
        watcher::Config::default(),
        vec![cache::pods_by_node()],
    );
    let task = tokio::spawn(run);
    eventually("the initial list", || {
        names(cache.by_index("nodeName", "n1")) == ["before"]
    })
    .await;
    pods.create(&PostParams::default(), &pod("a", Some("n1")))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("b", None))
        .await
        .unwrap();
    eventually("a on n1", || {
        names(cache.by_index("nodeName", "n1")) == ["a", "before"]
    })
    .await;
    // b (created after a) may reach the cache a moment later.
    eventually("all three pods cached", || cache.store().state().len() == 3).await;
    // Binding moves b into the index.
    let binding = serde_json::json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "b"}, "target": {"kind": "Node", "name": "n2"}});
    let req = http::Request::post("/api/v1/namespaces/default/pods/b/binding")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    kc.request_text(req).await.unwrap();
    eventually("b bound to n2", || {
        names(cache.by_index("nodeName", "n2")) == ["b"]
    })
    .await;
    pods.delete("a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("a deleted", || {
        names(cache.by_index("nodeName", "n1")) == ["before"]
    })
    .await;

    // The apiserver restarts: the informer resumes (or relists) and sees what changed meanwhile.
    c.kill_apiserver(0);
    c.restart_apiserver(0).unwrap();
    pods.patch(
        "before",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"seen": "yes"}}})),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &pod("after", Some("n1")))
        .await
        .unwrap();
    eventually("changes after the restart", || {
        names(cache.by_index("nodeName", "n1")) == ["after", "before"]
            && cache.by_index("nodeName", "n1").iter().any(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.get("seen").is_some())
            })
    })
    .await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_election_hands_over_when_the_leader_stops() {
    let c = api().await;
    let cfg = |identity: &str| leader::Config {
        namespace: "kube-system".into(),
        name: "test-controller".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        retry_period: Duration::from_millis(300),
    };
    // Candidate a runs on its own runtime, so that stopping the runtime stops it as a crash would.
    let kubeconfig = c.kubeconfig(Admin);
    let (a_tx, a_rx) = std::sync::mpsc::channel::<tokio::sync::watch::Receiver<bool>>();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let cfg_a = cfg("a");
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let kc = client::from_kubeconfig(Some(&kubeconfig), None)
                .await
                .unwrap()
                .0;
            a_tx.send(leader::run(kc, cfg_a)).unwrap();
        });
        let _ = stop_rx.recv();
        rt.shutdown_background();
    });
    let a = a_rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !*a.borrow() {
        assert!(Instant::now() < deadline, "a never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = leader::run(admin_client(&c).await, cfg("b"));
    // While a renews, b never leads.
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        assert!(!(*a.borrow() && *b.borrow()), "two leaders at once");
        assert!(!*b.borrow(), "b took a live lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(admin_client(&c).await, "kube-system");
    let held = leases.get("test-controller").await.unwrap();
    assert_eq!(
        held.spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref()),
        Some("a")
    );
    // a stops; b takes over once the lease has gone unrenewed for its duration.
    let stopped = Instant::now();
    stop_tx.send(()).unwrap();
    thread.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !*b.borrow() {
        assert!(Instant::now() < deadline, "b never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // a's last renewal came at most one retry period (0.3 s) before it stopped.
    assert!(
        stopped.elapsed() >= Duration::from_millis(2600),
        "b took over before the lease expired ({:?})",
        stopped.elapsed()
    );
    let held = leases.get("test-controller").await.unwrap();
    let spec = held.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

/// Updates start from the apiserver's watch cache, which may not have seen the last write
/// yet: none may be lost or refused for it. Concurrent merge patches without a
/// resourceVersion all land; a JSON patch whose `test` checks the value its client wrote just
/// before passes; a no-op patch right after a write answers the written state; a PUT with the
/// resourceVersion just returned is accepted and one with the previous is a conflict.
#[tokio::test(flavor = "multi_thread")]
async fn updates_from_the_cache_lose_nothing() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let c = api().await;
    let kc = admin_client(&c).await;
    let maps: Api<ConfigMap> = Api::namespaced(kc, "default");
    let cm: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "counter"}, "data": {"n": "0"}}),
    )
    .unwrap();
    maps.create(&PostParams::default(), &cm).await.unwrap();
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let maps = maps.clone();
            tokio::spawn(async move {
                for j in 0..5 {
                    let patch = serde_json::json!({"data": {format!("w{i}-{j}"): "x"}});
                    maps.patch("counter", &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .unwrap_or_else(|e| panic!("patch w{i}-{j}: {e}"));
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let data = maps.get("counter").await.unwrap().data.unwrap();
    assert_eq!(data.len(), 1 + 16 * 5, "{data:?}");
    let pp = PatchParams::default();
    for n in 1..=30 {
        let value = n.to_string();
        let set = serde_json::json!({"data": {"n": value}});
        let written = maps
            .patch("counter", &pp, &Patch::Merge(&set))
            .await
            .unwrap();
        // Its own write, seen at once by the next update.
        let test = serde_json::json!([
            {"op": "test", "path": "/data/n", "value": value},
            {"op": "add", "path": "/data/checked", "value": value},
        ])
        .to_string();
        let (code, body) = c.curl(
            Admin,
            "PATCH",
            "/api/v1/namespaces/default/configmaps/counter",
            Some(("application/json-patch+json", test.as_bytes())),
        );
        assert_eq!(code, 200, "test of n={value}: {body}");
        let noop = maps
            .patch("counter", &pp, &Patch::Merge(&set))
            .await
            .unwrap();
        assert_eq!(noop.data.as_ref().unwrap()["checked"], value);
        assert_ne!(
            noop.metadata.resource_version, written.metadata.resource_version,
            "the no-op answered the state before the test patch"
        );
        // A PUT on the resourceVersion just returned is current; on the one before, stale.
        let mut put = noop.clone();
        put.data
            .as_mut()
            .unwrap()
            .insert("put".into(), value.clone());
        maps.replace("counter", &PostParams::default(), &put)
            .await
            .unwrap_or_else(|e| panic!("put after n={value}: {e}"));
        match maps.replace("counter", &PostParams::default(), &noop).await {
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            other => panic!("a PUT on a replaced resourceVersion: {other:?}"),
        }
    }
}
