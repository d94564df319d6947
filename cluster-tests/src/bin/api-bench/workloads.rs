//! The api-bench workloads, each run through the API and directly against the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cluster_tests::{etcd_client, ApiCluster, Identity};
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::{stats::Latencies, Args};

/// One line of the report.
pub struct Row {
    pub name: String,
    pub api: String,
    pub direct: String,
    pub api_p99_ms: Option<f64>,
    /// Counts toward the single-object p99 target.
    pub single_object: bool,
}

/// A realistic pod (~1.5 KB of JSON once defaulted).
fn pod(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns,
            "labels": {"app": "bench", "tier": "web", "track": "stable"},
            "annotations": {
                "bench.example.com/note": "a pod created by api-bench to measure the API server"
            }},
        "spec": {"containers": [{"name": "web", "image": "localhost/busybox:1.36",
            "command": ["sh", "-c", "exec httpd -f -p 8080 -h /www"],
            "ports": [{"containerPort": 8080, "name": "http"}],
            "env": [{"name": "MODE", "value": "bench"}, {"name": "LEVEL", "value": "info"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "200m", "memory": "128Mi"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2}}],
            "nodeSelector": {"disktype": "ssd"}},
    })
}

async fn kube_client(c: &ApiCluster) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(c.kubeconfig(Identity::Admin))
        .context("reading the admin kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// A pod list as raw JSON (the client parses only what it counts, so the figure is the
/// server's): item count and continue token.
async fn raw_list(
    client: &kube::Client,
    ns: &str,
    page: Option<(usize, Option<&str>)>,
) -> Result<(usize, Option<String>)> {
    let path = format!("/api/v1/namespaces/{ns}/pods");
    let (items, cont) =
        cluster_tests::memory::list_page::<serde::de::IgnoredAny>(client, &path, page).await?;
    Ok((items.len(), cont))
}

fn latency_text(l: &mut Latencies, ops: usize, elapsed: Duration) -> (String, f64) {
    let p99 = l.quantile_ms(0.99);
    (
        format!(
            "{:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            ops as f64 / elapsed.as_secs_f64(),
            l.quantile_ms(0.5),
            p99
        ),
        p99,
    )
}

/// Runs every workload; returns the report rows.
pub async fn run(c: &ApiCluster, args: &Args) -> Result<Vec<Row>> {
    let client = kube_client(c).await?;
    let store = c.store.client().await?;
    let mut rows = Vec::new();
    for ns in ["default", "par", "list100", "big", "fan"] {
        if ns != "default" {
            let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
            nss.create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await?;
        }
    }

    // Sequential creates.
    eprintln!("api-bench: create, 1 client, {} pods", args.ops);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut api_l = Latencies::new();
    let t = Instant::now();
    for i in 0..args.ops {
        let p: Pod = serde_json::from_value(pod("default", &format!("seq-{i}")))?;
        let s = Instant::now();
        pods.create(&PostParams::default(), &p).await?;
        api_l.record(s.elapsed());
    }
    let (api_text, api_p99) = latency_text(&mut api_l, args.ops, t.elapsed());
    let body = serde_json::to_vec(&pod("default", "x"))?;
    let mut kv = store
        .kv_client()
        .max_decoding_message_size(i32::MAX as usize);
    let mut st_l = Latencies::new();
    let t = Instant::now();
    for i in 0..args.ops {
        let key = format!("/bench/direct/seq-{i}");
        let s = Instant::now();
        kv.txn(
            Txn::new()
                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.as_str(), body.clone(), None)]),
        )
        .await?;
        st_l.record(s.elapsed());
    }
    let (st_text, _) = latency_text(&mut st_l, args.ops, t.elapsed());
    rows.push(Row {
        name: "create, 1 client".into(),
        api: api_text,
        direct: st_text,
        api_p99_ms: Some(api_p99),
        single_object: true,
    });

    // Concurrent creates.
    eprintln!(
        "api-bench: create, {} clients, {} pods",
        args.clients, args.ops
    );
    let (api_text, api_p99) = concurrent(args.clients, args.ops, |w, i| {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "par");
        async move {
            let p: Pod = serde_json::from_value(pod("par", &format!("par-{w}-{i}")))?;
            pods.create(&PostParams::default(), &p).await?;
            Ok(())
        }
    })
    .await?;
    let (st_text, _) = concurrent(args.clients, args.ops, |w, i| {
        let mut kv = store.kv_client();
        let body = body.clone();
        async move {
            let key = format!("/bench/direct/par-{w}-{i}");
            kv.txn(
                Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.as_str(), body, None)]),
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(Row {
        name: format!("create, {} clients", args.clients),
        api: api_text,
        direct: st_text,
        api_p99_ms: Some(api_p99),
        single_object: true,
    });

    // Gets.
    eprintln!("api-bench: get, 1 client, {} reads", args.ops);
    let mut api_l = Latencies::new();
    let t = Instant::now();
    for i in 0..args.ops {
        let s = Instant::now();
        pods.get(&format!("seq-{i}")).await?;
        api_l.record(s.elapsed());
    }
    let (api_text, api_p99) = latency_text(&mut api_l, args.ops, t.elapsed());
    let mut st_l = Latencies::new();
    let t = Instant::now();
    for i in 0..args.ops {
        let s = Instant::now();
        kv.get(format!("/bench/direct/seq-{i}"), None).await?;
        st_l.record(s.elapsed());
    }
    let (st_text, _) = latency_text(&mut st_l, args.ops, t.elapsed());
    rows.push(Row {
        name: "get, 1 client".into(),
        api: api_text,
        direct: st_text,
        api_p99_ms: Some(api_p99),
        single_object: true,
    });

    // List of 100.
    eprintln!("api-bench: list of 100 pods");
    let small: Api<Pod> = Api::namespaced(client.clone(), "list100");
    for i in 0..100 {
        small
            .create(
                &PostParams::default(),
                &serde_json::from_value(pod("list100", &format!("l-{i}")))?,
            )
            .await?;
        kv.put(format!("/bench/list100/l-{i:03}"), body.clone(), None)
            .await?;
    }
    let reps = 200;
    let mut api_l = Latencies::new();
    let t = Instant::now();
    for _ in 0..reps {
        let s = Instant::now();
        let l = raw_list(&client, "list100", None).await?;
        anyhow::ensure!(l.0 == 100, "listed {} pods", l.0);
        api_l.record(s.elapsed());
    }
    let (api_text, api_p99) = latency_text(&mut api_l, reps, t.elapsed());
    let mut st_l = Latencies::new();
    let t = Instant::now();
    for _ in 0..reps {
        let s = Instant::now();
        kv.get("/bench/list100/", Some(GetOptions::new().with_prefix()))
            .await?;
        st_l.record(s.elapsed());
    }
    let (st_text, _) = latency_text(&mut st_l, reps, t.elapsed());
    rows.push(Row {
        name: "list 100 pods".into(),
        api: api_text,
        direct: st_text,
        api_p99_ms: Some(api_p99),
        single_object: false,
    });

    // LIST of many pods (written straight into the store in the apiserver's layout).
    rows.extend(big_list(&client, &mut kv, args.pods).await?);
    // Watch fan-out.
    rows.push(fan_out(c, &store, args.watchers, args.events).await?);
    Ok(rows)
}

