//! The labels and annotations the agent puts on sandboxes and containers (the kubelet's
//! `io.kubernetes.*` keys): everything the agent knows after a restart comes from them.

use std::collections::HashMap;

use crate::runtime::api;

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Whose sandboxes and containers these are: the agent of this node only touches its own
/// (several agents may share one runtime in tests).
pub const NODE: &str = "agent.io/node";
/// Annotation: the container's restart count (also its CRI attempt).
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Annotation: the image as the pod spec names it (a changed image restarts the container).
pub const SPEC_IMAGE: &str = "agent.io/spec-image";

/// The identity of a pod as the runtime records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

/// The pod a sandbox or container belongs to, from its labels.
pub fn pod_of(labels: &HashMap<String, String>) -> Option<PodRef> {
    Some(PodRef {
        uid: labels.get(POD_UID)?.clone(),
        namespace: labels.get(POD_NAMESPACE).cloned().unwrap_or_default(),
        name: labels.get(POD_NAME).cloned().unwrap_or_default(),
    })
}

/// The selector of everything of this node.
pub fn node_selector(node: &str) -> HashMap<String, String> {
    HashMap::from([(NODE.to_string(), node.to_string())])
}

/// The selector of everything of one pod of this node.
pub fn pod_selector(node: &str, uid: &str) -> HashMap<String, String> {
    HashMap::from([
        (NODE.to_string(), node.to_string()),
        (POD_UID.to_string(), uid.to_string()),
    ])
}

/// The container's name within its pod.
pub fn container_name(c: &api::ContainerStatus) -> String {
    c.labels
        .get(CONTAINER_NAME)
        .cloned()
        .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))
        .unwrap_or_default()
}

/// The container's attempt (restart count).
pub fn attempt(c: &api::ContainerStatus) -> u32 {
    c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0)
}
