//! Volumes on real containerd, run by the real agent (with a store and an apiserver): a pod
//! reads a configMap, a secret, downwardAPI labels and a projected volume as files; an update
//! of the ConfigMap (and of the pod's labels) reaches the running container in place within
//! the sync period; the mounts are read-only; a missing ConfigMap keeps its pod in
//! ContainerCreating with the kubelet's FailedMount event until it is created; a hostPath
//! that cannot be created (under a regular file) says why; the node's other pods keep being
//! served. Needs root, containerd, runc and the CNI plugins (scripts/setup.sh).

use cluster_tests::{
    wait::{self, container_state},
    ApiCluster, ApiConfig, ContainerdNode, Identity,
};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn pod(name: &str, command: &str, mounts: serde_json::Value, volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, "tier": "web"}},
        "spec": {
            "nodeName": "n1",
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app", "image": "localhost/busybox:1.36",
                "command": ["sh", "-c", command],
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }))
    .expect("a valid pod")
}

fn config_map(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": data,
    }))
    .expect("a valid configmap")
}

/// The one line of `out` starting with `prefix`, from its last occurrence.
fn last_line<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    out.lines().rev().find(|l| l.starts_with(prefix))
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes_on_containerd() {
    let api = ApiCluster::start(ApiConfig::new())
        .await
        .expect("store and apiserver");
    let node = ContainerdNode::start(&api, Identity::Node1, &["--sync-frequency=2s"])
        .await
        .expect("containerd and the agent");
    let kc = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await
        .expect("admin client")
        .0;
    let logs = || node.logs(80);
    let nodes: Api<Node> = Api::all(kc.clone());
    wait::node_ready(&nodes, "n1", 60, logs).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let events: Api<Event> = Api::namespaced(kc.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(kc.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(kc.clone(), "default");
    let pp = PostParams::default();

    cms.create(&pp, &config_map("cfg", json!({"greeting": "hello"})))
        .await
        .expect("configmap");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds"},
        // "s3cret" and a byte that is not UTF-8.
        "data": {"password": "czNjcmV0", "raw": "/w=="},
    }))
    .expect("a valid secret");
    secrets.create(&pp, &secret).await.expect("secret");

    // The reader prints what it sees every half second.
    let reader = pod(
        "reader",
        "touch /etc/cfg/x 2>/dev/null && echo cfg-writable || echo cfg-read-only; \
         while true; do \
           echo \"cfg=$(cat /etc/cfg/greeting) pw=$(cat /etc/creds/password) \
         mode=$(stat -L -c %a /etc/creds/password) raw=$(od -An -tx1 /etc/creds/raw | tr -d ' ') \
         name=$(cat /etc/podinfo/name) proj=$(cat /etc/all/greeting)/$(cat /etc/all/pw)/$(cat /etc/all/ns)\"; \
           echo \"labels=$(cat /etc/podinfo/labels | tr '\\n' ',')\"; \
           sleep 0.5; done",
        json!([
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "creds", "mountPath": "/etc/creds"},
            {"name": "podinfo", "mountPath": "/etc/podinfo"},
            {"name": "all", "mountPath": "/etc/all"},
        ]),
        json!([
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "podinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            ]}},
            {"name": "all", "projected": {"sources": [
                {"configMap": {"name": "cfg"}},
                {"secret": {"name": "creds", "items": [{"key": "password", "path": "pw"}]}},
                {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]}},
        ]),
    );
    pods.create(&pp, &reader).await.expect("reader created");
    let reader = wait::until("reader running", 90, logs, || async {
        let p = pods.get("reader").await.ok()?;
        (container_state(&p).0 == "running").then_some(p)
    })
    .await;
    let line = wait::until("the reader's files", 30, logs, || async {
        let out = node.container_output(&reader, "app", 0);
        last_line(&out, "cfg=").map(str::to_string)
    })
    .await;
    assert_eq!(
        line,
        "cfg=hello pw=s3cret mode=400 raw=ff name=reader proj=hello/s3cret/default"
    );
    let out = node.container_output(&reader, "app", 0);
    assert!(out.starts_with("cfg-read-only"), "{out}");
    assert_eq!(
        last_line(&out, "labels="),
        Some("labels=app=\"reader\",tier=\"web\"")
    );

    // A missing ConfigMap: ContainerCreating, FailedMount as the kubelet words it.
    let waiter = pod(
        "waiter",
        "cat /etc/later/k; echo; exec sleep 600",
        json!([{"name": "config", "mountPath": "/etc/later"}]),
        json!([{"name": "config", "configMap": {"name": "later"}}]),
    );
    pods.create(&pp, &waiter).await.expect("waiter created");
    // A hostPath under a regular file cannot be created.
    let file = node.root().join("a-file");
    std::fs::write(&file, "x").expect("a regular file");
    let under = file.join("sub");
    let bad_host = pod(
        "bad-host",
        "exec sleep 600",
        json!([{"name": "h", "mountPath": "/h"}]),
        json!([{"name": "h", "hostPath": {"path": under.display().to_string(), "type": "DirectoryOrCreate"}}]),
    );
    pods.create(&pp, &bad_host).await.expect("bad-host created");
    let missing = wait::until(
        "FailedMount for the missing configmap",
        30,
        logs,
        || async {
            let m = wait::event_messages(&events, "waiter", "FailedMount").await;
            m.into_iter().next()
        },
    )
    .await;
    assert_eq!(
        missing,
        "MountVolume.SetUp failed for volume \"config\" : configmap \"later\" not found"
    );
    let host_msg = wait::until("FailedMount for the hostPath", 30, logs, || async {
        let m = wait::event_messages(&events, "bad-host", "FailedMount").await;
        m.into_iter().next()
    })
    .await;
    let prefix = format!(
        "MountVolume.SetUp failed for volume \"h\" : mkdir {}: ",
        under.display()
    );
    assert!(
        host_msg.starts_with(&prefix) && host_msg.contains("Not a directory"),
        "{host_msg}"
    );
    for name in ["waiter", "bad-host"] {
        wait::until(&format!("{name} ContainerCreating"), 20, logs, || async {
            let p = pods.get(name).await.ok()?;
            (container_state(&p).0 == "ContainerCreating").then_some(())
        })
        .await;
    }

    // The ConfigMap's update reaches the running reader in place (no restart) within the
    // sync period (2 s here); a change of the pod's labels at once.
    let cfg = cms.get("cfg").await.expect("cfg");
    let updated = ConfigMap {
        metadata: cfg.metadata,
        ..config_map("cfg", json!({"greeting": "bonjour"}))
    };
    cms.replace("cfg", &pp, &updated)
        .await
        .expect("configmap updated");
    let t = std::time::Instant::now();
    wait::until(
        "the reader sees the ConfigMap's update",
        20,
        logs,
        || async {
            let out = node.container_output(&reader, "app", 0);
            let cfg = last_line(&out, "cfg=")?;
            (cfg.starts_with("cfg=bonjour") && cfg.ends_with("proj=bonjour/s3cret/default"))
                .then_some(())
        },
    )
    .await;
    assert!(t.elapsed().as_secs() < 8, "took {:?}", t.elapsed());
    pods.patch(
        "reader",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "db"}}})),
    )
    .await
    .expect("labels patched");
    wait::until("the reader sees its new labels", 10, logs, || async {
        let out = node.container_output(&reader, "app", 0);
        (last_line(&out, "labels=")? == "labels=app=\"reader\",tier=\"db\"").then_some(())
    })
    .await;
    let p = pods.get("reader").await.expect("reader");
    assert_eq!(container_state(&p).1, 0, "the reader was restarted");

    // Created at last: the waiter starts and reads it.
    cms.create(&pp, &config_map("later", json!({"k": "finally"})))
        .await
        .expect("configmap later");
    let waiter = wait::until("waiter running", 60, logs, || async {
        let p = pods.get("waiter").await.ok()?;
        (container_state(&p).0 == "running").then_some(p)
    })
    .await;
    wait::until("the waiter's file", 20, logs, || async {
        node.container_output(&waiter, "app", 0)
            .contains("finally")
            .then_some(())
    })
    .await;
    let p = pods.get("bad-host").await.expect("bad-host");
    assert_eq!(container_state(&p).0, "ContainerCreating");
}
