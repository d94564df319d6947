//! The Events section of a description, as kubectl prints it: `Type Reason Age From Message`,
//! oldest first, repeated events as `2m (x3 over 5m)`.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::text::{arr, s, since, Text};

/// The query path for the events about an object (all namespaces for a cluster-scoped one).
pub fn path(namespace: &str, name: &str, uid: &str) -> String {
    let root = if namespace.is_empty() {
        "/api/v1/events".to_string()
    } else {
        format!("/api/v1/namespaces/{namespace}/events")
    };
    format!("{root}?fieldSelector=involvedObject.name%3D{name},involvedObject.uid%3D{uid}")
}

/// Writes the Events section for `list` (an EventList).
pub fn write(w: &mut Text, list: &Value, now: Timestamp) {
    let mut items = arr(list.get("items")).to_vec();
    if items.is_empty() {
        w.w(0, "Events:\t<none>\n");
        return;
    }
    w.flush();
    items.sort_by_key(|e| {
        s(e, "/lastTimestamp")
            .parse::<Timestamp>()
            .ok()
            .map(|t| t.as_second())
    });
    w.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.w(1, "----\t------\t----\t----\t-------\n");
    for e in &items {
        let first = match s(e, "/eventTime") {
            "" => since(s(e, "/firstTimestamp"), now),
            t => since(t, now),
        };
        let count = e.get("count").and_then(Value::as_i64).unwrap_or(0);
        let interval = if let Some(series) = e.get("series").filter(|v| !v.is_null()) {
            format!(
                "{} (x{} over {first})",
                since(s(series, "/lastObservedTime"), now),
                series.get("count").and_then(Value::as_i64).unwrap_or(0)
            )
        } else if count > 1 {
            format!(
                "{} (x{count} over {first})",
                since(s(e, "/lastTimestamp"), now)
            )
        } else {
            first
        };
        let source = match s(e, "/source/component") {
            "" => s(e, "/reportingComponent"),
            c => c,
        };
        w.w(
            1,
            &format!(
                "{}\t{}\t{interval}\t{source}\t{}\n",
                s(e, "/type"),
                s(e, "/reason"),
                s(e, "/message").trim()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeated_events_show_counts() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let list = json!({"items": [
            {"type": "Warning", "reason": "BackOff", "message": "Back-off restarting ",
             "count": 3, "firstTimestamp": "2026-01-01T00:05:00Z",
             "lastTimestamp": "2026-01-01T00:09:00Z", "source": {"component": "kubelet"}},
            {"type": "Normal", "reason": "Scheduled", "message": "Assigned",
             "eventTime": "2026-01-01T00:00:00.000000Z", "reportingComponent": "default-scheduler",
             "lastTimestamp": "2026-01-01T00:00:00Z"},
        ]});
        let mut w = Text::default();
        w.w(0, "Name:\tp\n");
        write(&mut w, &list, now);
        assert_eq!(
            w.finish(),
            "Name:  p\nEvents:\n  Type     Reason     Age               From               Message\n  \
             ----     ------     ----              ----               -------\n  \
             Normal   Scheduled  10m               default-scheduler  Assigned\n  \
             Warning  BackOff    60s (x3 over 5m)  kubelet            Back-off restarting\n"
        );
    }
}
