//! Fault injection against a 3-member cluster on loopback, Jepsen style: a write load runs
//! while members are killed, stopped, restarted, removed and added; afterwards the recorded
//! history is checked against the final state (see `cluster_tests::history`).
//!
//! The flavor comes from `STORE_FLAVOR` (see the crate README): the same tests run against our
//! store (default) and real etcd (`STORE_FLAVOR=etcd`). Every test starts its own cluster, is
//! bounded in time, and waits for the previous one to finish:
//!
//! ```sh
//! STORE_FLAVOR=etcd cargo test -p cluster-tests --test faults -- --test-threads=1
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cluster_tests::etcd_client::{Client, GetOptions, PutOptions};
use cluster_tests::history::{
    self, check, EventKind, LoadConfig, Snapshot, WatchRecorder, WriteLoad,
};
use cluster_tests::{Cluster, ClusterConfig};

/// Bound on one test's body (the cluster start is bounded by the harness).
const TEST_TIMEOUT: Duration = Duration::from_secs(100);
/// Puts the load must get acknowledged between two faults (and before the first).
const PROGRESS: usize = 100;
/// How long the load may take to make that progress (elections, restarts included).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(20);
/// A stopped or killed member stays down at least this long, so that it has writes to catch
/// up on when it returns.
const DOWNTIME: Duration = Duration::from_millis(1500);
/// How long the members get to agree after the load stopped.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on the final linearizable read (retried).
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on a watcher catching up with the final state.
const WATCH_CATCH_UP: Duration = Duration::from_secs(15);

/// For the restart, replacement and kill-all tests: snapshots (and, past what members keep,
/// log compaction) happen under load, so restarted members recover from snapshots and new
/// members may have to be sent one.
const SMALL_SNAPSHOT_COUNT: &str = "--snapshot-count=100";
/// Puts acknowledged before a new member is added, so that the log has been compacted.
const BEFORE_ADD: usize = 1500;

/// Held by the running test: the tests of this file run one at a time even without
/// `--test-threads=1` (three members each, timing-sensitive checks, 2-core machines).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts a 3-member cluster, runs `body` against it within [`TEST_TIMEOUT`], and panics with
/// the error (the cluster, still alive, then prints its members' logs as it is dropped).
async fn run<F>(name: &str, body: F)
where
    F: for<'c> AsyncFnOnce(&'c mut Cluster) -> Result<()>,
{
    run_with(name, ClusterConfig::new(3), body).await
}

/// [`run`] with a given cluster configuration.
async fn run_with<F>(name: &str, cfg: ClusterConfig, body: F)
where
    F: for<'c> AsyncFnOnce(&'c mut Cluster) -> Result<()>,
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut cluster = match Cluster::start(cfg).await {
        Ok(cluster) => cluster,
        Err(err) => panic!("{name}: cluster did not start: {err:#}"),
    };
    let flavor = cluster.flavor().name();
    match tokio::time::timeout(TEST_TIMEOUT, body(&mut cluster)).await {
        Ok(Ok(())) => eprintln!(
            "{name} ({flavor}): passed in {:.1}s",
            started.elapsed().as_secs_f64()
        ),
        Ok(Err(err)) => panic!("{name} ({flavor}): {err:#}"),
        Err(_) => panic!("{name} ({flavor}): did not finish within {TEST_TIMEOUT:?}"),
    }
}

/// SIGKILL member `i` without stalling the runtime's other tasks (the harness waits for the
/// process synchronously). Returns when it went down.
fn kill(cluster: &mut Cluster, i: usize) -> Instant {
    eprintln!("fault: SIGKILL {}", cluster.member_name(i));
    tokio::task::block_in_place(|| cluster.kill(i));
    Instant::now()
}

/// SIGTERM member `i` and wait for it to exit (see [`kill`]). Returns when it went down.
fn stop(cluster: &mut Cluster, i: usize) -> Instant {
    eprintln!("fault: SIGTERM {}", cluster.member_name(i));
    tokio::task::block_in_place(|| cluster.stop(i));
    Instant::now()
}

