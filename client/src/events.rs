//! Events, as Kubernetes' event recorder writes them: `emit` never waits (a background task
//! sends), and a repeat of the same event (same object, field path, reason and message)
//! raises the first one's `count` and `lastTimestamp` instead of creating another, as the
//! recorder's correlator does, so `kubectl describe` shows `(x3 over 2m)`; and new events about
//! one object with one reason are limited as its spam filter limits them (a burst of 25, then
//! one per 5 minutes), so a 10,000-replica ReplicaSet does not write 10,000 SuccessfulCreate
//! events. Used by the agent (as the kubelet), the scheduler and the controllers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    Api, Resource,
};
use serde_json::json;
use tokio::sync::mpsc;

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

#[derive(Debug)]
struct Record {
    object: ObjectReference,
    kind: Kind,
    reason: String,
    message: String,
}

/// Who reports the events (`source` and `reportingComponent`/`reportingInstance`).
#[derive(Debug, Clone)]
pub struct Source {
    /// `kubelet`, `default-scheduler`, `replicaset-controller`, ...
    pub component: String,
    /// The node, for per-node components.
    pub host: Option<String>,
    /// This process (its identity for leader election, or the node).
    pub instance: String,
}

/// Sends events; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
}

/// Remembered events per recorder before the oldest are forgotten.
const REMEMBERED: usize = 4096;
/// The spam filter: new events per (object, reason) in a burst, then one per period.
const SPAM_BURST: f64 = 25.0;
const SPAM_PERIOD: Duration = Duration::from_secs(300);

/// A token bucket per (object uid, reason) for new events.
#[derive(Default)]
struct SpamFilter {
    buckets: HashMap<(String, String), (f64, Instant)>,
}

impl SpamFilter {
    /// Whether a new event about `uid` with `reason` may be written now.
    fn allow(&mut self, uid: &str, reason: &str, now: Instant) -> bool {
        if self.buckets.len() > REMEMBERED {
            self.buckets.clear();
        }
        let (tokens, last) = self
            .buckets
            .entry((uid.to_string(), reason.to_string()))
            .or_insert((SPAM_BURST, now));
        let refill = now.duration_since(*last).as_secs_f64() / SPAM_PERIOD.as_secs_f64();
        *tokens = (*tokens + refill).min(SPAM_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Recorder {
    /// A recorder whose background task writes through `client` as `source`.
    pub fn start(client: kube::Client, source: Source) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, source, rx));
        Recorder { tx }
    }

    /// Records an event about the object `object` refers to.
    pub fn emit_ref(&self, object: ObjectReference, kind: Kind, reason: &str, message: String) {
        let _ = self.tx.send(Record {
            object,
            kind,
            reason: reason.into(),
            message,
        });
    }

    /// Records an event about `obj`.
    pub fn emit<K>(&self, obj: &K, kind: Kind, reason: &str, message: String)
    where
        K: Resource<DynamicType = ()>,
    {
        self.emit_ref(obj.object_ref(&()), kind, reason, message);
    }
}

async fn run(client: kube::Client, source: Source, mut rx: mpsc::UnboundedReceiver<Record>) {
    // (namespace, uid, field path, reason, message) -> (event name, count)
    let mut seen: HashMap<(String, String, String, String, String), (String, i32)> = HashMap::new();
    let mut serial: u64 = 0;
    let mut spam = SpamFilter::default();
    while let Some(r) = rx.recv().await {
        let namespace = r
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let now = Timestamp::now();
        let key = (
            namespace.clone(),
            r.object.uid.clone().unwrap_or_default(),
            r.object.field_path.clone().unwrap_or_default(),
            r.reason.clone(),
            r.message.clone(),
        );
        if let Some((name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": Time(now)});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                Err(e) => tracing::debug!(error = %e, "event patch failed; creating a new one"),
            }
        }
        let uid = r.object.uid.clone().unwrap_or_default();
        if !spam.allow(&uid, &r.reason, Instant::now()) {
            tracing::debug!(object = ?r.object.name, reason = %r.reason, "event dropped by the spam filter");
            continue;
        }
        serial += 1;
        let name = format!(
            "{}.{:x}{:04x}",
            r.object.name.clone().unwrap_or_default(),
            now.as_nanosecond(),
            serial & 0xffff
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: r.object,
            reason: Some(r.reason),
            message: Some(r.message),
            type_: Some(match r.kind {
                Kind::Normal => "Normal".into(),
                Kind::Warning => "Warning".into(),
            }),
            source: Some(EventSource {
                component: Some(source.component.clone()),
                host: source.host.clone(),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some(source.component.clone()),
            reporting_instance: Some(source.instance.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if seen.len() > REMEMBERED {
                    seen.clear();
                }
                seen.insert(key, (name, 1));
            }
            Err(e) => tracing::debug!(error = %e, "event not recorded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spam_filter_bursts_then_refills() {
        let mut f = SpamFilter::default();
        let t0 = Instant::now();
        for _ in 0..25 {
            assert!(f.allow("u1", "SuccessfulCreate", t0));
        }
        assert!(!f.allow("u1", "SuccessfulCreate", t0));
        // Another reason or object has its own bucket.
        assert!(f.allow("u1", "SuccessfulDelete", t0));
        assert!(f.allow("u2", "SuccessfulCreate", t0));
        // One token back after one period.
        assert!(f.allow("u1", "SuccessfulCreate", t0 + SPAM_PERIOD));
        assert!(!f.allow("u1", "SuccessfulCreate", t0 + SPAM_PERIOD));
    }
}
