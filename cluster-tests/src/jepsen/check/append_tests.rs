//! Tests of the list-append checker: one hand-built history per anomaly, valid ones, and
//! generated serializable histories.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::check;
use crate::jepsen::check::tests_support::{fail, ok, op, unknown, Rng};
use crate::jepsen::check::{AnomalyKind, Verdict};
use crate::jepsen::history::{History, Mop, Outcome, TxnOp};

fn a(key: u64, value: u64) -> Mop {
    Mop::Append { key, value }
}

fn rd(key: u64, values: &[u64]) -> Mop {
    Mop::Read {
        key,
        values: Some(values.to_vec()),
    }
}

fn t(mops: Vec<Mop>) -> TxnOp {
    TxnOp { mops }
}

fn assert_valid(history: &History<TxnOp>) {
    let result = check(history);
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
}

/// Asserts that `kind` was found, and nothing else.
fn assert_only(history: &History<TxnOp>, kind: AnomalyKind) {
    let result = check(history);
    assert!(result.has(kind), "expected {kind:?}: {result}");
    assert!(
        result.anomalies.iter().all(|anomaly| anomaly.kind == kind),
        "expected only {kind:?}: {result}"
    );
}

#[test]
fn sequential_history_is_valid() {
    assert_valid(&vec![
        ok(0, 0, 10, t(vec![a(1, 1), rd(2, &[])])),
        ok(1, 20, 30, t(vec![a(1, 2), rd(1, &[1, 2]), a(1, 3)])),
        ok(0, 40, 50, t(vec![rd(1, &[1, 2, 3]), a(2, 1)])),
        ok(1, 60, 70, t(vec![rd(1, &[1, 2, 3]), rd(2, &[1])])),
    ]);
}

#[test]
fn unknown_and_failed_transactions_are_valid() {
    assert_valid(&vec![
        ok(0, 0, 10, t(vec![a(1, 1)])),
        // Took effect (seen below), though its client never learned it.
        unknown(1, 20, 30, t(vec![a(1, 2), a(2, 1)])),
        // Never took effect.
        unknown(2, 20, 30, t(vec![a(1, 9)])),
        fail(3, 20, 30, t(vec![a(1, 8)])),
        ok(4, 100, 110, t(vec![rd(1, &[1, 2]), rd(2, &[1])])),
    ]);
}

#[test]
fn concurrent_transactions_may_serialize_either_way() {
    // T1 and T2 overlap in time; T2's append comes first in the order.
    assert_valid(&vec![
        ok(0, 0, 100, t(vec![a(1, 1)])),
        ok(1, 10, 90, t(vec![a(1, 2)])),
        ok(2, 20, 30, t(vec![rd(1, &[2])])),
        ok(2, 200, 210, t(vec![rd(1, &[2, 1])])),
    ]);
}

#[test]
fn duplicate_elements_are_flagged() {
    let history = vec![
        ok(0, 0, 10, t(vec![a(1, 1)])),
        ok(1, 20, 30, t(vec![rd(1, &[1, 1])])),
    ];
    assert!(check(&history).has(AnomalyKind::DuplicateElements));
}

#[test]
fn aborted_read_is_g1a() {
    assert_only(
        &vec![
            fail(0, 0, 10, t(vec![a(1, 1)])),
            ok(1, 20, 30, t(vec![rd(1, &[1])])),
        ],
        AnomalyKind::G1a,
    );
}

#[test]
fn garbage_read_is_flagged() {
    assert_only(
        &vec![ok(1, 20, 30, t(vec![rd(1, &[7])]))],
        AnomalyKind::UnwrittenValueRead,
    );
}

#[test]
fn intermediate_read_is_g1b() {
    let history = vec![
        ok(0, 0, 100, t(vec![a(1, 1), a(1, 2)])),
        ok(1, 20, 30, t(vec![rd(1, &[1])])),
        ok(1, 200, 210, t(vec![rd(1, &[1, 2])])),
    ];
    assert!(check(&history).has(AnomalyKind::G1b));
}

