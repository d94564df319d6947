//! member list/add/remove, endpoint status/health, and members that die and come back.

use std::process::Output;
use std::time::Duration;

use cluster_tests::{Cluster, ClusterConfig, Flavor};

use crate::common::*;

/// `member list` lines as etcd prints them: sorted by ID, hex IDs without padding.
fn expected_member_list(cluster: &Cluster) -> String {
    let mut members: Vec<(u64, usize)> = cluster
        .active_members()
        .into_iter()
        .map(|i| (cluster.member_id(i).expect("member id"), i))
        .collect();
    members.sort_unstable();
    members
        .into_iter()
        .map(|(id, i)| {
            format!(
                "{id:x}, started, {}, {}, {}, false\n",
                cluster.member_name(i),
                cluster.peer_url(i),
                cluster.client_url(i)
            )
        })
        .collect()
}

/// Runs a membership change until etcd stops answering "unhealthy cluster": with strict
/// reconfiguration checks (the default) the member that takes the request must have been
/// connected to a quorum for 5 s, which a fresh cluster or a fresh member is not.
fn until_healthy(mut change: impl FnMut() -> Output) -> Output {
    let mut last = None;
    let done = eventually(Duration::from_secs(20), || {
        let out = change();
        if !out.status.success() && stderr(&out).contains("Error: etcdserver: unhealthy cluster") {
            last = Some(out);
            return None;
        }
        Some(out)
    });
    done.or(last).expect("at least one attempt")
}

/// The `ETCD_INITIAL_CLUSTER` value `etcdctl member add` printed.
fn initial_cluster_of(added: &str) -> String {
    added
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {added:?}"))
        .to_owned()
}

#[tokio::test]
async fn member_list_text_and_json() {
    let cluster = three_members().await;
    ok_eq(
        &cluster.etcdctl(&["member", "list"]),
        &expected_member_list(&cluster),
    );

    let json = ok_json(&cluster.etcdctl(&["member", "list", "-w", "json"]));
    assert_ne!(u64_at(&json, "/header/cluster_id"), 0, "{json}");
    assert!(member_ids(&cluster).contains(&u64_at(&json, "/header/member_id")));
    assert!(u64_at(&json, "/header/raft_term") >= 1, "{json}");
    let members = json["members"].as_array().expect("members array");
    assert_eq!(members.len(), 3, "{json}");
    for i in 0..3 {
        let id = cluster.member_id(i).expect("member id");
        let member = members
            .iter()
            .find(|m| m["ID"].as_u64() == Some(id))
            .unwrap_or_else(|| panic!("member {id} missing from {json}"));
        assert_eq!(member["name"], cluster.member_name(i), "{json}");
        assert_eq!(member["peerURLs"], serde_json::json!([cluster.peer_url(i)]));
        assert_eq!(
            member["clientURLs"],
            serde_json::json!([cluster.client_url(i)])
        );
        assert_eq!(member.get("isLearner"), None, "false is omitted: {json}");
    }
}

/// Adds a member with `etcdctl member add`, starts it with the printed settings, then
/// removes it with `etcdctl member remove`.
#[tokio::test]
async fn member_add_start_and_remove_with_etcdctl() {
    let mut cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["put", "before", "add"]), "OK\n");
    let cluster_id = u64_at(
        &ok_json(&cluster.etcdctl(&["member", "list", "-w", "json"])),
        "/header/cluster_id",
    );

    let new = cluster.reserve_member().expect("reserve a member");
    let name = cluster.member_name(new).to_owned();
    let peer = cluster.peer_url(new);
    let peer_flag = format!("--peer-urls={peer}");
    let added = ok(&until_healthy(|| {
        cluster.etcdctl(&["member", "add", &name, &peer_flag])
    }));

    let mut lines = added.lines();
    let first = lines.next().unwrap_or_default();
    // etcdctl prints both IDs with %16x: padded with spaces, not zeros.
    let suffix = format!(" added to cluster {cluster_id:16x}");
    let new_id = first
        .strip_prefix("Member ")
        .and_then(|r| r.strip_suffix(&suffix))
        .unwrap_or_else(|| panic!("unexpected member add output {added:?}"));
    let new_id = u64::from_str_radix(new_id.trim_start(), 16).expect("hex member id");
    assert!(
        first.starts_with(&format!("Member {new_id:16x} ")),
        "{added:?}"
    );
    assert_eq!(lines.next(), Some(""), "{added:?}");
    assert_eq!(lines.next(), Some(format!("ETCD_NAME=\"{name}\"").as_str()));
    let initial_cluster = initial_cluster_of(&added);
    lines.next();
    let mut entries: Vec<&str> = initial_cluster.split(',').collect();
    entries.sort_unstable();
    let mut expected: Vec<String> = (0..4)
        .map(|i| format!("{}={}", cluster.member_name(i), cluster.peer_url(i)))
        .collect();
    expected.sort_unstable();
    assert_eq!(entries, expected, "{added:?}");
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [
            format!("ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{peer}\""),
            "ETCD_INITIAL_CLUSTER_STATE=\"existing\"".to_owned(),
        ]
    );

    // Added but not started: no name and no client URLs yet.
    let listed = ok(&cluster.etcdctl(&["member", "list"]));
    let unstarted = format!("{new_id:x}, unstarted, , {peer}, , false");
    assert!(listed.lines().any(|l| l == unstarted), "{listed}");

    cluster
        .start_added_member(new, &initial_cluster)
        .await
        .expect("start the added member");
    assert_eq!(cluster.member_id(new), Some(new_id));
    ok_eq(
        &cluster.etcdctl(&["member", "list"]),
        &expected_member_list(&cluster),
    );
    // The new member has the data written before it joined.
    ok_eq(
        &cluster.etcdctl_on(&[new], &["get", "before"]),
        "before\nadd\n",
    );

    let new_hex = format!("{new_id:x}");
    ok_eq(
        &until_healthy(|| cluster.etcdctl(&["member", "remove", &new_hex])),
        &format!("Member {new_id:16x} removed from cluster {cluster_id:16x}\n"),
    );
    let listed = ok(&cluster.etcdctl_on(&[0], &["member", "list"]));
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(!listed.contains(&peer), "{listed}");
    ok_eq(
        &cluster.etcdctl_on(&[0, 1, 2], &["put", "after", "remove"]),
        "OK\n",
    );
}

