//! put, get, del, compaction and the errors etcdctl prints for bad requests.

use crate::common::*;

#[tokio::test]
async fn put_get_prefix_limit_rev() {
    let cluster = three_members().await;
    for (key, value) in [("a", "1"), ("ab", "2"), ("abc", "3"), ("b", "4")] {
        ok_eq(&cluster.etcdctl(&["put", key, value]), "OK\n");
    }
    // Fresh cluster: revision 1, then one revision per put.
    ok_eq(&cluster.etcdctl(&["put", "a", "10"]), "OK\n");

    ok_eq(&cluster.etcdctl(&["get", "a"]), "a\n10\n");
    ok_eq(&cluster.etcdctl(&["get", "zzz"]), "");
    ok_eq(
        &cluster.etcdctl(&["get", "a", "--prefix"]),
        "a\n10\nab\n2\nabc\n3\n",
    );
    ok_eq(
        &cluster.etcdctl(&["get", "a", "--prefix", "--limit=2"]),
        "a\n10\nab\n2\n",
    );
    ok_eq(&cluster.etcdctl(&["get", "a", "--rev=2"]), "a\n1\n");
    ok_eq(
        &cluster.etcdctl(&["get", "a", "--prefix", "--rev=3"]),
        "a\n1\nab\n2\n",
    );
    ok_eq(
        &cluster.etcdctl(&["get", "a", "--print-value-only"]),
        "10\n",
    );
    // A range [a, b) and everything from a key on.
    ok_eq(&cluster.etcdctl(&["get", "ab", "b"]), "ab\n2\nabc\n3\n");
    ok_eq(
        &cluster.etcdctl(&["get", "abc", "--from-key"]),
        "abc\n3\nb\n4\n",
    );
    ok_eq(
        &cluster.etcdctl(&["get", "a", "--prefix", "--keys-only"]),
        "a\n\nab\n\nabc\n\n",
    );
    ok_eq(
        &cluster.etcdctl(&["get", "a", "--prefix", "--sort-by=KEY", "--order=DESCEND"]),
        "abc\n3\nab\n2\na\n10\n",
    );
    // etcdctl 3.4 has no --count-only; -w json carries the count.
    let json = ok_json(&cluster.etcdctl(&["get", "a", "--prefix", "--limit=1", "-w", "json"]));
    assert_eq!(i64_at(&json, "/count"), 3, "{json}");
}

/// Serializable reads are answered by the member itself: read from the member that took the
/// write, so they are not stale.
#[tokio::test]
async fn get_with_consistency() {
    let cluster = three_members().await;
    for i in 0..3 {
        let value = format!("v{i}");
        ok_eq(&cluster.etcdctl_on(&[i], &["put", "c", &value]), "OK\n");
        let expected = format!("c\n{value}\n");
        ok_eq(
            &cluster.etcdctl_on(&[i], &["get", "c", "--consistency=s"]),
            &expected,
        );
        ok_eq(
            &cluster.etcdctl(&["get", "c", "--consistency=l"]),
            &expected,
        );
    }
    let out = cluster.etcdctl(&["get", "c", "--consistency=x"]);
    // Rejected by etcdctl itself, with ExitBadFeature.
    fails_with(&out, 4, "Error: unknown consistency flag \"x\"");
}

