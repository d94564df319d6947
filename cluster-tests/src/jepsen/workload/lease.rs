//! Leases: each client grants a lease (TTL 2 s), puts a key attached to it, keeps it alive for a
//! random while, then either revokes it or lets it expire (probing with one more keep-alive
//! until the server says it is gone), and reads the key again. No key may be found after its
//! lease was revoked or reported gone.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use etcd_client::{Client, PutOptions};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::Rng;

use super::{run_clients, Checked, Ctx, Graded, Progress, Recorder, Session, Workload};
use crate::jepsen::check;
use crate::jepsen::history::{LeaseOp, Outcome};

const TTL: i64 = 2;

/// What one keep-alive round learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// The lease lives on.
    Renewed,
    /// The server said the lease is gone.
    Gone,
    /// The stream ended without an answer.
    NoAnswer,
    /// Timed out or broke: the session continues as a new process.
    Lost,
}

pub(super) struct Lease {
    recorder: Recorder<LeaseOp>,
}

/// Whether an error is the server's "requested lease not found" (gRPC NotFound): the request
/// was refused, so it certainly did not take effect.
fn not_found(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<etcd_client::Error>(),
        Some(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::NotFound
    )
}

impl Lease {
    pub(super) fn new(progress: Arc<Progress>) -> Lease {
        Lease {
            recorder: Recorder::new(progress),
        }
    }

    async fn client(&self, ctx: &Ctx, index: usize) {
        let mut rng = ctx.rng(index, 0x7f4a_7c15);
        let mut session = Session::new(index, ctx);
        let mut n = 0u64;
        while ctx.running() {
            session.pace().await;
            let Ok(mut client) = session.client().await else {
                session.reconnect().await;
                continue;
            };
            n += 1;
            let key = format!("lease/{index}-{n}");
            if self.cycle(ctx, &session, &mut client, &key, &mut rng).await == Outcome::Unknown {
                session.crashed().await;
            }
        }
    }

    fn record(
        &self,
        ctx: &Ctx,
        session: &Session,
        invoke: Duration,
        outcome: Outcome,
        op: LeaseOp,
    ) {
        self.recorder
            .record(ctx, session.process, invoke, outcome, op);
    }

    /// Grant, put, keep alive, revoke or expire, read. Returns the outcome that decides
    /// whether the session continues as the same process.
    async fn cycle(
        &self,
        ctx: &Ctx,
        session: &Session,
        client: &mut Client,
        key: &str,
        rng: &mut StdRng,
    ) -> Outcome {
        let invoke = ctx.now();
        let id = match session.timed(client.lease_grant(TTL, None)).await {
            Ok(resp) => resp.id(),
            Err(_) => {
                let op = LeaseOp::Grant { ttl: TTL, id: None };
                self.record(ctx, session, invoke, Outcome::Unknown, op);
                return Outcome::Unknown;
            }
        };
        let op = LeaseOp::Grant {
            ttl: TTL,
            id: Some(id),
        };
        self.record(ctx, session, invoke, Outcome::Ok, op);

        let invoke = ctx.now();
        let put = client.put(key, "v", Some(PutOptions::new().with_lease(id)));
        let outcome = match session.timed(put).await {
            Ok(_) => Outcome::Ok,
            Err(e) if not_found(&e) => Outcome::Fail,
            Err(_) => Outcome::Unknown,
        };
        let op = LeaseOp::Put {
            key: key.to_owned(),
            id,
        };
        self.record(ctx, session, invoke, outcome, op);
        if outcome == Outcome::Unknown {
            return outcome;
        }

        let rounds = rng.random_range(0..6);
        for _ in 0..rounds {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if self.keep_alive(ctx, session, client, id).await == Probe::Lost {
                return Outcome::Unknown;
            }
        }
        if rng.random_bool(0.5) {
            let invoke = ctx.now();
            let outcome = match session.timed(client.lease_revoke(id)).await {
                Ok(_) => Outcome::Ok,
                Err(e) if not_found(&e) => Outcome::Fail,
                Err(_) => Outcome::Unknown,
            };
            self.record(ctx, session, invoke, outcome, LeaseOp::Revoke { id });
        } else {
            // Let it expire; probe until the server says it is gone (or give up).
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(TTL as u64 * 600)).await;
                match self.keep_alive(ctx, session, client, id).await {
                    Probe::Gone => break,
                    Probe::Lost => return Outcome::Unknown,
                    Probe::Renewed | Probe::NoAnswer => {}
                }
            }
        }
        for _ in 0..3 {
            let invoke = ctx.now();
            let (outcome, found) = match session.timed(client.get(key, None)).await {
                Ok(resp) => (Outcome::Ok, Some(!resp.kvs().is_empty())),
                Err(_) => (Outcome::Unknown, None),
            };
            let op = LeaseOp::Read {
                key: key.to_owned(),
                found,
            };
            self.record(ctx, session, invoke, outcome, op);
            if outcome == Outcome::Unknown {
                return outcome;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Outcome::Ok
    }

    /// One keep-alive round, recorded.
    async fn keep_alive(
        &self,
        ctx: &Ctx,
        session: &Session,
        client: &mut Client,
        id: i64,
    ) -> Probe {
        let invoke = ctx.now();
        let round = async {
            let (mut keeper, mut stream) = client.lease_keep_alive(id).await?;
            keeper.keep_alive().await?;
            let resp = stream.message().await?;
            Ok::<_, etcd_client::Error>(resp.map(|r| r.ttl()))
        };
        let (outcome, ttl) = match session.timed(round).await {
            Ok(Some(ttl)) => (Outcome::Ok, Some(ttl)),
            Ok(None) => (Outcome::Fail, None),
            Err(e) if not_found(&e) => (Outcome::Ok, Some(0)),
            Err(_) => (Outcome::Unknown, None),
        };
        self.record(
            ctx,
            session,
            invoke,
            outcome,
            LeaseOp::KeepAlive { id, ttl },
        );
        match (outcome, ttl) {
            (Outcome::Ok, Some(ttl)) if ttl > 0 => Probe::Renewed,
            (Outcome::Ok, _) => Probe::Gone,
            (Outcome::Fail, _) => Probe::NoAnswer,
            (Outcome::Unknown, _) => Probe::Lost,
        }
    }
}

impl Workload for Lease {
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            run_clients(ctx, |i| self.client(ctx, i)).await;
            Ok(())
        })
    }

    fn check<'a>(&'a self, _ctx: &'a Ctx) -> BoxFuture<'a, Result<Checked>> {
        Box::pin(async move {
            let history = self.recorder.history();
            let result = check::lease::check(&history);
            Ok(Checked::of(&history, vec![Graded::must_hold(result)]))
        })
    }
}
