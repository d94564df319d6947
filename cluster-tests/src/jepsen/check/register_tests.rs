//! Tests of the register linearizability checker.

use std::time::{Duration, Instant};

use super::{check, check_with_budget};
use crate::jepsen::check::tests_support::{fail, ok, op, unknown, Rng};
use crate::jepsen::check::{AnomalyKind, Verdict};
use crate::jepsen::history::{History, Op, Outcome, RegisterF, RegisterOp};

fn r(key: u64, value: Option<u64>) -> RegisterOp {
    RegisterOp {
        key,
        f: RegisterF::Read(value),
    }
}

fn w(key: u64, value: u64) -> RegisterOp {
    RegisterOp {
        key,
        f: RegisterF::Write(value),
    }
}

fn cas(key: u64, from: u64, to: u64) -> RegisterOp {
    RegisterOp {
        key,
        f: RegisterF::Cas { from, to },
    }
}

fn assert_valid(history: &History<RegisterOp>) {
    let result = check(history);
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
}

fn assert_flags(history: &History<RegisterOp>, kind: AnomalyKind) {
    let result = check(history);
    assert_eq!(result.verdict(), Verdict::Invalid, "{result}");
    assert!(result.has(kind), "expected {kind:?}: {result}");
}

#[test]
fn sequential_history_is_linearizable() {
    assert_valid(&vec![
        ok(0, 0, 10, r(1, None)),
        ok(0, 20, 30, w(1, 1)),
        ok(1, 40, 50, r(1, Some(1))),
        ok(1, 60, 70, cas(1, 1, 2)),
        fail(0, 80, 90, cas(1, 1, 3)),
        ok(0, 100, 110, r(1, Some(2))),
    ]);
}

#[test]
fn concurrent_overlapping_history_is_linearizable() {
    // w1 and w2 overlap; the reads fix the order w2 then w1.
    assert_valid(&vec![
        ok(0, 0, 100, w(1, 1)),
        ok(1, 10, 90, w(1, 2)),
        ok(2, 20, 30, r(1, Some(2))),
        ok(2, 95, 110, r(1, Some(1))),
        ok(3, 5, 200, r(1, Some(2))),
    ]);
}

#[test]
fn unknown_write_that_took_effect_is_accepted() {
    assert_valid(&vec![
        ok(0, 0, 10, w(1, 1)),
        unknown(1, 20, 30, w(1, 2)),
        ok(2, 100, 110, r(1, Some(2))),
    ]);
}

#[test]
fn unknown_write_may_take_effect_long_after_it_timed_out() {
    assert_valid(&vec![
        ok(0, 0, 10, w(1, 1)),
        unknown(1, 20, 30, w(1, 2)),
        ok(2, 100, 110, r(1, Some(1))),
        ok(2, 200, 210, r(1, Some(2))),
    ]);
}

#[test]
fn unknown_write_that_never_happened_is_accepted() {
    assert_valid(&vec![
        ok(0, 0, 10, w(1, 1)),
        unknown(1, 20, 30, w(1, 2)),
        unknown(2, 25, 35, cas(1, 1, 3)),
        ok(2, 100, 110, r(1, Some(1))),
        unknown(3, 120, 130, r(1, None)),
    ]);
}

#[test]
fn unknown_cas_chain_is_accepted() {
    assert_valid(&vec![
        ok(0, 0, 10, w(1, 1)),
        unknown(1, 20, 30, cas(1, 1, 2)),
        unknown(2, 40, 50, cas(1, 2, 3)),
        ok(3, 100, 110, r(1, Some(3))),
    ]);
}

#[test]
fn stale_read_is_flagged() {
    assert_flags(
        &vec![
            ok(0, 0, 10, w(1, 1)),
            ok(0, 20, 30, w(1, 2)),
            ok(1, 40, 50, r(1, Some(1))),
        ],
        AnomalyKind::NonLinearizable,
    );
}

#[test]
fn lost_write_is_flagged() {
    // The acknowledged write of 2 is never visible to a read that started after it completed.
    assert_flags(
        &vec![
            ok(0, 0, 10, w(1, 1)),
            ok(1, 20, 30, w(1, 2)),
            ok(2, 40, 50, r(1, Some(1))),
            ok(2, 60, 70, r(1, Some(1))),
        ],
        AnomalyKind::NonLinearizable,
    );
    assert_flags(
        &vec![ok(0, 0, 10, w(1, 1)), ok(2, 40, 50, r(1, None))],
        AnomalyKind::NonLinearizable,
    );
}

