//! Checkers: each returns `Ok` or an error listing the violations it found (the first 20 in
//! full, and how many there were).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Result};

use super::{History, PutOp, ReadOutcome, Snapshot, WatchLog, WatchedEvent};

/// How many violations an error message lists.
const SHOWN: usize = 20;

/// Violations found by one checker.
struct Violations {
    what: &'static str,
    found: Vec<String>,
    count: usize,
}

impl Violations {
    fn new(what: &'static str) -> Violations {
        Violations {
            what,
            found: Vec::new(),
            count: 0,
        }
    }

    fn push(&mut self, violation: String) {
        self.count += 1;
        if self.found.len() < SHOWN {
            self.found.push(violation);
        }
    }

    fn into_result(self) -> Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let mut text = format!("{}: {} violation(s)", self.what, self.count);
        for violation in &self.found {
            let _ = write!(text, "\n  - {violation}");
        }
        if self.count > self.found.len() {
            let _ = write!(text, "\n  ... and {} more", self.count - self.found.len());
        }
        bail!(text)
    }
}

/// Runs every history checker against the final state (read after the load stopped) and
/// reports all their violations together.
pub fn history(history: &History, state: &Snapshot) -> Result<()> {
    let results = [
        client_order(history),
        puts_match_state(history, state),
        realtime_order(history, state),
        reads_fresh(history),
    ];
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{}\nhistory: {}", errors.join("\n"), history.summary())
    }
}

/// Per client, the revisions of acknowledged puts strictly increase (a client's puts are
/// sequential and each put makes a new revision).
pub fn client_order(history: &History) -> Result<()> {
    let mut violations = Violations::new("per-client revision order");
    let mut last: HashMap<usize, &PutOp> = HashMap::new();
    for op in history.acked() {
        let revision = op.acked_revision().unwrap_or_default();
        if let Some(prev) = last.get(&op.client) {
            let prev_revision = prev.acked_revision().unwrap_or_default();
            if revision <= prev_revision {
                violations.push(format!(
                    "client {}: revision went from {prev_revision} to {revision}: [{prev}] \
                     then [{op}]",
                    op.client
                ));
            }
        }
        last.insert(op.client, op);
    }
    violations.into_result()
}

/// The final state against the puts:
/// - every acknowledged put is present with its value, its acknowledged revision as both
///   create and mod revision, and version 1 (keys are written once);
/// - no two acknowledged puts share a revision;
/// - every key in the state was attempted by some put, with that put's value (indeterminate
///   puts may be present or absent);
/// - no key has a revision above the state's revision.
pub fn puts_match_state(history: &History, state: &Snapshot) -> Result<()> {
    let mut violations = Violations::new("puts against the final state");
    let attempted: HashMap<&str, &PutOp> =
        history.ops.iter().map(|op| (op.key.as_str(), op)).collect();
    let mut by_revision: BTreeMap<i64, &PutOp> = BTreeMap::new();
    for op in history.acked() {
        let revision = op.acked_revision().unwrap_or_default();
        if let Some(other) = by_revision.insert(revision, op) {
            violations.push(format!(
                "two puts acknowledged at revision {revision}: [{other}] and [{op}]"
            ));
        }
        match state.kvs.get(&op.key) {
            None => violations.push(format!("acknowledged put lost: [{op}]")),
            Some(kv) => {
                if kv.value != op.value {
                    violations.push(format!("[{op}] reads back value {:?}", kv.value));
                }
                if kv.mod_revision != revision || kv.create_revision != revision {
                    violations.push(format!(
                        "[{op}] reads back create revision {}, mod revision {}",
                        kv.create_revision, kv.mod_revision
                    ));
                }
                if kv.version != 1 {
                    violations.push(format!("[{op}] reads back version {}", kv.version));
                }
            }
        }
    }
    for (key, kv) in &state.kvs {
        match attempted.get(key.as_str()) {
            None => violations.push(format!(
                "key {key} (value {:?}, mod revision {}) was never written",
                kv.value, kv.mod_revision
            )),
            Some(op) if op.value != kv.value => violations.push(format!(
                "key {key} has value {:?}, but the only put of it was [{op}]",
                kv.value
            )),
            Some(_) => {}
        }
        if kv.mod_revision > state.revision {
            violations.push(format!(
                "key {key} has mod revision {} above the read's revision {}",
                kv.mod_revision, state.revision
            ));
        }
    }
    violations.into_result()
}

