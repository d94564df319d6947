//! The controller-manager against the real store and apiserver, with no scheduler and no agent:
//! the tests play their part (marking pods Running and Ready with an IP through the status
//! subresource, renewing node Leases). Deployments scale, roll, undo and report status to
//! `kubectl rollout status`; ReplicaSet deletion cascades in the background, in the foreground
//! or orphans; Endpoints list ready pod IPs; deleting a namespace empties it; a node whose
//! Lease stops is tainted and its pods evicted; node IPAM hands out pod CIDRs; a standby
//! replica takes over when the leader dies.

mod common;

use std::{
    collections::BTreeSet,
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cluster_tests::{ApiCluster, ApiConfig, Component, Identity::Admin};
use common::{stderr, stdout};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    coordination::v1::Lease,
    core::v1::{Endpoints, Namespace, Node, Pod},
};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn api() -> ApiCluster {
    match ApiCluster::start(ApiConfig::new()).await {
        Ok(c) => c,
        Err(e) => panic!("API cluster did not start: {e:#}"),
    }
}

async fn client(c: &ApiCluster) -> kube::Client {
    client::from_kubeconfig(Some(&c.kubeconfig(Admin)), None)
        .await
        .expect("client from kubeconfig")
        .0
}

/// Starts a controller-manager (no leader election unless asked) with extra flags.
fn controller_manager(c: &ApiCluster, extra: &[&str]) -> Component {
    let mut args = vec![
        "--kubeconfig".to_string(),
        c.kubeconfig(Admin).display().to_string(),
    ];
    if !extra.contains(&"--port") {
        args.extend(["--port".to_string(), "0".to_string()]);
    }
    if !extra.iter().any(|a| a.starts_with("--leader-elect")) {
        args.push("--leader-elect=false".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Component::start("controller-manager", &args, c.dir()).expect("controller-manager starts")
}

fn kubectl(c: &ApiCluster, args: &[&str]) -> String {
    let out = c.kubectl(Admin, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Polls `check` until it returns Some (within `secs`), else fails with `what` and the log.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, cm: &Component, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let logs = || format!("--- controller-manager log ---\n{}", cm.log_tail(60));
    cluster_tests::wait::until(what, secs, logs, check).await
}

fn ready_status(ip: &str) -> serde_json::Value {
    json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Plays the agents: marks every pod of `ns` Running and Ready with an IP, until stopped.
fn mark_pods_ready(
    kc: kube::Client,
    ns: &str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let pods: Api<Pod> = Api::namespaced(kc, ns);
    tokio::spawn(async move {
        let mut n = 0u32;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    if is_ready(&p) || p.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    n += 1;
                    let ip = format!("10.1.{}.{}", n / 250, n % 250 + 1);
                    let name = p.metadata.name.unwrap_or_default();
                    let _ = pods
                        .patch_status(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(&ready_status(&ip)),
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    })
}

fn owner_uid(meta: &kube::api::ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

async fn live_pods(pods: &Api<Pod>) -> Vec<Pod> {
    pods.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_scale_roll_and_undo_as_kubectl_expects() {
    let c = api().await;
    let cm = controller_manager(&c, &[]);
    let kc = client(&c).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(kc.clone(), "default");
    let deps: Api<Deployment> = Api::namespaced(kc.clone(), "default");
    let stop = Arc::new(AtomicBool::new(false));
    let marker = mark_pods_ready(kc.clone(), "default", stop.clone());

    kubectl(
        &c,
        &[
            "create",
            "deployment",
            "web",
            "--image=localhost/busybox:1.36",
        ],
    );
    kubectl(&c, &["scale", "deployment", "web", "--replicas=5"]);
    let rs_uid = wait_for("5 ready pods of one ReplicaSet", 30, &cm, || async {
        let list = rss.list(&ListParams::default()).await.ok()?.items;
        let [rs] = list.as_slice() else { return None };
        let uid = rs.metadata.uid.clone()?;
        let ps = live_pods(&pods).await;
        let owned = ps
            .iter()
            .filter(|p| owner_uid(&p.metadata).as_ref() == Some(&uid) && is_ready(p))
            .count();
        (ps.len() == 5 && owned == 5).then_some(uid)
    })
    .await;
    let rs = rss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    assert!(rs.metadata.name.as_deref().unwrap().starts_with("web-"));
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    let out = kubectl(
        &c,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    );
    assert!(out.contains("successfully rolled out"), "{out}");

    // A rolling update never drops below replicas - maxUnavailable (5 - 1) ready pods.
    let min_ready = Arc::new(AtomicI64::new(i64::MAX));
    let watching = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pods, min_ready, watching) = (pods.clone(), min_ready.clone(), watching.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let ready = live_pods(&pods)
                    .await
                    .iter()
                    .filter(|p| is_ready(p))
                    .count() as i64;
                min_ready.fetch_min(ready, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    kubectl(
        &c,
        &[
            "set",
            "image",
            "deployment/web",
            "busybox=localhost/busybox:1.37",
        ],
    );
    let out = kubectl(
        &c,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
    watching.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    assert!(
        min_ready.load(Ordering::Relaxed) >= 4,
        "ready pods dropped to {}\n--- controller-manager log ---\n{}",
        min_ready.load(Ordering::Relaxed),
        cm.log_tail(80)
    );
    let list = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 2);
    let new = list
        .iter()
        .find(|r| r.metadata.uid.as_ref() != Some(&rs_uid))
        .unwrap();
    let old = list
        .iter()
        .find(|r| r.metadata.uid.as_ref() == Some(&rs_uid))
        .unwrap();
    assert_eq!(new.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(
        new.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    let d = deps.get("web").await.unwrap();
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    let st = d.status.unwrap();
    assert_eq!(
        (st.replicas, st.updated_replicas, st.available_replicas),
        (Some(5), Some(5), Some(5))
    );
    let conds = st.conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "Available" && c.status == "True"));
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Progressing"
                && c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    );

    // Undo: the first ReplicaSet is the new one again, as revision 3.
    kubectl(&c, &["rollout", "undo", "deployment/web"]);
    let out = kubectl(
        &c,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
    let first = rss
        .get(old.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    let ann = first.metadata.annotations.unwrap();
    assert_eq!(ann["deployment.kubernetes.io/revision"], "3");
    assert_eq!(ann["deployment.kubernetes.io/revision-history"], "1");
    assert_eq!(first.spec.unwrap().replicas, Some(5));
    let d = deps.get("web").await.unwrap();
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );
    let image = kubectl(
        &c,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image, "localhost/busybox:1.36");

    // Scaling down leaves the newest pods... the deployment's count, owned by the current RS.
    kubectl(&c, &["scale", "deployment", "web", "--replicas=2"]);
    wait_for("2 pods", 30, &cm, || async {
        (live_pods(&pods).await.len() == 2).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    marker.await.unwrap();
}

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"rs": name}},
            "template": {"metadata": {"labels": {"rs": name}},
                "spec": {"containers": [{"name": "c", "image": "localhost/busybox:1.36"}]}}}}))
    .unwrap()
}

async fn pods_with(pods: &Api<Pod>, label: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(label))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn replicaset_deletion_cascades_background_foreground_or_orphans() {
    let c = api().await;
    let cm = controller_manager(&c, &[]);
    let kc = client(&c).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(kc.clone(), "default");
    for name in ["bg", "fg", "orph"] {
        rss.create(&PostParams::default(), &replicaset(name, 3))
            .await
            .unwrap();
    }
    for name in ["bg", "fg", "orph"] {
        let label = format!("rs={name}");
        wait_for(&format!("3 pods of {name}"), 30, &cm, || async {
            (pods_with(&pods, &label).await.len() == 3).then_some(())
        })
        .await;
    }
    // A pod the ReplicaSet does not need is deleted; a missing one is replaced.
    let victim = pods_with(&pods, "rs=bg").await.remove(0);
    pods.delete(
        victim.metadata.name.as_deref().unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    wait_for("a replacement pod", 30, &cm, || async {
        let ps = pods_with(&pods, "rs=bg").await;
        (ps.len() == 3 && ps.iter().all(|p| p.metadata.uid != victim.metadata.uid)).then_some(())
    })
    .await;

    kubectl(&c, &["delete", "rs", "bg", "--cascade=background"]);
    wait_for("bg pods collected", 30, &cm, || async {
        pods_with(&pods, "rs=bg").await.is_empty().then_some(())
    })
    .await;

    kubectl(
        &c,
        &[
            "delete",
            "rs",
            "fg",
            "--cascade=foreground",
            "--wait=true",
            "--timeout=60s",
        ],
    );
    assert!(
        pods_with(&pods, "rs=fg").await.is_empty(),
        "foreground deletion left pods"
    );

    kubectl(
        &c,
        &[
            "delete",
            "rs",
            "orph",
            "--cascade=orphan",
            "--wait=true",
            "--timeout=60s",
        ],
    );
    let orphans = wait_for("orphans without owner references", 30, &cm, || async {
        let ps = pods_with(&pods, "rs=orph").await;
        (ps.len() == 3
            && ps.iter().all(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(|r| r.is_empty())
            }))
        .then_some(ps)
    })
    .await;
    // A new ReplicaSet with the same selector adopts them instead of creating more.
    let adopter = rss
        .create(&PostParams::default(), &replicaset("orph", 3))
        .await
        .unwrap();
    wait_for("adoption", 30, &cm, || async {
        let ps = pods_with(&pods, "rs=orph").await;
        let adopted = ps
            .iter()
            .filter(|p| owner_uid(&p.metadata) == adopter.metadata.uid)
            .count();
        (adopted == 3 && ps.len() == 3).then_some(())
    })
    .await;
    let names: BTreeSet<_> = orphans.iter().map(|p| p.metadata.name.clone()).collect();
    let now: BTreeSet<_> = pods_with(&pods, "rs=orph")
        .await
        .iter()
        .map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, now);
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_list_ready_and_not_ready_pod_ips() {
    let c = api().await;
    let cm = controller_manager(&c, &["--controllers=endpoint"]);
    let kc = client(&c).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(kc.clone(), "default");
    kubectl(
        &c,
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
    );
    kubectl(
        &c,
        &[
            "patch",
            "service",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80,"targetPort":"http"}]}}"#,
        ],
    );
    for (name, ip, ready) in [
        ("a", "10.1.0.1", true),
        ("b", "10.1.0.2", false),
        ("c", "10.1.0.3", true),
    ] {
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "localhost/busybox:1.36",
                "ports": [{"name": "http", "containerPort": 8080}]}]}}))
            .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
        let mut st = ready_status(ip);
        if !ready {
            st["status"]["conditions"][0]["status"] = json!("False");
        }
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
            .await
            .unwrap();
    }
    let ep = wait_for("endpoints of web", 30, &cm, || async {
        let ep = eps.get_opt("web").await.ok()??;
        let s = ep.subsets.clone()?;
        (s.len() == 1 && s[0].addresses.as_ref().map(Vec::len) == Some(2)).then_some(ep)
    })
    .await;
    let s = &ep.subsets.unwrap()[0];
    let ips: Vec<&str> = s
        .addresses
        .iter()
        .flatten()
        .map(|a| a.ip.as_str())
        .collect();
    assert_eq!(ips, ["10.1.0.1", "10.1.0.3"]);
    let not_ready: Vec<&str> = s
        .not_ready_addresses
        .iter()
        .flatten()
        .map(|a| a.ip.as_str())
        .collect();
    assert_eq!(not_ready, ["10.1.0.2"]);
    let port = &s.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
    assert_eq!(
        s.addresses.as_ref().unwrap()[0]
            .target_ref
            .as_ref()
            .unwrap()
            .name
            .as_deref(),
        Some("a")
    );
    // A pod going away leaves the list.
    pods.delete("a", &Default::default()).await.unwrap();
    wait_for("a removed", 30, &cm, || async {
        let ep = eps.get("web").await.ok()?;
        let n = ep.subsets?.first()?.addresses.as_ref().map_or(0, Vec::len);
        (n == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_namespace_empties_and_removes_it() {
    let c = api().await;
    let cm = controller_manager(&c, &[]);
    let kc = client(&c).await;
    kubectl(&c, &["create", "namespace", "doomed"]);
    kubectl(
        &c,
        &[
            "-n",
            "doomed",
            "create",
            "deployment",
            "web",
            "--image=localhost/busybox:1.36",
            "--replicas=2",
        ],
    );
    kubectl(
        &c,
        &[
            "-n",
            "doomed",
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=b",
        ],
    );
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "doomed");
    wait_for("2 pods in doomed", 30, &cm, || async {
        (live_pods(&pods).await.len() == 2).then_some(())
    })
    .await;
    kubectl(&c, &["delete", "namespace", "doomed", "--timeout=60s"]);
    let nss: Api<Namespace> = Api::all(kc.clone());
    assert!(nss.get_opt("doomed").await.unwrap().is_none());
    let out = c.kubectl(Admin, &["get", "pods", "-n", "doomed", "-o", "name"]);
    assert!(stdout(&out).trim().is_empty(), "{}", stdout(&out));
}

async fn renew_lease(leases: &Api<Lease>, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    if leases.get_opt(name).await.ok().flatten().is_none() {
        let l: Lease = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}}))
        .unwrap();
        leases.create(&PostParams::default(), &l).await.ok();
    } else {
        let patch = json!({"spec": {"renewTime": now}});
        leases
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .ok();
    }
}