/// etcd takes a voter added to a cluster of one started member (how a cluster grows from one,
/// or is rebuilt from a backup) and answers at once. Raft's joint consensus could not commit
/// that change before the new member runs, so ours holds it as a learner until it has caught
/// up; clients see a voter throughout, its promotion survives a restart of the first member,
/// and the grown cluster keeps its quorum without the first member. (Unlike etcd's, our first
/// member goes on taking writes until the new one has caught up.)
#[tokio::test]
async fn a_cluster_grows_from_one_member() {
    let mut cluster = start(ClusterConfig::new(1)).await;
    ok_eq(&cluster.etcdctl(&["put", "before", "add"]), "OK\n");
    let new = cluster.reserve_member().expect("reserve a member");
    let peer = cluster.peer_url(new);
    let peer_flag = format!("--peer-urls={peer}");
    let added = ok(&until_healthy(|| {
        cluster.etcdctl(&["member", "add", cluster.member_name(new), &peer_flag])
    }));
    let initial_cluster = initial_cluster_of(&added);
    assert_eq!(initial_cluster.split(',').count(), 2, "{added}");
    let listed = ok(&cluster.etcdctl(&["member", "list"]));
    let unstarted = format!("unstarted, , {peer}, , false");
    assert!(listed.lines().any(|l| l.ends_with(&unstarted)), "{listed}");
    // A third voter before the second has started: one started member of two is no quorum.
    let third_add = cluster.etcdctl(&["member", "add", "m9", "--peer-urls=http://127.0.0.1:1"]);
    fails_with(
        &third_add,
        1,
        "Error: etcdserver: re-configuration failed due to not enough started members",
    );
    let listed = ok(&cluster.etcdctl(&["member", "list"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");

    if cluster.flavor() == Flavor::Ours {
        // The first member restarts before the new one has started: the promotion it owes is
        // in the replicated state, not in its memory. (etcd counts the new member as a voter
        // at once, so a restarted first member could not elect itself until the new one runs.)
        cluster.kill(0);
        cluster.restart(0).await.expect("restart the first member");
    }
    cluster
        .start_added_member(new, &initial_cluster)
        .await
        .expect("start the added member");
    let expected = expected_member_list(&cluster);
    let listed = eventually(Duration::from_secs(20), || {
        let out = cluster.etcdctl(&["member", "list"]);
        (out.status.success() && stdout(&out) == expected).then_some(())
    });
    assert!(
        listed.is_some(),
        "member list never became {expected:?}: {}",
        stdout(&cluster.etcdctl(&["member", "list"]))
    );
    ok_eq(
        &cluster.etcdctl_on(&[new], &["get", "before"]),
        "before\nadd\n",
    );

    // A third member; then without the first, the other two are a quorum of three voters.
    let third = cluster.add_member().await.expect("add a third member");
    ok_eq(
        &cluster.etcdctl(&["member", "list"]),
        &expected_member_list(&cluster),
    );
    cluster.kill(0);
    let put = eventually(Duration::from_secs(20), || {
        let out = cluster.etcdctl_on(&[new, third], &["put", "after", "growth"]);
        out.status.success().then_some(out)
    });
    assert!(put.is_some(), "no write without the first member");
    ok_eq(
        &cluster.etcdctl_on(&[third], &["get", "after"]),
        "after\ngrowth\n",
    );
}

/// The harness's own `add_member` / `remove_member`, checked with etcdctl.
#[tokio::test]
async fn harness_add_and_remove_member() {
    let mut cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["put", "k", "v"]), "OK\n");
    let new = cluster.add_member().await.expect("add a member");
    assert_eq!(new, 3);
    assert_eq!(cluster.client_urls().len(), 4);
    ok_eq(
        &cluster.etcdctl(&["member", "list"]),
        &expected_member_list(&cluster),
    );
    ok_eq(&cluster.etcdctl_on(&[new], &["get", "k"]), "k\nv\n");

    cluster.remove_member(1).await.expect("remove member 1");
    assert_eq!(cluster.client_urls().len(), 3);
    assert!(!cluster.is_running(1));
    ok_eq(
        &cluster.etcdctl(&["member", "list"]),
        &expected_member_list(&cluster),
    );
    ok_eq(&cluster.etcdctl(&["put", "k", "v2"]), "OK\n");
    ok_eq(&cluster.etcdctl_on(&[new], &["get", "k"]), "k\nv2\n");
}

#[tokio::test]
async fn endpoint_status_and_health() {
    let cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["put", "k", "v"]), "OK\n");
    let leader = cluster.leader().await.expect("leader");
    let leader_id = cluster.member_id(leader).expect("leader id");

    let json = ok_json(&cluster.etcdctl(&["endpoint", "status", "-w", "json"]));
    let statuses = json.as_array().expect("array of endpoint statuses");
    assert_eq!(statuses.len(), 3, "{json}");
    for (i, entry) in statuses.iter().enumerate() {
        assert_eq!(entry["Endpoint"], cluster.client_url(i), "{json}");
        let status = &entry["Status"];
        assert_eq!(
            Some(u64_at(status, "/header/member_id")),
            cluster.member_id(i)
        );
        assert_eq!(u64_at(status, "/leader"), leader_id, "{json}");
        assert!(u64_at(status, "/raftIndex") > 0, "{json}");
        assert!(u64_at(status, "/raftTerm") >= 1, "{json}");
        assert!(i64_at(status, "/dbSize") > 0, "{json}");
        assert!(
            status["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{json}"
        );
    }

    // The simple format: endpoint, hex ID, version, size, is leader, is learner, ...
    let text = ok(&cluster.etcdctl(&["endpoint", "status"]));
    assert_eq!(text.lines().count(), 3, "{text}");
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(", ").collect();
        let id = cluster.member_id(i).expect("member id");
        assert_eq!(fields[0], cluster.client_url(i), "{text}");
        assert_eq!(fields[1], format!("{id:x}"), "{text}");
        assert_eq!(fields[4], (i == leader).to_string(), "{text}");
        assert_eq!(fields[5], "false", "{text}");
    }

    // etcdctl 3.4 prints the health lines on stderr.
    let out = cluster.etcdctl(&["endpoint", "health"]);
    ok_eq(&out, "");
    let err = stderr(&out);
    for url in cluster.client_urls() {
        let prefix = format!("{url} is healthy: successfully committed proposal: took = ");
        assert!(err.lines().any(|l| l.starts_with(&prefix)), "{err}");
    }
    let json = ok_json(&cluster.etcdctl(&["endpoint", "health", "-w", "json"]));
    let entries = json.as_array().expect("array of health entries");
    assert_eq!(entries.len(), 3, "{json}");
    assert!(entries.iter().all(|e| e["health"] == true), "{json}");
}

