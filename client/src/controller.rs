//! The controller runner, as kube-rs' and client-go's: shared [`Informer`]s (list-watch into a
//! cache) tell registered handlers about every change; handlers map changes to object [`Key`]s
//! on a [`WorkQueue`]; workers take keys off the queue and call a [`Reconciler`], whose
//! `reconcile` reads the caches and makes the world match, and whose `error_policy` decides
//! what a failure means (by default a rate-limited retry). Reconciles are keyed, so one
//! object is never reconciled by two workers at once, and they must be idempotent.

use std::{
    fmt,
    future::Future,
    hash::BuildHasher,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use hashbrown::HashTable;
use kube::{
    runtime::{watcher, WatchStreamExt},
    Api, Resource,
};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::workqueue::WorkQueue;

/// An object's key: its namespace (None when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    /// The key of `namespace`/`name`.
    pub fn new(namespace: Option<&str>, name: &str) -> Key {
        Key {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// The key of an object.
    pub fn of<K: Resource>(obj: &K) -> Key {
        Key {
            namespace: obj.meta().namespace.clone(),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A change an informer saw.
#[derive(Debug)]
pub enum Change<'a, K> {
    /// Added or modified (also every object of a (re)list).
    Applied(&'a K),
    /// Deleted (also objects that a relist found gone).
    Deleted(&'a K),
}

impl<K> Change<'_, K> {
    /// The object, whatever happened to it.
    pub fn object(&self) -> &K {
        match self {
            Change::Applied(o) | Change::Deleted(o) => o,
        }
    }
}

type Handler<K> = Arc<dyn Fn(&Change<'_, K>) + Send + Sync>;

/// An object's namespace (None when cluster-scoped) and name, read from it.
pub type IdOf<K> = for<'a> fn(&'a K) -> (Option<&'a str>, &'a str);

/// The namespace and name of a Kubernetes object (an [`IdOf`] for every `kube::Resource`).
pub fn resource_id<K: Resource>(o: &K) -> (Option<&str>, &str) {
    let m = o.meta();
    (m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
}

/// An informer's objects, found by namespace and name. A slot holds the object's `Arc` and
/// nothing else: the key is read from the object when needed, not kept beside it (a
/// `HashMap<Key, Arc<K>>` spends about 100 bytes per object on its key's strings and the
/// wider slot, 15 MB at 150,000 pods).
pub struct Objects<K> {
    table: HashTable<Arc<K>>,
    id: IdOf<K>,
    hasher: std::hash::RandomState,
}

impl<K> Objects<K> {
    /// No objects; `id` tells each one's namespace and name.
    pub fn new(id: IdOf<K>) -> Objects<K> {
        Objects {
            table: HashTable::new(),
            id,
            hasher: std::hash::RandomState::new(),
        }
    }

    fn hash(&self, namespace: Option<&str>, name: &str) -> u64 {
        self.hasher.hash_one((namespace, name))
    }

    /// The object of `namespace`/`name`.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<&Arc<K>> {
        let id = self.id;
        self.table
            .find(self.hash(namespace, name), |o| id(o) == (namespace, name))
    }

    /// Adds `o`, or replaces the object of the same namespace and name.
    pub fn insert(&mut self, o: Arc<K>) {
        let id = self.id;
        let probe = o.clone();
        let (namespace, name) = id(&probe);
        let hash = self.hash(namespace, name);
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |x| id(x) == (namespace, name),
            |x| hasher.hash_one(id(x)),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = o,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(o);
            }
        }
    }

    /// Removes and returns the object of `namespace`/`name`.
    pub fn remove(&mut self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let id = self.id;
        let hash = self.hash(namespace, name);
        self.table
            .find_entry(hash, |o| id(o) == (namespace, name))
            .ok()
            .map(|e| e.remove().0)
    }

    /// Every object.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<K>> {
        self.table.iter()
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// No objects.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// A shared informer: a cache kept current by list-then-watch, and handlers told of changes.
///
/// The cache finds objects by the namespace and name read from each ([`Objects`]: kube's
/// reflector store keys each object by a copy of its name, namespace, resourceVersion and
/// uid, four strings per object, which counts at 150,000 pods), and each object is moved into
/// its `Arc` as it arrives, never cloned. It may cache a smaller type than the one it watches
/// ([`Informer::mapped`]).
pub struct Informer<K: 'static> {
    store: Arc<RwLock<Objects<K>>>,
    handlers: Arc<RwLock<Vec<Handler<K>>>>,
    synced: watch::Receiver<bool>,
}

impl<K: 'static> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            handlers: self.handlers.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    /// An informer on `api`; run the returned future (it runs forever, retrying with backoff).
    /// Register handlers before running it so they see the initial list.
    pub fn new(api: Api<K>, config: watcher::Config) -> (Self, impl Future<Output = ()> + Send) {
        Self::mapped(api, config, |o| o, resource_id::<K>)
    }
}

impl<K: Send + Sync + 'static> Informer<K> {
    /// An informer that watches `W`s and caches (and shows its handlers) the `K` that `map`
    /// makes of each, found by the namespace and name `id` reads from it: a cache that keeps only what its
    /// readers use, as client-go's SetTransform, but in a type of its own, so that what is
    /// left out takes no room either (a k8s-openapi `ObjectMeta` is over 400 bytes inline,
    /// empty or not).
    pub fn mapped<W>(
        api: Api<W>,
        config: watcher::Config,
        mut map: impl FnMut(W) -> K + Send + 'static,
        id: IdOf<K>,
    ) -> (Self, impl Future<Output = ()> + Send)
    where
        W: Resource + Clone + DeserializeOwned + fmt::Debug + Send + 'static,
        W::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let store = Arc::new(RwLock::new(Objects::new(id)));
        let handlers: Arc<RwLock<Vec<Handler<K>>>> = Arc::default();
        let (synced_tx, synced) = watch::channel(false);
        let informer = Informer {
            store: store.clone(),
            handlers: handlers.clone(),
            synced,
        };
        // A relist's objects, swapped in whole once it is complete (readers see the previous
        // state until then, as with kube's reflector).
        let mut relist = Objects::new(id);
        let stream = watcher(api, config).default_backoff().map_ok(move |event| {
            // Handlers run with no lock held: they may read this informer.
            let tell = |c: Change<'_, K>| {
                let hs = handlers.read().map(|h| h.clone()).unwrap_or_default();
                for h in hs {
                    h(&c);
                }
            };
            let write = || store.write().unwrap_or_else(|e| e.into_inner());
            match event {
                watcher::Event::Apply(o) => {
                    let o = Arc::new(map(o));
                    write().insert(o.clone());
                    tell(Change::Applied(&o));
                }
                watcher::Event::Delete(o) => {
                    let o = map(o);
                    let (namespace, name) = id(&o);
                    write().remove(namespace, name);
                    tell(Change::Deleted(&o));
                }
                watcher::Event::Init => relist = Objects::new(id),
                watcher::Event::InitApply(o) => {
                    let o = Arc::new(map(o));
                    relist.insert(o.clone());
                    tell(Change::Applied(&o));
                }
                watcher::Event::InitDone => {
                    let complete = std::mem::replace(&mut relist, Objects::new(id));
                    let before = std::mem::replace(&mut *write(), complete);
                    // Those the relist no longer has were deleted meanwhile.
                    let gone: Vec<Arc<K>> = {
                        let now = store.read().unwrap_or_else(|e| e.into_inner());
                        before
                            .iter()
                            .filter(|o| {
                                let (namespace, name) = id(o);
                                now.get(namespace, name).is_none()
                            })
                            .cloned()
                            .collect()
                    };
                    for o in gone {
                        tell(Change::Deleted(&o));
                    }
                    synced_tx.send_replace(true);
                }
            }
        });
        (informer, crate::drive(stream))
    }
}

