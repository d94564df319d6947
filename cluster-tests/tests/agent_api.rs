//! The agent's API (the kubelet API) on real containerd, reached as users reach it: through
//! the apiserver with kubectl. `kubectl logs` (--tail, --limit-bytes, --timestamps, -f across
//! log rotations, --previous after a restart) and `kubectl exec` (output, exit code, stdin);
//! straight at the agent: clients without a certificate or with one from another CA are
//! refused in the handshake, a cluster user the policy does not name is Forbidden the pod
//! endpoints but may read /healthz and /metrics, and /stats/summary reports usage. Needs
//! root, containerd, runc and the CNI plugins (scripts/setup.sh).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use cluster_tests::{
    wait::{self, container_state},
    ApiCluster, ApiConfig, ContainerdNode, Identity, TlsFiles,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// curl at the agent's API: (curl succeeded, HTTP code, body).
fn agent_curl(
    api: &ApiCluster,
    node: &ContainerdNode,
    cert: Option<(&Path, &Path)>,
    path: &str,
) -> (bool, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-m", "10", "-w", "\n%{http_code}", "--cacert"])
        .arg(api.ca());
    if let Some((crt, key)) = cert {
        cmd.arg("--cert").arg(crt).arg("--key").arg(key);
    }
    cmd.arg(format!("https://127.0.0.1:{}{path}", node.port()));
    let out = cmd.output().expect("running curl");
    let all = text(&out.stdout);
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
    (out.status.success(), code.to_string(), body.to_string())
}

