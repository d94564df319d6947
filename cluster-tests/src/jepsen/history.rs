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

/// One event a watcher was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The event's revision (the key's mod revision; for a delete, the deleting revision).
    pub revision: i64,
    pub key: String,
    /// `Some(value)` for a put, `None` for a delete.
    pub value: Option<String>,
    /// Which watch response of this watcher carried it (counting from 0 over all of the
    /// watcher's streams): the events of one revision must arrive in one response.
    pub response: u64,
}

/// Everything one watcher saw. When its stream breaks, the watcher re-creates it from the
/// revision after the last event it saw (`restarts` records when and from where).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchLog {
    pub watcher: usize,
    /// The watched key prefix.
    pub prefix: String,
    /// The revision the first stream started from.
    pub start_revision: i64,
    /// `(when, from revision)` of each re-created stream.
    pub restarts: Vec<(Duration, i64)>,
    pub events: Vec<WatchEvent>,
}

/// The lock workload: a mutex built from a lease and a key created only if absent
/// (`create_revision == 0`), whose create revision is the holder's fencing token; while it
/// holds the lock a client appends `value` to a shared log, either fenced (a transaction that
/// only applies while the lock key's create revision still equals the token) or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockOp {
    /// `token` is the lock key's create revision when acquired (`None` unless Ok).
    Acquire { token: Option<i64> },
    /// Release of the lock held with `token` (a delete guarded by the create revision).
    Release { token: i64 },
    /// An append of `value` to the shared log while holding `token`; fenced or not.
    Write { token: i64, fenced: bool, value: u64 },
}

/// One entry of the lock workload's shared log, as read back at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub token: i64,
    pub value: u64,
}

/// The lease workload: keys attached to leases that are kept alive for a while, then revoked or
/// left to expire; reads check that no key outlives its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseOp {
    /// A lease with `ttl` seconds; `id` is known once Ok.
    Grant { ttl: i64, id: Option<i64> },
    /// A put of `key` attached to lease `id`.
    Put { key: String, id: i64 },
    /// One keep-alive round; `ttl` is the TTL the server answered (`Some(0)` or less: the
    /// lease is gone).
    KeepAlive { id: i64, ttl: Option<i64> },
    /// A revoke of lease `id`.
    Revoke { id: i64 },
    /// A linearizable get of `key`; `found` is known once Ok.
    Read { key: String, found: Option<bool> },
}