/// Runs `ops` operations over `clients` concurrent workers; reports throughput and latency.
async fn concurrent<F, Fut>(clients: usize, ops: usize, op: F) -> Result<(String, f64)>
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let per = ops.div_ceil(clients);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..clients {
        let futs: Vec<Fut> = (0..per).map(|i| op(w, i)).collect();
        tasks.push(tokio::spawn(async move {
            let mut l = Latencies::new();
            for f in futs {
                let s = Instant::now();
                f.await?;
                l.record(s.elapsed());
            }
            Ok::<_, anyhow::Error>(l)
        }));
    }
    let mut all = Latencies::new();
    for t in tasks {
        all.merge(t.await??);
    }
    Ok(latency_text(&mut all, per * clients, t.elapsed()))
}

async fn big_list(
    client: &kube::Client,
    kv: &mut etcd_client::KvClient,
    n: usize,
) -> Result<Vec<Row>> {
    eprintln!("api-bench: writing {n} pods for the big LIST");
    let pods = api::registry::find("", "v1", "pods").context("pods are registered")?;
    let mut template = pod("big", "x");
    api::defaults::apply(pods, &mut template);
    for i in 0..n {
        let name = format!("big-{i:05}");
        template["metadata"]["name"] = json!(name);
        template["metadata"]["uid"] = json!(format!("00000000-0000-0000-0000-{i:012}"));
        template["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        kv.put(
            pods.key(Some("big"), &name),
            serde_json::to_vec(&template)?,
            None,
        )
        .await?;
    }
    let big: Api<Pod> = Api::namespaced(client.clone(), "big");
    // Wait until the apiserver's cache holds them all.
    let deadline = Instant::now() + Duration::from_secs(60);
    while big
        .list(&ListParams::default().match_any())
        .await?
        .items
        .len()
        < n
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the apiserver did not see {n} pods"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reps = 5;
    let mut full = Latencies::new();
    for _ in 0..reps {
        let s = Instant::now();
        let (count, _) = raw_list(client, "big", None).await?;
        anyhow::ensure!(count == n, "listed {count}");
        full.record(s.elapsed());
    }
    let mut paged = Latencies::new();
    for _ in 0..reps {
        let s = Instant::now();
        let mut count = 0;
        let mut cont: Option<String> = None;
        loop {
            let (items, next) = raw_list(client, "big", Some((500, cont.as_deref()))).await?;
            count += items;
            cont = next;
            if cont.is_none() {
                break;
            }
        }
        anyhow::ensure!(count == n, "paged {count}");
        paged.record(s.elapsed());
    }
    let mut direct = Latencies::new();
    let mut direct_paged = Latencies::new();
    let prefix = pods.namespace_prefix("big");
    for _ in 0..reps {
        let s = Instant::now();
        let r = kv
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await?;
        anyhow::ensure!(r.kvs().len() == n, "ranged {}", r.kvs().len());
        direct.record(s.elapsed());
        let s = Instant::now();
        let mut from = prefix.clone();
        let end = format!("{}0", prefix.trim_end_matches('/'));
        let mut rev = 0;
        loop {
            let mut o = GetOptions::new().with_range(end.as_str()).with_limit(500);
            if rev > 0 {
                o = o.with_revision(rev);
            }
            let r = kv.get(from.as_str(), Some(o)).await?;
            rev = r.header().map(|h| h.revision()).unwrap_or(0);
            match r.kvs().last() {
                Some(last) if r.more() => {
                    from = format!("{}\0", String::from_utf8_lossy(last.key()))
                }
                _ => break,
            }
        }
        direct_paged.record(s.elapsed());
    }
    Ok(vec![
        Row {
            name: format!("LIST {n} pods (one response)"),
            api: format!(
                "p50 {:.0} ms, max {:.0} ms",
                full.quantile_ms(0.5),
                full.quantile_ms(1.0)
            ),
            direct: format!(
                "p50 {:.0} ms, max {:.0} ms",
                direct.quantile_ms(0.5),
                direct.quantile_ms(1.0)
            ),
            api_p99_ms: None,
            single_object: false,
        },
        Row {
            name: format!("LIST {n} pods (pages of 500, as kubectl)"),
            api: format!(
                "p50 {:.0} ms, max {:.0} ms",
                paged.quantile_ms(0.5),
                paged.quantile_ms(1.0)
            ),
            direct: format!(
                "p50 {:.0} ms, max {:.0} ms",
                direct_paged.quantile_ms(0.5),
                direct_paged.quantile_ms(1.0)
            ),
            api_p99_ms: None,
            single_object: false,
        },
    ])
}

