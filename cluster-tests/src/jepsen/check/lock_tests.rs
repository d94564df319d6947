//! Tests of the lock checkers.

use super::{check_fenced, check_mutex};
use crate::jepsen::check::tests_support::{fail, ok, unknown};
use crate::jepsen::check::{AnomalyKind, Verdict};
use crate::jepsen::history::{History, LockOp, LogEntry};

fn acquire(token: i64) -> LockOp {
    LockOp::Acquire { token: Some(token) }
}

fn release(token: i64) -> LockOp {
    LockOp::Release { token }
}

fn write(token: i64, value: u64) -> LockOp {
    LockOp::Write {
        token,
        fenced: true,
        value,
    }
}

fn entry(token: i64, value: u64) -> LogEntry {
    LogEntry { token, value }
}

/// Two clients taking turns: token 10 writes 1 and 2, token 20 writes 3.
fn turns() -> History<LockOp> {
    vec![
        ok(0, 0, 10, acquire(10)),
        ok(0, 20, 30, write(10, 1)),
        ok(0, 40, 50, write(10, 2)),
        ok(0, 60, 70, release(10)),
        // Waited for the lock while client 0 held it.
        ok(1, 5, 80, acquire(20)),
        ok(1, 90, 100, write(20, 3)),
        ok(1, 110, 120, release(20)),
    ]
}

#[test]
fn clients_taking_turns_are_valid() {
    let result = check_mutex(&turns());
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
    let log = [entry(10, 1), entry(10, 2), entry(20, 3)];
    let result = check_fenced(&turns(), &log);
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
}

#[test]
fn paused_holder_is_a_second_holder() {
    // Client 0 pauses after acquiring; its lease expires, client 1 acquires, then client 0
    // resumes, writes and releases.
    let history = vec![
        ok(0, 0, 10, acquire(10)),
        ok(1, 20, 5000, acquire(20)),
        ok(1, 5010, 5020, write(20, 1)),
        ok(0, 9000, 9010, write(10, 2)),
        fail(0, 9020, 9030, release(10)),
        ok(1, 9040, 9050, release(20)),
    ];
    let result = check_mutex(&history);
    assert!(result.has(AnomalyKind::TwoHolders), "{result}");
    assert_eq!(result.anomalies.len(), 1);
}

#[test]
fn never_released_hold_ends_at_its_last_write() {
    let history = vec![
        ok(0, 0, 10, acquire(10)),
        unknown(0, 20, 1000, write(10, 1)),
        ok(1, 50, 2000, acquire(20)),
        ok(1, 2010, 2020, release(20)),
    ];
    assert_eq!(check_mutex(&history).verdict(), Verdict::Valid);
    let mut late = history.clone();
    late.push(ok(0, 2001, 2005, write(10, 2)));
    assert!(check_mutex(&late).has(AnomalyKind::TwoHolders));
}

#[test]
fn interleaved_fenced_writes_are_flagged() {
    let log = [entry(10, 1), entry(20, 3), entry(10, 2)];
    let result = check_fenced(&turns(), &log);
    assert!(result.has(AnomalyKind::InterleavedFencedWrites), "{result}");
    assert_eq!(result.anomalies.len(), 1, "{result}");
}

#[test]
fn unfenced_writes_may_interleave() {
    let mut history = turns();
    for op in &mut history {
        if let LockOp::Write { fenced, .. } = &mut op.value {
            *fenced = false;
        }
    }
    let log = [entry(10, 1), entry(20, 3), entry(10, 2)];
    assert_eq!(check_fenced(&history, &log).verdict(), Verdict::Valid);
}

#[test]
fn lost_and_duplicated_writes_are_flagged() {
    let lost = check_fenced(&turns(), &[entry(10, 1), entry(20, 3)]);
    assert!(lost.has(AnomalyKind::LostWrite), "{lost}");
    let log = [entry(10, 1), entry(10, 2), entry(10, 2), entry(20, 3)];
    let duplicated = check_fenced(&turns(), &log);
    assert!(duplicated.has(AnomalyKind::DuplicateWrite), "{duplicated}");
    assert_eq!(duplicated.anomalies.len(), 1, "{duplicated}");
}

#[test]
fn failed_and_phantom_writes_are_flagged() {
    let mut history = turns();
    history.push(fail(2, 130, 140, write(20, 4)));
    history.push(unknown(2, 150, 160, write(20, 5)));
    // The unknown write may or may not be there.
    let valid = [entry(10, 1), entry(10, 2), entry(20, 3)];
    assert_eq!(check_fenced(&history, &valid).verdict(), Verdict::Valid);
    let with_unknown = [entry(10, 1), entry(10, 2), entry(20, 3), entry(20, 5)];
    assert_eq!(
        check_fenced(&history, &with_unknown).verdict(),
        Verdict::Valid
    );

    let failed = [entry(10, 1), entry(10, 2), entry(20, 3), entry(20, 4)];
    let result = check_fenced(&history, &failed);
    assert!(result.has(AnomalyKind::FailedWriteApplied), "{result}");

    let phantom = [entry(10, 1), entry(10, 2), entry(20, 3), entry(20, 99)];
    let result = check_fenced(&history, &phantom);
    assert!(result.has(AnomalyKind::PhantomWrite), "{result}");
    let wrong_token = [entry(10, 1), entry(10, 2), entry(30, 3)];
    let result = check_fenced(&history, &wrong_token);
    assert!(result.has(AnomalyKind::PhantomWrite), "{result}");
}
