//! Register / CAS: clients read, write and compare-and-set small integers on a few keys at a
//! time (every key gets a bounded number of operations, then the clients move on to a fresh
//! one, so the linearizability search stays small), checked for linearizability per key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{jsonl, timings, Checked, Ctx, Progress, Recorder, Session, Graded, Workload};
use crate::jepsen::check;
use crate::jepsen::history::{Outcome, RegisterF, RegisterOp};

/// Operations on one key before its clients move to the next.
const OPS_PER_KEY: u64 = 120;
/// Values written are drawn from 0..VALUES, so compare-and-set sometimes succeeds.
const VALUES: u64 = 5;

pub(super) struct Register {
    recorder: Recorder<RegisterOp>,
    /// Operations started on each slot's current key.
    slots: Vec<AtomicU64>,
}

impl Register {
    pub(super) fn new(progress: Arc<Progress>) -> Register {
        Register {
            recorder: Recorder::new(progress),
            slots: (0..64).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    async fn client(&self, ctx: &Ctx, index: usize) {
        let mut rng = StdRng::seed_from_u64(ctx.seed ^ (index as u64 + 1) * 0x9e37_79b9);
        let slots = (ctx.clients / 2).clamp(1, self.slots.len());
        let slot = index % slots;
        let mut session = Session::new(index, ctx);
        while ctx.running() {
            session.pace().await;
            let generation = self.slots[slot].fetch_add(1, Ordering::Relaxed) / OPS_PER_KEY;
            let key = slot as u64 + slots as u64 * generation;
            let f = match rng.random_range(0..4) {
                0 | 1 => RegisterF::Read(None),
                2 => RegisterF::Write(rng.random_range(0..VALUES)),
                _ => RegisterF::Cas {
                    from: rng.random_range(0..VALUES),
                    to: rng.random_range(0..VALUES),
                },
            };
            let Ok(client) = session.client().await else {
                session.reconnect().await;
                continue;
            };
            let invoke = ctx.now();
            let (outcome, f) = self.invoke(&session, client, key, f).await;
            self.recorder
                .record(ctx, session.process, invoke, outcome, RegisterOp { key, f });
            if outcome == Outcome::Unknown {
                session.crashed().await;
            }
        }
    }

    async fn invoke(
        &self,
        session: &Session,
        mut client: etcd_client::Client,
        key: u64,
        f: RegisterF,
    ) -> (Outcome, RegisterF) {
        let name = format!("register/{key}");
        match f {
            RegisterF::Read(_) => match session.timed(client.get(name, None)).await {
                Ok(resp) => {
                    let value = resp
                        .kvs()
                        .first()
                        .map(|kv| parse(kv.value()));
                    (Outcome::Ok, RegisterF::Read(value))
                }
                Err(_) => (Outcome::Unknown, RegisterF::Read(None)),
            },
            RegisterF::Write(v) => {
                match session.timed(client.put(name, v.to_string(), None)).await {
                    Ok(_) => (Outcome::Ok, f),
                    Err(_) => (Outcome::Unknown, f),
                }
            }
            RegisterF::Cas { from, to } => {
                let txn = Txn::new()
                    .when([Compare::value(
                        name.clone(),
                        CompareOp::Equal,
                        from.to_string(),
                    )])
                    .and_then([TxnOp::put(name, to.to_string(), None)]);
                match session.timed(client.txn(txn)).await {
                    Ok(resp) if resp.succeeded() => (Outcome::Ok, f),
                    Ok(_) => (Outcome::Fail, f),
                    Err(_) => (Outcome::Unknown, f),
                }
            }
        }
    }
}

/// A stored value as the register's integer; anything else becomes `u64::MAX`, a value no
/// client wrote, which the checker then reports.
fn parse(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

impl Workload for Register {
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            futures::future::join_all((0..ctx.clients).map(|i| self.client(ctx, i))).await;
            Ok(())
        })
    }

    fn check<'a>(&'a self, _ctx: &'a Ctx) -> BoxFuture<'a, Result<Checked>> {
        Box::pin(async move {
            let history = self.recorder.history();
            let result = check::register::check(&history);
            Ok(Checked {
                results: vec![Graded::must_hold(result)],
                timings: timings(&history),
                history_jsonl: jsonl(&history),
            })
        })
    }
}
