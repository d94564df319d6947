//! Leases and locks: a mutex built from a lease (TTL 2 s, kept alive by its holder) and a key
//! created only if absent; the key's create revision is the holder's fencing token. While it
//! holds the lock a client appends to two shared logs: once fenced (a transaction that applies
//! only while the lock key's create revision still equals its token) and once not. Now and then
//! a holder stalls longer than the TTL (as a client process paused by a GC or a VM would), its
//! lease expires and another client takes the lock.
//!
//! The fenced log must never interleave holders; the mutex itself and the unfenced log show,
//! as Jepsen showed for etcd, what a lock without fencing does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::Rng;

use super::client::connect;
use super::{run_clients, Checked, Ctx, Graded, Progress, Recorder, Session, Workload};
use crate::jepsen::check;
use crate::jepsen::history::{LockOp, LogEntry, Op, Outcome};

const LOCK_KEY: &str = "lock/mutex";
const FENCED: &str = "lock/fenced/";
const UNFENCED: &str = "lock/unfenced/";
const TTL: i64 = 2;
/// How long an acquire waits for the lock before it gives up (a failed acquire).
const ACQUIRE_WAIT: Duration = Duration::from_secs(3);
/// Chance that a holder stalls for longer than the TTL while holding.
const STALL_CHANCE: f64 = 0.15;

pub(super) struct Lock {
    recorder: Recorder<LockOp>,
    values: AtomicU64,
}

impl Lock {
    pub(super) fn new(progress: Arc<Progress>) -> Lock {
        Lock {
            recorder: Recorder::new(progress),
            values: AtomicU64::new(0),
        }
    }

    async fn client(&self, ctx: &Ctx, index: usize) {
        let mut rng = ctx.rng(index, 0x6c07_8965);
        let mut session = Session::new(index, ctx);
        while ctx.running() {
            session.pace().await;
            let Ok(mut client) = session.client().await else {
                session.reconnect().await;
                continue;
            };
            let Ok(grant) = session.timed(client.lease_grant(TTL, None)).await else {
                session.reconnect().await;
                continue;
            };
            let lease = grant.id();
            let keeping = Arc::new(AtomicBool::new(true));
            let keeper = tokio::spawn(keep_alive(client.clone(), lease, keeping.clone()));
            let outcome = self
                .hold(ctx, &mut session, &mut client, lease, &keeping, &mut rng)
                .await;
            keeping.store(false, Ordering::Relaxed);
            keeper.abort();
            let _ = session.timed(client.lease_revoke(lease)).await;
            if outcome == Outcome::Unknown {
                session.crashed().await;
            }
        }
    }