/// Real-time order (a consequence of linearizability): a put invoked after another put was
/// acknowledged takes effect at a higher revision. Applies to acknowledged puts, and to
/// indeterminate puts found in the final state (at the revision they were found with).
pub fn realtime_order(history: &History, state: &Snapshot) -> Result<()> {
    let mut violations = Violations::new("real-time order of puts");
    // Acknowledged puts by completion time: the ones that constrain later invocations.
    let mut completed: Vec<(Duration, i64, &PutOp)> = history
        .acked()
        .map(|op| (op.completed, op.acked_revision().unwrap_or_default(), op))
        .collect();
    completed.sort_by_key(|&(at, revision, _)| (at, revision));
    // Every put that took effect, with its revision, by invocation time.
    let mut effective: Vec<(Duration, i64, &PutOp)> = history
        .ops
        .iter()
        .filter_map(|op| match op.acked_revision() {
            Some(revision) => Some((op.invoked, revision, op)),
            None => state
                .kvs
                .get(&op.key)
                .filter(|kv| kv.value == op.value)
                .map(|kv| (op.invoked, kv.mod_revision, op)),
        })
        .collect();
    effective.sort_by_key(|&(at, revision, _)| (at, revision));
    let mut next = 0;
    let mut highest: Option<(i64, &PutOp)> = None;
    for (invoked, revision, op) in effective {
        while next < completed.len() && completed[next].0 < invoked {
            let (_, done_revision, done) = completed[next];
            if highest.is_none_or(|(r, _)| done_revision > r) {
                highest = Some((done_revision, done));
            }
            next += 1;
        }
        if let Some((before, earlier)) = highest {
            if revision <= before {
                violations.push(format!(
                    "[{op}] took effect at revision {revision}, not after [{earlier}], which \
                     was acknowledged before it was invoked"
                ));
            }
        }
    }
    violations.into_result()
}

/// Linearizable reads are not stale: a read returns a revision at least as high as that of
/// every put acknowledged before the read was invoked, and finds the key it asked for (whose
/// put was acknowledged before the read) with that put's value and revision.
pub fn reads_fresh(history: &History) -> Result<()> {
    let mut violations = Violations::new("linearizable reads");
    let puts: HashMap<&str, &PutOp> = history.ops.iter().map(|op| (op.key.as_str(), op)).collect();
    let mut completed: Vec<(Duration, i64, &PutOp)> = history
        .acked()
        .map(|op| (op.completed, op.acked_revision().unwrap_or_default(), op))
        .collect();
    completed.sort_by_key(|&(at, revision, _)| (at, revision));
    let mut reads: Vec<_> = history.reads.iter().collect();
    reads.sort_by_key(|read| read.invoked);
    let mut next = 0;
    let mut highest: Option<(i64, &PutOp)> = None;
    for read in reads {
        while next < completed.len() && completed[next].0 < read.invoked {
            let (_, done_revision, done) = completed[next];
            if highest.is_none_or(|(r, _)| done_revision > r) {
                highest = Some((done_revision, done));
            }
            next += 1;
        }
        let revision = match &read.outcome {
            ReadOutcome::Found { revision, .. } | ReadOutcome::Missing { revision } => *revision,
            ReadOutcome::Failed { .. } => continue,
        };
        if let Some((floor, earlier)) = highest {
            if revision < floor {
                violations.push(format!(
                    "stale read: [{read}] is older than [{earlier}], acknowledged before the \
                     read was invoked"
                ));
            }
        }
        let Some(put) = puts.get(read.key.as_str()) else {
            violations.push(format!("[{read}] asked for a key no writer put"));
            continue;
        };
        let Some(put_revision) = put
            .acked_revision()
            .filter(|_| put.completed < read.invoked)
        else {
            continue;
        };
        match &read.outcome {
            ReadOutcome::Found {
                mod_revision,
                value,
                ..
            } if *mod_revision == put_revision && *value == put.value => {}
            _ => violations.push(format!(
                "stale or wrong read: [{read}], but [{put}] before the read was invoked"
            )),
        }
    }
    violations.into_result()
}