fn node_ready(ready: &str) -> serde_json::Value {
    json!({"status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
        "lastHeartbeatTime": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
}

fn taint_keys(n: &Node) -> Vec<String> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_lease_stops_is_tainted_and_its_pods_evicted() {
    let c = api().await;
    let cm = controller_manager(
        &c,
        &[
            "--controllers=nodelifecycle",
            "--node-monitor-grace-period=3s",
            "--node-monitor-period=500ms",
            "--node-eviction-rate=10",
        ],
    );
    let kc = client(&c).await;
    let nodes: Api<Node> = Api::all(kc.clone());
    let leases: Api<Lease> = Api::namespaced(kc.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(&node_ready("True")),
        )
        .await
        .unwrap();
    let renewing = Arc::new(AtomicBool::new(true));
    let renewer = {
        let (leases, renewing) = (leases.clone(), renewing.clone());
        tokio::spawn(async move {
            loop {
                if renewing.load(Ordering::Relaxed) {
                    renew_lease(&leases, "n1").await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    // "patient" keeps the default 300 s toleration; "quick" tolerates unreachable for 1 s.
    for (name, tol) in [("patient", None), ("quick", Some(1))] {
        let mut p = json!({"metadata": {"name": name}, "spec": {"nodeName": "n1",
            "containers": [{"name": "c", "image": "localhost/busybox:1.36"}]}});
        if let Some(s) = tol {
            p["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": s}]);
        }
        pods.create(&PostParams::default(), &serde_json::from_value(p).unwrap())
            .await
            .unwrap();
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&ready_status("10.1.0.9")),
        )
        .await
        .unwrap();
    }
    // Healthy for longer than the grace period: no taints.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(taint_keys(&nodes.get("n1").await.unwrap()).is_empty());

    renewing.store(false, Ordering::Relaxed);
    wait_for("unreachable taint", 30, &cm, || async {
        let n = nodes.get("n1").await.ok()?;
        taint_keys(&n)
            .contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
            .then_some(())
    })
    .await;
    let n = nodes.get("n1").await.unwrap();
    let ready = n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("Unknown", Some("NodeStatusUnknown"))
    );
    wait_for("quick evicted, patient not ready", 30, &cm, || async {
        let quick = pods.get("quick").await.ok()?;
        let patient = pods.get("patient").await.ok()?;
        (quick.metadata.deletion_timestamp.is_some() && !is_ready(&patient)).then_some(())
    })
    .await;
    assert!(pods
        .get("patient")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none());

    // The node comes back: the lifecycle taints go.
    renewing.store(true, Ordering::Relaxed);
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(&node_ready("True")),
        )
        .await
        .unwrap();
    wait_for("taints removed", 30, &cm, || async {
        taint_keys(&nodes.get("n1").await.ok()?)
            .is_empty()
            .then_some(())
    })
    .await;
    // A user's NoExecute taint evicts pods that do not tolerate it.
    kubectl(&c, &["taint", "nodes", "n1", "dedicated=gpu:NoExecute"]);
    wait_for("patient evicted by the user's taint", 30, &cm, || async {
        pods.get("patient")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .is_some()
            .then_some(())
    })
    .await;
    renewer.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn node_ipam_hands_out_and_reuses_pod_cidrs() {
    let c = api().await;
    let cm = controller_manager(
        &c,
        &[
            "--controllers=nodeipam",
            "--allocate-node-cidrs=true",
            "--cluster-cidr=10.244.0.0/16",
        ],
    );
    let kc = client(&c).await;
    let nodes: Api<Node> = Api::all(kc.clone());
    let cidr = |name: &'static str| {
        let nodes = nodes.clone();
        async move { nodes.get(name).await.ok()?.spec?.pod_cidr }
    };
    for name in ["a", "b"] {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        nodes.create(&PostParams::default(), &n).await.unwrap();
        wait_for("a pod CIDR", 30, &cm, || cidr(name)).await;
    }
    let (a, b) = (cidr("a").await.unwrap(), cidr("b").await.unwrap());
    let mut got = [a.clone(), b];
    got.sort();
    assert_eq!(got, ["10.244.0.0/24", "10.244.1.0/24"]);
    nodes.delete("a", &Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let c_cidr = wait_for("c's pod CIDR", 30, &cm, || cidr("c")).await;
    assert_eq!(c_cidr, a, "the freed subnet is reused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_replica_takes_over_when_the_leader_dies() {
    let c = api().await;
    let port = cluster_tests::ports::allocate().unwrap().to_string();
    let flags = [
        "--leader-elect=true",
        "--leader-elect-lease-duration=3s",
        "--leader-elect-retry-period=500ms",
    ];
    let mut first = controller_manager(&c, &[&flags[..], &["--port", port.as_str()]].concat());
    let kc = client(&c).await;
    let leases: Api<Lease> = Api::namespaced(kc.clone(), "kube-system");
    let holder = wait_for("a leader", 30, &first, || async {
        leases
            .get_opt("kube-controller-manager")
            .await
            .ok()??
            .spec?
            .holder_identity
    })
    .await;
    let mut second = controller_manager(&c, &flags);
    // /healthz and /metrics of the leader.
    let body = http_body(&format!("http://127.0.0.1:{port}/healthz")).await;
    assert_eq!(body.trim(), "ok");
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    kubectl(
        &c,
        &[
            "create",
            "deployment",
            "web",
            "--image=localhost/busybox:1.36",
            "--replicas=2",
        ],
    );
    wait_for("2 pods", 30, &first, || async {
        (live_pods(&pods).await.len() == 2).then_some(())
    })
    .await;
    // A reconcile is counted when it ends: the deployment's may still be running when its
    // ReplicaSet's pods appear, so give it a moment.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = http_body(&format!("http://127.0.0.1:{port}/metrics")).await;
        if metrics
            .contains("controller_reconcile_duration_seconds_count{controller=\"deployment\"}")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        metrics.contains("workqueue_depth{name=\"replicaset\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("controller_reconcile_duration_seconds_count{controller=\"deployment\"}"),
        "{metrics}"
    );

    first.kill();
    let killed_at = Instant::now();
    let new_holder = wait_for("another leader", 30, &second, || async {
        let h = leases
            .get_opt("kube-controller-manager")
            .await
            .ok()??
            .spec?
            .holder_identity?;
        (h != holder).then_some(h)
    })
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(3 + 3),
        "takeover took {:?}",
        killed_at.elapsed()
    );
    assert_ne!(new_holder, holder);
    kubectl(&c, &["scale", "deployment", "web", "--replicas=4"]);
    wait_for("4 pods from the new leader", 30, &second, || async {
        (live_pods(&pods).await.len() == 4).then_some(())
    })
    .await;
    second.kill();
}

/// GET over plain HTTP on loopback (a minimal client: one request, read to the end).
async fn http_body(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cluster_tests::http::get(url).await {
            Ok((_, body)) => return body,
            Err(e) => assert!(Instant::now() < deadline, "{url} not reachable: {e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