#[tokio::test]
async fn get_json_header_and_kvs() {
    let cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["put", "j", "1"]), "OK\n");
    ok_eq(&cluster.etcdctl(&["put", "j", "2"]), "OK\n");
    ok_eq(&cluster.etcdctl(&["put", "jk", "x"]), "OK\n");
    let ids = member_ids(&cluster);

    let json = ok_json(&cluster.etcdctl(&["get", "j", "--prefix", "-w", "json"]));
    let cluster_id = u64_at(&json, "/header/cluster_id");
    assert_ne!(cluster_id, 0, "{json}");
    assert!(
        ids.contains(&u64_at(&json, "/header/member_id")),
        "{json} vs {ids:?}"
    );
    assert_eq!(i64_at(&json, "/header/revision"), 4, "{json}");
    assert!(u64_at(&json, "/header/raft_term") >= 1, "{json}");
    assert_eq!(i64_at(&json, "/count"), 2, "{json}");
    assert_eq!(
        json.get("more"),
        None,
        "no `more` when everything fits: {json}"
    );
    let kv = &json["kvs"][0];
    assert_eq!(kv["key"], b64("j"), "{json}");
    assert_eq!(kv["value"], b64("2"), "{json}");
    assert_eq!(i64_at(kv, "/create_revision"), 2, "{json}");
    assert_eq!(i64_at(kv, "/mod_revision"), 3, "{json}");
    assert_eq!(i64_at(kv, "/version"), 2, "{json}");
    assert_eq!(
        kv.get("lease"),
        None,
        "no lease field without a lease: {json}"
    );
    let kv = &json["kvs"][1];
    assert_eq!(kv["key"], b64("jk"), "{json}");
    assert_eq!(i64_at(kv, "/create_revision"), 4, "{json}");
    assert_eq!(i64_at(kv, "/version"), 1, "{json}");

    let json = ok_json(&cluster.etcdctl(&["get", "j", "--prefix", "--limit=1", "-w", "json"]));
    assert_eq!(json["more"], true, "{json}");
    assert_eq!(i64_at(&json, "/count"), 2, "{json}");
    assert_eq!(json["kvs"].as_array().map(Vec::len), Some(1), "{json}");

    // Every member reports the same cluster ID, and its own member ID.
    for i in 0..3 {
        let json = ok_json(&cluster.etcdctl_on(&[i], &["get", "j", "-w", "json"]));
        assert_eq!(u64_at(&json, "/header/cluster_id"), cluster_id);
        assert_eq!(
            Some(u64_at(&json, "/header/member_id")),
            cluster.member_id(i)
        );
    }

    // A put's JSON is only the header.
    let json = ok_json(&cluster.etcdctl(&["put", "j", "3", "-w", "json"]));
    assert_eq!(i64_at(&json, "/header/revision"), 5, "{json}");
    assert_eq!(json.as_object().map(|o| o.len()), Some(1), "{json}");
}

#[tokio::test]
async fn del_prefix_and_prev_kv() {
    let cluster = three_members().await;
    for (key, value) in [("p/1", "x"), ("p/2", "y"), ("q", "z"), ("r", "w")] {
        ok_eq(&cluster.etcdctl(&["put", key, value]), "OK\n");
    }
    ok_eq(
        &cluster.etcdctl(&["put", "r", "w2", "--prev-kv"]),
        "OK\nr\nw\n",
    );
    ok_eq(
        &cluster.etcdctl(&["del", "p", "--prefix", "--prev-kv"]),
        "2\np/1\nx\np/2\ny\n",
    );
    ok_eq(&cluster.etcdctl(&["get", "p", "--prefix"]), "");
    ok_eq(&cluster.etcdctl(&["del", "q"]), "1\n");
    ok_eq(&cluster.etcdctl(&["del", "q"]), "0\n");

    let json = ok_json(&cluster.etcdctl(&["del", "r", "--prev-kv", "-w", "json"]));
    assert_eq!(i64_at(&json, "/deleted"), 1, "{json}");
    assert_eq!(json["prev_kvs"][0]["key"], b64("r"), "{json}");
    assert_eq!(json["prev_kvs"][0]["value"], b64("w2"), "{json}");
    assert_eq!(i64_at(&json["prev_kvs"][0], "/version"), 2, "{json}");
    ok_eq(&cluster.etcdctl(&["get", "", "--prefix"]), "");
}

