//! The lock workload: a mutex from a lease and a key created only if absent, whose create
//! revision is the holder's fencing token.
//!
//! [`check_mutex`] looks for two clients holding the lock at once. A client holds the lock from
//! the completion of its acknowledged acquire until it invokes the release of that token; if it
//! never releases it, until the last completion of an operation it ran with the token (the
//! last moment it certainly acted as the holder). Two holds that overlap in real time are
//! [`AnomalyKind::TwoHolders`]. A lease-based lock without fencing is expected to show this
//! under pauses (a paused holder's lease expires while it still believes it holds the lock), so
//! for the unfenced run it is what the lock does, not a store bug.
//!
//! [`check_fenced`] checks the shared log read back at the end: along the log the tokens of
//! fenced writes never go back ([`AnomalyKind::InterleavedFencedWrites`]); every acknowledged
//! fenced write is in it exactly once ([`AnomalyKind::LostWrite`],
//! [`AnomalyKind::DuplicateWrite`]); no failed write is in it
//! ([`AnomalyKind::FailedWriteApplied`]); and every entry is a write some client attempted with
//! that token ([`AnomalyKind::PhantomWrite`]).

use std::collections::HashMap;
use std::time::Duration;

use super::{describe_op, secs, AnomalyKind, CheckResult};
use crate::jepsen::history::{History, LockOp, LogEntry, Op, Outcome};

/// One client's hold of the lock.
struct Hold<'a> {
    token: i64,
    acquire: &'a Op<LockOp>,
    start: Duration,
    end: Duration,
    /// The operation that ended the hold (its release, or its last use of the token).
    last: Option<&'a Op<LockOp>>,
}

/// Finds pairs of clients that held the lock at the same time.
pub fn check_mutex(history: &History<LockOp>) -> CheckResult {
    let mut result = CheckResult::new("lock-mutex");
    let mut holds: Vec<Hold> = history
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .filter_map(|op| match op.value {
            LockOp::Acquire { token: Some(token) } => Some(hold(history, op, token)),
            _ => None,
        })
        .collect();
    result.stat("ops", history.len() as u64);
    result.stat("holds", holds.len() as u64);
    holds.sort_by_key(|hold| (hold.start, hold.end));
    for (i, a) in holds.iter().enumerate() {
        for b in holds[i + 1..].iter().take_while(|b| b.start < a.end) {
            if b.start < a.end && a.start < b.end && a.token != b.token {
                let mut ops = vec![describe_op(a.acquire)];
                ops.extend(a.last.map(describe_op));
                ops.push(describe_op(b.acquire));
                ops.extend(b.last.map(describe_op));
                result.push(
                    AnomalyKind::TwoHolders,
                    format!(
                        "token {} was held {}..{} and token {} {}..{}",
                        a.token,
                        secs(a.start),
                        secs(a.end),
                        b.token,
                        secs(b.start),
                        secs(b.end)
                    ),
                    ops,
                );
            }
        }
    }
    result
}

fn hold<'a>(history: &'a History<LockOp>, acquire: &'a Op<LockOp>, token: i64) -> Hold<'a> {
    let start = acquire.complete;
    let release = history
        .iter()
        .filter(|op| op.invoke >= start && op.value == LockOp::Release { token })
        .min_by_key(|op| op.invoke);
    let (end, last) = match release {
        Some(release) => (release.invoke, Some(release)),
        None => {
            let last_use = history
                .iter()
                .filter(|op| {
                    op.complete >= start
                        && matches!(op.value, LockOp::Write { token: t, .. } if t == token)
                })
                .max_by_key(|op| op.complete);
            (last_use.map_or(start, |op| op.complete), last_use)
        }
    };
    Hold {
        token,
        acquire,
        start,
        end,
        last,
    }
}

/// Checks the shared log read back at the end against the writes the clients attempted.
pub fn check_fenced(history: &History<LockOp>, final_log: &[LogEntry]) -> CheckResult {
    let mut result = CheckResult::new("lock-fenced");
    let mut writes: HashMap<u64, (&Op<LockOp>, i64, bool)> = HashMap::new();
    for op in history {
        if let LockOp::Write {
            token,
            fenced,
            value,
        } = op.value
        {
            writes.entry(value).or_insert((op, token, fenced));
        }
    }
    result.stat("writes", writes.len() as u64);
    result.stat("log_entries", final_log.len() as u64);
    let mut copies: HashMap<u64, usize> = HashMap::new();
    // The entry with the highest fenced token so far, and where it is.
    let mut highest: Option<(usize, &LogEntry)> = None;
    for (i, entry) in final_log.iter().enumerate() {
        let Some(&(op, token, fenced)) = writes.get(&entry.value).filter(|w| w.1 == entry.token)
        else {
            let attempted = writes.get(&entry.value).map(|w| describe_op(w.0));
            result.push(
                AnomalyKind::PhantomWrite,
                format!(
                    "log entry {i} (token {}, value {}) was never written with that token",
                    entry.token, entry.value
                ),
                attempted.into_iter().collect(),
            );
            continue;
        };
        *copies.entry(entry.value).or_insert(0) += 1;
        if op.outcome == Outcome::Fail {
            result.push(
                AnomalyKind::FailedWriteApplied,
                format!("log entry {i} (value {}) is a failed write", entry.value),
                vec![describe_op(op)],
            );
        }
        if !fenced {
            continue;
        }
        match highest {
            Some((j, high)) if high.token > token => {
                let ops = [high.value, entry.value]
                    .iter()
                    .filter_map(|value| writes.get(value).map(|w| describe_op(w.0)))
                    .collect();
                result.push(
                    AnomalyKind::InterleavedFencedWrites,
                    format!(
                        "log entry {i} (token {token}, value {}) follows entry {j} (token {}, \
                         value {})",
                        entry.value, high.token, high.value
                    ),
                    ops,
                );
            }
            _ => highest = Some((i, entry)),
        }
    }
    let mut fenced: Vec<(&u64, &(&Op<LockOp>, i64, bool))> =
        writes.iter().filter(|(_, w)| w.2).collect();
    fenced.sort_by_key(|(value, _)| **value);
    for (value, &(op, token, _)) in fenced {
        let n = copies.get(value).copied().unwrap_or(0);
        if n == 0 && op.outcome == Outcome::Ok {
            result.push(
                AnomalyKind::LostWrite,
                format!("acknowledged fenced write {value} (token {token}) is not in the log"),
                vec![describe_op(op)],
            );
        }
        if n > 1 {
            result.push(
                AnomalyKind::DuplicateWrite,
                format!("fenced write {value} (token {token}) is in the log {n} times"),
                vec![describe_op(op)],
            );
        }
    }
    result
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