/// The watch delivered exactly `expected`, in order: every event once, nothing missing,
/// nothing extra, revisions never going back. Use [`Snapshot::as_put_events`] for the
/// expected events of a put-only load.
pub fn watch_matches(log: &WatchLog, expected: &[WatchedEvent]) -> Result<()> {
    let mut violations = Violations::new("watch events");
    let mut seen: HashMap<(i64, &str), usize> = HashMap::new();
    let mut previous: Option<&WatchedEvent> = None;
    for (position, event) in log.events.iter().enumerate() {
        let count = seen
            .entry((event.revision, event.key.as_str()))
            .or_default();
        *count += 1;
        if *count == 2 {
            violations.push(format!("delivered more than once: {event}"));
        }
        if let Some(prev) = previous {
            if (event.revision, &event.key) <= (prev.revision, &prev.key) && *count == 1 {
                violations.push(format!(
                    "out of order at position {position}: {event} after {prev}"
                ));
            }
        }
        previous = Some(event);
    }
    let wanted: HashMap<(i64, &str), &WatchedEvent> = expected
        .iter()
        .map(|e| ((e.revision, e.key.as_str()), e))
        .collect();
    for event in expected {
        if !seen.contains_key(&(event.revision, event.key.as_str())) {
            violations.push(format!("missing: {event}"));
        }
    }
    for event in &log.events {
        match wanted.get(&(event.revision, event.key.as_str())) {
            None => violations.push(format!("unexpected: {event}")),
            Some(want) if *want != event => {
                violations.push(format!("delivered as {event}, expected {want}"))
            }
            Some(_) => {}
        }
    }
    violations
        .into_result()
        .map_err(|err| err.context(log.summary()))
}

