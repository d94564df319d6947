//! Recording what clients saw while faults were injected, and checking it afterwards.
//!
//! A test runs a [`WriteLoad`] (concurrent writers putting unique keys under a prefix, each
//! put recorded with its invocation and completion time and its outcome, and readers reading
//! the latest acknowledged key back linearizably, each read recorded too) and, optionally,
//! [`WatchRecorder`]s (watches that re-create themselves from the last seen revision + 1 when
//! their stream breaks, recording every event they are sent). After the faults it reads the
//! final state ([`linearizable_snapshot`], [`converged_snapshot`]) and runs the checkers in
//! [`check`] against the recorded [`History`] and [`WatchLog`]s.
//!
//! An acknowledged put has a known revision. A put that failed or timed out is *indeterminate*:
//! it may or may not have taken effect, and the checkers accept either, but a key present in
//! the store that no writer ever attempted is a violation.

pub mod check;
mod load;
mod snapshot;
mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use load::{LoadConfig, WriteLoad};
pub use snapshot::{converged_snapshot, linearizable_snapshot, read_prefix, Kv, Snapshot};
pub use watch::{EventKind, WatchLog, WatchRecorder, WatchedEvent};

/// How a recorded put ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The server acknowledged the put; `revision` is the response header's revision.
    Acked { revision: i64 },
    /// The put failed or timed out: it may or may not have taken effect.
    Indeterminate { error: String },
}

/// One put attempted by a writer.
#[derive(Debug, Clone)]
pub struct PutOp {
    /// Writer (client) number.
    pub client: usize,
    pub key: String,
    pub value: String,
    /// Client URL the put was sent to.
    pub endpoint: String,
    /// When the request was sent, relative to the start of the load.
    pub invoked: Duration,
    /// When the response (or the error) arrived, relative to the start of the load.
    pub completed: Duration,
    pub outcome: PutOutcome,
}

impl PutOp {
    /// The acknowledged revision, if the put was acknowledged.
    pub fn acked_revision(&self) -> Option<i64> {
        match self.outcome {
            PutOutcome::Acked { revision } => Some(revision),
            PutOutcome::Indeterminate { .. } => None,
        }
    }
}

impl fmt::Display for PutOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "put {}={} by client {} via {} [{:.3}s..{:.3}s] ",
            self.key,
            self.value,
            self.client,
            self.endpoint,
            self.invoked.as_secs_f64(),
            self.completed.as_secs_f64()
        )?;
        match &self.outcome {
            PutOutcome::Acked { revision } => write!(f, "acked at revision {revision}"),
            PutOutcome::Indeterminate { error } => write!(f, "indeterminate ({error})"),
        }
    }
}

/// How a recorded linearizable read ended. `revision` is the response header's revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    Found {
        revision: i64,
        mod_revision: i64,
        value: String,
    },
    Missing {
        revision: i64,
    },
    /// The read failed or timed out; it constrains nothing.
    Failed {
        error: String,
    },
}

/// One read of a reader: the key of the put acknowledged last when the read was invoked.
#[derive(Debug, Clone)]
pub struct ReadOp {
    /// Reader number.
    pub client: usize,
    pub key: String,
    pub endpoint: String,
    pub invoked: Duration,
    pub completed: Duration,
    pub outcome: ReadOutcome,
}

impl fmt::Display for ReadOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "get {} by reader {} via {} [{:.3}s..{:.3}s] ",
            self.key,
            self.client,
            self.endpoint,
            self.invoked.as_secs_f64(),
            self.completed.as_secs_f64()
        )?;
        match &self.outcome {
            ReadOutcome::Found {
                revision,
                mod_revision,
                value,
            } => write!(
                f,
                "found {value:?} (mod revision {mod_revision}) at revision {revision}"
            ),
            ReadOutcome::Missing { revision } => write!(f, "not found at revision {revision}"),
            ReadOutcome::Failed { error } => write!(f, "failed ({error})"),
        }
    }
}

/// Every put and read of a [`WriteLoad`], in no particular order across clients and in
/// invocation order per client.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub ops: Vec<PutOp>,
    pub reads: Vec<ReadOp>,
}

impl History {
    /// The acknowledged puts.
    pub fn acked(&self) -> impl Iterator<Item = &PutOp> {
        self.ops.iter().filter(|op| op.acked_revision().is_some())
    }

    /// The puts of one client, in the order it made them.
    pub fn of_client(&self, client: usize) -> impl Iterator<Item = &PutOp> {
        self.ops.iter().filter(move |op| op.client == client)
    }

    /// One line: how many puts, acknowledged, indeterminate, and the commonest errors.
    pub fn summary(&self) -> String {
        let acked = self.acked().count();
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for op in &self.ops {
            if let PutOutcome::Indeterminate { error } = &op.outcome {
                let short: String = error.chars().take(90).collect();
                *errors.entry(short).or_default() += 1;
            }
        }
        let mut errors: Vec<(String, usize)> = errors.into_iter().collect();
        errors.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let shown: Vec<String> = errors
            .iter()
            .take(4)
            .map(|(error, n)| format!("{n}x {error}"))
            .collect();
        let reads_ok = self
            .reads
            .iter()
            .filter(|r| !matches!(r.outcome, ReadOutcome::Failed { .. }))
            .count();
        format!(
            "{} puts, {acked} acknowledged, {} indeterminate{}; {} reads, {reads_ok} answered",
            self.ops.len(),
            self.ops.len() - acked,
            if shown.is_empty() {
                String::new()
            } else {
                format!(" [{}]", shown.join("; "))
            },
            self.reads.len()
        )
    }
}
