//! Limits and bad input through an etcd client library: each refused request gets etcd's
//! gRPC code and message, and nothing stored changes. Runs against our store (default) or
//! real etcd (`STORE_FLAVOR=etcd`), like the other suites.

mod common;

use cluster_tests::etcd_client::{Client, Compare, CompareOp, Error, Txn, TxnOp};
use cluster_tests::{ClusterConfig, Flavor};
use common::start;
use tonic::Code;

/// The gRPC code and message of a failed call.
fn grpc(err: Error) -> (Code, String) {
    match err {
        Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

async fn revision(client: &mut Client) -> i64 {
    let resp = client.get("any", None).await.expect("get");
    resp.header().expect("header").revision()
}

#[tokio::test]
async fn oversize_request_is_refused_and_nothing_changes() {
    let cluster = start(ClusterConfig::new(3)).await;
    let mut client = cluster.client().await.expect("client");
    let before = revision(&mut client).await;
    // Over --max-request-bytes (1.5 MiB) but under the gRPC limit (+512 KiB).
    let value = vec![b'x'; 1_600_000];
    let err = client
        .put("big", value, None)
        .await
        .expect_err("1.6 MB put must be refused");
    assert_eq!(
        grpc(err),
        (
            Code::InvalidArgument,
            "etcdserver: request is too large".to_string()
        )
    );
    assert_eq!(revision(&mut client).await, before, "nothing was written");
    assert_eq!(client.get("big", None).await.expect("get").kvs().len(), 0);
}

#[tokio::test]
async fn txn_limits_are_enforced_and_nothing_changes() {
    let cluster = start(ClusterConfig::new(3)).await;
    let mut client = cluster.client().await.expect("client");
    let before = revision(&mut client).await;
    let ops: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    let err = client
        .txn(Txn::new().and_then(ops))
        .await
        .expect_err("129 ops must be refused");
    assert_eq!(
        grpc(err),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request".to_string()
        )
    );

    let dup = Txn::new().and_then(vec![TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]);
    let err = client
        .txn(dup)
        .await
        .expect_err("duplicate keys must be refused");
    assert_eq!(
        grpc(err),
        (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request".to_string()
        )
    );

    let cmp = Compare::version("nokey", CompareOp::Equal, 0);
    let unknown_lease = Txn::new().when(vec![cmp]).and_then(vec![
        TxnOp::put("a", "1", None),
        TxnOp::put(
            "b",
            "1",
            Some(cluster_tests::etcd_client::PutOptions::new().with_lease(0x1234)),
        ),
    ]);
    let err = client
        .txn(unknown_lease)
        .await
        .expect_err("an unknown lease fails the txn");
    assert_eq!(
        grpc(err),
        (
            Code::NotFound,
            "etcdserver: requested lease not found".to_string()
        )
    );

    assert_eq!(
        revision(&mut client).await,
        before,
        "no refused txn wrote anything"
    );
    let all = client
        .get(
            "",
            Some(cluster_tests::etcd_client::GetOptions::new().with_all_keys()),
        )
        .await
        .expect("get all");
    assert!(all.kvs().is_empty(), "no key was stored");
}

#[tokio::test]
async fn lease_ttl_limit_and_unknown_lease_time_to_live() {
    let cluster = start(ClusterConfig::new(3)).await;
    let mut client = cluster.client().await.expect("client");
    let err = client
        .lease_grant(9_000_000_001, None)
        .await
        .expect_err("TTL over the limit");
    assert_eq!(
        grpc(err),
        (
            Code::OutOfRange,
            "etcdserver: too large lease TTL".to_string()
        )
    );
    let ttl = client
        .lease_time_to_live(0x77, None)
        .await
        .expect("time-to-live of an unknown lease");
    assert_eq!(ttl.ttl(), -1, "an unknown lease reports TTL -1");
    assert!(
        client.leases().await.expect("leases").leases().is_empty(),
        "no lease was created"
    );
}

/// Starts a member of our store on `data_dir` and expects it to refuse, naming why.
fn expect_refusal(data_dir: &std::path::Path, needle: &str) {
    let out = std::process::Command::new(Flavor::Ours.binary())
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            "http://127.0.0.1:0",
            "--listen-peer-urls",
            "http://127.0.0.1:0",
        ])
        .output()
        .expect("run store");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "store started on {}: {stderr}",
        data_dir.display()
    );
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

#[tokio::test]
async fn foreign_or_damaged_data_dir_is_refused_and_kept() {
    if Flavor::from_env() == Flavor::Etcd {
        eprintln!("data-dir layout checks are specific to our store; skipped for etcd");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    // A directory holding someone else's files.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), "mine").expect("write");
    expect_refusal(&foreign, "refusing to use it");
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).expect("kept"),
        "mine"
    );

    // A real member's data dir, then damaged.
    let mut cluster = start(ClusterConfig::new(1)).await;
    let mut client = cluster.client().await.expect("client");
    client.put("keep", "me", None).await.expect("put");
    cluster.stop(0);
    let db = cluster.data_dir(0).join("member").join("db");
    let current = db.join("CURRENT");
    std::fs::write(&current, "garbage").expect("damage CURRENT");
    expect_refusal(&cluster.data_dir(0), "cannot open the database");
    std::fs::remove_file(&current).expect("remove CURRENT");
    expect_refusal(&cluster.data_dir(0), "damaged");
    assert!(
        db.read_dir().expect("db dir").count() > 0,
        "the damaged database was left as it was"
    );
}
