//! snapshot save, defrag, alarms and the space quota.

use cluster_tests::ClusterConfig;

use crate::common::*;

#[tokio::test]
async fn snapshot_save_from_one_endpoint() {
    let cluster = three_members().await;
    for i in 0..20 {
        ok_eq(
            &cluster.etcdctl(&["put", &format!("s/{i}"), "value"]),
            "OK\n",
        );
    }
    let path = cluster.dir().join("backup.db");
    let path_arg = path.to_str().expect("UTF-8 path");
    let out = cluster.etcdctl_on(&[1], &["snapshot", "save", path_arg]);
    ok_eq(&out, &format!("Snapshot saved at {path_arg}\n"));
    let size = std::fs::metadata(&path).expect("snapshot file").len();
    assert!(size > 0, "empty snapshot");
    assert!(!cluster.dir().join("backup.db.part").exists());

    // A snapshot comes from exactly one member.
    let out = cluster.etcdctl(&["snapshot", "save", path_arg]);
    let line = format!(
        "Error: snapshot must be requested to one selected node, not multiple [{}]",
        cluster.client_urls().join(" ")
    );
    fails_with(&out, 5, &line);
}

#[tokio::test]
async fn alarms_and_defrag_on_a_healthy_cluster() {
    let cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["put", "k", "v"]), "OK\n");
    ok_eq(&cluster.etcdctl(&["alarm", "list"]), "");
    ok_eq(&cluster.etcdctl(&["alarm", "disarm"]), "");
    let expected: String = cluster
        .client_urls()
        .iter()
        .map(|url| format!("Finished defragmenting etcd member[{url}]\n"))
        .collect();
    ok_eq(&cluster.etcdctl(&["defrag"]), &expected);
    ok_eq(&cluster.etcdctl(&["get", "k"]), "k\nv\n");
}

/// Writing past `--quota-backend-bytes` raises NOSPACE; compaction, defrag and disarm recover.
#[tokio::test]
async fn nospace_alarm_raised_and_disarmed() {
    let cluster = start(ClusterConfig::new(3).arg("--quota-backend-bytes=200000")).await;
    let ids = member_ids(&cluster);
    let nospace = "Error: etcdserver: mvcc: database space exceeded";
    let value = "x".repeat(50_000);
    let mut exceeded = false;
    for i in 0..40 {
        let out = cluster.etcdctl(&["put", &format!("big/{i}"), &value]);
        if !out.status.success() {
            fails_with(&out, 1, nospace);
            exceeded = true;
            break;
        }
    }
    assert!(exceeded, "40 puts of 50 kB fit in a 200 kB quota");

    let alarms = ok(&cluster.etcdctl(&["alarm", "list"]));
    assert!(!alarms.is_empty(), "no alarm raised");
    for line in alarms.lines() {
        let id: u64 = line
            .strip_prefix("memberID:")
            .and_then(|r| r.strip_suffix(" alarm:NOSPACE "))
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("unexpected alarm line {line:?}"));
        assert!(ids.contains(&id), "{alarms}");
    }
    let json = ok_json(&cluster.etcdctl(&["endpoint", "status", "-w", "json"]));
    let errors = &json[0]["Status"]["errors"];
    assert!(
        errors.as_array().is_some_and(|e| e
            .iter()
            .any(|e| e.as_str().is_some_and(|s| s.ends_with("alarm:NOSPACE ")))),
        "{json}"
    );

    // Writes stay refused, reads and deletes work.
    fails_with(&cluster.etcdctl(&["put", "small", "1"]), 1, nospace);
    ok_eq(
        &cluster.etcdctl(&["get", "big/0", "--keys-only"]),
        "big/0\n\n",
    );
    let deleted: usize = ok(&cluster.etcdctl(&["del", "big/", "--prefix"]))
        .trim()
        .parse()
        .expect("deleted count");
    assert!(deleted > 0);

    let revision = current_revision(&cluster);
    let revision_arg = revision.to_string();
    ok_eq(
        &cluster.etcdctl(&["compaction", &revision_arg]),
        &format!("compacted revision {revision}\n"),
    );
    ok(&cluster.etcdctl(&["defrag"]));
    // Disarm prints the alarms it cleared (by now maybe more members have raised one).
    let sorted = |text: String| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort_unstable();
        lines
    };
    let alarms = sorted(ok(&cluster.etcdctl(&["alarm", "list"])));
    let disarmed = sorted(ok(&cluster.etcdctl(&["alarm", "disarm"])));
    assert_eq!(disarmed, alarms);
    ok_eq(&cluster.etcdctl(&["alarm", "list"]), "");
    ok_eq(&cluster.etcdctl(&["put", "small", "1"]), "OK\n");
}
