//! Checkers for the histories in [`super::history`]: pure functions from a recorded history
//! (and, where the workload needs it, the final state read back at the end) to a
//! [`CheckResult`].
//!
//! - [`register::check`] (register workload): linearizability of single-key read / write /
//!   compare-and-set, key by key (Wing–Gong search with memoisation);
//! - [`append::check`] (list-append workload): strict serializability of transactions,
//!   Elle-style (G0, G1a/b/c, G-single, G2 and their realtime variants);
//! - [`watch::check`] (watch workload): each watcher saw exactly the committed events under its
//!   prefix, in order, once, one revision per response;
//! - [`lock::check_mutex`] and [`lock::check_fenced`] (lock workload): two holders at once
//!   (informative for an unfenced lock); fenced writes never interleave and none is lost,
//!   duplicated or invented;
//! - [`lease::check`] (lease workload): no key is read after its lease was revoked or reported
//!   gone.
//!
//! A result is [`Verdict::Valid`] when nothing was found, [`Verdict::Invalid`] when at least one
//! [`Anomaly`] was found, and [`Verdict::Unknown`] when the checker could not decide part of the
//! history (for instance a register key whose search exceeded its budget); what could not be
//! decided is listed in [`CheckResult::undecided`], never as an anomaly.

pub mod api_watch;
pub mod append;
mod append_graph;
pub mod lease;
pub mod lock;
pub mod register;
mod register_search;
pub mod watch;

#[cfg(test)]
mod tests_support;

pub use append::check as check_append;
pub use lease::check as check_lease;
pub use lock::{check_fenced, check_mutex};
pub use register::{check as check_register, check_with_budget as check_register_with_budget};
pub use watch::check as check_watch;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::history::{Op, Outcome};

/// How many anomalies [`CheckResult`]'s `Display` prints in full.
const SHOWN: usize = 20;

/// What kind of anomaly a checker found. Tests and reports match on this, never on the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AnomalyKind {
    /// Register: no linearization of the key's operations exists.
    NonLinearizable,
    /// A read returned a value no operation (that could have taken effect) ever wrote.
    UnwrittenValueRead,
    /// List-append: one read holds the same element twice.
    DuplicateElements,
    /// List-append: two reads of a key are not prefixes of one order.
    IncompatibleOrder,
    /// List-append: a transaction's read does not reflect its own earlier appends.
    InternalInconsistency,
    /// List-append: a read saw an element appended by a failed transaction.
    G1a,
    /// List-append: a read ended on an element that was not its writer's last append to the key.
    G1b,
    /// A cycle of write-write dependencies.
    G0,
    /// A cycle of write-write and write-read dependencies.
    G1c,
    /// A cycle with exactly one read-write anti-dependency.
    GSingle,
    /// A cycle with two or more read-write anti-dependencies.
    G2,
    /// [`AnomalyKind::G0`] closed only with realtime edges: not strictly serializable.
    G0Realtime,
    /// [`AnomalyKind::G1c`] closed only with realtime edges.
    G1cRealtime,
    /// [`AnomalyKind::GSingle`] closed only with realtime edges.
    GSingleRealtime,
    /// [`AnomalyKind::G2`] closed only with realtime edges.
    G2Realtime,
    /// Watch: an event the watcher should have seen is missing.
    MissingEvent,
    /// Watch: an event was delivered twice.
    DuplicateEvent,
    /// Watch: an event arrived after an event of a later revision.
    ReorderedEvents,
    /// Watch: an event that is not in the committed history (or has another value there).
    UnexpectedEvent,
    /// Watch: the events of one revision arrived in more than one response.
    SplitRevision,
    /// Lock: two clients held the lock at the same time.
    TwoHolders,
    /// Lock: a lower token's fenced write follows a higher token's in the log.
    InterleavedFencedWrites,
    /// An acknowledged write is missing from the final state.
    LostWrite,
    /// A write appears more than once in the final state.
    DuplicateWrite,
    /// A write whose operation failed appears in the final state.
    FailedWriteApplied,
    /// The final state holds a write no client attempted.
    PhantomWrite,
    /// Lease: a key was read after its lease was revoked or reported gone.
    KeyOutlivedLease,
    /// Lease: a put attached to a lease already revoked or reported gone was acknowledged.
    PutWithDeadLease,
}

impl AnomalyKind {
    /// The anomaly's name as Jepsen and Elle write it (`G-single-realtime`, `lost-write`, ...).
    pub fn name(self) -> &'static str {
        use AnomalyKind::*;
        match self {
            NonLinearizable => "nonlinearizable",
            UnwrittenValueRead => "unwritten-value-read",
            DuplicateElements => "duplicate-elements",
            IncompatibleOrder => "incompatible-order",
            InternalInconsistency => "internal",
            G1a => "G1a",
            G1b => "G1b",
            G0 => "G0",
            G1c => "G1c",
            GSingle => "G-single",
            G2 => "G2",
            G0Realtime => "G0-realtime",
            G1cRealtime => "G1c-realtime",
            GSingleRealtime => "G-single-realtime",
            G2Realtime => "G2-realtime",
            MissingEvent => "missing-event",
            DuplicateEvent => "duplicate-event",
            ReorderedEvents => "reordered-events",
            UnexpectedEvent => "unexpected-event",
            SplitRevision => "split-revision",
            TwoHolders => "two-holders",
            InterleavedFencedWrites => "interleaved-fenced-writes",
            LostWrite => "lost-write",
            DuplicateWrite => "duplicate-write",
            FailedWriteApplied => "failed-write-applied",
            PhantomWrite => "phantom-write",
            KeyOutlivedLease => "key-outlived-lease",
            PutWithDeadLease => "put-with-dead-lease",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One anomaly: what it is, a sentence about it, and the operations involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub description: String,
    /// The operations involved, one per line, as [`describe_op`] prints them.
    pub ops: Vec<String>,
}

/// Whether a history passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Valid,
    Invalid,
    /// Nothing was found, but part of the history could not be decided.
    Unknown,
}