#[test]
fn internal_inconsistency_is_flagged() {
    assert_only(
        &vec![ok(0, 0, 10, t(vec![a(1, 5), rd(1, &[])]))],
        AnomalyKind::InternalInconsistency,
    );
    // It read its own later append.
    assert_only(
        &vec![ok(0, 0, 10, t(vec![rd(1, &[5]), a(1, 5)]))],
        AnomalyKind::InternalInconsistency,
    );
    // Its second read goes back; that is also a cycle with the append it first saw.
    let history = vec![
        ok(0, 0, 10, t(vec![a(1, 1)])),
        ok(1, 20, 30, t(vec![rd(1, &[1]), rd(1, &[])])),
    ];
    assert!(check(&history).has(AnomalyKind::InternalInconsistency));
}

#[test]
fn incompatible_orders_are_flagged() {
    assert_only(
        &vec![
            ok(0, 0, 100, t(vec![a(1, 1)])),
            ok(1, 0, 100, t(vec![a(1, 2)])),
            ok(2, 0, 100, t(vec![rd(1, &[1, 2])])),
            ok(3, 0, 100, t(vec![rd(1, &[2])])),
        ],
        AnomalyKind::IncompatibleOrder,
    );
}

#[test]
fn append_missed_by_a_later_read_is_g_single_realtime() {
    assert_only(
        &vec![
            ok(0, 0, 10, t(vec![a(1, 1)])),
            ok(1, 20, 30, t(vec![rd(1, &[])])),
        ],
        AnomalyKind::GSingleRealtime,
    );
}

#[test]
fn append_nobody_read_still_orders_its_transaction() {
    // T0's append to key 2 comes after everything T1 read of key 2, yet T1 saw T0's append to
    // key 1.
    assert_only(
        &vec![
            ok(0, 0, 100, t(vec![a(1, 1), a(2, 1)])),
            ok(1, 0, 100, t(vec![rd(1, &[1]), rd(2, &[])])),
        ],
        AnomalyKind::GSingle,
    );
    // Nobody saw T0's append to key 2 and nothing orders T1 after T0: valid.
    assert_valid(&vec![
        ok(0, 0, 100, t(vec![a(1, 1), a(2, 1)])),
        ok(1, 0, 100, t(vec![rd(1, &[]), rd(2, &[])])),
    ]);
}

#[test]
fn write_cycle_is_g0() {
    // All concurrent: keys 1 and 2 order T0 and T1 differently.
    assert_only(
        &vec![
            ok(0, 0, 100, t(vec![a(1, 1), a(2, 1)])),
            ok(1, 0, 100, t(vec![a(1, 2), a(2, 2)])),
            ok(2, 50, 150, t(vec![rd(1, &[1, 2]), rd(2, &[2, 1])])),
        ],
        AnomalyKind::G0,
    );
}

#[test]
fn circular_information_flow_is_g1c() {
    assert_only(
        &vec![
            ok(0, 0, 100, t(vec![a(1, 1), rd(2, &[1])])),
            ok(1, 0, 100, t(vec![a(2, 1), rd(1, &[1])])),
        ],
        AnomalyKind::G1c,
    );
}

#[test]
fn read_skew_is_g_single() {
    assert_only(
        &vec![
            ok(0, 0, 100, t(vec![a(1, 1), a(2, 1)])),
            ok(1, 0, 100, t(vec![rd(1, &[]), rd(2, &[1])])),
            ok(2, 0, 100, t(vec![rd(1, &[1])])),
        ],
        AnomalyKind::GSingle,
    );
}

#[test]
fn unknown_transaction_whose_effects_were_seen_takes_part_in_cycles() {
    assert_only(
        &vec![
            unknown(0, 0, 100, t(vec![a(1, 1), a(2, 1)])),
            ok(1, 0, 100, t(vec![rd(1, &[]), rd(2, &[1])])),
            ok(2, 0, 100, t(vec![rd(1, &[1])])),
        ],
        AnomalyKind::GSingle,
    );
}

