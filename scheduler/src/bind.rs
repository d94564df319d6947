//! The scheduler's writes: binding a pod to its node through `pods/binding` (a `Scheduled`
//! event; forgetting the assumption and re-queueing on failure), and for a pod that fits
//! nowhere the condition `PodScheduled=False` (reason Unschedulable) and a `FailedScheduling`
//! event. Events go through the client library's recorder, which counts repeats.

use client::events::Kind;
use k8s_openapi::{
    api::core::v1::Pod,
    jiff::{Timestamp, Unit},
};
use kube::{
    api::{Patch, PatchParams, PostParams},
    Api,
};
use serde_json::json;

use crate::{framework::ClusterEvent, queue::QueuedPod, run::Scheduler};

fn now() -> String {
    Timestamp::now()
        .round(Unit::Second)
        .unwrap_or_else(|_| Timestamp::now())
        .to_string()
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// Binds the (assumed) pod to `node`. On failure the assumption is dropped and, unless the pod
/// is gone or already bound (the informer will say), it is re-queued with back-off.
pub async fn bind(s: &Scheduler, qp: QueuedPod, node: &str) {
    let pod = &qp.pod;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(s.client.clone(), namespace(pod));
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let profile = s.settings.scheduler_name.as_str();
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => {
            s.metrics.bindings.with_label_values(&["ok"]).inc();
            s.metrics
                .e2e
                .with_label_values(&["scheduled", profile])
                .observe(qp.first_seen.elapsed().as_secs_f64());
            tracing::debug!(pod = %qp.key, node, "bound");
            s.events.emit(
                pod.as_ref(),
                Kind::Normal,
                "Scheduled",
                format!("Successfully assigned {}/{name} to {node}", namespace(pod)),
            );
        }
        Err(e) => {
            s.metrics.bindings.with_label_values(&["error"]).inc();
            s.metrics
                .e2e
                .with_label_values(&["error", profile])
                .observe(qp.first_seen.elapsed().as_secs_f64());
            let forgot = s.cache().forget(&qp.key);
            let code = match &e {
                kube::Error::Api(status) => Some(status.code),
                _ => None,
            };
            tracing::info!(pod = %qp.key, node, error = %e, "binding failed");
            if forgot {
                // What it held is free again.
                s.queue.on_event(ClusterEvent::AssignedPodDeleted);
            }
            if !matches!(code, Some(404) | Some(409)) {
                s.queue.requeue(qp);
            }
        }
    }
}

/// Tells the user why the pod waits: its PodScheduled condition (when it changed) and a
/// FailedScheduling event.
pub async fn record_unschedulable(s: &Scheduler, pod: &Pod, message: &str) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = namespace(pod);
    let current = pod
        .status
        .as_ref()
        .and_then(|st| st.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    let same = current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(message)
    });
    if !same {
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": now(),
        }]}});
        let api: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::info!(pod = %name, error = %e, "setting the PodScheduled condition");
        }
    }
    s.events
        .emit(pod, Kind::Warning, "FailedScheduling", message.to_string());
}
