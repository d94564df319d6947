//! Faults under the apiserver: the store's leader is killed while clients create objects
//! through the API. Every acknowledged create is kept, and a watch through the apiserver sees
//! each object's ADDED exactly once, in resourceVersion order.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_tests::{ApiCluster, ApiConfig, ClusterConfig, Identity::Admin};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_creates_survive_a_store_leader_kill() {
    let mut cfg = ApiConfig::new();
    cfg.store = ClusterConfig::new(3);
    let mut c = match ApiCluster::start(cfg).await {
        Ok(c) => c,
        Err(e) => panic!("API cluster did not start: {e:#}"),
    };
    let (code, body) = c.curl(Admin, "GET", "/api/v1/namespaces/default/configmaps", None);
    assert_eq!(code, 200, "{body}");
    let rv = serde_json::from_str::<Value>(&body).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let (crt, key) = c.client_cert(Admin).unwrap();
    let watch_out = c.store.dir().join("watch.jsonl");
    let mut watch = Command::new("curl")
        .args(["-s", "-N", "--cacert"]).arg(c.ca())
        .arg("--cert").arg(&crt).arg("--key").arg(&key)
        .arg(format!("{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=120", c.url(0)))
        .stdout(std::fs::File::create(&watch_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl watch");

    // Four writers create configmaps one after another; each records what the API answered.
    let mut writers = Vec::new();
    for w in 0..4 {
        let (url, ca, crt, key) = (c.url(0), c.ca(), crt.clone(), key.clone());
        writers.push(std::thread::spawn(move || {
            let mut answers = Vec::new();
            for i in 0..40 {
                let name = format!("w{w}-{i:02}");
                let body = format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"i":"{i}"}}}}"#);
                let out = Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "15", "-X", "POST", "-H", "Content-Type: application/json", "--cacert"]).arg(&ca)
                    .arg("--cert").arg(&crt).arg("--key").arg(&key)
                    .arg("--data").arg(body)
                    .arg(format!("{url}/api/v1/namespaces/default/configmaps"))
                    .output()
                    .expect("curl create");
                answers.push((name, String::from_utf8_lossy(&out.stdout).into_owned()));
            }
            answers
        }));
    }
    std::thread::sleep(Duration::from_millis(800));
    let leader = c.store.leader().await.expect("a leader");
    c.store.kill(leader);
    std::thread::sleep(Duration::from_secs(2));
    c.store
        .restart(leader)
        .await
        .expect("the old leader restarts");
    let answers: Vec<(String, String)> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();

    let acknowledged: Vec<&String> = answers
        .iter()
        .filter(|(_, code)| code == "201")
        .map(|(n, _)| n)
        .collect();
    assert!(
        acknowledged.len() >= 100,
        "too few creates succeeded: {answers:?}"
    );
    let (code, body) = c.curl(Admin, "GET", "/api/v1/namespaces/default/configmaps", None);
    assert_eq!(code, 200);
    let stored: HashSet<String> = serde_json::from_str::<Value>(&body).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for name in &acknowledged {
        assert!(
            stored.contains(*name),
            "acknowledged create of {name} was lost"
        );
    }
    // Whatever is stored was created by a writer (a failed request may still have committed).
    assert!(stored.iter().all(|n| answers.iter().any(|(a, _)| a == n)));

    // The watch saw every stored object once, in resourceVersion order.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let text = std::fs::read_to_string(&watch_out).unwrap_or_default();
        seen.clear();
        let mut last_rv = 0i64;
        for line in text.lines() {
            let ev: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("bad watch line {line:?}: {e}"));
            assert_eq!(ev["type"], "ADDED", "{line}");
            let rv: i64 = ev["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                rv > last_rv,
                "watch went back in resourceVersion: {rv} after {last_rv}"
            );
            last_rv = rv;
            *seen
                .entry(
                    ev["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
                .or_default() += 1;
        }
        if stored.iter().all(|n| seen.contains_key(n)) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    for name in &stored {
        assert_eq!(
            seen.get(name),
            Some(&1),
            "watch saw {name} {:?} times",
            seen.get(name)
        );
    }
    assert_eq!(
        seen.len(),
        stored.len(),
        "the watch saw objects that are not stored"
    );
}