#[test]
fn read_of_a_value_never_written_is_flagged() {
    let history = vec![ok(0, 0, 10, w(1, 1)), ok(1, 20, 30, r(1, Some(7)))];
    assert_flags(&history, AnomalyKind::UnwrittenValueRead);
    assert_flags(&history, AnomalyKind::NonLinearizable);
    // A failed write does not count as written.
    assert_flags(
        &vec![fail(0, 0, 10, w(1, 7)), ok(1, 20, 30, r(1, Some(7)))],
        AnomalyKind::UnwrittenValueRead,
    );
}

#[test]
fn cas_that_succeeded_from_a_wrong_value_is_flagged() {
    let result = check(&vec![
        ok(0, 0, 10, w(1, 1)),
        ok(0, 20, 30, w(1, 2)),
        ok(1, 40, 50, cas(1, 1, 3)),
    ]);
    assert!(result.has(AnomalyKind::NonLinearizable), "{result}");
    assert!(!result.has(AnomalyKind::UnwrittenValueRead), "{result}");
}

#[test]
fn keys_are_independent() {
    // Each key alone is linearizable; a single register over both keys would not be.
    assert_valid(&vec![
        ok(0, 0, 10, w(1, 1)),
        ok(0, 20, 30, w(2, 2)),
        ok(1, 40, 50, r(1, Some(1))),
        ok(1, 60, 70, r(2, Some(2))),
    ]);
    let result = check(&vec![
        ok(0, 0, 10, w(1, 1)),
        ok(0, 20, 30, w(2, 2)),
        ok(0, 40, 50, w(2, 3)),
        ok(1, 60, 70, r(2, Some(2))),
    ]);
    assert_eq!(result.anomalies.len(), 1, "{result}");
}

#[test]
fn budget_exceeded_is_undecided_not_an_anomaly() {
    let history: History<RegisterOp> = (0..8)
        .map(|i| ok(i as usize, i, 1000, w(1, i)))
        .chain([ok(9, 2000, 2010, r(1, Some(3)))])
        .collect();
    let result = check_with_budget(&history, 3);
    assert_eq!(result.verdict(), Verdict::Unknown, "{result}");
    assert!(result.anomalies.is_empty());
    assert_eq!(result.undecided.len(), 1);
    assert_eq!(check(&history).verdict(), Verdict::Valid);
}

/// A linearizable history of one key: operations with random times, applied to a register in
/// the order of a random point inside each, with unique written values; some writes end
/// unknown (half of those never took effect), some reads unknown.
fn generated(rng: &mut Rng, key: u64, ops: usize, window_ms: u64) -> History<RegisterOp> {
    struct Planned {
        op: Op<RegisterOp>,
        point: u64,
        happens: bool,
    }
    let mut planned = Vec::new();
    for i in 0..ops {
        let invoke = rng.below(window_ms);
        let length = 1 + rng.below(60);
        let point = invoke + rng.below(length + 1);
        let value = (key << 32) + i as u64;
        let f = match rng.below(10) {
            0..=3 => RegisterF::Read(None),
            4..=6 => RegisterF::Write(value),
            _ => RegisterF::Cas {
                from: (key << 32) + rng.below(i as u64 + 1),
                to: value,
            },
        };
        let outcome = if rng.below(10) == 0 {
            Outcome::Unknown
        } else {
            Outcome::Ok
        };
        let happens = outcome == Outcome::Ok || rng.below(2) == 0;
        let op = op(i, invoke, invoke + length, outcome, RegisterOp { key, f });
        planned.push(Planned { op, point, happens });
    }
    planned.sort_by_key(|p| p.point);
    let mut register = None;
    for p in &mut planned {
        match &mut p.op.value.f {
            RegisterF::Read(value) => *value = register,
            RegisterF::Write(value) if p.happens => register = Some(*value),
            RegisterF::Write(_) => {}
            RegisterF::Cas { from, to } => {
                if register != Some(*from) {
                    if p.op.outcome == Outcome::Ok {
                        p.op.outcome = Outcome::Fail;
                    }
                } else if p.happens {
                    register = Some(*to);
                }
            }
        }
    }
    planned.into_iter().map(|p| p.op).collect()
}

