//! Leases: grant, attach keys, keep-alive, time-to-live, list and revoke.

use crate::common::*;

/// Parses "lease <16 hex digits> granted with TTL(<ttl>s)".
fn granted_id(stdout: &str, ttl: i64) -> String {
    let line = stdout.trim_end();
    let id = line
        .strip_prefix("lease ")
        .and_then(|rest| rest.strip_suffix(&format!(" granted with TTL({ttl}s)")))
        .unwrap_or_else(|| panic!("unexpected grant output {stdout:?}"));
    assert_eq!(id.len(), 16, "IDs are printed as %016x: {stdout:?}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{stdout:?}");
    id.to_owned()
}

#[tokio::test]
async fn lease_lifecycle() {
    let cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["lease", "list"]), "found 0 leases\n");

    let id = granted_id(&ok(&cluster.etcdctl(&["lease", "grant", "60"])), 60);
    let numeric = u64::from_str_radix(&id, 16).expect("hex lease id");
    ok_eq(
        &cluster.etcdctl(&["put", "lk", "lv", &format!("--lease={id}")]),
        "OK\n",
    );
    ok_eq(
        &cluster.etcdctl(&["put", "lk2", "lv", &format!("--lease={id}")]),
        "OK\n",
    );
    ok_eq(&cluster.etcdctl(&["put", "free", "x"]), "OK\n");

    let json = ok_json(&cluster.etcdctl(&["get", "lk", "-w", "json"]));
    assert_eq!(u64_at(&json["kvs"][0], "/lease"), numeric, "{json}");

    // The attached keys come in no particular order.
    let text = ok(&cluster.etcdctl(&["lease", "timetolive", &id, "--keys"]));
    let prefix = format!("lease {id} granted with TTL(60s), remaining(");
    let (remaining, keys) = text
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix("])\n"))
        .and_then(|r| r.split_once("s), attached keys(["))
        .unwrap_or_else(|| panic!("unexpected timetolive output {text:?}"));
    let remaining: i64 = remaining.parse().expect("remaining seconds");
    assert!((50..=60).contains(&remaining), "{text:?}");
    let mut keys: Vec<&str> = keys.split(' ').collect();
    keys.sort_unstable();
    assert_eq!(keys, ["lk", "lk2"], "{text:?}");

    let json = ok_json(&cluster.etcdctl(&["lease", "timetolive", &id, "--keys", "-w", "json"]));
    assert_eq!(u64_at(&json, "/id"), numeric, "{json}");
    assert_eq!(i64_at(&json, "/granted-ttl"), 60, "{json}");
    assert!((50..=60).contains(&i64_at(&json, "/ttl")), "{json}");
    let mut keys: Vec<&str> = json["keys"]
        .as_array()
        .map(|keys| keys.iter().filter_map(|k| k.as_str()).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, [b64("lk"), b64("lk2")], "{json}");
    assert!(
        member_ids(&cluster).contains(&u64_at(&json, "/member_id")),
        "{json}"
    );

    ok_eq(
        &cluster.etcdctl(&["lease", "keep-alive", "--once", &id]),
        &format!("lease {id} keepalived with TTL(60)\n"),
    );

    let second = granted_id(&ok(&cluster.etcdctl(&["lease", "grant", "100"])), 100);
    let listed = ok(&cluster.etcdctl(&["lease", "list"]));
    let mut lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.first(), Some(&"found 2 leases"), "{listed:?}");
    lines.remove(0);
    lines.sort_unstable();
    let mut expected = vec![id.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(lines, expected, "{listed:?}");

    ok_eq(
        &cluster.etcdctl(&["lease", "revoke", &id]),
        &format!("lease {id} revoked\n"),
    );
    // The attached keys are gone, the others stay.
    ok_eq(&cluster.etcdctl(&["get", "lk", "--prefix"]), "");
    ok_eq(&cluster.etcdctl(&["get", "free"]), "free\nx\n");
    ok_eq(
        &cluster.etcdctl(&["lease", "timetolive", &id]),
        &format!("lease {id} already expired\n"),
    );
    ok_eq(
        &cluster.etcdctl(&["lease", "list"]),
        &format!("found 1 leases\n{second}\n"),
    );
}

#[tokio::test]
async fn lease_grant_json_and_expiry() {
    let cluster = three_members().await;
    let json = ok_json(&cluster.etcdctl(&["lease", "grant", "2", "-w", "json"]));
    let id = u64_at(&json, "/ID");
    assert_ne!(id, 0, "{json}");
    assert_eq!(i64_at(&json, "/TTL"), 2, "{json}");
    assert!(
        member_ids(&cluster).contains(&u64_at(&json, "/member_id")),
        "{json}"
    );
    let hex = format!("{id:016x}");
    ok_eq(
        &cluster.etcdctl(&["put", "short", "lived", &format!("--lease={hex}")]),
        "OK\n",
    );
    ok_eq(
        &cluster.etcdctl(&["get", "short", "--print-value-only"]),
        "lived\n",
    );

    // etcd checks expiry every 500 ms and the leader revokes; allow a generous margin.
    let gone = eventually(std::time::Duration::from_secs(15), || {
        let out = cluster.etcdctl(&["get", "short"]);
        (ok(&out).is_empty()).then_some(())
    });
    assert!(
        gone.is_some(),
        "key with a 2 s lease still there after 15 s"
    );
    ok_eq(
        &cluster.etcdctl(&["lease", "timetolive", &hex]),
        &format!("lease {hex} already expired\n"),
    );
}
