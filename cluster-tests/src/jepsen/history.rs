//! What the suite's clients record: one [`Op`] per operation, with when it was invoked, when it
//! completed and how it ended, and the workload-specific request and response in `value`.
//!
//! An operation that timed out or whose connection broke is [`Outcome::Unknown`]: it may have
//! taken effect at any moment after its invocation (or never), and the checkers allow both.
//! [`Outcome::Fail`] means the operation certainly did not take effect (the server refused it
//! before proposing it, or a transaction's comparison failed).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged: it took effect, and `value` holds what it returned.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Timed out or lost: it may or may not have taken effect.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op<V> {
    /// The client (Jepsen's "process") that ran it. A client runs one operation at a time;
    /// after an [`Outcome::Unknown`] it continues as a fresh process number, as in Jepsen.
    pub process: usize,
    /// When the request was sent, from the start of the run.
    pub invoke: Duration,
    /// When the answer (or the error) arrived, from the start of the run.
    pub complete: Duration,
    pub outcome: Outcome,
    /// The request, and for [`Outcome::Ok`] the response.
    pub value: V,
}

/// The register workload: single-key reads, writes and compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterOp {
    pub key: u64,
    pub f: RegisterF,
}

/// What a [`RegisterOp`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegisterF {
    /// A linearizable get; `None` when the key did not exist (or, unless the outcome is
    /// [`Outcome::Ok`], when nothing was read).
    Read(Option<u64>),
    /// A put of the value.
    Write(u64),
    /// A transaction: if the key's value is `from`, put `to`. [`Outcome::Fail`] when the
    /// comparison failed.
    Cas { from: u64, to: u64 },
}

/// The list-append workload: transactions of appends and reads over a few keys, each key's
/// value a list of unique integers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOp {
    pub mops: Vec<Mop>,
}

/// One micro-operation of a [`TxnOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mop {
    /// Append `value` (unique over the whole history for this key) to the key's list.
    Append { key: u64, value: u64 },
    /// Read the key's whole list; `None` unless the transaction's outcome is [`Outcome::Ok`].
    Read { key: u64, values: Option<Vec<u64>> },
}

/// A history of one workload.
pub type History<V> = Vec<Op<V>>;