#[tokio::test]
async fn killed_leader_is_replaced_and_restarted_member_catches_up() {
    let mut cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["put", "k", "1"]), "OK\n");
    let old = cluster.leader().await.expect("leader");
    cluster.kill(old);
    assert!(!cluster.is_running(old));
    let new = cluster.leader().await.expect("a new leader");
    assert_ne!(new, old);
    // etcdctl still works with the dead endpoint in its list.
    ok_eq(&cluster.etcdctl(&["put", "k", "2"]), "OK\n");

    cluster.restart(old).await.expect("restart the old leader");
    ok_eq(&cluster.etcdctl_on(&[old], &["get", "k"]), "k\n2\n");

    // A graceful stop and restart of a follower.
    let follower = (0..3).find(|&i| i != new).expect("a follower");
    cluster.stop(follower);
    ok_eq(&cluster.etcdctl(&["put", "k", "3"]), "OK\n");
    cluster
        .restart(follower)
        .await
        .expect("restart the follower");
    ok_eq(&cluster.etcdctl_on(&[follower], &["get", "k"]), "k\n3\n");
    let listed = ok(&cluster.etcdctl(&["member", "list"]));
    assert_eq!(listed, expected_member_list(&cluster));
}

/// With a member down, etcd's strict reconfiguration check refuses changes that could cost
/// the quorum: adding a voter, or removing a live one. Removing the dead member is allowed.
#[tokio::test]
async fn member_changes_that_risk_the_quorum_are_refused() {
    let mut cluster = three_members().await;
    // Every member connected for etcd's 5 s health interval first, so that what follows is
    // refused because of the dead member and not because the cluster is young.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let dead = 2;
    let dead_id = cluster.member_id(dead).expect("member id");
    let live_id = cluster.member_id(1).expect("member id");
    cluster.kill(dead);
    // The leader notices at its next heartbeat.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let live = [0, 1];
    let add = cluster.etcdctl_on(
        &live,
        &["member", "add", "extra", "--peer-urls=http://127.0.0.1:1"],
    );
    fails_with(&add, 1, "Error: etcdserver: unhealthy cluster");
    let remove_live = cluster.etcdctl_on(&live, &["member", "remove", &format!("{live_id:x}")]);
    fails_with(&remove_live, 1, "Error: etcdserver: unhealthy cluster");
    // Nothing changed.
    let list = ok(&cluster.etcdctl_on(&live, &["member", "list"]));
    assert_eq!(list.lines().count(), 3, "{list}");
    // The dead member may go.
    let removed = ok(&cluster.etcdctl_on(&live, &["member", "remove", &format!("{dead_id:x}")]));
    assert!(
        removed.starts_with(&format!("Member {dead_id:16x} removed from cluster")),
        "{removed}"
    );
}

