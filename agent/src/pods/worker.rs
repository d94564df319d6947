//! One task per pod: it syncs the pod when its object changes, when the runtime reports a
//! change of its containers, when a back-off it waits for ends, and once per sync period
//! with no news (`--sync-frequency`); it ends once the pod is gone and cleaned up. [`Workers`] holds the live workers by pod uid.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{watch, Notify};

use super::{
    sync::{sync, Outcome, WorkerState},
    Ctx,
};

struct Handle {
    pod: watch::Sender<Option<Arc<Pod>>>,
    notify: Arc<Notify>,
}

/// The live pod workers.
pub struct Workers {
    ctx: Ctx,
    map: Mutex<HashMap<String, Handle>>,
}

impl Workers {
    /// No workers yet.
    pub fn new(ctx: Ctx) -> Arc<Workers> {
        Arc::new(Workers {
            ctx,
            map: Mutex::new(HashMap::new()),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Handle>) -> R) -> R {
        match self.map.lock() {
            Ok(mut m) => f(&mut m),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The pod's object changed (or was first seen).
    pub fn update(self: &Arc<Self>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let pod = Arc::new(pod);
        let exists = self.with(|m| match m.get(&uid) {
            Some(h) => {
                h.pod.send_replace(Some(pod.clone()));
                true
            }
            None => false,
        });
        if !exists {
            self.spawn(uid, Some(pod));
        }
    }

    /// The pod is gone from the API.
    pub fn gone(&self, uid: &str) {
        self.with(|m| {
            if let Some(h) = m.get(uid) {
                h.pod.send_replace(None);
            }
        });
    }

    /// Something of the runtime's belongs to no known pod: a worker removes it.
    pub fn orphan(self: &Arc<Self>, uid: &str) {
        if !self.with(|m| m.contains_key(uid)) {
            self.spawn(uid.to_string(), None);
        }
    }

    /// The runtime reported a change of the pod's containers.
    pub fn notify(&self, uid: &str) {
        self.with(|m| {
            if let Some(h) = m.get(uid) {
                h.notify.notify_one();
            }
        });
    }

    /// The uids with a worker.
    pub fn uids(&self) -> Vec<String> {
        self.with(|m| m.keys().cloned().collect())
    }

    fn spawn(self: &Arc<Self>, uid: String, pod: Option<Arc<Pod>>) {
        let (tx, rx) = watch::channel(pod);
        let notify = Arc::new(Notify::new());
        self.with(|m| {
            m.insert(
                uid.clone(),
                Handle {
                    pod: tx,
                    notify: notify.clone(),
                },
            )
        });
        tokio::spawn(run(self.clone(), uid, rx, notify));
    }
}

async fn run(
    workers: Arc<Workers>,
    uid: String,
    mut rx: watch::Receiver<Option<Arc<Pod>>>,
    notify: Arc<Notify>,
) {
    let ctx = workers.ctx.clone();
    let mut state = WorkerState {
        notify: notify.clone(),
        ..Default::default()
    };
    loop {
        let pod = rx.borrow_and_update().clone();
        let outcome = match sync(&ctx, &uid, pod, &mut state).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(uid = %uid, error = %e, "pod sync failed; retrying");
                Outcome {
                    done: false,
                    wake: Some(Duration::from_secs(2)),
                }
            }
        };
        if outcome.done {
            workers.with(|m| m.remove(&uid));
            ctx.status.forget(&uid);
            ctx.backoff.lock().await.forget_prefix(&format!("{uid}/"));
            ctx.image_backoff
                .lock()
                .await
                .forget_prefix(&format!("{uid}/"));
            return;
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = notify.notified() => {}
            _ = tokio::time::sleep(outcome.wake.unwrap_or(ctx.sync_frequency)) => {}
        }
    }
}