#[tokio::test]
async fn compaction_discards_old_revisions() {
    let cluster = three_members().await;
    for value in ["1", "2", "3", "4", "5"] {
        ok_eq(&cluster.etcdctl(&["put", "c", value]), "OK\n"); // revisions 2..=6
    }
    ok_eq(
        &cluster.etcdctl(&["compaction", "4"]),
        "compacted revision 4\n",
    );
    let compacted = "Error: etcdserver: mvcc: required revision has been compacted";
    fails_with(&cluster.etcdctl(&["get", "c", "--rev=3"]), 1, compacted);
    ok_eq(&cluster.etcdctl(&["get", "c", "--rev=4"]), "c\n3\n");
    ok_eq(&cluster.etcdctl(&["get", "c"]), "c\n5\n");
    // Compacting at or below the compacted revision again is the same error.
    fails_with(&cluster.etcdctl(&["compaction", "3"]), 1, compacted);
    ok_eq(
        &cluster.etcdctl(&["compaction", "--physical", "5"]),
        "compacted revision 5\n",
    );
    fails_with(&cluster.etcdctl(&["get", "c", "--rev=4"]), 1, compacted);

    // The compacted records leave every member's database (deleted in the background): the
    // retained size (dbSizeInUse) falls from 20 values of 50 kB to about one.
    let value = "x".repeat(50_000);
    for _ in 0..20 {
        ok_eq(&cluster.etcdctl(&["put", "big", &value]), "OK\n");
    }
    let in_use = |cluster: &cluster_tests::Cluster| -> Vec<i64> {
        ok_json(&cluster.etcdctl(&["endpoint", "status", "-w", "json"]))
            .as_array()
            .expect("statuses")
            .iter()
            .map(|s| s["Status"]["dbSizeInUse"].as_i64().unwrap_or(0))
            .collect()
    };
    assert!(
        in_use(&cluster).iter().all(|b| *b > 900_000),
        "{:?}",
        in_use(&cluster)
    );
    let revision = current_revision(&cluster).to_string();
    ok_eq(
        &cluster.etcdctl(&["compaction", "--physical", &revision]),
        &format!("compacted revision {revision}\n"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while in_use(&cluster).iter().any(|b| *b > 200_000) {
        assert!(
            std::time::Instant::now() < deadline,
            "compacted records still counted: {:?}",
            in_use(&cluster)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A watch from a compacted revision is cancelled by the server.
    let out = cluster.etcdctl(&["watch", "c", "--rev=2"]);
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l
                == "watch was canceled (etcdserver: mvcc: required revision has been compacted)"),
        "{err}"
    );
    fails_with(&out, 5, "Error: watch is canceled by the server");
}

#[tokio::test]
async fn bad_requests_report_etcd_errors() {
    let cluster = three_members().await;
    fails_with(
        &cluster.etcdctl(&["put", "", "v"]),
        1,
        "Error: etcdserver: key is not provided",
    );
    fails_with(
        &cluster.etcdctl(&["get", "k", "--rev=1000"]),
        1,
        "Error: etcdserver: mvcc: required revision is a future revision",
    );
    fails_with(
        &cluster.etcdctl(&["compaction", "1000"]),
        1,
        "Error: etcdserver: mvcc: required revision is a future revision",
    );
    fails_with(
        &cluster.etcdctl(&["put", "k", "v", "--lease=1234abcd"]),
        1,
        "Error: etcdserver: requested lease not found",
    );
    fails_with(
        &cluster.etcdctl_stdin(&["txn"], "\nput k 1\nput k 2\n\n\n"),
        1,
        "Error: etcdserver: duplicate key given in txn request",
    );
    fails_with(
        &cluster.etcdctl(&["lease", "revoke", "1234abcd"]),
        1,
        "Error: failed to revoke lease (etcdserver: requested lease not found)",
    );
    fails_with(
        &cluster.etcdctl(&["lease", "keep-alive", "--once", "1234abcd"]),
        2,
        "Error: etcdserver: requested lease not found",
    );
    // An unknown lease's time-to-live is not an error, and the ID is printed zero-padded.
    ok_eq(
        &cluster.etcdctl(&["lease", "timetolive", "1234abcd"]),
        "lease 000000001234abcd already expired\n",
    );
    fails_with(
        &cluster.etcdctl(&["member", "remove", "1234abcd"]),
        1,
        "Error: etcdserver: member not found",
    );
    // Nothing above changed the store.
    ok_eq(&cluster.etcdctl(&["get", "", "--prefix"]), "");
}