type Received<K> = tokio::task::JoinHandle<Result<Vec<(K, Instant)>>>;

/// Collects what every watcher received: delivery rate since `start` and lag (receipt minus
/// the writer's acknowledgement of the same version).
async fn deliveries<K: Eq + std::hash::Hash>(
    tasks: Vec<Received<K>>,
    acks: &Mutex<HashMap<K, Instant>>,
    start: Instant,
    who: &str,
) -> Result<String> {
    let mut lag = Latencies::new();
    let mut delivered = 0usize;
    let mut last = start;
    for task in tasks {
        let got = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .with_context(|| format!("{who} did not get every event"))???;
        let acks = acks.lock().await;
        for (version, at) in got {
            delivered += 1;
            last = last.max(at);
            if let Some(ack) = acks.get(&version) {
                lag.record(at.saturating_duration_since(*ack));
            }
        }
    }
    let rate = delivered as f64 / last.duration_since(start).as_secs_f64();
    Ok(format!(
        "{rate:.0} events/s, lag p50 {:.1} ms, p99 {:.1} ms",
        lag.quantile_ms(0.5),
        lag.quantile_ms(0.99)
    ))
}

/// Watchers per kube client (each client keeps its own HTTP/2 connection).
const WATCHERS_PER_CONNECTION: usize = 100;

