//! Tests of the watch checker.

use std::time::Duration;

use super::check;
use crate::jepsen::check::{AnomalyKind, Verdict};
use crate::jepsen::history::{WatchEvent, WatchLog};

fn put(revision: i64, key: &str, value: &str, response: u64) -> WatchEvent {
    WatchEvent {
        revision,
        key: key.to_string(),
        value: Some(value.to_string()),
        response,
    }
}

fn delete(revision: i64, key: &str, response: u64) -> WatchEvent {
    WatchEvent {
        revision,
        key: key.to_string(),
        value: None,
        response,
    }
}

/// Revisions 2..=7 under `a/` and `b/`; revision 4 is a transaction of two puts, revision 6
/// a delete.
fn reference() -> Vec<WatchEvent> {
    vec![
        put(2, "a/1", "x", 0),
        put(3, "b/1", "y", 0),
        put(4, "a/1", "z", 0),
        put(4, "a/2", "w", 0),
        put(5, "a/3", "v", 0),
        delete(6, "a/1", 0),
        put(7, "b/2", "u", 0),
    ]
}

fn log(start_revision: i64, events: Vec<WatchEvent>) -> WatchLog {
    WatchLog {
        watcher: 1,
        prefix: "a/".to_string(),
        start_revision,
        restarts: Vec::new(),
        events,
    }
}

/// The `a/` events in order, one response per revision.
fn full_log() -> WatchLog {
    log(
        1,
        vec![
            put(2, "a/1", "x", 0),
            put(4, "a/1", "z", 1),
            put(4, "a/2", "w", 1),
            put(5, "a/3", "v", 2),
            delete(6, "a/1", 3),
        ],
    )
}

fn assert_only(logs: &[WatchLog], kind: AnomalyKind) {
    let result = check(logs, &reference());
    assert!(result.has(kind), "expected {kind:?}: {result}");
    assert!(
        result.anomalies.iter().all(|a| a.kind == kind),
        "expected only {kind:?}: {result}"
    );
}

#[test]
fn complete_logs_are_valid() {
    let mut b = log(3, vec![put(3, "b/1", "y", 0), put(7, "b/2", "u", 1)]);
    b.prefix = "b/".to_string();
    b.watcher = 2;
    let result = check(&[full_log(), b], &reference());
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
}

#[test]
fn log_with_restarts_is_valid() {
    let mut restarted = log(
        4,
        vec![
            put(4, "a/1", "z", 0),
            put(4, "a/2", "w", 0),
            // The stream broke; the watcher re-created it from revision 5.
            put(5, "a/3", "v", 1),
            delete(6, "a/1", 2),
        ],
    );
    restarted.restarts = vec![(Duration::from_secs(3), 5), (Duration::from_secs(4), 6)];
    let result = check(&[restarted], &reference());
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
}

#[test]
fn watcher_that_stopped_early_is_not_missing_later_events() {
    let early = log(1, vec![put(2, "a/1", "x", 0)]);
    let silent = log(1, Vec::new());
    let result = check(&[early, silent], &reference());
    assert_eq!(result.verdict(), Verdict::Valid, "{result}");
}

#[test]
fn gap_is_flagged() {
    let mut gap = full_log();
    gap.events.remove(3);
    assert_only(&[gap], AnomalyKind::MissingEvent);
}

#[test]
fn duplicate_is_flagged() {
    let mut duplicated = full_log();
    // Re-created from the last revision seen instead of the one after it.
    duplicated.events.push(delete(6, "a/1", 4));
    assert_only(&[duplicated], AnomalyKind::DuplicateEvent);
}

#[test]
fn reorder_is_flagged() {
    let mut reordered = full_log();
    reordered.events.swap(3, 4);
    reordered.events[3].response = 2;
    reordered.events[4].response = 3;
    assert_only(&[reordered], AnomalyKind::ReorderedEvents);
}

#[test]
fn unexpected_events_are_flagged() {
    let mut wrong_value = full_log();
    wrong_value.events[0].value = Some("not x".to_string());
    let result = check(&[wrong_value], &reference());
    assert!(result.has(AnomalyKind::UnexpectedEvent), "{result}");

    let mut invented = full_log();
    invented.events.push(put(8, "a/9", "t", 4));
    assert_only(&[invented], AnomalyKind::UnexpectedEvent);

    let mut outside_prefix = full_log();
    outside_prefix.events.insert(1, put(3, "b/1", "y", 1));
    assert_only(&[outside_prefix], AnomalyKind::UnexpectedEvent);
}

#[test]
fn split_transaction_is_flagged() {
    let mut split = full_log();
    split.events[2].response = 9;
    split.events[3].response = 10;
    split.events[4].response = 11;
    assert_only(&[split], AnomalyKind::SplitRevision);
}
