//! Linearizability of the register workload, checked key by key.
//!
//! Model: each key is a register, initially absent. `Read(v)` returns the current value,
//! `Write(v)` sets it, `Cas { from, to }` sets `to` if and only if the value is `from`.
//! - an [`Outcome::Ok`] operation took effect once, between its invocation and completion;
//! - an [`Outcome::Fail`] operation never took effect (a failed compare-and-set's comparison
//!   failed, which constrains nothing), so it is left out;
//! - an [`Outcome::Unknown`] write or compare-and-set took effect once at any time after its
//!   invocation, or never; an unknown read is left out.
//!
//! Unknown writes whose value nobody ever read or compared against are left out too: such a
//! write could always have been overwritten before anyone looked; and all such values written
//! by acknowledged writes count as one value (nobody can tell them apart), which lets the
//! search's memoisation merge more states. The search itself is in `register_search`; a key
//! whose search exceeds the step budget is reported as undecided.
//!
//! Workloads should write unique values per key: the search then prunes nearly every wrong
//! order at once (a value written once never comes back), and a few hundred operations per
//! key with tens of them concurrent or unknown take milliseconds. With a handful of values
//! reused over and over, an invalid key may need far more steps to be proven invalid.

use std::collections::{BTreeMap, HashSet};

use super::register_search::{search, Failure, Found, SearchOp};
use super::{describe_op_with, AnomalyKind, CheckResult};
use crate::jepsen::history::{History, Op, Outcome, RegisterF, RegisterOp};

/// Search steps allowed per key by [`check`].
pub const DEFAULT_BUDGET: u64 = 5_000_000;

/// How many concurrent (and how many waiting) operations a non-linearizable key's anomaly
/// lists.
const LISTED: usize = 12;

/// Checks every key's operations for linearizability with [`DEFAULT_BUDGET`] steps per key.
pub fn check(history: &History<RegisterOp>) -> CheckResult {
    check_with_budget(history, DEFAULT_BUDGET)
}

/// Checks every key's operations for linearizability, giving up on a key (reported in
/// [`CheckResult::undecided`]) after `budget` search steps.
pub fn check_with_budget(history: &History<RegisterOp>, budget: u64) -> CheckResult {
    let mut result = CheckResult::new("register");
    let mut keys: BTreeMap<u64, Vec<&Op<RegisterOp>>> = BTreeMap::new();
    for op in history {
        keys.entry(op.value.key).or_default().push(op);
    }
    result.stat("keys", keys.len() as u64);
    result.stat("ops", history.len() as u64);
    for (key, ops) in keys {
        check_key(key, &ops, budget, &mut result);
    }
    result
}

fn check_key(key: u64, ops: &[&Op<RegisterOp>], budget: u64, result: &mut CheckResult) {
    unwritten_reads(key, ops, result);
    let (ops, observed) = relevant(ops);
    // Values nobody can observe are all the same to the search: one stands for them all.
    let unobservable = (0..=u64::MAX)
        .rev()
        .find(|v| !observed.contains(v))
        .unwrap_or(u64::MAX);
    let canonical = |value: u64| {
        if observed.contains(&value) {
            value
        } else {
            unobservable
        }
    };
    let search_ops: Vec<SearchOp> = ops
        .iter()
        .map(|op| SearchOp {
            invoke: op.invoke,
            complete: (op.outcome == Outcome::Ok).then_some(op.complete),
            f: match op.value.f {
                RegisterF::Write(value) => RegisterF::Write(canonical(value)),
                RegisterF::Cas { from, to } => RegisterF::Cas {
                    from,
                    to: canonical(to),
                },
                RegisterF::Read(value) => RegisterF::Read(value),
            },
        })
        .collect();
    let outcome = search(&search_ops, budget);
    result.stat("search_steps", outcome.steps);
    match outcome.found {
        Found::Linearizable => {}
        Found::Exhausted => {
            result.stat("keys_undecided", 1);
            result.undecided.push(format!(
                "key {key}: no decision within {budget} search steps ({} operations)",
                ops.len()
            ));
        }
        Found::NotLinearizable(failure) => {
            report_failure(key, &ops, &failure, unobservable, result);
        }
    }
}

