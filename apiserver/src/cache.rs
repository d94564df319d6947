//! The watch cache: one store watch per resource type feeds a copy of the current objects and a
//! window of recent events, from which every client watch (and `resourceVersion=0` list) is
//! served. Thousands of client watches cost one store watch.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use api::registry::Resource;
use etcd_client::EventType;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{info, warn};

use crate::storage::{Storage, StorageError, Stored};

/// How many recent events each resource keeps for watches that resume from a resourceVersion.
pub const EVENT_WINDOW: usize = 10_000;
/// How far a client watch may fall behind before it is closed (it then resumes from its last
/// resourceVersion, which the window usually still holds).
const WATCHER_BUFFER: usize = 16_384;
/// How far an indexed watch (one node's pods) may fall behind before it is closed.
const INDEXED_WATCHER_BUFFER: usize = 1024;

/// ADDED, MODIFIED or DELETED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change to one object, as the store reported it.
#[derive(Debug)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    /// The object after the change (for DELETED: the last state, with the deletion's
    /// resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change (None for ADDED).
    pub prev: Option<Arc<Value>>,
    pub revision: i64,
    /// The plain JSON watch line of this event as ADDED, MODIFIED and DELETED, rendered once
    /// for all the watchers that receive it.
    pub lines: [std::sync::OnceLock<bytes::Bytes>; 3],
}

impl Event {
    /// `{"type": kind, "object": ...}\n`, rendered on first use.
    pub fn plain_line(&self, kind: &str) -> bytes::Bytes {
        let i = match kind {
            "ADDED" => 0,
            "MODIFIED" => 1,
            _ => 2,
        };
        self.lines[i]
            .get_or_init(|| {
                let mut line = Vec::with_capacity(1024);
                line.extend_from_slice(format!("{{\"type\":{kind:?},\"object\":").as_bytes());
                let _ = serde_json::to_writer(&mut line, &*self.object);
                line.extend_from_slice(b"}\n");
                bytes::Bytes::from(line)
            })
            .clone()
    }
}

/// What a cache broadcasts to its watchers.
#[derive(Debug, Clone)]
pub enum Notice {
    Event(Arc<Event>),
    /// Every event up to this revision has been delivered.
    Progress(i64),
}

struct Inner {
    objects: BTreeMap<String, (Arc<Value>, i64)>,
    events: VecDeque<Arc<Event>>,
    /// Revision up to which the cache is complete.
    revision: i64,
    /// The oldest revision a watch may resume from (exclusive).
    oldest: i64,
    tx: broadcast::Sender<Notice>,
    /// Watches that select one value of the resource's indexed field (a node's pods), by
    /// that value: an event goes only to those of its object's value before and after.
    indexed: HashMap<String, Vec<mpsc::Sender<Notice>>>,
}

impl Inner {
    /// Hands `notice` to the indexed watches of `value`, dropping those that are gone or
    /// too far behind (their stream then ends; clients resume from their resourceVersion).
    fn send_indexed(&mut self, value: &str, notice: &Notice) {
        let Some(senders) = self.indexed.get_mut(value) else {
            return;
        };
        senders.retain(|tx| tx.try_send(notice.clone()).is_ok());
        if senders.is_empty() {
            self.indexed.remove(value);
        }
    }
}

/// How a store watch ended.
enum FollowEnd {
    /// The store compacted past the cache: it must relist.
    Compacted,
    /// The stream ended; resume from the cache's revision.
    Closed,
}

/// Why a watch cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The resourceVersion is older than the event window.
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld { requested: i64, oldest: i64 },
}

/// A started client watch: the events to send first, then the live feed.
pub struct Subscription {
    pub backlog: Vec<Arc<Event>>,
    /// For a watch without a resourceVersion: the current objects, sent as ADDED.
    pub initial: Vec<(Arc<Value>, i64)>,
    pub revision: i64,
    pub live: Live,
}

