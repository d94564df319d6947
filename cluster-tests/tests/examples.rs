//! Every example manifest of `examples/`, applied with kubectl to the whole stack on one
//! machine (store, apiserver, scheduler, controller-manager and the real agent on a private
//! containerd), reaches the state its first comment describes. Needs root, containerd, runc
//! and the CNI plugins (scripts/setup.sh).

use std::time::{Duration, Instant};

use cluster_tests::{
    examples_dir, ports,
    wait::{self, condition, container_state},
    ApiCluster, ApiConfig, Component, ContainerdNode, Identity,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Endpoints, Event, Node, Pod},
};
use kube::api::{Api, ListParams};

fn kubectl(api: &ApiCluster, args: &[&str]) -> String {
    let out = api.kubectl(Identity::Admin, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apply(api: &ApiCluster, file: &str) {
    let path = examples_dir().join(file);
    kubectl(api, &["apply", "-f", &path.display().to_string()]);
}

fn control_plane(api: &ApiCluster) -> (Component, Component) {
    let kubeconfig = format!("--kubeconfig={}", api.kubeconfig(Identity::Admin).display());
    let port = |p: u16| format!("--port={p}");
    let scheduler = Component::start(
        "scheduler",
        &[kubeconfig.clone(), port(ports::allocate().expect("a port"))],
        api.dir(),
    )
    .expect("the scheduler starts");
    let cm = Component::start(
        "controller-manager",
        &[kubeconfig, "--port=0".into(), "--leader-elect=false".into()],
        api.dir(),
    )
    .expect("the controller-manager starts");
    (scheduler, cm)
}

fn ready(p: &Pod) -> bool {
    condition(p, "Ready").as_deref() == Some("True")
}

fn ready_count(p: &Pod) -> (usize, usize) {
    let list = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    (list.iter().filter(|c| c.ready).count(), list.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_reaches_its_described_state() {
    let api = ApiCluster::start(ApiConfig::new())
        .await
        .expect("store and apiserver");
    let node = ContainerdNode::start(&api, Identity::Node1, &["--node-labels=zone=a"])
        .await
        .expect("containerd and the agent");
    let (scheduler, cm) = control_plane(&api);
    let logs = || {
        format!(
            "{}\n--- scheduler ---\n{}\n--- controller-manager ---\n{}",
            node.logs(40),
            scheduler.log_tail(20),
            cm.log_tail(20)
        )
    };
    let kc = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await
        .expect("admin client")
        .0;
    let nodes: Api<Node> = Api::all(kc.clone());
    wait::until("node n1 Ready", 60, logs, || async {
        let n = nodes.get_opt("n1").await.ok().flatten()?;
        n.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let events: Api<Event> = Api::namespaced(kc.clone(), "default");

    let t0 = Instant::now();
    for file in [
        "pod-busybox.yaml",
        "pod-init-sidecar.yaml",
        "pod-twocontainers.yaml",
        "pod-resources-restart.yaml",
        "pod-probes-lifecycle.yaml",
        "pod-scheduling.yaml",
        "deployment-web.yaml",
    ] {
        apply(&api, file);
    }

    // busybox: Running, READY 1/1, RESTARTS 0, an IP.
    let p = wait::until("busybox Running 1/1", 90, logs, || async {
        let p = pods.get("busybox").await.ok()?;
        (ready(&p) && ready_count(&p) == (1, 1)).then_some(p)
    })
    .await;
    assert_eq!(container_state(&p).1, 0);
    assert!(p
        .status
        .and_then(|s| s.pod_ip)
        .is_some_and(|ip| !ip.is_empty()));

    // init-sidecar: Running 2/2; the app serves the init container's page.
    let p = wait::until("init-sidecar Running 2/2", 60, logs, || async {
        let p = pods.get("init-sidecar").await.ok()?;
        (ready_count(&p) == (2, 2)).then_some(p)
    })
    .await;
    let ip = p.status.and_then(|s| s.pod_ip).expect("pod IP");
    let (_, page) = cluster_tests::http::get(&format!("http://{ip}:8080/index.html"))
        .await
        .expect("the app's page");
    assert_eq!(page.trim(), "prepared by init");

    // twocontainers: READY 2/2.
    wait::until("twocontainers 2/2", 60, logs, || async {
        let p = pods.get("twocontainers").await.ok()?;
        (ready_count(&p) == (2, 2)).then_some(())
    })
    .await;

    // probes: Ready only after /tmp/ready exists and the startup probe passed (about 10 s).
    let p = wait::until("probes Ready", 60, logs, || async {
        let p = pods.get("probes").await.ok()?;
        ready(&p).then_some(p)
    })
    .await;
    let started_at = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|l| l.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.clone())
        .expect("running since");
    let ready_since = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|l| l.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.clone())
        .expect("ready since");
    let delay = ready_since.0.as_second() - started_at.0.as_second();
    assert!(delay >= 9, "Ready {delay} s after the start");

    // crasher: CrashLoopBackOff, RESTARTS counting up.
    wait::until(
        "crasher CrashLoopBackOff with restarts",
        90,
        logs,
        || async {
            let p = pods.get("crasher").await.ok()?;
            let (state, restarts, _) = container_state(&p);
            (state == "CrashLoopBackOff" && restarts >= 1).then_some(())
        },
    )
    .await;

    // constrained: Pending with a FailedScheduling event saying why, until the node is labelled
    // and tainted as the comment says; then it lands there and runs.
    wait::until("constrained's FailedScheduling event", 30, logs, || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=constrained"))
            .await
            .ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("FailedScheduling")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains("0/1 nodes are available"))
            })
            .then_some(())
    })
    .await;
    kubectl(&api, &["label", "node", "n1", "disktype=ssd"]);
    kubectl(&api, &["taint", "node", "n1", "dedicated=batch:NoSchedule"]);
    wait::until("constrained Running on n1", 60, logs, || async {
        let p = pods.get("constrained").await.ok()?;
        let on_n1 = p.spec.as_ref()?.node_name.as_deref() == Some("n1");
        (on_n1 && ready(&p)).then_some(())
    })
    .await;
    kubectl(
        &api,
        &["taint", "node", "n1", "dedicated=batch:NoSchedule-"],
    );

    // web: 3/3 ready; the Service's endpoints list the ready pods' IPs; scaled to 5 it has 5;
    // a restart rolls out without fewer than 2 ready pods.
    let deployments: Api<Deployment> = Api::namespaced(kc.clone(), "default");
    let ready_replicas = || async {
        deployments
            .get("web")
            .await
            .ok()
            .and_then(|d| d.status)
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    };
    wait::until("web 3/3", 90, logs, || async {
        (ready_replicas().await == 3).then_some(())
    })
    .await;
    let endpoints: Api<Endpoints> = Api::namespaced(kc.clone(), "default");
    let web_ips = || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let mut ips: Vec<String> = list
            .items
            .iter()
            .filter(|p| ready(p) && p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
            .collect();
        ips.sort();
        Some(ips)
    };
    wait::until(
        "the Service's endpoints = the ready pods' IPs",
        30,
        logs,
        || async {
            let ep = endpoints.get("web").await.ok()?;
            let mut listed: Vec<String> = ep
                .subsets
                .unwrap_or_default()
                .iter()
                .flat_map(|s| s.addresses.clone().unwrap_or_default())
                .map(|a| a.ip)
                .collect();
            listed.sort();
            (listed.len() == 3 && Some(listed) == web_ips().await).then_some(())
        },
    )
    .await;
    kubectl(&api, &["scale", "deployment", "web", "--replicas=5"]);
    wait::until("web 5/5", 90, logs, || async {
        (ready_replicas().await == 5).then_some(())
    })
    .await;
    kubectl(&api, &["scale", "deployment", "web", "--replicas=3"]);
    wait::until("web back to 3", 60, logs, || async {
        let d = deployments.get("web").await.ok()?;
        let s = d.status?;
        (s.replicas == Some(3) && s.ready_replicas == Some(3)).then_some(())
    })
    .await;
    kubectl(&api, &["rollout", "restart", "deployment/web"]);
    let rollout = Instant::now();
    let mut fewest = usize::MAX;
    loop {
        let ips = web_ips().await.unwrap_or_default();
        fewest = fewest.min(ips.len());
        let d = deployments.get("web").await.expect("deployment");
        let s = d.status.clone().unwrap_or_default();
        let done = s.updated_replicas == Some(3)
            && s.ready_replicas == Some(3)
            && s.replicas == Some(3)
            && s.observed_generation >= d.metadata.generation;
        if done {
            break;
        }
        assert!(
            rollout.elapsed() < Duration::from_secs(120),
            "the rollout did not finish: {s:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(fewest >= 2, "only {fewest} ready pods during the rollout");

    // Deleting the probes pod runs preStop (sleep 2) and takes no longer than its grace period.
    let t = Instant::now();
    kubectl(&api, &["delete", "pod", "probes", "--wait=true"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_secs(17),
        "deleting took {took:?}"
    );
    eprintln!("every example reached its state in {:?}", t0.elapsed());
}