/// Restarts member `i` once it has been down for [`DOWNTIME`] (counted from `down_since`).
async fn restart(cluster: &mut Cluster, i: usize, down_since: Instant) -> Result<()> {
    tokio::time::sleep(DOWNTIME.saturating_sub(down_since.elapsed())).await;
    eprintln!("fault: restart {}", cluster.member_name(i));
    let started = Instant::now();
    cluster
        .restart(i)
        .await
        .with_context(|| format!("restarting {}", cluster.member_name(i)))?;
    eprintln!(
        "fault: {} serves again after {:.1}s",
        cluster.member_name(i),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits for `PROGRESS` more acknowledged puts, naming the phase on failure.
/// Slow phases (elections, restarts) are reported.
async fn progress(load: &WriteLoad, phase: &str) -> Result<()> {
    let started = Instant::now();
    load.wait_progress(PROGRESS, PROGRESS_TIMEOUT)
        .await
        .with_context(|| format!("write load stalled {phase}"))?;
    if started.elapsed() >= Duration::from_secs(2) {
        eprintln!(
            "slow: {PROGRESS} puts took {:.1}s {phase}",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Stops the load and runs the checks every test shares. The members' serializable reads of
/// the prefix must converge to the same revision and keys, and a linearizable read must then
/// return that same state (if an indeterminate put committed late and moved the revision in
/// between, both are taken again); the history is checked against that state.
async fn stop_and_check(
    cluster: &Cluster,
    load: WriteLoad,
    prefix: &str,
    members: &[usize],
) -> Result<(history::History, Snapshot)> {
    let recorded = load.stop().await?;
    eprintln!("history: {}", recorded.summary());
    ensure!(
        recorded.acked().count() > 0,
        "no put was acknowledged: {}",
        recorded.summary()
    );
    let mut attempts = 0;
    let (converged, state) = loop {
        attempts += 1;
        let converged =
            history::converged_snapshot(cluster, members, prefix, SETTLE_TIMEOUT).await?;
        let state = history::linearizable_snapshot(cluster, members, prefix, READ_TIMEOUT).await?;
        if state.revision == converged.revision || attempts == 3 {
            break (converged, state);
        }
    };
    ensure!(
        converged == state,
        "the members agree on {} keys at revision {}, but a linearizable read then returned \
         {} keys at revision {}",
        converged.kvs.len(),
        converged.revision,
        state.kvs.len(),
        state.revision
    );
    check::history(&recorded, &state)?;
    eprintln!(
        "final state: {} keys, revision {}, same on {} members",
        state.kvs.len(),
        state.revision,
        members.len()
    );
    Ok((recorded, state))
}

/// 1. SIGKILL the leader under a write load and restart it, three times. Every acknowledged
///    put is readable (linearizably) with its value and revision, no key appears that was
///    never written, revisions increase per client and in real time, no linearizable read
///    during the load is stale, and all members converge to the same revision and keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leader_under_load() {
    run("kill_leader_under_load", async |cluster: &mut Cluster| {
        let prefix = "faults/kill-leader/";
        let load = WriteLoad::start(cluster, LoadConfig::new(prefix))?;
        progress(&load, "before the first fault").await?;
        for round in 1..=3 {
            let leader = cluster.leader().await?;
            let down = kill(cluster, leader);
            progress(&load, &format!("with the leader killed (round {round})")).await?;
            restart(cluster, leader, down).await?;
            progress(
                &load,
                &format!("after restarting the leader (round {round})"),
            )
            .await?;
        }
        stop_and_check(cluster, load, prefix, &cluster.active_members()).await?;
        Ok(())
    })
    .await;
}

/// 2. Two watchers from revision 1 on the load's prefix, on two members, one started before
///    the load (on the leader, which is killed) and one during it; the leader is killed and
///    restarted twice. A watcher whose stream breaks re-creates its watch from the last
///    revision it saw + 1. Each must deliver exactly the writes under the prefix: every
///    revision once, in increasing order, no gaps, every acknowledged put included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_see_every_revision_once() {
    run(
        "watchers_see_every_revision_once",
        async |cluster: &mut Cluster| {
            let prefix = "faults/watch/";
            let first_leader = cluster.leader().await?;
            let early = WatchRecorder::start(cluster, first_leader, prefix, 1)?;
            let load = WriteLoad::start(cluster, LoadConfig::new(prefix))?;
            progress(&load, "before the first fault").await?;
            let other = (first_leader + 1) % 3;
            let late = WatchRecorder::start(cluster, other, prefix, 1)?;
            for round in 1..=2 {
                let leader = cluster.leader().await?;
                let down = kill(cluster, leader);
                progress(&load, &format!("with the leader killed (round {round})")).await?;
                restart(cluster, leader, down).await?;
                progress(
                    &load,
                    &format!("after restarting the leader (round {round})"),
                )
                .await?;
            }
            let (recorded, state) =
                stop_and_check(cluster, load, prefix, &cluster.active_members()).await?;
            let expected = state.as_put_events();
            let mut recreated = 0;
            for watcher in [early, late] {
                watcher
                    .wait_for_revision(state.max_mod_revision(), WATCH_CATCH_UP)
                    .await?;
                // Anything delivered after the last write would be a duplicate or a phantom:
                // give it a moment to show up.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let log = watcher.finish().await;
                eprintln!("watch: {}", log.summary());
                check::watch_matches(&log, &expected)?;
                check::watch_includes_acked(&log, &recorded)?;
                recreated += log.created_from.len().saturating_sub(1);
            }
            ensure!(
                recreated > 0,
                "no watch was re-created, so continuity across a killed member went untested"
            );
            Ok(())
        },
    )
    .await;
}

/// 3. Each member in turn is stopped (SIGTERM) and restarted, then each in turn is killed
///    (SIGKILL) and restarted, under a write load, with frequent snapshots: no acknowledged
///    put is lost and the members converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_members_one_at_a_time() {
    run_with(
        "restart_members_one_at_a_time",
        ClusterConfig::new(3).arg(SMALL_SNAPSHOT_COUNT),
        async |cluster: &mut Cluster| {
            let prefix = "faults/restart/";
            let load = WriteLoad::start(cluster, LoadConfig::new(prefix))?;
            progress(&load, "before the first fault").await?;
            for graceful in [true, false] {
                for i in cluster.active_members() {
                    let how = if graceful { "SIGTERM" } else { "SIGKILL" };
                    let down = if graceful {
                        stop(cluster, i)
                    } else {
                        kill(cluster, i)
                    };
                    let name = cluster.member_name(i).to_owned();
                    progress(&load, &format!("with {name} down ({how})")).await?;
                    restart(cluster, i, down).await?;
                    progress(&load, &format!("after restarting {name} ({how})")).await?;
                }
            }
            stop_and_check(cluster, load, prefix, &cluster.active_members()).await?;
            Ok(())
        },
    )
    .await;
}

/// 4. Under a write load, a member is removed (MemberRemove) and a new one added (MemberAdd,
///    started with `--initial-cluster-state existing`), twice: first a follower is replaced,
///    then the leader, each after 1500 more puts with frequent snapshots (so the new member
///    may need a snapshot). The writers and readers then also use the new members. The new
///    members catch up (same revision and keys as the others), no acknowledged put is lost,
///    and puts were acknowledged through each new member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_members_under_load() {
    run_with(
        "replace_members_under_load",
        ClusterConfig::new(3).arg(SMALL_SNAPSHOT_COUNT),
        async |cluster: &mut Cluster| {
            let prefix = "faults/replace/";
            let load = WriteLoad::start(cluster, LoadConfig::new(prefix))?;
            progress(&load, "before the first fault").await?;
            let mut added = Vec::new();
            for replace_leader in [false, true] {
                let leader = cluster.leader().await?;
                let removed = if replace_leader {
                    leader
                } else {
                    *cluster
                        .active_members()
                        .iter()
                        .find(|&&i| i != leader)
                        .context("no follower")?
                };
                let role = if replace_leader { "leader" } else { "follower" };
                eprintln!("fault: remove {} ({role})", cluster.member_name(removed));
                cluster
                    .remove_member(removed)
                    .await
                    .with_context(|| format!("removing {}", cluster.member_name(removed)))?;
                load.set_endpoints(cluster.client_urls());
                load.wait_progress(BEFORE_ADD, PROGRESS_TIMEOUT)
                    .await
                    .with_context(|| format!("write load stalled after removing the {role}"))?;
                eprintln!("fault: add a member");
                let new = cluster.add_member().await.context("adding a member")?;
                eprintln!("added {}", cluster.member_name(new));
                added.push(new);
                load.set_endpoints(cluster.client_urls());
                progress(&load, &format!("after replacing the {role}")).await?;
                progress(&load, &format!("after replacing the {role} (more)")).await?;
            }
            let members = cluster.active_members();
            ensure!(
                members.len() == 3 && added.iter().all(|i| members.contains(i)),
                "unexpected membership after the changes: {members:?}, added {added:?}"
            );
            let (recorded, _) = stop_and_check(cluster, load, prefix, &members).await?;
            for &new in &added {
                let url = cluster.client_url(new);
                let through_new = recorded.acked().filter(|op| op.endpoint == url).count();
                ensure!(
                    through_new > 0,
                    "no put was acknowledged through the new member {}: {}",
                    cluster.member_name(new),
                    recorded.summary()
                );
            }
            Ok(())
        },
    )
    .await;
}

/// 6. Every member is killed (SIGKILL, one right after the other) under a write load with
///    frequent snapshots, and all are restarted, twice: acknowledged puts must have been made
///    durable before they were acknowledged, so none is lost, and the members converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_members_under_load() {
    run_with(
        "kill_all_members_under_load",
        ClusterConfig::new(3).arg(SMALL_SNAPSHOT_COUNT),
        async |cluster: &mut Cluster| {
            let prefix = "faults/kill-all/";
            let load = WriteLoad::start(cluster, LoadConfig::new(prefix))?;
            progress(&load, "before the first fault").await?;
            for round in 1..=2 {
                let members = cluster.active_members();
                let mut down = Instant::now();
                for &i in &members {
                    down = kill(cluster, i);
                }
                tokio::time::sleep(DOWNTIME.saturating_sub(down.elapsed())).await;
                eprintln!("fault: restart every member");
                cluster
                    .restart_members(&members)
                    .await
                    .context("restarting every member")?;
                progress(
                    &load,
                    &format!("after restarting every member (round {round})"),
                )
                .await?;
            }
            stop_and_check(cluster, load, prefix, &cluster.active_members()).await?;
            Ok(())
        },
    )
    .await;
}