/// Every acknowledged put appears in the watch's events with its revision and value.
pub fn watch_includes_acked(log: &WatchLog, history: &History) -> Result<()> {
    let mut violations = Violations::new("acknowledged puts in the watch");
    let seen: HashMap<(i64, &str), &WatchedEvent> = log
        .events
        .iter()
        .map(|e| ((e.revision, e.key.as_str()), e))
        .collect();
    for op in history.acked() {
        let revision = op.acked_revision().unwrap_or_default();
        match seen.get(&(revision, op.key.as_str())) {
            None => violations.push(format!("not delivered: [{op}]")),
            Some(event) if event.value != op.value => {
                violations.push(format!("[{op}] delivered as {event}"))
            }
            Some(_) => {}
        }
    }
    violations
        .into_result()
        .map_err(|err| err.context(log.summary()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventKind, Kv, PutOutcome, ReadOp};

    fn op(client: usize, n: u64, invoked_ms: u64, completed_ms: u64, rev: Option<i64>) -> PutOp {
        PutOp {
            client,
            key: format!("p/{client}/{n}"),
            value: format!("v{client}-{n}"),
            endpoint: "e".to_owned(),
            invoked: Duration::from_millis(invoked_ms),
            completed: Duration::from_millis(completed_ms),
            outcome: match rev {
                Some(revision) => PutOutcome::Acked { revision },
                None => PutOutcome::Indeterminate {
                    error: "timeout".to_owned(),
                },
            },
        }
    }

    fn state_of(ops: &[(&PutOp, i64)]) -> Snapshot {
        let mut state = Snapshot::default();
        for (op, rev) in ops {
            state.revision = state.revision.max(*rev);
            state.kvs.insert(
                op.key.clone(),
                Kv {
                    value: op.value.clone(),
                    create_revision: *rev,
                    mod_revision: *rev,
                    version: 1,
                    lease: 0,
                },
            );
        }
        state
    }

    #[test]
    fn a_consistent_history_passes() {
        let a = op(0, 0, 0, 10, Some(2));
        let b = op(1, 0, 5, 20, Some(3));
        let c = op(0, 1, 11, 30, None); // indeterminate, present
        let d = op(1, 1, 21, 40, None); // indeterminate, absent
        let state = state_of(&[(&a, 2), (&b, 3), (&c, 4)]);
        let read = ReadOp {
            client: 0,
            key: b.key.clone(),
            endpoint: "e".to_owned(),
            invoked: Duration::from_millis(25),
            completed: Duration::from_millis(26),
            outcome: ReadOutcome::Found {
                revision: 4,
                mod_revision: 3,
                value: b.value.clone(),
            },
        };
        let recorded = History {
            ops: vec![a, b, c, d],
            reads: vec![read],
        };
        history(&recorded, &state).unwrap();
        let log = WatchLog {
            events: state.as_put_events(),
            ..WatchLog::default()
        };
        watch_matches(&log, &state.as_put_events()).unwrap();
        watch_includes_acked(&log, &recorded).unwrap();
    }

    #[test]
    fn lost_and_unknown_keys_are_reported() {
        let a = op(0, 0, 0, 10, Some(2));
        let b = op(0, 1, 11, 20, Some(3));
        let mut state = state_of(&[(&a, 2)]);
        state.kvs.insert(
            "p/x".to_owned(),
            Kv {
                value: "?".to_owned(),
                create_revision: 3,
                mod_revision: 3,
                version: 1,
                lease: 0,
            },
        );
        let history = History {
            ops: vec![a, b],
            reads: Vec::new(),
        };
        let err = format!("{:#}", puts_match_state(&history, &state).unwrap_err());
        assert!(err.contains("acknowledged put lost"), "{err}");
        assert!(err.contains("never written"), "{err}");
    }

    #[test]
    fn order_violations_are_reported() {
        // Client 0 goes backwards; b starts after a completed but gets a lower revision.
        let a = op(0, 0, 0, 10, Some(5));
        let b = op(1, 0, 20, 30, Some(4));
        let c = op(0, 1, 11, 15, Some(3));
        let state = state_of(&[(&a, 5), (&b, 4), (&c, 3)]);
        let history = History {
            ops: vec![a, b, c],
            reads: Vec::new(),
        };
        assert!(client_order(&history).is_err());
        let err = format!("{:#}", realtime_order(&history, &state).unwrap_err());
        assert!(err.contains("p/1/0"), "{err}");
    }

    #[test]
    fn stale_reads_are_reported() {
        let a = op(0, 0, 0, 10, Some(2));
        let b = op(1, 0, 5, 20, Some(3));
        let read = |revision: i64, found: bool| ReadOp {
            client: 0,
            key: a.key.clone(),
            endpoint: "e".to_owned(),
            invoked: Duration::from_millis(30),
            completed: Duration::from_millis(31),
            outcome: if found {
                ReadOutcome::Found {
                    revision,
                    mod_revision: 2,
                    value: a.value.clone(),
                }
            } else {
                ReadOutcome::Missing { revision }
            },
        };
        let history = History {
            ops: vec![a.clone(), b.clone()],
            reads: vec![read(2, true), read(3, false), read(3, true)],
        };
        let err = format!("{:#}", reads_fresh(&history).unwrap_err());
        assert!(err.contains("2 violation(s)"), "{err}");
        assert!(err.contains("stale read"), "{err}");
        assert!(err.contains("not found at revision 3"), "{err}");
    }

    #[test]
    fn watch_duplicates_gaps_and_disorder_are_reported() {
        let event = |revision: i64, key: &str| WatchedEvent {
            revision,
            key: key.to_owned(),
            kind: EventKind::Put,
            value: "v".to_owned(),
        };
        let expected = vec![event(2, "a"), event(3, "b"), event(4, "c")];
        let log = WatchLog {
            events: vec![event(2, "a"), event(4, "c"), event(2, "a"), event(9, "z")],
            ..WatchLog::default()
        };
        let err = format!("{:#}", watch_matches(&log, &expected).unwrap_err());
        assert!(err.contains("more than once: PUT a=v @2"), "{err}");
        assert!(err.contains("missing: PUT b=v @3"), "{err}");
        assert!(err.contains("unexpected: PUT z=v @9"), "{err}");
    }
}
