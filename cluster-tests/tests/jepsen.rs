//! Smoke runs of the fault-injection suite (issue 13): each workload for a few seconds against
//! three of our store members in containers, with one nemesis, and the checkers must find the
//! history valid. The long runs (every workload × every nemesis, ours and etcd) are
//! `cargo run --bin jepsen -- --matrix` (see the README).
//!
//! Skipped, with a message, where no Docker engine answers.

use std::time::Duration;

use cluster_tests::jepsen::{docker, nemesis, runner, workload};
use cluster_tests::Flavor;

const LOAD: Duration = Duration::from_secs(14);

async fn smoke(workload: workload::Kind, nemesis: nemesis::Kind) {
    if !docker::available() {
        eprintln!("skipped: no Docker engine answers here (`docker version` failed)");
        return;
    }
    let results = tempfile::tempdir().expect("results dir");
    let cfg = runner::RunConfig {
        workload,
        nemeses: vec![nemesis],
        flavor: Flavor::Ours,
        members: 3,
        duration: LOAD,
        clients: 6,
        rate: 150.0,
        seed: 7,
        results: results.path().to_path_buf(),
        timing: nemesis::Timing {
            gap: (Duration::from_secs(1), Duration::from_secs(2)),
            hold: (Duration::from_secs(3), Duration::from_secs(4)),
        },
        progress: true,
    };
    let report = runner::run(&cfg).await.expect("the run could not be made");
    assert!(report.valid, "{}", report.summary);
    assert!(
        report.faults_injected > 0,
        "no fault was injected:\n{}",
        report.summary
    );
    // The faults hit live traffic: operations completed while they were injected
    // (the summary counts what was in flight during the fault windows).
    assert!(
        report.ops_during_faults > 0,
        "no operation overlapped a fault window:\n{}",
        report.summary
    );
    for file in [
        "summary.txt",
        "history.jsonl",
        "latency.png",
        "throughput.png",
    ] {
        assert!(
            report.dir.join(file).is_file(),
            "{file} missing in {}",
            report.dir.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_under_kill() {
    smoke(workload::Kind::Register, nemesis::Kind::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn append_under_partition() {
    smoke(workload::Kind::Append, nemesis::Kind::Partition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_under_pause() {
    smoke(workload::Kind::Watch, nemesis::Kind::Pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_under_pause() {
    smoke(workload::Kind::Lock, nemesis::Kind::Pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_under_member_change() {
    smoke(workload::Kind::Lease, nemesis::Kind::Member).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_under_kill() {
    smoke(workload::Kind::Api, nemesis::Kind::Kill).await;
}
