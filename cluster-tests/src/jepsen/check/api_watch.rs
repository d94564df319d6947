//! Watches through the apiserver: every update of a ConfigMap adds one to its counter, so a
//! watcher that sees each change once and in order sees each ConfigMap's counter go up by
//! exactly one per event, up to the final value read at the end.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AnomalyKind, CheckResult};

/// One ADDED/MODIFIED/DELETED event a watcher received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEvent {
    pub object: String,
    /// The counter in the object's data.
    pub value: u64,
    pub resource_version: String,
}

/// What one watcher (one per apiserver) received, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatcherLog {
    pub apiserver: usize,
    /// The resourceVersion the watch started from (every object's counter was 0 there).
    pub from: String,
    pub events: Vec<ObjectEvent>,
    /// Error events the watch stream delivered (code and message).
    pub errors: Vec<String>,
}

/// Checks each watcher against the final counters.
pub fn check(logs: &[WatcherLog], finals: &BTreeMap<String, u64>) -> CheckResult {
    let mut result = CheckResult::new("watch through the apiserver");
    for log in logs {
        let mut last: BTreeMap<&str, u64> = finals.keys().map(|k| (k.as_str(), 0)).collect();
        for (i, event) in log.events.iter().enumerate() {
            let Some(previous) = last.get_mut(event.object.as_str()) else {
                result.push(
                    AnomalyKind::UnexpectedEvent,
                    format!(
                        "apiserver {} watcher: event for {} which the workload never created",
                        log.apiserver, event.object
                    ),
                    vec![format!("event {i}: {event:?}")],
                );
                continue;
            };
            let expected = *previous + 1;
            if event.value != expected {
                let kind = if event.value <= *previous {
                    if event.value == *previous {
                        AnomalyKind::DuplicateEvent
                    } else {
                        AnomalyKind::ReorderedEvents
                    }
                } else {
                    AnomalyKind::MissingEvent
                };
                result.push(
                    kind,
                    format!(
                        "apiserver {} watcher: {} went from {} to {} (expected {expected})",
                        log.apiserver, event.object, previous, event.value
                    ),
                    vec![format!("event {i}: {event:?}")],
                );
            }
            *previous = (*previous).max(event.value);
        }
        for (object, final_value) in finals {
            let seen = last.get(object.as_str()).copied().unwrap_or(0);
            if seen < *final_value {
                result.push(
                    AnomalyKind::MissingEvent,
                    format!(
                        "apiserver {} watcher: {object} is at {final_value} but the watcher saw it only up to {seen}",
                        log.apiserver
                    ),
                    log.errors.iter().map(|e| format!("watch error: {e}")).collect(),
                );
            }
        }
        result.stat("events", log.events.len() as u64);
    }
    result.stat("watchers", logs.len() as u64);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(events: &[(&str, u64)]) -> WatcherLog {
        WatcherLog {
            apiserver: 0,
            from: "1".into(),
            events: events
                .iter()
                .enumerate()
                .map(|(i, (o, v))| ObjectEvent {
                    object: (*o).into(),
                    value: *v,
                    resource_version: (i + 2).to_string(),
                })
                .collect(),
            errors: Vec::new(),
        }
    }

    fn finals(values: &[(&str, u64)]) -> BTreeMap<String, u64> {
        values.iter().map(|(o, v)| ((*o).to_owned(), *v)).collect()
    }

    #[test]
    fn every_change_once_in_order_passes() {
        let l = log(&[("a", 1), ("b", 1), ("a", 2), ("a", 3)]);
        let r = check(&[l], &finals(&[("a", 3), ("b", 1), ("c", 0)]));
        assert!(r.valid(), "{r}");
    }

    #[test]
    fn a_skipped_change_is_missing() {
        let l = log(&[("a", 1), ("a", 3)]);
        let r = check(&[l], &finals(&[("a", 3)]));
        assert!(r.has(AnomalyKind::MissingEvent), "{r}");
    }

    #[test]
    fn a_change_seen_twice_is_a_duplicate() {
        let l = log(&[("a", 1), ("a", 1), ("a", 2)]);
        let r = check(&[l], &finals(&[("a", 2)]));
        assert!(r.has(AnomalyKind::DuplicateEvent), "{r}");
    }

    #[test]
    fn going_back_is_a_reorder() {
        let l = log(&[("a", 1), ("a", 2), ("a", 1)]);
        let r = check(&[l], &finals(&[("a", 2)]));
        assert!(r.has(AnomalyKind::ReorderedEvents), "{r}");
    }

    #[test]
    fn stopping_short_of_the_final_value_is_missing() {
        let l = log(&[("a", 1)]);
        let r = check(&[l], &finals(&[("a", 2)]));
        assert!(r.has(AnomalyKind::MissingEvent), "{r}");
    }
}