/// A client watch's live feed: every event of the resource, or (an indexed watch) only
/// those whose object had or has the selected value of the indexed field.
pub enum Live {
    All(broadcast::Receiver<Notice>),
    Indexed(mpsc::Receiver<Notice>),
}

impl Live {
    /// The next notice; None once the watch must end (it fell too far behind, or the cache
    /// relisted and cannot tell it what changed).
    pub async fn recv(&mut self) -> Option<Notice> {
        match self {
            Live::All(rx) => rx.recv().await.ok(),
            Live::Indexed(rx) => rx.recv().await,
        }
    }
}

/// The cache of one resource type.
pub struct WatchCache {
    pub resource: &'static Resource,
    inner: Mutex<Inner>,
    ready: watch::Sender<i64>,
    /// Asks the store watch for a progress notification now (a reader waits on a revision).
    progress_wanted: tokio::sync::Notify,
    /// The field watches are indexed by, if the resource has one.
    indexed_field: Option<&'static str>,
}

impl WatchCache {
    /// Starts the cache: lists the resource, then watches it, forever (reconnecting, and
    /// relisting when the store compacted past it).
    pub fn start(resource: &'static Resource, storage: Storage) -> Arc<WatchCache> {
        let (tx, _) = broadcast::channel(WATCHER_BUFFER);
        let (ready, _) = watch::channel(0);
        let cache = Arc::new(WatchCache {
            resource,
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                events: VecDeque::new(),
                revision: 0,
                oldest: 0,
                tx,
                indexed: HashMap::new(),
            }),
            ready,
            progress_wanted: tokio::sync::Notify::new(),
            indexed_field: api::selectors::indexed_field(resource.kind),
        });
        let c = cache.clone();
        tokio::spawn(async move { c.run(storage).await });
        cache
    }

    /// The revision up to which the cache is complete (0 until the first list finished).
    pub fn revision(&self) -> i64 {
        self.inner.lock().revision
    }

    /// Waits until the cache has seen every change up to `revision`.
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> bool {
        let mut rx = self.ready.subscribe();
        if *rx.borrow() < revision {
            self.progress_wanted.notify_one();
        }
        let wait = async {
            loop {
                if *rx.borrow_and_update() >= revision {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// The current objects whose key starts with `prefix` (in key order, with their keys), and
    /// the cache's revision.
    pub fn snapshot_keyed(&self, prefix: &str) -> (Vec<(String, Arc<Value>)>, i64) {
        let inner = self.inner.lock();
        let items = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (o, _))| (k.clone(), o.clone()))
            .collect();
        (items, inner.revision)
    }

    /// The current objects whose key starts with `prefix`, and the cache's revision.
    pub fn snapshot(&self, prefix: &str) -> (Vec<Arc<Value>>, i64) {
        let (items, rev) = self.snapshot_keyed(prefix);
        (items.into_iter().map(|(_, o)| o).collect(), rev)
    }

    /// The field by whose value watches of this resource are indexed (see
    /// [`api::selectors::indexed_field`]).
    pub fn indexed_field(&self) -> Option<&'static str> {
        self.indexed_field
    }

    /// Starts a client watch. `from`: None to begin with the current objects as ADDED events;
    /// Some(rv) to receive every event after rv. `indexed`: the value the watch requires of
    /// the [indexed field](Self::indexed_field), so that its live feed carries only events
    /// whose object had or has that value.
    pub fn subscribe(
        &self,
        prefix: &str,
        from: Option<i64>,
        indexed: Option<&str>,
    ) -> Result<Subscription, CacheError> {
        let mut inner = self.inner.lock();
        let live = match indexed.filter(|_| self.indexed_field.is_some()) {
            Some(value) => {
                let (tx, rx) = mpsc::channel(INDEXED_WATCHER_BUFFER);
                inner.indexed.entry(value.to_string()).or_default().push(tx);
                Live::Indexed(rx)
            }
            None => Live::All(inner.tx.subscribe()),
        };
        match from {
            None => {
                let initial = inner
                    .objects
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, v)| v.clone())
                    .collect();
                Ok(Subscription {
                    backlog: Vec::new(),
                    initial,
                    revision: inner.revision,
                    live,
                })
            }
            Some(rv) => {
                if rv < inner.oldest {
                    return Err(CacheError::TooOld {
                        requested: rv,
                        oldest: inner.oldest + 1,
                    });
                }
                let backlog = inner
                    .events
                    .iter()
                    .filter(|e| e.revision > rv && e.key.starts_with(prefix))
                    .cloned()
                    .collect();
                Ok(Subscription {
                    backlog,
                    initial: Vec::new(),
                    revision: inner.revision,
                    live,
                })
            }
        }
    }

    async fn run(self: Arc<Self>, storage: Storage) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut from = match self.relist(&storage).await {
                Ok(rev) => rev,
                Err(e) => {
                    warn!(resource = self.resource.plural, error = %e, "watch cache list failed; \
                        retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            // Resume the store watch where it broke (a member died, a connection reset): client
            // watches go on undisturbed. Only a compaction past the cache forces a relist.
            loop {
                match self.follow(&storage, from).await {
                    Ok(FollowEnd::Compacted) => break,
                    Ok(FollowEnd::Closed) => {}
                    Err(e) => {
                        warn!(resource = self.resource.plural, error = %e, "store watch broke; \
                            resuming")
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                from = self.revision();
            }
        }
    }

    /// Replaces the cache's content with a fresh list. Returns the list's revision.
    async fn relist(&self, storage: &Storage) -> Result<i64, StorageError> {
        let prefix = self.resource.key_prefix();
        let mut objects = BTreeMap::new();
        let mut start: Option<String> = None;
        let mut revision = 0;
        loop {
            let page = storage
                .list(&prefix, start.as_deref(), 1000, revision)
                .await?;
            revision = page.revision;
            for s in page.items {
                start = Some(s.key.clone());
                objects.insert(s.key, (Arc::new(s.object), s.mod_revision));
            }
            if !page.more {
                break;
            }
        }
        let mut inner = self.inner.lock();
        let restarted = inner.revision > 0;
        inner.objects = objects;
        inner.events.clear();
        inner.revision = revision;
        inner.oldest = revision;
        if restarted {
            // Watchers cannot be told what they missed: close them; clients resume or relist.
            let (tx, _) = broadcast::channel(WATCHER_BUFFER);
            inner.tx = tx;
            inner.indexed.clear();
        }
        drop(inner);
        self.ready.send_replace(revision);
        info!(
            resource = self.resource.plural,
            revision, "watch cache listed"
        );
        Ok(revision)
    }

    /// Applies the store's events from `start` + 1 on, until the watch fails or is compacted.
    async fn follow(&self, storage: &Storage, start: i64) -> Result<FollowEnd, StorageError> {
        let prefix = self.resource.key_prefix();
        let mut stream = storage.watch(&prefix, start + 1).await?;
        let mut progress = tokio::time::interval(Duration::from_secs(1));
        progress.tick().await;
        loop {
            tokio::select! {
                msg = stream.message() => {
                    let Some(resp) = msg? else { return Ok(FollowEnd::Closed) };
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            warn!(resource = self.resource.plural,
                                compact = resp.compact_revision(), "store compacted past the \
                                cache; relisting");
                            return Ok(FollowEnd::Compacted);
                        }
                        return Ok(FollowEnd::Closed);
                    }
                    let header_rev = resp.header().map(|h| h.revision()).unwrap_or_default();
                    if resp.created() {
                        // The creation's header revision is not a progress mark: older events
                        // may still be on their way.
                        continue;
                    }
                    if resp.events().is_empty() {
                        // A progress notification: everything up to header_rev has been seen.
                        self.advance(header_rev);
                        continue;
                    }
                    for ev in resp.events() {
                        self.apply(ev)?;
                    }
                }
                _ = progress.tick() => {
                    stream.request_progress().await?;
                }
                _ = self.progress_wanted.notified() => {
                    stream.request_progress().await?;
                }
            }
        }
    }

    fn advance(&self, revision: i64) {
        let mut inner = self.inner.lock();
        if revision > inner.revision {
            inner.revision = revision;
            let _ = inner.tx.send(Notice::Progress(revision));
            let notice = Notice::Progress(revision);
            let values: Vec<String> = inner.indexed.keys().cloned().collect();
            for v in values {
                inner.send_indexed(&v, &notice);
            }
            drop(inner);
            self.ready.send_replace(revision);
        }
    }

    fn apply(&self, ev: &etcd_client::Event) -> Result<(), StorageError> {
        let Some(kv) = ev.kv() else { return Ok(()) };
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let mut inner = self.inner.lock();
        let prev = inner.objects.get(&key).map(|(o, _)| o.clone());
        let event = match ev.event_type() {
            EventType::Put => {
                let stored: Stored = Storage::decode_kv(kv)?;
                let object = Arc::new(stored.object);
                inner
                    .objects
                    .insert(key.clone(), (object.clone(), stored.mod_revision));
                let kind = if kv.create_revision() == kv.mod_revision() {
                    EventKind::Added
                } else {
                    EventKind::Modified
                };
                Event {
                    kind,
                    key,
                    object,
                    prev,
                    revision: kv.mod_revision(),
                    lines: Default::default(),
                }
            }
            EventType::Delete => {
                inner.objects.remove(&key);
                let last = match (&prev, ev.prev_kv()) {
                    (Some(p), _) => (**p).clone(),
                    (None, Some(pkv)) => Storage::decode_kv(pkv)?.object,
                    (None, None) => return Ok(()),
                };
                let mut last = last;
                crate::storage::set_resource_version(&mut last, kv.mod_revision());
                Event {
                    kind: EventKind::Deleted,
                    key,
                    object: Arc::new(last),
                    prev,
                    revision: kv.mod_revision(),
                    lines: Default::default(),
                }
            }
        };
        let revision = event.revision;
        let event = Arc::new(event);
        inner.events.push_back(event.clone());
        while inner.events.len() > EVENT_WINDOW {
            if let Some(old) = inner.events.pop_front() {
                inner.oldest = old.revision;
            }
        }
        inner.revision = inner.revision.max(revision);
        if let Some(field) = self.indexed_field {
            if !inner.indexed.is_empty() {
                let kind = self.resource.kind;
                let now = api::selectors::field_value(kind, &event.object, field);
                let before = event
                    .prev
                    .as_ref()
                    .map(|p| api::selectors::field_value(kind, p, field));
                let notice = Notice::Event(event.clone());
                inner.send_indexed(&now, &notice);
                if let Some(before) = before.filter(|b| *b != now) {
                    inner.send_indexed(&before, &notice);
                }
            }
        }
        let _ = inner.tx.send(Notice::Event(event));
        drop(inner);
        self.ready.send_replace(revision);
        Ok(())
    }
}

/// The caches of every resource, started together.
pub struct Caches {
    caches: Vec<Arc<WatchCache>>,
}

impl Caches {
    pub fn start(storage: &Storage) -> Caches {
        let caches = api::registry::RESOURCES
            .iter()
            .map(|r| WatchCache::start(r, storage.clone()))
            .collect();
        Caches { caches }
    }

    pub fn get(&self, resource: &Resource) -> Option<&Arc<WatchCache>> {
        self.caches.iter().find(|c| c.resource == resource)
    }

    /// True when every cache has completed its first list.
    pub fn ready(&self) -> bool {
        self.caches.iter().all(|c| c.revision() > 0)
    }
}
