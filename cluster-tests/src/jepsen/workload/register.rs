//! Register / CAS: clients read, write and compare-and-set integers on a few keys at a time
//! (every key gets a bounded number of operations, then the clients move on to a fresh one, so
//! the linearizability search stays small), checked for linearizability per key. Every value
//! written is unique; a compare-and-set expects the value its client last read of the key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use futures::future::BoxFuture;
use rand::Rng;

use super::{run_clients, Checked, Ctx, Graded, Progress, Recorder, Session, Workload};
use crate::jepsen::check;
use crate::jepsen::history::{Outcome, RegisterF, RegisterOp};

/// Operations on one key before its clients move to the next.
const OPS_PER_KEY: u64 = 120;

pub(super) struct Register {
    recorder: Recorder<RegisterOp>,
    /// Operations started on each slot's current key.
    slots: Vec<AtomicU64>,
    /// The next value to write (unique over the run).
    values: AtomicU64,
}

impl Register {
    pub(super) fn new(progress: Arc<Progress>) -> Register {
        Register {
            recorder: Recorder::new(progress),
            slots: (0..64).map(|_| AtomicU64::new(0)).collect(),
            values: AtomicU64::new(1),
        }
    }

    async fn client(&self, ctx: &Ctx, index: usize) {
        let mut rng = ctx.rng(index, 0x9e37_79b9);
        let slots = (ctx.clients / 2).clamp(1, self.slots.len());
        let slot = index % slots;
        let mut session = Session::new(index, ctx);
        // The value this client last read of each key.
        let mut last_read: HashMap<u64, u64> = HashMap::new();
        while ctx.running() {
            session.pace().await;
            let generation = self.slots[slot].fetch_add(1, Ordering::Relaxed) / OPS_PER_KEY;
            let key = slot as u64 + slots as u64 * generation;
            let fresh = || self.values.fetch_add(1, Ordering::Relaxed);
            let f = match (rng.random_range(0..4), last_read.get(&key)) {
                (2, _) => RegisterF::Write(fresh()),
                (3, Some(&from)) => RegisterF::Cas { from, to: fresh() },
                _ => RegisterF::Read(None),
            };
            let Ok(client) = session.client().await else {
                session.reconnect().await;
                continue;
            };
            let invoke = ctx.now();
            let (outcome, f) = self.invoke(&session, client, key, f).await;
            if let (Outcome::Ok, RegisterF::Read(Some(v))) = (outcome, &f) {
                last_read.insert(key, *v);
            }
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
                    let value = resp.kvs().first().map(|kv| parse(kv.value()));
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
            run_clients(ctx, |i| self.client(ctx, i)).await;
            Ok(())
        })
    }

    fn check<'a>(&'a self, _ctx: &'a Ctx) -> BoxFuture<'a, Result<Checked>> {
        Box::pin(async move {
            let history = self.recorder.history();
            let result = check::register::check(&history);
            Ok(Checked::of(&history, vec![Graded::must_hold(result)]))
        })
    }
}
