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
        let Ok(new) = serde_json::to_value(status) else {
            return;
        };
        let current = pod
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok());
        if current.as_ref() == Some(&new) {
            return;
        }
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