impl<K: 'static> Informer<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Objects<K>> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` on every change from now on.
    pub fn on_change(&self, f: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        if let Ok(mut h) = self.handlers.write() {
            h.push(Arc::new(f));
        }
    }

    /// The cached object of `key`.
    pub fn get(&self, key: &Key) -> Option<Arc<K>> {
        self.read()
            .get(key.namespace.as_deref(), &key.name)
            .cloned()
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().iter().cloned().collect()
    }

    /// The cached objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let objects = self.read();
        let id = objects.id;
        objects
            .iter()
            .filter(|o| id(o).0 == Some(namespace))
            .cloned()
            .collect()
    }

    /// The cached objects for which `f` holds.
    pub fn list_filter(&self, f: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        self.read().iter().filter(|o| f(o)).cloned().collect()
    }

    /// True once the first list is complete.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits for the first complete list.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        // An error means the informer was dropped: nothing more will come.
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// What to do with a key after its reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the next change.
    Done,
    /// Reconcile again after this long (its failure back-off is reset).
    RequeueAfter(Duration),
    /// Retry after the key's rate-limited back-off (exponential per key).
    Backoff,
}

/// One controller: reconcile a key, and say what a failure means.
pub trait Reconciler: Send + Sync + 'static {
    /// Why a reconcile failed.
    type Error: fmt::Display + Send;

    /// Makes the world match the object of `key` (which may be gone from the caches).
    fn reconcile(&self, key: &Key) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// What to do after `error` (the key has failed `retries` times before). Default: retry
    /// with back-off.
    fn error_policy(&self, _key: &Key, _error: &Self::Error, _retries: u32) -> Action {
        Action::Backoff
    }
}