/// After the leader is removed, the new leader already knows its peers have long been
/// connected: a member can be added at once, without waiting out the 5 s health interval.
#[tokio::test]
async fn member_add_right_after_the_leader_is_removed() {
    let cluster = three_members().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let leader = cluster.leader().await.expect("a leader");
    let leader_id = cluster.member_id(leader).expect("member id");
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let removed =
        ok(&cluster.etcdctl_on(&others, &["member", "remove", &format!("{leader_id:x}")]));
    assert!(
        removed.starts_with(&format!("Member {leader_id:16x} removed from cluster")),
        "{removed}"
    );
    // Retry only while there is no leader yet; "unhealthy cluster" would be a failure.
    let added = eventually(Duration::from_secs(10), || {
        let out = cluster.etcdctl_on(
            &others,
            &["member", "add", "extra", "--peer-urls=http://127.0.0.1:1"],
        );
        let err = stderr(&out);
        let electing = [
            "no leader",
            "leader changed",
            "request timed out",
            "context deadline exceeded",
        ];
        if !out.status.success() && electing.iter().any(|e| err.contains(e)) {
            return None;
        }
        Some(out)
    })
    .expect("an answer");
    let text = ok(&added);
    assert!(text.contains("added to cluster"), "{text}");
}

/// A member added once the leader's log no longer holds the early entries catches up from a
/// snapshot: the leader streams its state to a file, the file goes to the new member in
/// chunks and is installed from there. The new member holds every key and value, and (ours)
/// counts one install.
#[tokio::test]
async fn a_member_added_after_log_compaction_catches_up_from_a_snapshot() {
    let mut cluster = start(ClusterConfig::new(3).arg("--snapshot-count=100")).await;
    let mut client = cluster.client().await.expect("client");
    // More entries than a member keeps after a snapshot (1,000), with values of all sizes.
    for i in 0..1500u32 {
        let value = "v".repeat((i as usize * 37) % 3000);
        client
            .put(format!("key-{i:04}"), value, None)
            .await
            .unwrap_or_else(|e| panic!("put {i}: {e}"));
    }
    let new = cluster.add_member().await.expect("add a member");
    // Linearizable reads: the new member answers once it has applied everything.
    let count = ok(&cluster.etcdctl_on(
        &[new],
        &["get", "key-", "--prefix", "--keys-only", "-w", "json"],
    ));
    let count: serde_json::Value = serde_json::from_str(&count).expect("json");
    assert_eq!(count["count"], 1500, "{count}");
    for i in [0u32, 1, 777, 1499] {
        let value = "v".repeat((i as usize * 37) % 3000);
        ok_eq(
            &cluster.etcdctl_on(
                &[new],
                &["get", &format!("key-{i:04}"), "--print-value-only"],
            ),
            &format!("{value}\n"),
        );
    }
    if cluster.flavor() == Flavor::Ours {
        let (_, metrics) =
            cluster_tests::http::get(&format!("{}/metrics", cluster.metrics_url(new)))
                .await
                .expect("metrics of the new member");
        let installs = metrics
            .lines()
            .find_map(|l| l.strip_prefix("store_snapshot_install_seconds_count "))
            .unwrap_or_else(|| panic!("no install count in {metrics}"));
        assert_eq!(
            installs.trim(),
            "1",
            "the new member did not install a snapshot"
        );
    }
}
