//! Lease safety: no key outlives its lease.
//!
//! A lease is certainly gone once an acknowledged revoke of it completed, or once a keep-alive
//! answered with a TTL of zero or less (the server no longer has it). An acknowledged read
//! that found a key, invoked after that moment, is [`AnomalyKind::KeyOutlivedLease`] unless
//! some put of the key (acknowledged or unknown, invoked before the read completed) was made
//! with a lease not certainly gone when the read began. A found key no put ever created is
//! [`AnomalyKind::UnwrittenValueRead`]. A put invoked after its lease was gone must fail (the
//! lease no longer exists); acknowledged, it is [`AnomalyKind::PutWithDeadLease`].

use std::collections::HashMap;
use std::time::Duration;

use super::{describe_op, AnomalyKind, CheckResult};
use crate::jepsen::history::{History, LeaseOp, Op, Outcome};

/// Checks that no read finds a key after its lease was revoked or reported gone.
pub fn check(history: &History<LeaseOp>) -> CheckResult {
    let mut result = CheckResult::new("lease");
    // Each lease's earliest certain end, and the operation that showed it.
    let mut gone: HashMap<i64, (Duration, &Op<LeaseOp>)> = HashMap::new();
    let mut puts: HashMap<&str, Vec<(&Op<LeaseOp>, i64)>> = HashMap::new();
    for op in history {
        match (&op.value, op.outcome) {
            (LeaseOp::Revoke { id }, Outcome::Ok)
            | (
                LeaseOp::KeepAlive {
                    id,
                    ttl: Some(..=0),
                },
                Outcome::Ok,
            ) => {
                let end = gone.entry(*id).or_insert((op.complete, op));
                if op.complete < end.0 {
                    *end = (op.complete, op);
                }
            }
            (LeaseOp::Put { key, id }, Outcome::Ok | Outcome::Unknown) => {
                puts.entry(key.as_str()).or_default().push((op, *id));
            }
            _ => {}
        }
    }
    result.stat("leases_gone", gone.len() as u64);
    for put in history.iter().filter(|op| op.outcome == Outcome::Ok) {
        let LeaseOp::Put { key, id } = &put.value else {
            continue;
        };
        if let Some((end, ended)) = gone.get(id).filter(|(end, _)| *end < put.invoke) {
            result.push(
                AnomalyKind::PutWithDeadLease,
                format!(
                    "a put of key {key:?} invoked at {} with lease {id}, gone since {}, was \
                     acknowledged",
                    super::secs(put.invoke),
                    super::secs(*end)
                ),
                vec![
                    format!("put: {}", describe_op(put)),
                    format!("lease {id} gone: {}", describe_op(ended)),
                ],
            );
        }
    }
    let mut checked = 0;
    for read in history.iter().filter(|op| op.outcome == Outcome::Ok) {
        let LeaseOp::Read {
            key,
            found: Some(true),
        } = &read.value
        else {
            continue;
        };
        checked += 1;
        let candidates: Vec<&(&Op<LeaseOp>, i64)> = puts
            .get(key.as_str())
            .into_iter()
            .flatten()
            .filter(|(put, _)| put.invoke < read.complete)
            .collect();
        if candidates.is_empty() {
            result.push(
                AnomalyKind::UnwrittenValueRead,
                format!("a read found key {key:?}, which no put created"),
                vec![describe_op(read)],
            );
            continue;
        }
        let alive = |id: &i64| gone.get(id).is_none_or(|(end, _)| *end >= read.invoke);
        if candidates.iter().any(|(_, id)| alive(id)) {
            continue;
        }
        let mut ops = vec![format!("read: {}", describe_op(read))];
        for (put, id) in &candidates {
            ops.push(format!("put: {}", describe_op(put)));
            if let Some((_, ended)) = gone.get(id) {
                ops.push(format!("lease {id} gone: {}", describe_op(ended)));
            }
        }
        result.push(
            AnomalyKind::KeyOutlivedLease,
            format!(
                "a read invoked at {} found key {key:?}, though every lease it was put with \
                 was gone by then",
                super::secs(read.invoke)
            ),
            ops,
        );
    }
    result.stat("found_reads", checked);
    result
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
