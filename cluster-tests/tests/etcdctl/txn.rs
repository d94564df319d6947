//! `etcdctl txn` reading compares, success ops and failure ops from stdin.
//!
//! The three sections are separated by blank lines, and the failure section must end with a
//! blank line too: without it etcdctl 3.4 fails with `Error: EOF` (exit code 3).

use crate::common::*;

#[tokio::test]
async fn txn_success_and_failure_branches() {
    let cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["put", "k", "v"]), "OK\n");

    // value("k") = "v" holds: the success ops run.
    let out = cluster.etcdctl_stdin(
        &["txn"],
        "value(\"k\") = \"v\"\n\nput k v2\nput done yes\n\nput k failed\n\n",
    );
    ok_eq(&out, "SUCCESS\n\nOK\n\nOK\n");
    ok_eq(&cluster.etcdctl(&["get", "k"]), "k\nv2\n");
    ok_eq(&cluster.etcdctl(&["get", "done"]), "done\nyes\n");

    // It no longer holds: the failure ops run, and a get inside prints its keys.
    let out = cluster.etcdctl_stdin(
        &["txn"],
        "value(\"k\") = \"v\"\n\nput k wrong\n\nput f 1\nget k\n\n",
    );
    ok_eq(&out, "FAILURE\n\nOK\n\nk\nv2\n");
    ok_eq(&cluster.etcdctl(&["get", "f"]), "f\n1\n");

    // Several compares must all hold; mod/create/version compare revisions as numbers.
    let out = cluster.etcdctl_stdin(
        &["txn"],
        "mod(\"k\") > \"0\"\nversion(\"k\") = \"2\"\ncreate(\"nothing\") = \"0\"\n\n\
         del done\n\n\n",
    );
    ok_eq(&out, "SUCCESS\n\n1\n");
    let out = cluster.etcdctl_stdin(&["txn"], "mod(\"k\") > \"1000\"\n\n\nput g 1\n\n");
    ok_eq(&out, "FAILURE\n\nOK\n");

    // An empty compare section always succeeds.
    let out = cluster.etcdctl_stdin(&["txn"], "\nput e 1\n\n\n");
    ok_eq(&out, "SUCCESS\n\nOK\n");

    // Missing the final blank line.
    let out = cluster.etcdctl_stdin(&["txn"], "\nput e 2\n\nput e 3\n");
    fails_with(&out, 3, "Error: EOF");
    ok_eq(&cluster.etcdctl(&["get", "e"]), "e\n1\n");
}

#[tokio::test]
async fn txn_json_output() {
    let cluster = three_members().await;
    ok_eq(&cluster.etcdctl(&["put", "a", "1"]), "OK\n"); // revision 2
    let out = cluster.etcdctl_stdin(
        &["txn", "-w", "json"],
        "mod(\"a\") > \"0\"\n\nput x 1\nget a\n\nput y 2\n\n",
    );
    let json = ok_json(&out);
    assert_eq!(json["succeeded"], true, "{json}");
    assert_eq!(i64_at(&json, "/header/revision"), 3, "{json}");
    assert!(member_ids(&cluster).contains(&u64_at(&json, "/header/member_id")));
    let responses = json["responses"].as_array().expect("responses array");
    assert_eq!(responses.len(), 2, "{json}");
    assert_eq!(
        i64_at(&responses[0], "/Response/ResponsePut/header/revision"),
        3,
        "{json}"
    );
    let range = &responses[1]["Response"]["ResponseRange"];
    assert_eq!(range["kvs"][0]["key"], b64("a"), "{json}");
    assert_eq!(range["kvs"][0]["value"], b64("1"), "{json}");
    assert_eq!(i64_at(range, "/count"), 1, "{json}");

    let out = cluster.etcdctl_stdin(
        &["txn", "-w", "json"],
        "value(\"a\") = \"2\"\n\nput x 2\n\nput y 2\n\n",
    );
    let json = ok_json(&out);
    assert_eq!(json.get("succeeded"), None, "false is omitted: {json}");
    assert_eq!(i64_at(&json, "/header/revision"), 4, "{json}");
    ok_eq(&cluster.etcdctl(&["get", "x", "--print-value-only"]), "1\n");
    ok_eq(&cluster.etcdctl(&["get", "y", "--print-value-only"]), "2\n");
}
