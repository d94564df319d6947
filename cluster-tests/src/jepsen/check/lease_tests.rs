//! Tests of the lease checker.

use super::check;
use crate::jepsen::check::tests_support::{fail, ok, unknown};
use crate::jepsen::check::{AnomalyKind, Verdict};
use crate::jepsen::history::{History, LeaseOp};

fn grant(id: i64) -> LeaseOp {
    LeaseOp::Grant {
        ttl: 5,
        id: Some(id),
    }
}

fn put(key: &str, id: i64) -> LeaseOp {
    LeaseOp::Put {
        key: key.to_string(),
        id,
    }
}

fn read(key: &str, found: bool) -> LeaseOp {
    LeaseOp::Read {
        key: key.to_string(),
        found: Some(found),
    }
}

fn keep_alive(id: i64, ttl: i64) -> LeaseOp {
    LeaseOp::KeepAlive { id, ttl: Some(ttl) }
}

fn revoke(id: i64) -> LeaseOp {
    LeaseOp::Revoke { id }
}

/// Lease 1 with key `k`, kept alive, then revoked at 300..310.
fn revoked() -> History<LeaseOp> {
    vec![
        ok(0, 0, 10, grant(1)),
        ok(0, 20, 30, put("k", 1)),
        ok(1, 40, 50, read("k", true)),
        ok(0, 100, 110, keep_alive(1, 5)),
        ok(1, 290, 320, read("k", true)),
        ok(0, 300, 310, revoke(1)),
        ok(1, 400, 410, read("k", false)),
    ]
}

#[test]
fn revoked_lease_whose_key_is_gone_is_valid() {
    let result = check(&revoked());
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
}

#[test]
fn key_read_after_revoke_is_flagged() {
    let mut history = revoked();
    history.push(ok(1, 500, 510, read("k", true)));
    let result = check(&history);
    assert!(result.has(AnomalyKind::KeyOutlivedLease), "{result}");
    assert_eq!(result.anomalies.len(), 1, "{result}");
}

#[test]
fn put_with_a_revoked_lease_must_fail() {
    let mut history = revoked();
    history.push(fail(0, 500, 510, put("k", 1)));
    assert_eq!(check(&history).verdict(), Verdict::Valid);
    // Concurrent with the revoke: may have come first.
    history.push(ok(0, 305, 315, put("j", 1)));
    assert_eq!(check(&history).verdict(), Verdict::Valid);
    history.push(ok(0, 520, 530, put("k", 1)));
    let result = check(&history);
    assert!(result.has(AnomalyKind::PutWithDeadLease), "{result}");
    assert_eq!(result.anomalies.len(), 1, "{result}");
}

#[test]
fn key_read_after_lease_expired_is_flagged() {
    let history = vec![
        ok(0, 0, 10, grant(1)),
        unknown(0, 20, 30, put("k", 1)),
        ok(0, 8000, 8010, keep_alive(1, 0)),
        ok(1, 8020, 8030, read("k", true)),
    ];
    let result = check(&history);
    assert!(result.has(AnomalyKind::KeyOutlivedLease), "{result}");
}

#[test]
fn unknown_or_failed_revoke_proves_nothing() {
    let history = vec![
        ok(0, 0, 10, grant(1)),
        ok(0, 20, 30, put("k", 1)),
        unknown(0, 40, 50, revoke(1)),
        fail(0, 60, 70, revoke(1)),
        ok(1, 80, 90, read("k", true)),
    ];
    assert_eq!(check(&history).verdict(), Verdict::Valid);
}

#[test]
fn key_put_again_with_a_live_lease_is_valid() {
    let mut history = revoked();
    history.push(ok(0, 420, 430, grant(2)));
    history.push(ok(0, 440, 450, put("k", 2)));
    history.push(ok(1, 460, 470, read("k", true)));
    assert_eq!(check(&history).verdict(), Verdict::Valid);
}

#[test]
fn key_nobody_put_is_flagged() {
    let history = vec![ok(1, 0, 10, read("k", true))];
    assert!(check(&history).has(AnomalyKind::UnwrittenValueRead));
}
