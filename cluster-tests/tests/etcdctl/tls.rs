//! A cluster with client and peer TLS and client-certificate authentication.

use std::time::Duration;

use cluster_tests::ClusterConfig;

use crate::common::*;

#[tokio::test]
async fn tls_cluster_requires_client_certificate() {
    let cluster = start(ClusterConfig::new(3).tls(true)).await;
    assert!(cluster
        .client_urls()
        .iter()
        .all(|u| u.starts_with("https://127.0.0.1:")));

    // etcdctl with the CA and a client certificate.
    ok_eq(&cluster.etcdctl(&["put", "secure", "yes"]), "OK\n");
    ok_eq(&cluster.etcdctl(&["get", "secure"]), "secure\nyes\n");
    let listed = ok(&cluster.etcdctl(&["member", "list"]));
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        listed.lines().all(|l| l.contains(", https://127.0.0.1:")),
        "peer and client URLs are https: {listed}"
    );
    let status = ok(&cluster.etcdctl(&["endpoint", "status"]));
    let urls: Vec<&str> = status
        .lines()
        .filter_map(|l| l.split(", ").next())
        .collect();
    assert_eq!(urls, cluster.client_urls(), "{status}");

    // etcd-client with the same certificates.
    let mut client = cluster.client().await.expect("TLS etcd-client");
    let response = tokio::time::timeout(Duration::from_secs(10), client.get("secure", None))
        .await
        .expect("get in time")
        .expect("get over TLS");
    assert_eq!(response.kvs()[0].value(), b"yes");
    tokio::time::timeout(Duration::from_secs(10), client.put("from-rust", "1", None))
        .await
        .expect("put in time")
        .expect("put over TLS");
    ok_eq(
        &cluster.etcdctl(&["get", "from-rust", "--print-value-only"]),
        "1\n",
    );

    // Trusting the CA is not enough: the server demands a client certificate.
    let out = cluster.etcdctl_cmd().without_client_cert().run(&[
        "--dial-timeout=2s",
        "--command-timeout=3s",
        "get",
        "secure",
    ]);
    // The handshake fails, etcdctl's balancer keeps retrying, and the command times out.
    assert_eq!(stdout(&out), "", "got in without a client certificate");
    fails_with(&out, 1, "Error: context deadline exceeded");

    // Neither is plain text.
    let plain: Vec<String> = cluster
        .client_urls()
        .iter()
        .map(|u| u.replacen("https://", "http://", 1))
        .collect();
    let out = cluster.etcdctl_cmd().without_tls().endpoints(plain).run(&[
        "--dial-timeout=2s",
        "--command-timeout=3s",
        "get",
        "secure",
    ]);
    assert_eq!(stdout(&out), "", "got in over plain text");
    fails_with(&out, 1, "Error: context deadline exceeded");
}
