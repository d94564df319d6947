//! Watch delivery: each watcher must see exactly the committed events under its prefix, from
//! its start revision up to the last revision it saw, each once, in revision order, and all
//! events of one revision in one response.
//!
//! The reference is the authoritative committed history read back at the end (its events'
//! `response` is ignored). Within one revision events are compared as a set: the order of a
//! transaction's events inside a response is not checked.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{AnomalyKind, CheckResult};
use crate::jepsen::history::{WatchEvent, WatchLog};

/// Checks every watcher's log against the reference events.
pub fn check(logs: &[WatchLog], reference: &[WatchEvent]) -> CheckResult {
    let mut result = CheckResult::new("watch");
    let committed: HashMap<(i64, &str), &WatchEvent> = reference
        .iter()
        .map(|event| ((event.revision, event.key.as_str()), event))
        .collect();
    result.stat("watchers", logs.len() as u64);
    result.stat("reference_events", reference.len() as u64);
    for log in logs {
        check_log(log, reference, &committed, &mut result);
    }
    result
}

fn check_log(
    log: &WatchLog,
    reference: &[WatchEvent],
    committed: &HashMap<(i64, &str), &WatchEvent>,
    result: &mut CheckResult,
) {
    let watcher = log.watcher;
    result.stat("events", log.events.len() as u64);
    result.stat("restarts", log.restarts.len() as u64);
    let mut seen: HashMap<(i64, &str), &WatchEvent> = HashMap::new();
    let mut responses: BTreeMap<i64, BTreeSet<u64>> = BTreeMap::new();
    let mut latest: Option<&WatchEvent> = None;
    for event in &log.events {
        let id = (event.revision, event.key.as_str());
        let expected = committed
            .get(&id)
            .filter(|_| event.key.starts_with(&log.prefix) && event.revision >= log.start_revision);
        match expected {
            Some(expected) if expected.value == event.value => {}
            Some(expected) => {
                result.push(
                    AnomalyKind::UnexpectedEvent,
                    format!(
                        "watcher {watcher} was sent {} with value {:?}; committed: {:?}",
                        describe(event),
                        event.value,
                        expected.value
                    ),
                    vec![line(watcher, event)],
                );
                continue;
            }
            None => {
                result.push(
                    AnomalyKind::UnexpectedEvent,
                    format!(
                        "watcher {watcher} (prefix {:?}, from revision {}) was sent {}, which is \
                         not a committed event it watches",
                        log.prefix,
                        log.start_revision,
                        describe(event)
                    ),
                    vec![line(watcher, event)],
                );
                continue;
            }
        }
        if let Some(first) = seen.get(&id) {
            result.push(
                AnomalyKind::DuplicateEvent,
                format!("watcher {watcher} was sent {} twice", describe(event)),
                vec![line(watcher, first), line(watcher, event)],
            );
            continue;
        }
        if let Some(before) = latest.filter(|before| before.revision > event.revision) {
            result.push(
                AnomalyKind::ReorderedEvents,
                format!(
                    "watcher {watcher} was sent {} after {}",
                    describe(event),
                    describe(before)
                ),
                vec![line(watcher, before), line(watcher, event)],
            );
        }
        seen.insert(id, event);
        responses
            .entry(event.revision)
            .or_default()
            .insert(event.response);
        if latest.is_none_or(|before| event.revision >= before.revision) {
            latest = Some(event);
        }
    }
    for (revision, responses) in responses.iter().filter(|(_, r)| r.len() > 1) {
        let events: Vec<String> = log
            .events
            .iter()
            .filter(|event| event.revision == *revision)
            .map(|event| line(watcher, event))
            .collect();
        result.push(
            AnomalyKind::SplitRevision,
            format!(
                "watcher {watcher} was sent the events of revision {revision} in {} responses",
                responses.len()
            ),
            events,
        );
    }
    let Some(last) = latest.map(|event| event.revision) else {
        return;
    };
    let mut expected = 0;
    for event in reference.iter().filter(|event| {
        event.key.starts_with(&log.prefix) && (log.start_revision..=last).contains(&event.revision)
    }) {
        expected += 1;
        if !seen.contains_key(&(event.revision, event.key.as_str())) {
            result.push(
                AnomalyKind::MissingEvent,
                format!(
                    "watcher {watcher} (from revision {}, restarted {} times, last revision \
                     seen {last}) was never sent {}",
                    log.start_revision,
                    log.restarts.len(),
                    describe(event)
                ),
                vec![format!("committed: {}", describe(event))],
            );
        }
    }
    result.stat("expected_events", expected);
}

fn describe(event: &WatchEvent) -> String {
    match &event.value {
        Some(value) => format!("put {}={value:?} at revision {}", event.key, event.revision),
        None => format!("delete {} at revision {}", event.key, event.revision),
    }
}

fn line(watcher: usize, event: &WatchEvent) -> String {
    format!(
        "watcher {watcher} response {}: {}",
        event.response,
        describe(event)
    )
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