#[test]
fn generated_histories_are_linearizable_and_checked_quickly() {
    let mut rng = Rng::new(7);
    let mut history = Vec::new();
    for key in 0..5 {
        history.extend(generated(&mut rng, key, 400, 4000));
    }
    let started = Instant::now();
    let result = check(&history);
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}: {result}",
        started.elapsed()
    );
}

#[test]
fn generated_history_with_a_stale_read_is_flagged() {
    let mut rng = Rng::new(11);
    let mut history = generated(&mut rng, 1, 300, 3000);
    // A read long after everything else that returns the first value ever written.
    let first = history
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .filter_map(|op| match op.value.f {
            RegisterF::Write(value) => Some((op.complete, value)),
            _ => None,
        })
        .min()
        .map(|(_, value)| value)
        .unwrap();
    let last = history.iter().map(|op| op.complete).max().unwrap();
    let end = last.as_millis() as u64;
    history.push(ok(9999, end + 10, end + 20, w(1, 1 << 40)));
    history.push(ok(9999, end + 30, end + 40, r(1, Some(first))));
    assert_flags(&history, AnomalyKind::NonLinearizable);
}

/// Whether `ops` has a linearization, by trying every order (for a handful of operations).
fn brute_force(ops: &[Op<RegisterOp>]) -> bool {
    let ops: Vec<&Op<RegisterOp>> = ops
        .iter()
        .filter(|op| {
            !matches!(
                (op.outcome, &op.value.f),
                (Outcome::Fail, _) | (Outcome::Unknown, RegisterF::Read(_))
            )
        })
        .collect();
    fn extend(ops: &[&Op<RegisterOp>], used: &mut Vec<bool>, value: Option<u64>) -> bool {
        let pending = |used: &[bool], i: usize| !used[i] && ops[i].outcome == Outcome::Ok;
        if !(0..ops.len()).any(|i| pending(used, i)) {
            return true;
        }
        for i in 0..ops.len() {
            let blocked =
                (0..ops.len()).any(|p| pending(used, p) && ops[p].complete < ops[i].invoke);
            if used[i] || blocked {
                continue;
            }
            let next = match ops[i].value.f {
                RegisterF::Read(read) => (read == value).then_some(value),
                RegisterF::Write(written) => Some(Some(written)),
                RegisterF::Cas { from, to } => (value == Some(from)).then_some(Some(to)),
            };
            if let Some(next) = next {
                used[i] = true;
                let found = extend(ops, used, next);
                used[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    extend(&ops, &mut vec![false; ops.len()], None)
}

#[test]
fn verdicts_agree_with_brute_force_on_small_random_histories() {
    let mut rng = Rng::new(5);
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..4000 {
        let len = 1 + rng.below(7) as usize;
        // Half the histories write each value once, half reuse three values.
        let unique = rng.below(2) == 0;
        let values = if unique { len as u64 } else { 3 };
        let history: History<RegisterOp> = (0..len)
            .map(|i| {
                let invoke = rng.below(50);
                let complete = invoke + rng.below(30);
                let value = if unique {
                    i as u64 + 1
                } else {
                    1 + rng.below(3)
                };
                let f = match rng.below(4) {
                    0 => RegisterF::Read(None),
                    1 => RegisterF::Read(Some(1 + rng.below(values))),
                    2 => RegisterF::Write(value),
                    _ => RegisterF::Cas {
                        from: 1 + rng.below(values),
                        to: value,
                    },
                };
                let outcome = match rng.below(6) {
                    0 => Outcome::Unknown,
                    1 => Outcome::Fail,
                    _ => Outcome::Ok,
                };
                op(i, invoke, complete, outcome, RegisterOp { key: 1, f })
            })
            .collect();
        let expected = brute_force(&history);
        let result = check(&history);
        let verdict = result.verdict() == Verdict::Valid;
        assert_eq!(verdict, expected, "{history:#?}\n{result}");
        if expected {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 300 && invalid > 300,
        "valid {valid}, invalid {invalid}"
    );
}