/// What one checker found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub checker: &'static str,
    pub anomalies: Vec<Anomaly>,
    /// Parts of the history the checker could not decide (e.g. "key 3: search budget of ...
    /// states exceeded"): not anomalies, but the history is not known to be valid either.
    pub undecided: Vec<String>,
    /// Counts worth reporting (operations checked, keys, search states, ...).
    pub stats: BTreeMap<String, u64>,
}

impl CheckResult {
    pub fn new(checker: &'static str) -> CheckResult {
        CheckResult {
            checker,
            anomalies: Vec::new(),
            undecided: Vec::new(),
            stats: BTreeMap::new(),
        }
    }

    /// Invalid if any anomaly was found, else Unknown if anything is undecided, else Valid.
    pub fn verdict(&self) -> Verdict {
        if !self.anomalies.is_empty() {
            Verdict::Invalid
        } else if !self.undecided.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Valid
        }
    }

    /// True only when the verdict is [`Verdict::Valid`].
    pub fn valid(&self) -> bool {
        self.verdict() == Verdict::Valid
    }

    /// True if an anomaly of `kind` was found.
    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.anomalies.iter().any(|a| a.kind == kind)
    }

    /// How many anomalies of each kind were found.
    pub fn counts(&self) -> BTreeMap<AnomalyKind, usize> {
        let mut counts = BTreeMap::new();
        for anomaly in &self.anomalies {
            *counts.entry(anomaly.kind).or_insert(0) += 1;
        }
        counts
    }

    pub(crate) fn push(&mut self, kind: AnomalyKind, description: String, ops: Vec<String>) {
        self.anomalies.push(Anomaly {
            kind,
            description,
            ops,
        });
    }

    pub(crate) fn stat(&mut self, name: &str, value: u64) {
        *self.stats.entry(name.to_string()).or_insert(0) += value;
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict() {
            Verdict::Valid => "valid",
            Verdict::Invalid => "INVALID",
            Verdict::Unknown => "unknown (could not decide)",
        };
        writeln!(f, "{}: {verdict}", self.checker)?;
        if !self.stats.is_empty() {
            let stats: Vec<String> = self.stats.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "  stats: {}", stats.join(" "))?;
        }
        if !self.anomalies.is_empty() {
            let counts: Vec<String> = self
                .counts()
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            writeln!(f, "  anomalies: {}", counts.join(" "))?;
        }
        for anomaly in self.anomalies.iter().take(SHOWN) {
            writeln!(f, "  - {}: {}", anomaly.kind, anomaly.description)?;
            for op in &anomaly.ops {
                writeln!(f, "      {op}")?;
            }
        }
        if self.anomalies.len() > SHOWN {
            writeln!(f, "  ... and {} more", self.anomalies.len() - SHOWN)?;
        }
        for undecided in &self.undecided {
            writeln!(f, "  undecided: {undecided}")?;
        }
        Ok(())
    }
}

/// One operation on one line: process, invoke..complete in seconds, outcome and value.
pub fn describe_op<V: fmt::Debug>(op: &Op<V>) -> String {
    describe_op_with(op, &format!("{:?}", op.value))
}

/// [`describe_op`] with the value written as `value`.
pub fn describe_op_with<V>(op: &Op<V>, value: &str) -> String {
    let outcome = match op.outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Unknown => "unknown",
    };
    format!(
        "p{} {}..{} {outcome} {value}",
        op.process,
        secs(op.invoke),
        secs(op.complete)
    )
}

/// A duration as seconds with milliseconds, e.g. `1.250s`.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_follows_anomalies_then_undecided() {
        let mut result = CheckResult::new("demo");
        assert_eq!(result.verdict(), Verdict::Valid);
        result.undecided.push("key 1: budget".to_string());
        assert_eq!(result.verdict(), Verdict::Unknown);
        assert!(!result.valid());
        result.push(AnomalyKind::G1c, "a cycle".to_string(), vec!["T1".into()]);
        assert_eq!(result.verdict(), Verdict::Invalid);
        assert_eq!(result.counts()[&AnomalyKind::G1c], 1);
    }

    #[test]
    fn display_lists_every_anomaly_up_to_a_limit() {
        let mut result = CheckResult::new("demo");
        result.stat("ops", 3);
        for i in 0..SHOWN + 5 {
            result.push(
                AnomalyKind::LostWrite,
                format!("{i}"),
                vec![format!("op {i}")],
            );
        }
        let text = result.to_string();
        // Verdict, stats, counts, then two lines per shown anomaly, then the remainder.
        assert_eq!(text.lines().count(), 3 + 2 * SHOWN + 1, "{text}");
    }
}
