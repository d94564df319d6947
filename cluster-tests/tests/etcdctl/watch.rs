//! `etcdctl watch` as a child process: events are printed as `PUT`/`DELETE`, key, value lines.

use std::time::Duration;

use cluster_tests::{Cluster, EtcdctlProcess};

use crate::common::*;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Puts `key` until the watch shows it, so the watch is known to be in place; then reads
/// away every event of those puts (a watch without `--rev` may have missed the first ones).
fn sync_watch(cluster: &Cluster, watch: &mut EtcdctlProcess, key: &str) {
    for attempt in 0..50 {
        let value = format!("sync-{attempt}");
        ok_eq(&cluster.etcdctl(&["put", key, &value]), "OK\n");
        if let Some(first) = watch.next_line(Duration::from_millis(300)) {
            assert_eq!(first, "PUT", "seen: {:?}", watch.seen());
            loop {
                let rest = watch.lines(2, EVENT_WAIT).expect("rest of a sync event");
                assert_eq!(rest[0], key);
                if rest[1] == value {
                    return;
                }
                let next = watch.lines(1, EVENT_WAIT).expect("next sync event");
                assert_eq!(next[0], "PUT");
            }
        }
    }
    panic!("watch never showed {key}; stderr: {}", watch.stderr());
}

#[tokio::test]
async fn watch_prefix_prints_events() {
    let cluster = three_members().await;
    let mut watch = cluster
        .etcdctl_cmd()
        .spawn(&["watch", "w/", "--prefix"])
        .expect("spawn etcdctl watch");
    sync_watch(&cluster, &mut watch, "w/sync");

    ok_eq(&cluster.etcdctl(&["put", "w/a", "1"]), "OK\n");
    ok_eq(&cluster.etcdctl(&["put", "other", "x"]), "OK\n");
    ok_eq(&cluster.etcdctl(&["del", "w/a"]), "1\n");
    ok_eq(&cluster.etcdctl(&["put", "w/b", "two words"]), "OK\n");
    let lines = watch.lines(9, EVENT_WAIT).expect("watch events");
    assert_eq!(
        lines,
        [
            "PUT",
            "w/a",
            "1",
            "DELETE",
            "w/a",
            "",
            "PUT",
            "w/b",
            "two words"
        ]
    );
    // The key outside the prefix never shows up.
    assert_eq!(watch.next_line(Duration::from_millis(500)), None);
    assert!(watch.is_running(), "stderr: {}", watch.stderr());
    watch.kill();
}

#[tokio::test]
async fn watch_from_revision_replays_history() {
    let cluster = three_members().await;
    for value in ["1", "2", "3"] {
        ok_eq(&cluster.etcdctl(&["put", "h", value]), "OK\n"); // revisions 2, 3, 4
    }
    ok_eq(&cluster.etcdctl(&["put", "h2", "x"]), "OK\n"); // revision 5

    let mut watch = cluster
        .etcdctl_cmd()
        .spawn(&["watch", "h", "--rev=3"])
        .expect("spawn etcdctl watch");
    let lines = watch.lines(6, EVENT_WAIT).expect("replayed events");
    assert_eq!(lines, ["PUT", "h", "2", "PUT", "h", "3"]);
    // New events follow the replayed ones.
    ok_eq(&cluster.etcdctl(&["put", "h", "4"]), "OK\n");
    let lines = watch.lines(3, EVENT_WAIT).expect("live event");
    assert_eq!(lines, ["PUT", "h", "4"]);
    watch.kill();

    let mut watch = cluster
        .etcdctl_cmd()
        .spawn(&["watch", "h", "--prefix", "--rev=4", "--prev-kv"])
        .expect("spawn etcdctl watch");
    let lines = watch.lines(12, EVENT_WAIT).expect("replayed prefix events");
    assert_eq!(
        lines,
        ["PUT", "h", "2", "h", "3", "PUT", "h2", "x", "PUT", "h", "3", "h"]
    );
    let lines = watch.lines(1, EVENT_WAIT).expect("last line");
    assert_eq!(lines, ["4"]);
    watch.kill();
}

#[tokio::test]
async fn watch_json_output() {
    let cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["put", "wj", "1"]), "OK\n"); // revision 2
    ok_eq(&cluster.etcdctl(&["del", "wj"]), "1\n"); // revision 3
    let mut watch = cluster
        .etcdctl_cmd()
        .spawn(&["watch", "wj", "--rev=2", "-w", "json"])
        .expect("spawn etcdctl watch");
    let line = watch
        .lines(1, EVENT_WAIT)
        .expect("a watch response")
        .remove(0);
    let json: serde_json::Value = serde_json::from_str(&line).expect("JSON watch response");
    let events = json["Events"].as_array().expect("Events array");
    assert_eq!(events.len(), 2, "{json}");
    assert_eq!(events[0].get("type"), None, "PUT is the zero value: {json}");
    assert_eq!(events[0]["kv"]["key"], b64("wj"), "{json}");
    assert_eq!(events[0]["kv"]["value"], b64("1"), "{json}");
    assert_eq!(i64_at(&events[0]["kv"], "/mod_revision"), 2, "{json}");
    assert_eq!(events[1]["type"], 1, "DELETE: {json}");
    assert_eq!(i64_at(&events[1]["kv"], "/mod_revision"), 3, "{json}");
    assert!(member_ids(&cluster).contains(&u64_at(&json, "/Header/member_id")));
    watch.kill();
}