/// Reports the deepest point the search reached for a key with no linearization.
fn report_failure(
    key: u64,
    ops: &[&Op<RegisterOp>],
    failure: &Failure,
    unobservable: u64,
    result: &mut CheckResult,
) {
    let value = match failure.state {
        Some(value) if value == unobservable => "a value nobody read".to_string(),
        Some(value) => value.to_string(),
        None => "nothing (absent)".to_string(),
    };
    let mut lines = vec![format!("due next: {}", describe(ops[failure.blocking]))];
    if let Some(last) = failure.last {
        lines.push(format!("last linearized: {}", describe(ops[last])));
    }
    let lists = [
        ("concurrent", &failure.concurrent),
        ("still to observe it", &failure.waiting),
    ];
    for (label, list) in lists {
        for &op in list.iter().take(LISTED) {
            lines.push(format!("{label}: {}", describe(ops[op])));
        }
        if list.len() > LISTED {
            lines.push(format!("... and {} more {label}", list.len() - LISTED));
        }
    }
    result.push(
        AnomalyKind::NonLinearizable,
        format!(
            "key {key}: no linearization of its {} operations exists; the longest prefix found \
             has {} of them and leaves the register holding {value}, and then neither the \
             operation due next (the one that completed first) nor any operation concurrent \
             with it can follow",
            ops.len(),
            failure.linearized
        ),
        lines,
    );
}

/// A register operation on one line, its key left out.
fn describe(op: &Op<RegisterOp>) -> String {
    let f = match op.value.f {
        RegisterF::Read(Some(value)) => format!("read {value}"),
        RegisterF::Read(None) => "read absent".to_string(),
        RegisterF::Write(value) => format!("write {value}"),
        RegisterF::Cas { from, to } => format!("cas {from}->{to}"),
    };
    describe_op_with(op, &f)
}

/// The operations the search needs, sorted by invocation (no failed operation, no unknown
/// read, and no unknown write whose value nobody observed), and the values that reads and
/// compare-and-sets observed.
fn relevant<'a>(ops: &[&'a Op<RegisterOp>]) -> (Vec<&'a Op<RegisterOp>>, HashSet<u64>) {
    let mut observed: HashSet<u64> = HashSet::new();
    for op in ops {
        match (op.outcome, &op.value.f) {
            (Outcome::Ok, RegisterF::Read(Some(value))) => {
                observed.insert(*value);
            }
            (Outcome::Ok | Outcome::Unknown, RegisterF::Cas { from, .. }) => {
                observed.insert(*from);
            }
            _ => {}
        }
    }
    let mut kept: Vec<&Op<RegisterOp>> = ops
        .iter()
        .copied()
        .filter(|op| match (op.outcome, &op.value.f) {
            (Outcome::Fail, _) => false,
            (Outcome::Ok, _) => true,
            (Outcome::Unknown, RegisterF::Read(_)) => false,
            (Outcome::Unknown, RegisterF::Write(value)) => observed.contains(value),
            (Outcome::Unknown, RegisterF::Cas { to, .. }) => observed.contains(to),
        })
        .collect();
    kept.sort_by_key(|op| (op.invoke, op.complete));
    (kept, observed)
}

/// Flags Ok reads (and Ok compare-and-sets) of a value that no write or compare-and-set which
/// might have taken effect ever wrote.
fn unwritten_reads(key: u64, ops: &[&Op<RegisterOp>], result: &mut CheckResult) {
    let written: HashSet<u64> = ops
        .iter()
        .filter(|op| op.outcome != Outcome::Fail)
        .filter_map(|op| match op.value.f {
            RegisterF::Write(value) | RegisterF::Cas { to: value, .. } => Some(value),
            RegisterF::Read(_) => None,
        })
        .collect();
    for op in ops.iter().filter(|op| op.outcome == Outcome::Ok) {
        let seen = match op.value.f {
            RegisterF::Read(Some(value)) | RegisterF::Cas { from: value, .. } => value,
            RegisterF::Read(None) | RegisterF::Write(_) => continue,
        };
        if !written.contains(&seen) {
            result.push(
                AnomalyKind::UnwrittenValueRead,
                format!("key {key}: saw value {seen}, which no operation wrote"),
                vec![describe(op)],
            );
        }
    }
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;