#[test]
fn write_skew_is_g2() {
    assert_only(
        &vec![
            ok(0, 0, 100, t(vec![rd(1, &[]), a(2, 1)])),
            ok(1, 0, 100, t(vec![rd(2, &[]), a(1, 1)])),
            ok(2, 0, 100, t(vec![rd(1, &[1]), rd(2, &[1])])),
        ],
        AnomalyKind::G2,
    );
}

#[test]
fn stale_read_is_g_single_realtime() {
    // Serializable (the read could come first), but it began after the append completed.
    assert_only(
        &vec![
            ok(0, 0, 10, t(vec![a(1, 1)])),
            ok(1, 20, 30, t(vec![rd(1, &[])])),
            ok(2, 40, 50, t(vec![rd(1, &[1])])),
        ],
        AnomalyKind::GSingleRealtime,
    );
}

#[test]
fn appends_ordered_against_real_time_are_g0_realtime() {
    assert_only(
        &vec![
            ok(0, 0, 10, t(vec![a(1, 1)])),
            ok(1, 20, 30, t(vec![a(1, 2)])),
            ok(2, 40, 50, t(vec![rd(1, &[2, 1])])),
        ],
        AnomalyKind::G0Realtime,
    );
}

#[test]
fn circular_flow_closed_by_real_time_is_g1c_realtime() {
    // T1 reads T0's append, but T1 completed before T0 began.
    assert_only(
        &vec![
            ok(0, 50, 60, t(vec![a(1, 1)])),
            ok(1, 0, 10, t(vec![rd(1, &[1])])),
        ],
        AnomalyKind::G1cRealtime,
    );
}

/// A serializable history: transactions over 4 keys executed atomically, one at a time, at a
/// random point inside each one's interval; a few end unknown or fail.
fn generated(rng: &mut Rng, txns: usize) -> History<TxnOp> {
    let mut planned = Vec::new();
    let mut next_value = 0;
    for i in 0..txns {
        let invoke = rng.below(txns as u64 * 5);
        let length = 1 + rng.below(40);
        let point = invoke + rng.below(length + 1);
        let mops = (0..1 + rng.below(4))
            .map(|_| {
                let key = rng.below(4);
                next_value += 1;
                if rng.below(2) == 0 {
                    a(key, next_value)
                } else {
                    Mop::Read { key, values: None }
                }
            })
            .collect();
        let outcome = match rng.below(20) {
            0 => Outcome::Unknown,
            1 => Outcome::Fail,
            _ => Outcome::Ok,
        };
        let happens = outcome == Outcome::Ok || (outcome == Outcome::Unknown && rng.below(2) == 0);
        planned.push((
            point,
            happens,
            op(i, invoke, invoke + length, outcome, t(mops)),
        ));
    }
    planned.sort_by_key(|(point, _, _)| *point);
    let mut state: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut history = Vec::new();
    for (_, happens, mut op) in planned {
        let mut local = state.clone();
        for mop in &mut op.value.mops {
            match mop {
                Mop::Append { key, value } => local.entry(*key).or_default().push(*value),
                Mop::Read { key, values } if op.outcome == Outcome::Ok => {
                    *values = Some(local.get(key).cloned().unwrap_or_default())
                }
                Mop::Read { .. } => {}
            }
        }
        if happens {
            state = local;
        }
        history.push(op);
    }
    history
}