/// Work queue and reconcile metrics, with client-go's and controller-runtime's names, labelled
/// by controller name.
#[derive(Clone)]
pub struct Metrics {
    depth: IntGaugeVec,
    adds: IntCounterVec,
    retries: IntCounterVec,
    duration: HistogramVec,
    errors: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            depth: IntGaugeVec::new(
                Opts::new("workqueue_depth", "Current depth of workqueue"),
                &["name"],
            )?,
            adds: IntCounterVec::new(
                Opts::new(
                    "workqueue_adds_total",
                    "Total number of adds handled by workqueue",
                ),
                &["name"],
            )?,
            retries: IntCounterVec::new(
                Opts::new(
                    "workqueue_retries_total",
                    "Total number of retries handled by workqueue",
                ),
                &["name"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "controller_reconcile_duration_seconds",
                    "Length of time per reconciliation per controller",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["controller"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "controller_reconcile_errors_total",
                    "Total number of reconciliation errors per controller",
                ),
                &["controller"],
            )?,
        };
        registry.register(Box::new(m.depth.clone()))?;
        registry.register(Box::new(m.adds.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        Ok(m)
    }
}

/// Runs `workers` workers of `reconciler` on `queue` until the queue is shut down.
pub async fn run<R: Reconciler>(
    name: &'static str,
    reconciler: Arc<R>,
    queue: WorkQueue<Key>,
    workers: usize,
    metrics: Option<Metrics>,
) {
    let depth = {
        let (q, m) = (queue.clone(), metrics.clone());
        tokio::spawn(async move {
            loop {
                if let Some(m) = &m {
                    m.depth.with_label_values(&[name]).set(q.len() as i64);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (r, q, m) = (reconciler.clone(), queue.clone(), metrics.clone());
        tasks.push(tokio::spawn(async move {
            worker(name, &*r, &q, m.as_ref()).await
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(controller = name, error = %e, "worker ended abnormally");
        }
    }
    depth.abort();
}

async fn worker<R: Reconciler>(
    name: &'static str,
    r: &R,
    queue: &WorkQueue<Key>,
    metrics: Option<&Metrics>,
) {
    while let Some(key) = queue.get().await {
        let start = Instant::now();
        let result = r.reconcile(&key).await;
        if let Some(m) = metrics {
            m.adds.with_label_values(&[name]).inc();
            m.duration
                .with_label_values(&[name])
                .observe(start.elapsed().as_secs_f64());
        }
        let action = match result {
            Ok(a) => a,
            Err(e) => {
                let retries = queue.retries(&key);
                tracing::warn!(controller = name, %key, retries, error = %e, "reconcile failed");
                if let Some(m) = metrics {
                    m.errors.with_label_values(&[name]).inc();
                }
                r.error_policy(&key, &e, retries)
            }
        };
        match action {
            Action::Done => queue.forget(&key),
            Action::RequeueAfter(d) => {
                queue.forget(&key);
                queue.add_after(key.clone(), d);
            }
            Action::Backoff => {
                if let Some(m) = metrics {
                    m.retries.with_label_values(&[name]).inc();
                }
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Flaky {
        calls: Mutex<Vec<String>>,
        fail_first: u32,
    }

    impl Reconciler for Flaky {
        type Error = String;
        async fn reconcile(&self, key: &Key) -> Result<Action, String> {
            let mut c = self.calls.lock().unwrap();
            c.push(key.to_string());
            if (c.len() as u32) <= self.fail_first {
                Err("not yet".into())
            } else {
                Ok(Action::Done)
            }
        }
    }

    #[tokio::test]
    async fn failures_are_retried_with_backoff_then_forgotten() {
        let r = Arc::new(Flaky {
            calls: Mutex::default(),
            fail_first: 3,
        });
        let q = WorkQueue::new();
        let registry = Registry::new();
        let m = Metrics::register(&registry).unwrap();
        q.add(Key::new(Some("ns"), "a"));
        let runner = tokio::spawn(run("flaky", r.clone(), q.clone(), 2, Some(m)));
        let deadline = Instant::now() + Duration::from_secs(5);
        while r.calls.lock().unwrap().len() < 4 {
            assert!(Instant::now() < deadline, "not retried");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(r.calls.lock().unwrap().len(), 4);
        assert_eq!(q.retries(&Key::new(Some("ns"), "a")), 0);
        q.shut_down();
        runner.await.unwrap();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains("workqueue_retries_total{name=\"flaky\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn keys_print_as_namespace_slash_name() {
        assert_eq!(Key::new(Some("default"), "web").to_string(), "default/web");
        assert_eq!(Key::new(None, "n1").to_string(), "n1");
    }

    #[test]
    fn objects_are_found_by_the_namespace_and_name_read_from_them() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let cm = |ns: Option<&str>, name: &str, v: &str| {
            let mut c = ConfigMap::default();
            c.metadata.namespace = ns.map(str::to_string);
            c.metadata.name = Some(name.to_string());
            c.data = Some([("v".to_string(), v.to_string())].into());
            Arc::new(c)
        };
        let value = |o: Option<&Arc<ConfigMap>>| o.and_then(|c| c.data.as_ref()?.get("v").cloned());
        let mut objects = Objects::new(resource_id::<ConfigMap>);
        objects.insert(cm(Some("a"), "x", "1"));
        objects.insert(cm(Some("b"), "x", "2"));
        objects.insert(cm(None, "x", "3"));
        // The same namespace and name replace.
        objects.insert(cm(Some("a"), "x", "4"));
        assert_eq!(objects.len(), 3);
        assert_eq!(value(objects.get(Some("a"), "x")).as_deref(), Some("4"));
        assert_eq!(value(objects.get(Some("b"), "x")).as_deref(), Some("2"));
        assert_eq!(value(objects.get(None, "x")).as_deref(), Some("3"));
        assert!(objects.get(Some("c"), "x").is_none() && objects.get(Some("a"), "y").is_none());
        // Many more, so the table grows and rehashes what it holds.
        for i in 0..1000 {
            objects.insert(cm(Some("many"), &i.to_string(), &i.to_string()));
        }
        assert_eq!(
            value(objects.get(Some("many"), "777")).as_deref(),
            Some("777")
        );
        assert_eq!(value(objects.get(Some("a"), "x")).as_deref(), Some("4"));
        let gone = objects.remove(Some("b"), "x");
        assert_eq!(value(gone.as_ref()).as_deref(), Some("2"));
        assert!(objects.remove(Some("b"), "x").is_none() && objects.get(Some("b"), "x").is_none());
        assert_eq!(objects.len(), 1002);
        assert_eq!(objects.iter().count(), 1002);
    }
}
