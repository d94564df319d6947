//! Events about pods (Pulling, Pulled, Created, Started, Killing, BackOff, Failed...), sent by
//! one background task so that no pod worker waits on them. A repeat of the same event (same
//! object, container, reason and message) increments the first one's count, as the kubelet's
//! event correlator does.

use std::collections::HashMap;

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference, Pod},
    apimachinery::pkg::apis::meta::v1::{MicroTime, Time},
    jiff::Timestamp,
};
use kube::{
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    Api,
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
    namespace: String,
    object: ObjectReference,
    kind: Kind,
    reason: String,
    message: String,
}

/// Sends events; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
}

/// The field path of a container in its pod (`spec.containers{app}`).
pub fn field_path(pod: &Pod, container: &str) -> String {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|l| l.iter().any(|c| c.name == container));
    if init {
        format!("spec.initContainers{{{container}}}")
    } else {
        format!("spec.containers{{{container}}}")
    }
}

impl Recorder {
    /// A recorder whose task sends as `node`'s agent.
    pub fn start(client: kube::Client, node: String) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, node, rx));
        Recorder { tx }
    }

    /// Records an event about `pod` (and one of its containers).
    pub fn emit(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: Kind,
        reason: &str,
        message: String,
    ) {
        let m = &pod.metadata;
        let namespace = m.namespace.clone().unwrap_or_else(|| "default".into());
        let object = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: m.name.clone(),
            namespace: Some(namespace.clone()),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            field_path: container.map(|c| field_path(pod, c)),
        };
        let _ = self.tx.send(Record {
            namespace,
            object,
            kind,
            reason: reason.into(),
            message,
        });
    }
}

async fn run(client: kube::Client, node: String, mut rx: mpsc::UnboundedReceiver<Record>) {
    // (namespace, uid, field path, reason, message) -> (event name, count)
    let mut seen: HashMap<(String, String, String, String, String), (String, i32)> = HashMap::new();
    let mut serial: u64 = 0;
    while let Some(r) = rx.recv().await {
        let api: Api<Event> = Api::namespaced(client.clone(), &r.namespace);
        let now = Timestamp::now();
        let key = (
            r.namespace.clone(),
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
                namespace: Some(r.namespace.clone()),
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
                component: Some("kubelet".into()),
                host: Some(node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(node.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if seen.len() > 4096 {
                    seen.clear();
                }
                seen.insert(key, (name, 1));
            }
            Err(e) => tracing::debug!(error = %e, "event not recorded"),
        }
    }
}