async fn fan_out(
    c: &ApiCluster,
    store: &etcd_client::Client,
    watchers: usize,
    events: usize,
) -> Result<Row> {
    eprintln!("api-bench: watch fan-out, {watchers} watchers, {events} updates");
    // Through the API.
    let acks: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut clients = Vec::new();
    for _ in 0..watchers.div_ceil(WATCHERS_PER_CONNECTION) {
        clients.push(kube_client(c).await?);
    }
    let writer_client = kube_client(c).await?;
    let cms: Api<ConfigMap> = Api::namespaced(writer_client, "fan");
    let created = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "fan"}, "data": {"n": "0"}}))?,
        )
        .await?;
    let start_rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for w in 0..watchers {
        let api: Api<ConfigMap> =
            Api::namespaced(clients[w / WATCHERS_PER_CONNECTION].clone(), "fan");
        let rv = start_rv.clone();
        tasks.push(tokio::spawn(async move {
            let mut got: Vec<(String, Instant)> = Vec::with_capacity(events);
            let mut stream = api
                .watch(&WatchParams::default().timeout(120), &rv)
                .await?
                .boxed();
            while let Some(ev) = stream.try_next().await? {
                if let WatchEvent::Modified(cm) = ev {
                    got.push((
                        cm.metadata.resource_version.unwrap_or_default(),
                        Instant::now(),
                    ));
                    if got.len() == events {
                        break;
                    }
                }
            }
            Ok::<_, anyhow::Error>(got)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Instant::now();
    for i in 1..=events {
        let patch = json!({"data": {"n": i.to_string()}});
        let cm = cms
            .patch(
                "fan",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await?;
        acks.lock().await.insert(
            cm.metadata.resource_version.unwrap_or_default(),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let api_text = deliveries(tasks, &acks, t, "a watcher").await?;

    // Directly on the store.
    let key = "/bench/fan/key";
    let mut kv = store.kv_client();
    let first = kv.put(key, "0", None).await?;
    let from = first.header().map(|h| h.revision()).unwrap_or(0) + 1;
    let acks: Arc<Mutex<HashMap<i64, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut wc = store.watch_client();
        tasks.push(tokio::spawn(async move {
            let mut stream = wc
                .watch(key, Some(WatchOptions::new().with_start_revision(from)))
                .await?;
            let mut got = Vec::with_capacity(events);
            while let Some(resp) = stream.message().await? {
                for ev in resp.events() {
                    if let Some(kv) = ev.kv() {
                        got.push((kv.mod_revision(), Instant::now()));
                    }
                }
                if got.len() >= events {
                    break;
                }
            }
            Ok::<_, anyhow::Error>(got)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Instant::now();
    for i in 1..=events {
        let r = kv.put(key, i.to_string(), None).await?;
        acks.lock().await.insert(
            r.header().map(|h| h.revision()).unwrap_or(0),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st_text = deliveries(tasks, &acks, t, "a store watcher").await?;
    Ok(Row {
        name: format!("watch fan-out, {watchers} watchers, 1 writer ({events} updates, 100/s)"),
        api: api_text,
        direct: st_text,
        api_p99_ms: None,
        single_object: false,
    })
}