fn kubectl_ok(api: &ApiCluster, args: &[&str]) -> String {
    let out = api.kubectl(Identity::Admin, args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

async fn running(pods: &Api<Pod>, node: &ContainerdNode, name: &str) {
    wait::until(
        &format!("pod {name} running"),
        60,
        || node.logs(60),
        || async {
            let p = pods.get(name).await.ok()?;
            (container_state(&p).0 == "running").then_some(())
        },
    )
    .await;
}

fn log_files(node: &ContainerdNode, pod: &Pod, container: &str) -> Vec<PathBuf> {
    let m = &pod.metadata;
    let dir = node
        .root()
        .join("logs")
        .join(format!(
            "default_{}_{}",
            m.name.as_deref().unwrap_or_default(),
            m.uid.as_deref().unwrap_or_default()
        ))
        .join(container);
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_exec_and_stats_on_containerd() {
    let api = ApiCluster::start(ApiConfig::new())
        .await
        .expect("store and apiserver");
    let node = ContainerdNode::start(
        &api,
        Identity::Node1,
        &[
            "--container-log-max-size=2Ki",
            "--container-log-max-files=3",
            "--container-log-monitor-interval=500ms",
        ],
    )
    .await
    .expect("containerd and the agent");
    let kc = client::from_kubeconfig(Some(&api.kubeconfig(Identity::Admin)), None)
        .await
        .expect("admin client")
        .0;
    node.wait_ready(&kc).await;
    let pods: Api<Pod> = Api::namespaced(kc, "default");
    let specs = [
        node.pod(
            "quiet",
            json!({"containers": [ContainerdNode::busybox(
                "app",
                "echo first; sleep 0.2; echo second >&2; sleep 0.2; echo third; exec sleep 600",
            )]}),
        ),
        node.pod(
            "talker",
            json!({"containers": [ContainerdNode::busybox(
                "app",
                "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.02; done",
            )]}),
        ),
        // Each instance counts itself in a volume that outlives it.
        node.pod(
            "restarter",
            json!({
                "containers": [{
                    "name": "app", "image": cluster_tests::BUSYBOX_IMAGE,
                    "command": ["sh", "-c",
                        "n=$(( $(cat /d/n 2>/dev/null || echo 0) + 1 )); echo $n > /d/n; \
                         echo instance $n; sleep 6; exit 1"],
                    "volumeMounts": [{"name": "d", "mountPath": "/d"}],
                }],
                "volumes": [{"name": "d", "emptyDir": {}}],
            }),
        ),
    ];
    for p in &specs {
        pods.create(&PostParams::default(), p)
            .await
            .expect("create");
    }
    running(&pods, &node, "quiet").await;
    running(&pods, &node, "talker").await;

    // Follow the talker from the start while the agent rotates its log every ~2 KiB.
    let follow_out = api.dir().join("follow.out");
    let mut follow =
        api.kubectl_background(Identity::Admin, &["logs", "-f", "talker"], &follow_out);

    // Logs, through the apiserver.
    wait::until(
        "quiet's three lines",
        20,
        || {
            let out = api.kubectl(Identity::Admin, &["logs", "quiet"]);
            format!(
                "kubectl logs quiet: {:?} {:?}\n{}",
                text(&out.stdout),
                text(&out.stderr),
                node.logs(40)
            )
        },
        || async {
            let out = api.kubectl(Identity::Admin, &["logs", "quiet"]);
            (text(&out.stdout) == "first\nsecond\nthird\n").then_some(())
        },
    )
    .await;
    assert_eq!(kubectl_ok(&api, &["logs", "quiet", "--tail=1"]), "third\n");
    assert_eq!(kubectl_ok(&api, &["logs", "quiet", "--tail=0"]), "");
    assert_eq!(
        kubectl_ok(&api, &["logs", "quiet", "--limit-bytes=8"]),
        "first\nse"
    );
    assert_eq!(
        kubectl_ok(&api, &["logs", "quiet", "--since=1h"]),
        "first\nsecond\nthird\n"
    );
    let stamped = kubectl_ok(&api, &["logs", "quiet", "--timestamps"]);
    for (line, want) in stamped.lines().zip(["first", "second", "third"]) {
        let (time, rest) = line.split_once(' ').expect("a timestamp");
        assert_eq!(rest, want);
        assert!(
            time.len() == 30
                && time.ends_with('Z')
                && time.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
            "{line}"
        );
    }
    let no_previous = api.kubectl(Identity::Admin, &["logs", "quiet", "--previous"]);
    assert!(!no_previous.status.success());
    assert_eq!(
        text(&no_previous.stderr).trim(),
        "Error from server (BadRequest): previous terminated container \"app\" in pod \
         \"quiet\" not found"
    );

    // Exec: output, exit code, stdin (kubectl falls back from WebSocket v5 to SPDY, which
    // containerd's streaming server speaks).
    let out = api.kubectl(
        Identity::Admin,
        &[
            "exec",
            "quiet",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(text(&out.stdout), "out\n", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("err"), "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = api.kubectl_stdin(
        Identity::Admin,
        &["exec", "-i", "quiet", "--", "sh", "-c", "cat; echo done"],
        "hello from stdin\n",
    );
    assert_eq!(
        text(&out.stdout),
        "hello from stdin\ndone\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    let out = api.kubectl(Identity::Admin, &["exec", "quiet", "--", "no-such-command"]);
    assert!(!out.status.success());

    // --previous after a restart: instance 2 runs, instance 1 is the previous one.
    wait::until(
        "restarter's second instance",
        40,
        || node.logs(40),
        || async {
            let out = api.kubectl(Identity::Admin, &["logs", "restarter"]);
            (text(&out.stdout) == "instance 2\n").then_some(())
        },
    )
    .await;
    assert_eq!(
        kubectl_ok(&api, &["logs", "restarter", "--previous"]),
        "instance 1\n"
    );

    // The follow saw every line, in order, across the rotations.
    let talker = pods.get("talker").await.expect("talker");
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_files(&node, &talker, "app").len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no rotation: {:?}\n{}",
            log_files(&node, &talker, "app"),
            node.logs(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = follow.kill();
    let _ = follow.wait();
    let files = log_files(&node, &talker, "app");
    assert!(
        files.len() <= 3,
        "more files than --container-log-max-files: {files:?}"
    );
    let followed = std::fs::read_to_string(&follow_out).expect("follow output");
    let numbers: Vec<u64> = followed
        .lines()
        .map(|l| {
            l.strip_prefix("line ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect();
    assert!(
        numbers.len() > 100,
        "too few lines followed: {}",
        numbers.len()
    );
    assert_eq!(numbers[0], 0);
    for w in numbers.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap or repeat in the followed log");
    }

    // Straight at the agent: only the cluster CA's clients get past the handshake.
    let pki = api.dir().join("pki");
    let kubelet_client = (
        pki.join("apiserver-kubelet-client.crt"),
        pki.join("apiserver-kubelet-client.key"),
    );
    let kubelet_client = Some((kubelet_client.0.as_path(), kubelet_client.1.as_path()));
    let (ok, code, body) = agent_curl(&api, &node, kubelet_client, "/healthz");
    assert!(ok && code == "200" && body == "ok", "{code} {body}");
    let (ok, code, _) = agent_curl(&api, &node, None, "/healthz");
    assert!(
        !ok && code == "000",
        "a client without a certificate got {code}"
    );
    let other_dir = api.dir().join("other-ca");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = TlsFiles::generate(&other_dir).expect("another CA");
    let (ok, code, _) = agent_curl(
        &api,
        &node,
        Some((&other.client_cert, &other.client_key)),
        "/healthz",
    );
    assert!(!ok && code == "000", "another CA's client got {code}");
    // A cluster user the policy does not name: health and metrics only.
    let (viewer_crt, viewer_key) = api.client_cert(Identity::Viewer).unwrap();
    let viewer = Some((viewer_crt.as_path(), viewer_key.as_path()));
    let (_, code, body) = agent_curl(&api, &node, viewer, "/containerLogs/default/quiet/app");
    assert_eq!(code, "403", "{body}");
    let status: Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(
        status["message"],
        "Forbidden (user=viewer, verb=get, resource=nodes, subresource(s)=[proxy])"
    );
    let (_, code, _) = agent_curl(&api, &node, viewer, "/healthz");
    assert_eq!(code, "200");
    let (_, code, metrics) = agent_curl(&api, &node, viewer, "/metrics");
    assert_eq!(code, "200");
    assert!(metrics.contains("kubelet_running_pods 3"), "{metrics}");
    assert!(
        metrics.contains("agent_api_requests_total{code=\"403\",endpoint=\"containerLogs\"} 1"),
        "{metrics}"
    );
    // The agent's own answer to the apiserver's identity, as the apiserver gets it.
    let (_, code, body) = agent_curl(
        &api,
        &node,
        kubelet_client,
        "/containerLogs/default/quiet/app?tailLines=2",
    );
    assert_eq!((code.as_str(), body.as_str()), ("200", "second\nthird\n"));

    // Usage: the node and each running pod's containers.
    let summary = wait::until(
        "a summary with CPU rates",
        30,
        || node.logs(40),
        || async {
            let (_, code, body) = agent_curl(&api, &node, kubelet_client, "/stats/summary");
            let s: Value = serde_json::from_str(&body).ok()?;
            let talker = s["pods"]
                .as_array()?
                .iter()
                .find(|p| p["podRef"]["name"] == "talker")?
                .clone();
            (code == "200"
                && s["node"]["cpu"]["usageNanoCores"].as_u64()? > 0
                && talker["containers"][0]["cpu"]["usageNanoCores"].is_u64())
            .then_some(s)
        },
    )
    .await;
    assert_eq!(summary["node"]["nodeName"], "n1");
    assert!(
        summary["node"]["cpu"]["usageCoreNanoSeconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        summary["node"]["memory"]["workingSetBytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let quiet = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "quiet")
        .expect("quiet in the summary");
    assert_eq!(quiet["podRef"]["namespace"], "default");
    assert_eq!(quiet["containers"][0]["name"], "app");
    let ws = quiet["containers"][0]["memory"]["workingSetBytes"]
        .as_u64()
        .expect("workingSetBytes");
    assert!(ws > 0);
    assert_eq!(quiet["memory"]["workingSetBytes"].as_u64(), Some(ws));
}
