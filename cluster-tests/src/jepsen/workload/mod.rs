//! Workloads: concurrent clients that drive the store (or the API) and record every operation,
//! then the final reads and the checkers for what they recorded. One file per workload behind
//! the [`Workload`] trait.

mod api;
mod append;
mod client;
mod lease;
mod lock;
mod register;
mod watch;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

pub use client::Session;

use super::apihosts::ApiHosts;
use super::check::CheckResult;
use super::history::{Op, Outcome};
use super::hosts::Endpoints;

/// What every workload's clients share.
#[derive(Clone)]
pub struct Ctx {
    /// The members' client URLs (current through membership changes).
    pub endpoints: Endpoints,
    /// Number of concurrent clients.
    pub clients: usize,
    /// Operations per second over all clients (0: as fast as they go).
    pub rate: f64,
    /// Time zero of the history.
    pub start: Instant,
    /// When the clients stop invoking new operations.
    pub until: Instant,
    pub seed: u64,
    pub progress: Arc<Progress>,
    /// The apiservers, for workloads that go through the API ([`Workload::apiservers`]).
    pub api: Option<Arc<ApiHosts>>,
}

impl Ctx {
    /// The pause between two operations of one client that keeps the total at `rate`.
    pub fn pace(&self) -> Duration {
        if self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(self.clients as f64 / self.rate)
        }
    }

    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn running(&self) -> bool {
        Instant::now() < self.until
    }

    /// Client `client`'s random numbers: from the run's seed, distinct per client and per
    /// workload (`salt`), so a seed repeats the same operations.
    pub fn rng(&self, client: usize, salt: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ ((client as u64 + 1).wrapping_mul(salt)))
    }
}

/// Operations completed so far, by outcome (for the progress line).
#[derive(Default)]
pub struct Progress {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub unknown: AtomicU64,
}

impl Progress {
    fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::Fail => &self.fail,
            Outcome::Unknown => &self.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(ok, fail, unknown)`.
    pub fn read(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.unknown.load(Ordering::Relaxed),
        )
    }
}

/// A history being recorded by many clients at once.
pub struct Recorder<V> {
    ops: Mutex<Vec<Op<V>>>,
    progress: Arc<Progress>,
}

impl<V: Clone> Recorder<V> {
    pub fn new(progress: Arc<Progress>) -> Recorder<V> {
        Recorder {
            ops: Mutex::new(Vec::new()),
            progress,
        }
    }

    /// Records one completed operation (its completion time is now).
    pub fn record(&self, ctx: &Ctx, process: usize, invoke: Duration, outcome: Outcome, value: V) {
        self.progress.count(outcome);
        let op = Op {
            process,
            invoke,
            complete: ctx.now(),
            outcome,
            value,
        };
        if let Ok(mut ops) = self.ops.lock() {
            ops.push(op);
        }
    }

    /// Everything recorded, sorted by invocation time.
    pub fn history(&self) -> Vec<Op<V>> {
        let mut ops = self.ops.lock().map(|o| o.clone()).unwrap_or_default();
        ops.sort_by_key(|op| op.invoke);
        ops
    }
}

/// Invocation, completion and outcome of one operation, for the plots.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timing {
    pub invoke: Duration,
    pub complete: Duration,
    pub outcome: Outcome,
}

/// The timings of a history.
pub fn timings<V>(ops: &[Op<V>]) -> Vec<Timing> {
    ops.iter()
        .map(|op| Timing {
            invoke: op.invoke,
            complete: op.complete,
            outcome: op.outcome,
        })
        .collect()
}

/// What a workload hands the report once checked.
pub struct Checked {
    pub results: Vec<Graded>,
    pub timings: Vec<Timing>,
    /// The whole history as JSON lines, kept with the report.
    pub history_jsonl: String,
}

impl Checked {
    /// The checks of a history, with its timings and its JSON lines.
    pub fn of<V: Serialize>(history: &[Op<V>], results: Vec<Graded>) -> Checked {
        Checked {
            results,
            timings: timings(history),
            history_jsonl: jsonl(history),
        }
    }
}

/// Runs `client(i)` for every client number at once, until they all return.
pub async fn run_clients<F, Fut>(ctx: &Ctx, client: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures::future::join_all((0..ctx.clients).map(client)).await;
}

/// One checker's result, and whether it must hold.
pub struct Graded {
    pub result: CheckResult,
    /// Informational checks report what they find (e.g. what a lock without fencing does)
    /// without failing the run.
    pub informational: bool,
}

impl Graded {
    pub fn must_hold(result: CheckResult) -> Graded {
        Graded {
            result,
            informational: false,
        }
    }

    pub fn informational(result: CheckResult) -> Graded {
        Graded {
            result,
            informational: true,
        }
    }
}

/// Serialises a history as one JSON object per line.
pub fn jsonl<T: Serialize>(items: &[T]) -> String {
    let mut out = String::new();
    for item in items {
        if let Ok(line) = serde_json::to_string(item) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// A workload: its clients, then its final reads and checks.
pub trait Workload: Send + Sync {
    /// How many apiservers the workload talks to (started on the store's network before
    /// [`Workload::run`]); none for the store workloads.
    fn apiservers(&self) -> usize {
        0
    }

    /// Runs the clients until `ctx.until`.
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<()>>;

    /// After the faults are healed and the cluster recovered: final reads and the checkers.
    fn check<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Checked>>;
}

/// The workloads a run can choose (`WORKLOAD=register`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    Register,
    Append,
    Watch,
    Lock,
    Lease,
    Api,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Register,
        Kind::Append,
        Kind::Watch,
        Kind::Lock,
        Kind::Lease,
        Kind::Api,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Append => "append",
            Kind::Watch => "watch",
            Kind::Lock => "lock",
            Kind::Lease => "lease",
            Kind::Api => "api",
        }
    }

    /// A fresh workload of this kind.
    pub fn build(self, progress: Arc<Progress>) -> Box<dyn Workload> {
        match self {
            Kind::Register => Box::new(register::Register::new(progress)),
            Kind::Append => Box::new(append::Append::new(progress)),
            Kind::Watch => Box::new(watch::Watch::new(progress)),
            Kind::Lock => Box::new(lock::Lock::new(progress)),
            Kind::Lease => Box::new(lease::Lease::new(progress)),
            Kind::Api => Box::new(api::ApiWorkload::new(progress)),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Kind> {
        match Kind::ALL.iter().find(|k| k.name() == s.trim()) {
            Some(k) => Ok(*k),
            None => bail!(
                "unknown workload {s:?} (known: {})",
                Kind::ALL.map(Kind::name).join(", ")
            ),
        }
    }
}
