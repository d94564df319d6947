//! List-append transactions: each transaction reads and appends to a few keys whose values are
//! lists of unique integers. A transaction reads every key it touches in one read-only Txn
//! (one revision), then commits its appends in a Txn guarded by the mod revision of every key it
//! touched; if a guard fails it did not happen. Checked Elle-style for strict serializability.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::Rng;

use super::{run_clients, Checked, Ctx, Graded, Progress, Recorder, Session, Workload};
use crate::jepsen::check;
use crate::jepsen::history::{Mop, Outcome, TxnOp as Transaction};

/// Keys in play at once; a key retires after [`APPENDS_PER_KEY`] appends.
const ACTIVE_KEYS: u64 = 8;
const APPENDS_PER_KEY: u64 = 60;
const MAX_MOPS: usize = 4;

pub(super) struct Append {
    recorder: Recorder<Transaction>,
    /// Appends handed out per active key slot (values are unique per key).
    counters: Vec<AtomicU64>,
}

fn key_name(key: u64) -> String {
    format!("append/{key}")
}

fn encode(list: &[u64]) -> String {
    list.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A stored list; an element that is not an integer becomes `u64::MAX` (never appended, so the
/// checker reports it).
fn decode(bytes: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(bytes)
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(u64::MAX))
        .collect()
}

impl Append {
    pub(super) fn new(progress: Arc<Progress>) -> Append {
        Append {
            recorder: Recorder::new(progress),
            counters: (0..ACTIVE_KEYS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A random transaction: 1..=MAX_MOPS reads and appends over the active keys.
    fn generate(&self, rng: &mut StdRng) -> Vec<Mop> {
        let n = rng.random_range(1..=MAX_MOPS);
        (0..n)
            .map(|_| {
                let slot = rng.random_range(0..ACTIVE_KEYS);
                let count = self.counters[slot as usize].load(Ordering::Relaxed);
                let key = slot + ACTIVE_KEYS * (count / APPENDS_PER_KEY);
                if rng.random_bool(0.5) {
                    Mop::Read { key, values: None }
                } else {
                    let n = self.counters[slot as usize].fetch_add(1, Ordering::Relaxed);
                    let key = slot + ACTIVE_KEYS * (n / APPENDS_PER_KEY);
                    Mop::Append { key, value: n + 1 }
                }
            })
            .collect()
    }

    async fn client(&self, ctx: &Ctx, index: usize) {
        let mut rng = ctx.rng(index, 0x51_7cc1);
        let mut session = Session::new(index, ctx);
        while ctx.running() {
            session.pace().await;
            let mops = self.generate(&mut rng);
            let Ok(client) = session.client().await else {
                session.reconnect().await;
                continue;
            };
            let invoke = ctx.now();
            let (outcome, mops) = match Self::transact(&session, client, mops.clone()).await {
                Ok(Some(done)) => (Outcome::Ok, done),
                Ok(None) => (Outcome::Fail, mops),
                Err(_) => (Outcome::Unknown, mops),
            };
            self.recorder
                .record(ctx, session.process, invoke, outcome, Transaction { mops });
            if outcome == Outcome::Unknown {
                session.crashed().await;
            }
        }
    }

    /// Runs one transaction: `Ok(Some(mops with reads filled))` if it committed, `Ok(None)` if
    /// a guard failed (nothing written), `Err` if the outcome is unknown.
    async fn transact(
        session: &Session,
        mut client: etcd_client::Client,
        mut mops: Vec<Mop>,
    ) -> Result<Option<Vec<Mop>>> {
        let mut keys: Vec<u64> = mops
            .iter()
            .map(|m| match m {
                Mop::Append { key, .. } | Mop::Read { key, .. } => *key,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        // One read-only Txn: every key at one revision.
        let read = Txn::new().and_then(
            keys.iter()
                .map(|k| TxnOp::get(key_name(*k), None))
                .collect::<Vec<_>>(),
        );
        let resp = session.timed(client.txn(read)).await?;
        let mut lists: BTreeMap<u64, (Vec<u64>, i64)> = BTreeMap::new();
        for (key, op) in keys.iter().zip(resp.op_responses()) {
            let (list, mod_revision) = match op {
                TxnOpResponse::Get(get) => get.kvs().first().map_or((Vec::new(), 0), |kv| {
                    (decode(kv.value()), kv.mod_revision())
                }),
                _ => (Vec::new(), 0),
            };
            lists.insert(*key, (list, mod_revision));
        }
        let mut wrote = false;
        for mop in &mut mops {
            match mop {
                Mop::Read { key, values } => {
                    *values = lists.get(key).map(|(l, _)| l.clone());
                }
                Mop::Append { key, value } => {
                    if let Some((list, _)) = lists.get_mut(key) {
                        list.push(*value);
                        wrote = true;
                    }
                }
            }
        }
        if !wrote {
            return Ok(Some(mops));
        }
        let guards: Vec<Compare> = lists
            .iter()
            .map(|(k, (_, rev))| Compare::mod_revision(key_name(*k), CompareOp::Equal, *rev))
            .collect();
        let appended: Vec<u64> = mops
            .iter()
            .filter_map(|m| match m {
                Mop::Append { key, .. } => Some(*key),
                Mop::Read { .. } => None,
            })
            .collect();
        let puts: Vec<TxnOp> = lists
            .iter()
            .filter(|(k, _)| appended.contains(k))
            .map(|(k, (list, _))| TxnOp::put(key_name(*k), encode(list), None))
            .collect();
        let commit = Txn::new().when(guards).and_then(puts);
        let resp = session.timed(client.txn(commit)).await?;
        Ok(resp.succeeded().then_some(mops))
    }
}

impl Workload for Append {
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            run_clients(ctx, |i| self.client(ctx, i)).await;
            Ok(())
        })
    }

    fn check<'a>(&'a self, _ctx: &'a Ctx) -> BoxFuture<'a, Result<Checked>> {
        Box::pin(async move {
            let history = self.recorder.history();
            let result = check::append::check(&history);
            Ok(Checked::of(&history, vec![Graded::must_hold(result)]))
        })
    }
}