/// Lease TTL for test 5.
const LEASE_TTL: i64 = 10;
/// When the key must still be there, after the grant.
const LEASE_PROBE_AT: Duration = Duration::from_secs(5);
/// Bound on the key's disappearance: the TTL plus a few election timeouts (1 to 2 s each by
/// default), since a new leader restarts lease clocks at their full TTL when it takes over
/// (etcd 3.4 without lease checkpoints; ours adds an election timeout).
const LEASE_GONE_BY: Duration = Duration::from_secs(LEASE_TTL as u64 + 10);

/// 5. A lease with a 10 s TTL gets a key; no keep-alive is sent, and the leader is killed
///    right away. The key is still there 5 s after the grant and never gone before the TTL
///    has passed since the grant was sent; it is gone within TTL + 10 s; a watcher on a
///    surviving member, and one on the restarted old leader, each see exactly one DELETE,
///    at the same revision, and the lease no longer exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expires_once_across_leader_change() {
    run(
        "lease_expires_once_across_leader_change",
        async |cluster: &mut Cluster| {
            let key = "faults/lease/key";
            let mut client = cluster.client().await?;
            let leader = cluster.leader().await?;
            let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

            let granted_at = Instant::now();
            let lease = client
                .lease_grant(LEASE_TTL, None)
                .await
                .context("lease grant")?;
            let put = client
                .put(
                    key,
                    "leased",
                    Some(PutOptions::new().with_lease(lease.id())),
                )
                .await
                .context("put with the lease")?;
            let put_revision = put.header().map(|h| h.revision()).context("no header")?;
            let down = kill(cluster, leader);
            let watcher = WatchRecorder::start(cluster, survivors[0], key, put_revision)?;

            // Poll the key linearizably through the survivors until it is gone.
            let mut reader = Client::connect(
                survivors
                    .iter()
                    .map(|&i| cluster.client_url(i))
                    .collect::<Vec<_>>(),
                Some(cluster.connect_options()?),
            )
            .await?;
            let mut seen_after_probe = false;
            let mut restarted = false;
            let gone_at = loop {
                let elapsed = granted_at.elapsed();
                if elapsed >= LEASE_GONE_BY {
                    bail!(
                        "key {key} still present (or unreadable) {:.1}s after the grant of a \
                     {LEASE_TTL}s lease",
                        elapsed.as_secs_f64()
                    );
                }
                let read =
                    tokio::time::timeout(Duration::from_secs(1), reader.get(key, None)).await;
                let present = match read {
                    Ok(Ok(response)) => !response.kvs().is_empty(),
                    _ => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let elapsed = granted_at.elapsed();
                if !present {
                    break elapsed;
                }
                if elapsed >= LEASE_PROBE_AT {
                    seen_after_probe = true;
                    if !restarted {
                        // Bring the old leader back while the lease is alive: it must not
                        // revoke the lease on its own.
                        restart(cluster, leader, down).await?;
                        restarted = true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            eprintln!(
                "lease: key gone {:.1}s after the grant was sent",
                gone_at.as_secs_f64()
            );
            ensure!(
                gone_at >= Duration::from_secs(LEASE_TTL as u64),
                "key {key} expired early: gone {:.1}s after the grant of a {LEASE_TTL}s lease",
                gone_at.as_secs_f64()
            );
            ensure!(
                seen_after_probe,
                "key {key} was never read back {LEASE_PROBE_AT:?} or later after the grant"
            );
            if !restarted {
                restart(cluster, leader, down).await?;
            }

            let state =
                history::linearizable_snapshot(cluster, &[0, 1, 2], key, READ_TIMEOUT).await?;
            ensure!(state.kvs.is_empty(), "key {key} is back: {state:?}");
            let ttl = client
                .lease_time_to_live(lease.id(), None)
                .await
                .context("lease TimeToLive after expiry")?;
            ensure!(
                ttl.ttl() == -1,
                "lease {:x} still exists after its key expired (TTL {})",
                lease.id(),
                ttl.ttl()
            );

            let old_leader_watch = WatchRecorder::start(cluster, leader, key, put_revision)?;
            let mut delete_revisions = Vec::new();
            for watcher in [watcher, old_leader_watch] {
                watcher
                    .wait_for_revision(put_revision + 1, WATCH_CATCH_UP)
                    .await?;
                // Long enough for a second revocation to show up.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let log = watcher.finish().await;
                eprintln!("watch: {}", log.summary());
                let deletes: Vec<i64> = log
                    .events
                    .iter()
                    .filter(|e| e.kind == EventKind::Delete && e.key == key)
                    .map(|e| e.revision)
                    .collect();
                ensure!(
                    deletes.len() == 1,
                    "expected exactly one DELETE of {key}, got {deletes:?}; events: {:?}",
                    log.events
                );
                let puts = log
                    .events
                    .iter()
                    .filter(|e| e.kind == EventKind::Put)
                    .count();
                ensure!(puts == 1, "expected one PUT of {key}: {:?}", log.events);
                delete_revisions.push(deletes[0]);
            }
            ensure!(
                delete_revisions[0] == delete_revisions[1],
                "the members deleted {key} at different revisions: {delete_revisions:?}"
            );
            // Nothing else was written: the revocation is the one write after the put.
            let current = client
                .get("faults/lease/none", Some(GetOptions::new()))
                .await?
                .header()
                .map(|h| h.revision())
                .context("no header")?;
            ensure!(
                delete_revisions[0] == put_revision + 1 && current == put_revision + 1,
                "put at {put_revision}, delete at {}, current revision {current}: expected the \
             revocation to be the only write after the put",
                delete_revisions[0]
            );
            Ok(())
        },
    )
    .await;
}
