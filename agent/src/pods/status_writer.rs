//! Pod status writes, batched: workers hand in the status they computed; one task sends, per
//! pod, only the newest one and only when it differs from what was last sent, several pods
//! at a time. Quiet pods cost nothing.

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::{
    api::{Patch, PatchParams},
    Api,
};
use serde_json::json;
use tokio::sync::mpsc;

struct Update {
    uid: String,
    namespace: String,
    name: String,
    status: serde_json::Value,
}

/// Hands statuses to the writer task; cheap to clone.
#[derive(Clone)]
pub struct StatusWriter {
    tx: mpsc::UnboundedSender<Option<Update>>,
    forget: mpsc::UnboundedSender<String>,
}

/// How long updates are gathered before a batch is sent.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

impl StatusWriter {
    /// Starts the writer task.
    pub fn start(client: kube::Client) -> StatusWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let (forget, forget_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, rx, forget_rx, tx.clone()));
        StatusWriter { tx, forget }
    }

    /// Sends `status` for the pod unless it is what the API already has (`current`).
    pub fn set(&self, pod: &Pod, status: &PodStatus) {
        // Compared as JSON (what the API stores: times to the second), written compactly: two
        // values of one type serialize their fields in the same order, and building maps to
        // compare was most of a quiet pod's periodic sync.
        let Ok(new_json) = serde_json::to_vec(status) else {
            return;
        };
        if pod
            .status
            .as_ref()
            .and_then(|s| serde_json::to_vec(s).ok())
            .is_some_and(|current| current == new_json)
        {
            return;
        }
        let Ok(new) = serde_json::from_slice(&new_json) else {
            return;
        };
        let m = &pod.metadata;
        let _ = self.tx.send(Some(Update {
            uid: m.uid.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            status: new,
        }));
    }

    /// Forgets a pod that is gone.
    pub fn forget(&self, uid: &str) {
        let _ = self.forget.send(uid.to_string());
    }
}

async fn run(
    client: kube::Client,
    mut rx: mpsc::UnboundedReceiver<Option<Update>>,
    mut forget: mpsc::UnboundedReceiver<String>,
    retry: mpsc::UnboundedSender<Option<Update>>,
) {
    let mut sent: HashMap<String, serde_json::Value> = HashMap::new();
    loop {
        let first = tokio::select! {
            u = rx.recv() => match u { Some(u) => u, None => return },
            Some(uid) = forget.recv() => { sent.remove(&uid); continue; }
        };
        let mut batch: HashMap<String, Update> = HashMap::new();
        let mut add = |u: Option<Update>| {
            if let Some(u) = u {
                batch.insert(u.uid.clone(), u);
            }
        };
        add(first);
        tokio::time::sleep(BATCH_WINDOW).await;
        while let Ok(u) = rx.try_recv() {
            add(u);
        }
        while let Ok(uid) = forget.try_recv() {
            sent.remove(&uid);
            batch.remove(&uid);
        }
        let todo: Vec<Update> = batch
            .into_values()
            .filter(|u| sent.get(&u.uid) != Some(&u.status))
            .collect();
        let results: Vec<(Update, Result<(), kube::Error>)> = futures::stream::iter(todo)
            .map(|u| {
                let client = client.clone();
                async move {
                    let api: Api<Pod> = Api::namespaced(client, &u.namespace);
                    let body = json!({"status": u.status});
                    let r = api
                        .patch_status(&u.name, &PatchParams::default(), &Patch::Merge(&body))
                        .await
                        .map(|_| ());
                    (u, r)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (u, r) in results {
            match r {
                Ok(()) => {
                    sent.insert(u.uid.clone(), u.status);
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                    tracing::debug!(pod = %u.name, code = e.code, "status not written: pod gone or replaced");
                }
                Err(e) => {
                    tracing::warn!(pod = %u.name, error = %e, "writing pod status; retrying");
                    let retry = retry.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = retry.send(Some(u));
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition};

    fn writer() -> (StatusWriter, mpsc::UnboundedReceiver<Option<Update>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (forget, _) = mpsc::unbounded_channel();
        (StatusWriter { tx, forget }, rx)
    }

    fn status(phase: &str) -> PodStatus {
        PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: "c".into(),
                ready: true,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_status_that_differs_from_the_api_is_sent() {
        let (w, mut rx) = writer();
        let mut pod = Pod::default();
        pod.metadata.uid = Some("u".into());
        pod.metadata.name = Some("p".into());
        pod.status = Some(status("Running"));
        w.set(&pod, &status("Running"));
        assert!(rx.try_recv().is_err(), "the same status is not sent");
        w.set(&pod, &status("Succeeded"));
        let sent = rx.try_recv().unwrap().unwrap();
        assert_eq!(sent.uid, "u");
        assert_eq!(sent.status["phase"], "Succeeded");
        pod.status = None;
        w.set(&pod, &status("Running"));
        assert!(
            rx.try_recv().unwrap().is_some(),
            "a pod without status gets one"
        );
    }
}