    /// Acquire, write fenced and unfenced, release. Returns the last outcome that decides
    /// whether the session continues as the same process.
    async fn hold(
        &self,
        ctx: &Ctx,
        session: &mut Session,
        client: &mut Client,
        lease: i64,
        keeping: &AtomicBool,
        rng: &mut StdRng,
    ) -> Outcome {
        let invoke = ctx.now();
        let deadline = Instant::now() + ACQUIRE_WAIT;
        let token = loop {
            let txn = Txn::new()
                .when([Compare::create_revision(LOCK_KEY, CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    LOCK_KEY,
                    session.index.to_string(),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            match session.timed(client.txn(txn)).await {
                Ok(resp) if resp.succeeded() => {
                    break resp.header().map_or(0, |h| h.revision());
                }
                Ok(_) if Instant::now() < deadline && ctx.running() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(_) => {
                    let op = LockOp::Acquire { token: None };
                    self.recorder
                        .record(ctx, session.process, invoke, Outcome::Fail, op);
                    return Outcome::Fail;
                }
                Err(_) => {
                    let op = LockOp::Acquire { token: None };
                    self.recorder
                        .record(ctx, session.process, invoke, Outcome::Unknown, op);
                    return Outcome::Unknown;
                }
            }
        };
        let op = LockOp::Acquire { token: Some(token) };
        self.recorder
            .record(ctx, session.process, invoke, Outcome::Ok, op);

        if rng.random_bool(STALL_CHANCE) {
            // The whole client stalls, keep-alives included.
            keeping.store(false, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(TTL as u64 * 1500)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..200))).await;
        }
        for fenced in [true, false] {
            let value = self.values.fetch_add(1, Ordering::Relaxed) + 1;
            let key = format!("{}{:020}", if fenced { FENCED } else { UNFENCED }, value);
            let entry = format!("{token} {value}");
            let put = TxnOp::put(key, entry, None);
            let txn = if fenced {
                Txn::new()
                    .when([Compare::create_revision(LOCK_KEY, CompareOp::Equal, token)])
                    .and_then([put])
            } else {
                Txn::new().and_then([put])
            };
            let invoke = ctx.now();
            let outcome = match session.timed(client.txn(txn)).await {
                Ok(resp) if resp.succeeded() => Outcome::Ok,
                Ok(_) => Outcome::Fail,
                Err(_) => Outcome::Unknown,
            };
            let op = LockOp::Write {
                token,
                fenced,
                value,
            };
            self.recorder
                .record(ctx, session.process, invoke, outcome, op);
            if outcome == Outcome::Unknown {
                return outcome;
            }
        }
        let invoke = ctx.now();
        let release = Txn::new()
            .when([Compare::create_revision(LOCK_KEY, CompareOp::Equal, token)])
            .and_then([TxnOp::delete(LOCK_KEY, None)]);
        let outcome = match session.timed(client.txn(release)).await {
            Ok(resp) if resp.succeeded() => Outcome::Ok,
            Ok(_) => Outcome::Fail,
            Err(_) => Outcome::Unknown,
        };
        self.recorder.record(
            ctx,
            session.process,
            invoke,
            outcome,
            LockOp::Release { token },
        );
        outcome
    }
}

/// Keeps `lease` alive every TTL/4 while `keeping` is set.
async fn keep_alive(mut client: Client, lease: i64, keeping: Arc<AtomicBool>) {
    let Ok((mut keeper, mut stream)) = client.lease_keep_alive(lease).await else {
        return;
    };
    while keeping.load(Ordering::Relaxed) {
        if keeper.keep_alive().await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.message()).await;
        tokio::time::sleep(Duration::from_millis(TTL as u64 * 250)).await;
    }
}

/// The log under `prefix`, in the order the store committed it.
async fn read_log(client: &mut Client, prefix: &str) -> Result<Vec<LogEntry>> {
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Mod, SortOrder::Ascend);
    let resp = client.get(prefix, Some(options)).await?;
    Ok(resp
        .kvs()
        .iter()
        .map(|kv| {
            let text = String::from_utf8_lossy(kv.value());
            let mut parts = text.split_whitespace().map(|p| p.parse().unwrap_or(-1));
            let token = parts.next().unwrap_or(-1);
            let value = parts.next().unwrap_or(-1);
            LogEntry {
                token,
                value: u64::try_from(value).unwrap_or(u64::MAX),
            }
        })
        .collect())
}

impl Workload for Lock {
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            run_clients(ctx, |i| self.client(ctx, i)).await;
            Ok(())
        })
    }

    fn check<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Checked>> {
        Box::pin(async move {
            let url = ctx
                .endpoints
                .read()
                .ok()
                .and_then(|e| e.first().cloned())
                .unwrap_or_default();
            let mut client = connect(&url).await?;
            let fenced_log = read_log(&mut client, FENCED).await?;
            let unfenced_log = read_log(&mut client, UNFENCED).await?;
            let history = self.recorder.history();
            // The unfenced writes, checked as if they had been fenced: what the lock alone
            // guarantees.
            let unfenced: Vec<Op<LockOp>> = history
                .iter()
                .filter_map(|op| match op.value {
                    LockOp::Write { fenced: true, .. } => None,
                    LockOp::Write { token, value, .. } => Some(Op {
                        value: LockOp::Write {
                            token,
                            fenced: true,
                            value,
                        },
                        ..op.clone()
                    }),
                    _ => Some(op.clone()),
                })
                .collect();
            let mut unfenced_result = check::lock::check_fenced(&unfenced, &unfenced_log);
            unfenced_result.checker = "lock-unfenced (the same writes without the fence)";
            let results = vec![
                Graded::must_hold(check::lock::check_fenced(&history, &fenced_log)),
                Graded::informational(check::lock::check_mutex(&history)),
                Graded::informational(unfenced_result),
            ];
            Ok(Checked::of(&history, results))
        })
    }
}