#[test]
fn generated_serializable_histories_are_valid_and_checked_quickly() {
    let mut rng = Rng::new(3);
    let history = generated(&mut rng, 3000);
    let started = Instant::now();
    let result = check(&history);
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// Whether `history` is strictly serializable, by trying every order of its committed
/// transactions (for a handful of them).
fn brute_force(history: &History<TxnOp>) -> bool {
    fn extend(
        history: &History<TxnOp>,
        used: &mut Vec<bool>,
        state: &HashMap<u64, Vec<u64>>,
    ) -> bool {
        let pending = |used: &[bool], i: usize| !used[i] && history[i].outcome == Outcome::Ok;
        if !(0..history.len()).any(|i| pending(used, i)) {
            return true;
        }
        for i in 0..history.len() {
            let op = &history[i];
            let blocked =
                (0..history.len()).any(|p| pending(used, p) && history[p].complete < op.invoke);
            if used[i] || op.outcome == Outcome::Fail || blocked {
                continue;
            }
            let mut next = state.clone();
            let mut consistent = true;
            for mop in &op.value.mops {
                match mop {
                    Mop::Append { key, value } => next.entry(*key).or_default().push(*value),
                    Mop::Read {
                        key,
                        values: Some(values),
                    } => {
                        consistent &= next.get(key).map_or(&[][..], |v| &v[..]) == &values[..];
                    }
                    Mop::Read { .. } => {}
                }
            }
            if consistent {
                used[i] = true;
                let found = extend(history, used, &next);
                used[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    extend(history, &mut vec![false; history.len()], &HashMap::new())
}

#[test]
fn verdicts_agree_with_brute_force_on_small_random_histories() {
    let mut rng = Rng::new(9);
    let (mut valid, mut flagged, mut missed) = (0, 0, 0);
    for _ in 0..4000 {
        let txns = 1 + rng.below(7) as usize;
        let mut history = generated(&mut rng, txns);
        // Perturb one read in half of the histories.
        if rng.below(2) == 0 {
            let reads: Vec<(usize, usize)> = history
                .iter()
                .enumerate()
                .flat_map(|(t, op)| {
                    op.value
                        .mops
                        .iter()
                        .enumerate()
                        .filter_map(move |(m, mop)| {
                            matches!(
                                mop,
                                Mop::Read {
                                    values: Some(_),
                                    ..
                                }
                            )
                            .then_some((t, m))
                        })
                })
                .collect();
            if let Some(&(t, m)) = reads.get(rng.below(reads.len().max(1) as u64) as usize) {
                if let Mop::Read {
                    values: Some(values),
                    ..
                } = &mut history[t].value.mops[m]
                {
                    match rng.below(3) {
                        0 => {
                            values.pop();
                        }
                        1 if !values.is_empty() => {
                            values.remove(0);
                        }
                        _ => values.push(1 + rng.below(30)),
                    }
                }
            }
        }
        // Move one transaction elsewhere in time, or flip its outcome, in a third of them.
        if !history.is_empty() && rng.below(3) == 0 {
            let i = rng.below(history.len() as u64) as usize;
            match rng.below(3) {
                0 => {
                    let invoke = rng.below(history.len() as u64 * 5);
                    history[i].invoke = Duration::from_millis(invoke);
                    history[i].complete = Duration::from_millis(invoke + 1 + rng.below(10));
                }
                flip => {
                    history[i].outcome = if flip == 1 {
                        Outcome::Fail
                    } else {
                        Outcome::Unknown
                    };
                    for mop in &mut history[i].value.mops {
                        if let Mop::Read { values, .. } = mop {
                            *values = None;
                        }
                    }
                }
            }
        }
        let serializable = brute_force(&history);
        let result = check(&history);
        if serializable {
            assert_eq!(result.verdict(), Verdict::Valid, "{history:#?}\n{result}");
            valid += 1;
        } else if result.verdict() == Verdict::Invalid {
            flagged += 1;
        } else {
            missed += 1;
        }
    }
    // Elle-style inference cannot see every violation (e.g. the order of appends nobody read),
    // but it sees most of them.
    assert!(
        valid > 1000 && flagged > 5 * missed,
        "{valid} {flagged} {missed}"
    );
}
