//! Through the API: clients read and update a few ConfigMaps through the two apiservers with
//! optimistic concurrency (each update a PUT carrying the resourceVersion it read, so it is a
//! compare-and-set of a counter) while the store under them is faulted; a watcher per
//! apiserver records every change. Checked as a linearizable register per ConfigMap (no
//! acknowledged update lost, none accepted over a stale resourceVersion), and each watcher must
//! see every ConfigMap's counter once and in order up to its final value.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use rand::Rng;
use tokio::task::JoinHandle;

use super::{Checked, Ctx, Graded, Progress, Recorder, Workload};
use crate::jepsen::apihosts::ApiHosts;
use crate::jepsen::check;
use crate::jepsen::check::api_watch::{ObjectEvent, WatcherLog};
use crate::jepsen::history::{Outcome, RegisterF, RegisterOp};

const OBJECTS: u64 = 4;
const TIMEOUT: Duration = Duration::from_secs(2);

fn name(key: u64) -> String {
    format!("jepsen-{key}")
}

fn counter(cm: &ConfigMap) -> u64 {
    cm.data
        .as_ref()
        .and_then(|d| d.get("value"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

pub(super) struct ApiWorkload {
    recorder: Recorder<RegisterOp>,
    watchers: Mutex<Vec<JoinHandle<()>>>,
    logs: Arc<Mutex<Vec<WatcherLog>>>,
    /// Set at the end: the watchers stop once they saw these values.
    finals: Arc<Mutex<Option<BTreeMap<String, u64>>>>,
}

impl ApiWorkload {
    pub(super) fn new(progress: Arc<Progress>) -> ApiWorkload {
        ApiWorkload {
            recorder: Recorder::new(progress),
            watchers: Mutex::new(Vec::new()),
            logs: Arc::new(Mutex::new(Vec::new())),
            finals: Arc::new(Mutex::new(None)),
        }
    }

    fn api(ctx: &Ctx) -> Result<&ApiHosts> {
        ctx.api
            .as_deref()
            .context("the api workload needs apiservers")
    }

    async fn client(&self, ctx: &Ctx, index: usize) -> Result<()> {
        let api = Self::api(ctx)?;
        let server = index % api.len();
        let configmaps: Api<ConfigMap> =
            Api::default_namespaced(api.client(server, TIMEOUT).await?);
        let mut rng = ctx.rng(index, 0x3c6e_f372);
        let mut process = index;
        while ctx.running() {
            let pace = ctx.pace();
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            let key = rng.random_range(0..OBJECTS);
            let invoke = ctx.now();
            let read = configmaps.get(&name(key)).await;
            let current = match read {
                Ok(cm) => {
                    let value = counter(&cm);
                    let op = RegisterOp {
                        key,
                        f: RegisterF::Read(Some(value)),
                    };
                    self.recorder.record(ctx, process, invoke, Outcome::Ok, op);
                    cm
                }
                Err(_) => {
                    let op = RegisterOp {
                        key,
                        f: RegisterF::Read(None),
                    };
                    self.recorder
                        .record(ctx, process, invoke, Outcome::Unknown, op);
                    process += ctx.clients;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if rng.random_bool(0.4) {
                continue;
            }
            let from = counter(&current);
            let mut updated = current;
            updated
                .data
                .get_or_insert_with(Default::default)
                .insert("value".to_owned(), (from + 1).to_string());
            let invoke = ctx.now();
            let outcome = match configmaps
                .replace(&name(key), &PostParams::default(), &updated)
                .await
            {
                Ok(_) => Outcome::Ok,
                Err(kube::Error::Api(status)) if status.code == 409 => Outcome::Fail,
                Err(_) => Outcome::Unknown,
            };
            let op = RegisterOp {
                key,
                f: RegisterF::Cas { from, to: from + 1 },
            };
            self.recorder.record(ctx, process, invoke, outcome, op);
            if outcome == Outcome::Unknown {
                process += ctx.clients;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }
}

/// Watches the ConfigMaps through apiserver `server` from `version`, re-watching from the last
/// resourceVersion seen when the stream ends, until every ConfigMap reached its final value.
async fn watcher(
    client: kube::Client,
    slot: usize,
    mut version: String,
    logs: Arc<Mutex<Vec<WatcherLog>>>,
    finals: Arc<Mutex<Option<BTreeMap<String, u64>>>>,
) {
    let configmaps: Api<ConfigMap> = Api::default_namespaced(client);
    // Every ConfigMap was at 0 at `version`.
    let mut seen: BTreeMap<String, u64> = (0..OBJECTS).map(|k| (name(k), 0)).collect();
    loop {
        let done = finals
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .is_some_and(|f| f.iter().all(|(k, v)| seen.get(k) == Some(v)));
        if done {
            return;
        }
        let params = WatchParams::default().timeout(5);
        let Ok(stream) = configmaps.watch(&params, &version).await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let mut stream = stream.boxed();
        while let Ok(Some(event)) = stream.try_next().await {
            let (cm, restarted) = match event {
                WatchEvent::Added(cm) | WatchEvent::Modified(cm) | WatchEvent::Deleted(cm) => {
                    (cm, false)
                }
                WatchEvent::Bookmark(b) => {
                    version = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Error(e) => {
                    if let Ok(mut logs) = logs.lock() {
                        logs[slot].errors.push(format!("{} {}", e.code, e.message));
                    }
                    (ConfigMap::default(), true)
                }
            };
            if restarted {
                break;
            }
            let object = cm.metadata.name.clone().unwrap_or_default();
            let value = counter(&cm);
            version = cm.metadata.resource_version.clone().unwrap_or(version);
            seen.insert(object.clone(), value);
            if let Ok(mut logs) = logs.lock() {
                logs[slot].events.push(ObjectEvent {
                    object,
                    value,
                    resource_version: version.clone(),
                });
            }
        }
    }
}

impl Workload for ApiWorkload {
    fn apiservers(&self) -> usize {
        2
    }

    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let api = Self::api(ctx)?;
            let client = api.client(0, Duration::from_secs(10)).await?;
            let configmaps: Api<ConfigMap> = Api::default_namespaced(client);
            let mut version = String::new();
            for key in 0..OBJECTS {
                let invoke = ctx.now();
                let mut cm = ConfigMap::default();
                cm.metadata.name = Some(name(key));
                cm.data = Some([("value".to_owned(), "0".to_owned())].into());
                let created = configmaps
                    .create(&PostParams::default(), &cm)
                    .await
                    .with_context(|| format!("creating ConfigMap {}", name(key)))?;
                version = created.metadata.resource_version.unwrap_or_default();
                let op = RegisterOp {
                    key,
                    f: RegisterF::Write(0),
                };
                self.recorder
                    .record(ctx, usize::MAX - key as usize, invoke, Outcome::Ok, op);
            }
            if let Ok(mut logs) = self.logs.lock() {
                *logs = (0..api.len())
                    .map(|i| WatcherLog {
                        apiserver: i,
                        from: version.clone(),
                        events: Vec::new(),
                        errors: Vec::new(),
                    })
                    .collect();
            }
            let mut handles = Vec::new();
            for i in 0..api.len() {
                let client = api.client(i, Duration::from_secs(10)).await?;
                handles.push(tokio::spawn(watcher(
                    client,
                    i,
                    version.clone(),
                    self.logs.clone(),
                    self.finals.clone(),
                )));
            }
            if let Ok(mut w) = self.watchers.lock() {
                *w = handles;
            }
            let results =
                futures::future::join_all((0..ctx.clients).map(|i| self.client(ctx, i))).await;
            results.into_iter().collect::<Result<Vec<()>>>()?;
            Ok(())
        })
    }

    fn check<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Checked>> {
        Box::pin(async move {
            let api = Self::api(ctx)?;
            let configmaps: Api<ConfigMap> =
                Api::default_namespaced(api.client(0, Duration::from_secs(10)).await?);
            let mut finals = BTreeMap::new();
            for key in 0..OBJECTS {
                let cm = configmaps
                    .get(&name(key))
                    .await
                    .context("reading the final ConfigMaps")?;
                finals.insert(name(key), counter(&cm));
            }
            if let Ok(mut f) = self.finals.lock() {
                *f = Some(finals.clone());
            }
            let handles = self
                .watchers
                .lock()
                .map(|mut w| std::mem::take(&mut *w))
                .unwrap_or_default();
            // A watcher that never catches up is reported by the checker (values missing).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            for handle in handles {
                let abort = handle.abort_handle();
                if tokio::time::timeout_at(deadline, handle).await.is_err() {
                    abort.abort();
                }
            }
            let history = self.recorder.history();
            let logs = self.logs.lock().map(|l| l.clone()).unwrap_or_default();
            Ok(Checked::of(
                &history,
                vec![
                    Graded::must_hold(check::register::check(&history)),
                    Graded::must_hold(check::api_watch::check(&logs, &finals)),
                ],
            ))
        })
    }
}
