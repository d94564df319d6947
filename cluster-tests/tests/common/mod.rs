//! Helpers shared by the integration tests: starting clusters, checking etcdctl output, and
//! (in [`api`]) driving the apiserver with kubectl and curl.
#![allow(dead_code)] // each test binary uses a different subset

pub mod api;
pub mod parity;
pub mod pctl;

use std::process::Output;
use std::time::{Duration, Instant};

use cluster_tests::{Cluster, ClusterConfig};

/// A 3-member cluster of the flavor chosen by `STORE_FLAVOR`.
pub async fn three_members() -> Cluster {
    start(ClusterConfig::new(3)).await
}

/// Starts a cluster or fails the test with the reason (which includes the member logs).
pub async fn start(cfg: ClusterConfig) -> Cluster {
    match Cluster::start(cfg).await {
        Ok(cluster) => cluster,
        Err(err) => panic!("cluster did not start: {err:#}"),
    }
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        stdout(out),
        stderr(out)
    )
}

/// Asserts etcdctl succeeded and returns its stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "etcdctl failed\n{}", describe(out));
    stdout(out)
}

/// Asserts etcdctl succeeded and printed exactly `expected` on stdout.
#[track_caller]
pub fn ok_eq(out: &Output, expected: &str) {
    let got = ok(out);
    assert_eq!(got, expected, "unexpected stdout\n{}", describe(out));
}

/// Asserts etcdctl succeeded and parses its stdout as JSON (`-w json`).
#[track_caller]
pub fn ok_json(out: &Output) -> serde_json::Value {
    let text = ok(out);
    match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(err) => panic!("stdout is not JSON ({err})\n{}", describe(out)),
    }
}

/// Asserts etcdctl exited with `code` and printed `line` as a whole line on stderr (etcdctl
/// also logs the gRPC retry as JSON there, so other lines are allowed).
#[track_caller]
pub fn fails_with(out: &Output, code: i32, line: &str) {
    let err = stderr(out);
    assert!(
        err.lines().any(|l| l == line),
        "expected the stderr line {line:?}\n{}",
        describe(out)
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code\n{}",
        describe(out)
    );
}

/// Reads an unsigned integer field of a JSON object (etcdctl prints IDs as numbers).
#[track_caller]
pub fn u64_at(value: &serde_json::Value, pointer: &str) -> u64 {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no unsigned integer at {pointer} in {value}"))
}

/// Reads a signed integer field of a JSON object.
#[track_caller]
pub fn i64_at(value: &serde_json::Value, pointer: &str) -> i64 {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_else(|| panic!("no integer at {pointer} in {value}"))
}

/// Standard base64 with padding, as etcdctl's JSON prints keys and values.
pub fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The revision in the header of `etcdctl get <key> -w json`.
pub fn current_revision(cluster: &Cluster) -> i64 {
    let json = ok_json(&cluster.etcdctl(&["get", "cluster-tests/none", "-w", "json"]));
    i64_at(&json, "/header/revision")
}

/// The member IDs the harness learned at start, for the active members.
pub fn member_ids(cluster: &Cluster) -> Vec<u64> {
    cluster
        .active_members()
        .into_iter()
        .map(|i| cluster.member_id(i).expect("member id known after start"))
        .collect()
}

/// Runs `attempt` until it returns `Some`, for at most `timeout`.
pub fn eventually<T>(timeout: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
