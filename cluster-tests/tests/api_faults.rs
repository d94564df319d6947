//! Faults under the apiserver: the store's leader is killed while clients create objects
//! through the API. Creates were in flight when it died, every acknowledged create is kept,
//! and a watch through the apiserver sees each object's ADDED exactly once, in resourceVersion
//! order.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_tests::{ApiConfig, ClusterConfig, Identity::Admin};
use common::api::{start_api, Curl};
use serde_json::Value;

/// Writers creating configmaps at the same time, and creates each sends one after another.
const WRITERS: usize = 4;
const CREATES_PER_WRITER: usize = 40;
/// Creates answered before the leader is killed, so that the kill meets a running load.
const ANSWERED_BEFORE_KILL: usize = 20;

/// One create a writer sent: the HTTP status of the answer, when it was sent and answered.
#[derive(Debug)]
struct Create {
    name: String,
    code: u16,
    sent: Instant,
    answered: Instant,
}

/// Creates `CREATES_PER_WRITER` configmaps `w<writer>-<i>` one after another.
fn write(curl: &Curl, writer: usize, answered: &AtomicUsize) -> Vec<Create> {
    (0..CREATES_PER_WRITER)
        .map(|i| {
            let name = format!("w{writer}-{i:02}");
            let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name}, "data": {"i": i.to_string()}});
            let sent = Instant::now();
            let (code, _) = curl.request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                Some(&body.to_string()),
            );
            answered.fetch_add(1, Ordering::Relaxed);
            Create {
                name,
                code,
                sent,
                answered: Instant::now(),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_creates_survive_a_store_leader_kill() {
    let mut cfg = ApiConfig::new();
    cfg.store = ClusterConfig::new(3);
    let mut c = start_api(cfg).await;
    let (code, body) = c.curl(Admin, "GET", "/api/v1/namespaces/default/configmaps", None);
    assert_eq!(code, 200, "{body}");
    let rv = serde_json::from_str::<Value>(&body).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let curl = Curl::new(&c, 0, Admin);
    let watch_out = c.store.dir().join("watch.jsonl");
    let mut watch = curl.stream_to(
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}\
             &timeoutSeconds=120"
        ),
        &watch_out,
    );

    // The writers record what the API answered and when.
    let answered = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (curl, answered) = (curl.clone(), answered.clone());
            std::thread::spawn(move || write(&curl, w, &answered))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::Relaxed) < ANSWERED_BEFORE_KILL {
        assert!(Instant::now() < deadline, "the creates did not get going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let leader = c.store.leader().await.expect("a leader");
    let kill_sent = Instant::now();
    c.store.kill(leader);
    let dead = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    c.store
        .restart(leader)
        .await
        .expect("the old leader restarts");
    let creates: Vec<Create> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();

    // The kill hit live traffic: some creates were sent before it and answered after the
    // leader was gone.
    let in_flight = creates
        .iter()
        .filter(|op| op.sent < kill_sent && op.answered > dead)
        .count();
    assert!(
        in_flight > 0,
        "no create was in flight when the leader died, so the fault missed the traffic"
    );
    let acknowledged: Vec<&str> = creates
        .iter()
        .filter(|op| op.code == 201)
        .map(|op| op.name.as_str())
        .collect();
    eprintln!(
        "{} creates, {} acknowledged, {in_flight} in flight across the kill",
        creates.len(),
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= 100,
        "too few creates succeeded: {creates:?}"
    );
    let (code, body) = c.curl(Admin, "GET", "/api/v1/namespaces/default/configmaps", None);
    assert_eq!(code, 200, "{body}");
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
    for name in &stored {
        assert!(
            creates.iter().any(|op| op.name == *name),
            "{name} is stored but no writer created it"
        );
    }

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
            let meta = &ev["object"]["metadata"];
            let rv: i64 = meta["resourceVersion"].as_str().unwrap().parse().unwrap();
            assert!(
                rv > last_rv,
                "watch went back in resourceVersion: {rv} after {last_rv}"
            );
            last_rv = rv;
            *seen
                .entry(meta["name"].as_str().unwrap().to_string())
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
