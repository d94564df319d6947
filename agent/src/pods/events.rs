//! Events about pods (Pulling, Pulled, Created, Started, Killing, BackOff, Failed...), sent as
//! the kubelet sends them (source `kubelet` on this node) through the client library's
//! recorder, which sends in the background and counts repeats instead of duplicating them.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};

pub use client::events::Kind;

/// Sends events; cheap to clone.
#[derive(Clone)]
pub struct Recorder(client::events::Recorder);

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
    /// A recorder that sends as `node`'s agent.
    pub fn start(client: kube::Client, node: String) -> Recorder {
        Recorder(client::events::Recorder::start(
            client,
            client::events::Source {
                component: "kubelet".into(),
                host: Some(node.clone()),
                instance: node,
            },
        ))
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
            namespace: Some(namespace),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            field_path: container.map(|c| field_path(pod, c)),
        };
        self.0.emit_ref(object, kind, reason, message);
    }
}
