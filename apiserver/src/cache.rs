//! The watch cache: one store watch per resource type feeds a copy of the current objects and a
//! window of recent events, from which every client watch (and `resourceVersion=0` list) is
//! served. Thousands of client watches cost one store watch.
//!
//! Objects are kept as their compact JSON inside the watch line that announced them (see
//! [`CachedObject`]), shared by the map of current objects, the event window and the watchers:
//! about the object's serialized size each, where a decoded `Value` took several times that.
//! An object that has stayed unchanged until the window no longer holds it is kept compressed
//! with a dictionary trained on its resource's objects ([`pack`]): a thread of the [`Caches`]
//! packs such idle objects every few seconds.

mod object;
mod pack;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::{Arc, Weak},
    time::Duration,
};

use api::registry::Resource;
use bytes::Bytes;
use etcd_client::EventType;
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{info, warn};

pub use object::CachedObject;
use pack::{Dictionary, Packer};

use crate::storage::{Storage, StorageError, Stored};

/// Resources whose cache keeps no objects, only the event window that watches are fed from:
/// their lists and gets go to the store. As Kubernetes' default `--watch-cache-sizes` (which
/// disables the cache of events): events are many (several per pod), written once, and
/// rarely listed whole, so holding them all would cost the apiserver more memory than every
/// other resource together (issue 17).
const UNCACHED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// How many recent events each resource keeps for watches that resume from a resourceVersion.
pub const EVENT_WINDOW: usize = 10_000;
/// The most bytes of objects the event window of one resource holds: fewer events than
/// [`EVENT_WINDOW`] when the objects are big.
pub const EVENT_WINDOW_BYTES: usize = 32 << 20;
/// How many notices a client watch may have unread before it is closed (it then resumes from
/// its last resourceVersion, which the window usually still holds). The channel holds only
/// weak references to events: the window alone keeps them alive.
const WATCHER_BUFFER: usize = 16_384;
/// How far an indexed watch (one node's pods) may fall behind before it is closed.
const INDEXED_WATCHER_BUFFER: usize = 1024;
/// A resource's objects are packed once its cache holds this many (fewer cost little, and a
/// dictionary needs samples); the dictionary is trained again each time their number has
/// grown [`RETRAIN_GROWTH`] times since the last training.
const PACK_FROM: usize = 1000;
const RETRAIN_GROWTH: usize = 4;
/// Objects a dictionary is trained on, and its size.
const DICTIONARY_SAMPLES: usize = 1000;
const DICTIONARY_BYTES: usize = 16 << 10;
/// How often the packer looks for idle objects, and how many entries of a map it looks at
/// per hold of the cache's lock.
const PACK_PERIOD: Duration = Duration::from_secs(5);
const PACK_CHUNK: usize = 1024;

/// ADDED, MODIFIED or DELETED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    /// The watch event type: ADDED, MODIFIED or DELETED.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change to one object, as the store reported it.
#[derive(Debug)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    /// The object after the change (for DELETED: the last state, with the deletion's
    /// resourceVersion). Its buffer is this event's plain watch line.
    pub object: Arc<CachedObject>,
    /// The object before the change (None for ADDED).
    pub prev: Option<Arc<CachedObject>>,
    pub revision: i64,
}

/// What a cache broadcasts to its watchers.
#[derive(Debug, Clone)]
pub enum Notice {
    /// An event, alive while the window holds it: a watcher that finds it gone has fallen
    /// further behind than the window and is closed, as one that lagged.
    Event(Weak<Event>),
    /// Every event up to this revision has been delivered.
    Progress(i64),
}

struct Inner {
    objects: BTreeMap<String, Arc<CachedObject>>,
    /// Bytes of the objects in the map.
    object_bytes: usize,
    events: VecDeque<Arc<Event>>,
    /// Bytes of the objects of the events in the window.
    window_bytes: usize,
    /// Revision up to which the cache is complete.
    revision: i64,
    /// The oldest revision a watch may resume from (exclusive).
    oldest: i64,
    tx: broadcast::Sender<Notice>,
    /// Watches that select one value of the resource's indexed field (a node's pods), by
    /// that value: an event goes only to those of its object's value before and after.
    indexed: HashMap<String, Vec<mpsc::Sender<Notice>>>,
    /// The keys of the current objects by their value of the indexed field (a node's pods),
    /// so that a list selecting one value reads only those.
    keys_by_value: HashMap<String, BTreeSet<String>>,
    /// Indexed watches closed because they fell too far behind.
    terminated: u64,
    /// Objects of the map held packed.
    packed: usize,
}

impl Inner {
    /// Hands `notice` to the indexed watches of `value`, dropping those that are gone or
    /// too far behind (their stream then ends; clients resume from their resourceVersion).
    fn send_indexed(&mut self, value: &str, notice: &Notice) {
        let Some(senders) = self.indexed.get_mut(value) else {
            return;
        };
        let mut dropped = 0;
        senders.retain(|tx| match tx.try_send(notice.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped += 1;
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if senders.is_empty() {
            self.indexed.remove(value);
        }
        self.terminated += dropped;
    }

    /// Files `key` under its new value of the indexed field (None: the object is gone), and
    /// out of its old one.
    fn reindex(&mut self, key: &str, before: Option<&str>, now: Option<&str>) {
        if before == now {
            return;
        }
        if let Some(b) = before {
            if let Some(keys) = self.keys_by_value.get_mut(b) {
                keys.remove(key);
                if keys.is_empty() {
                    self.keys_by_value.remove(b);
                }
            }
        }
        if let Some(n) = now {
            self.keys_by_value
                .entry(n.to_string())
                .or_default()
                .insert(key.to_string());
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

/// What one resource's cache holds (serialized bytes, as [`CachedObject::size`] counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Objects in the map (the current state).
    pub objects: usize,
    /// Their bytes.
    pub object_bytes: usize,
    /// Events in the window watches resume from.
    pub window_events: usize,
    /// The bytes of those events' objects (the previous states they keep are not counted).
    pub window_bytes: usize,
    /// Indexed watches closed so far because they fell too far behind.
    pub terminated_watchers: u64,
    /// Objects of the map held compressed, and the size of the dictionary they use now.
    pub packed_objects: usize,
    pub dictionary_bytes: usize,
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
    pub initial: Vec<Arc<CachedObject>>,
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

    /// A revision up to which this feed has handed out every notice it will ever carry (for
    /// a bookmark), if it can tell now: `cache`'s revision, read before finding the feed
    /// empty. An event is queued to its watchers under the same lock that advances the
    /// revision, so an empty feed after that read has delivered everything up to it.
    pub fn caught_up(&self, cache: &WatchCache) -> Option<i64> {
        let revision = cache.revision();
        let empty = match self {
            Live::All(rx) => rx.is_empty(),
            Live::Indexed(rx) => rx.is_empty(),
        };
        empty.then_some(revision)
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
    /// False for the resources of [`UNCACHED`]: only the event window is kept.
    keeps_objects: bool,
    /// The dictionary idle objects are packed with now, and how many objects the map held
    /// when it was trained.
    dictionary: Mutex<Option<(Arc<Dictionary>, usize)>>,
}

impl WatchCache {
    /// Starts the cache: lists the resource, then watches it, forever (reconnecting, and
    /// relisting when the store compacted past it).
    pub fn start(resource: &'static Resource, storage: Storage) -> Arc<WatchCache> {
        let cache = WatchCache::empty(resource);
        let c = cache.clone();
        tokio::spawn(async move { c.run(storage).await });
        cache
    }

    /// A cache that has listed nothing yet and follows nothing.
    fn empty(resource: &'static Resource) -> Arc<WatchCache> {
        let (tx, _) = broadcast::channel(WATCHER_BUFFER);
        let (ready, _) = watch::channel(0);
        Arc::new(WatchCache {
            resource,
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                object_bytes: 0,
                events: VecDeque::new(),
                window_bytes: 0,
                revision: 0,
                oldest: 0,
                tx,
                indexed: HashMap::new(),
                keys_by_value: HashMap::new(),
                terminated: 0,
                packed: 0,
            }),
            ready,
            progress_wanted: tokio::sync::Notify::new(),
            indexed_field: api::selectors::indexed_field(resource.kind),
            keeps_objects: !UNCACHED.contains(&(resource.group, resource.plural)),
            dictionary: Mutex::new(None),
        })
    }

    /// What the cache holds now, for the metrics.
    pub fn sizes(&self) -> CacheSizes {
        let dictionary_bytes = self.dictionary.lock().as_ref().map_or(0, |(d, _)| d.size());
        let inner = self.inner.lock();
        CacheSizes {
            objects: inner.objects.len(),
            object_bytes: inner.object_bytes,
            window_events: inner.events.len(),
            window_bytes: inner.window_bytes,
            terminated_watchers: inner.terminated,
            packed_objects: inner.packed,
            dictionary_bytes,
        }
    }

    /// Packs the objects of the map that nothing but the map holds (no event of the window,
    /// no reader), training the resource's dictionary first when it has none or has grown
    /// enough. Returns how many objects it packed.
    pub fn pack_idle(&self, packer: &mut Packer) -> usize {
        if !self.keeps_objects {
            return 0;
        }
        let Some(dict) = self.dictionary_for_packing() else {
            return 0;
        };
        let mut packed = 0;
        let mut after: Option<String> = None;
        loop {
            // Under the lock only the choice; compression happens outside it.
            let (idle, last) = {
                let inner = self.inner.lock();
                let range = match &after {
                    Some(k) => inner.objects.range::<str, _>((
                        std::ops::Bound::Excluded(k.as_str()),
                        std::ops::Bound::Unbounded,
                    )),
                    None => inner.objects.range::<str, _>(..),
                };
                let mut last = None;
                let mut idle = Vec::new();
                for (k, o) in range.take(PACK_CHUNK) {
                    last = Some(k);
                    if Arc::strong_count(o) == 1 && !o.is_packed() {
                        idle.push((k.clone(), o.clone()));
                    }
                }
                (idle, last.cloned())
            };
            let Some(last) = last else {
                return packed;
            };
            after = Some(last);
            let mut done = Vec::with_capacity(idle.len());
            for (k, o) in idle {
                match o.packed(packer, &dict) {
                    Some(Ok(p)) => done.push((k, o, Arc::new(p))),
                    Some(Err(e)) => {
                        warn!(resource = self.resource.plural, key = %k, error = %e, "packing a cached object");
                    }
                    None => {}
                }
            }
            let mut inner = self.inner.lock();
            for (k, plain, p) in done {
                // Replaced only if unchanged meanwhile; a reader that took the plain copy
                // keeps it.
                let Some(slot) = inner.objects.get_mut(&k) else {
                    continue;
                };
                if !Arc::ptr_eq(slot, &plain) {
                    continue;
                }
                let (before, now) = (plain.size(), p.size());
                *slot = p;
                inner.object_bytes = inner.object_bytes.saturating_sub(before) + now;
                inner.packed += 1;
                packed += 1;
            }
        }
    }

    /// The dictionary to pack with: trained now if the map has reached [`PACK_FROM`] objects
    /// and has none, or has grown [`RETRAIN_GROWTH`] times since; None while it is too small
    /// (or training failed: tried again next time).
    fn dictionary_for_packing(&self) -> Option<Arc<Dictionary>> {
        let len = self.inner.lock().objects.len();
        let current = self.dictionary.lock().clone();
        if let Some((dict, trained_at)) = &current {
            if len < trained_at.saturating_mul(RETRAIN_GROWTH) {
                return Some(dict.clone());
            }
        } else if len < PACK_FROM {
            return None;
        }
        // Samples spread over the whole key range (every namespace); packed ones are
        // unpacked outside the lock.
        let picked: Vec<Arc<CachedObject>> = {
            let inner = self.inner.lock();
            let step = (inner.objects.len() / DICTIONARY_SAMPLES).max(1);
            inner
                .objects
                .values()
                .step_by(step)
                .take(DICTIONARY_SAMPLES)
                .cloned()
                .collect()
        };
        let samples: Vec<Bytes> = picked.iter().map(|o| o.json()).collect();
        drop(picked);
        let refs: Vec<&[u8]> = samples.iter().map(|b| b.as_ref()).collect();
        match Dictionary::train(&refs, DICTIONARY_BYTES) {
            Ok(dict) => {
                let dict = Arc::new(dict);
                info!(
                    resource = self.resource.plural,
                    objects = len,
                    samples = refs.len(),
                    bytes = dict.size(),
                    "trained the watch cache's dictionary"
                );
                *self.dictionary.lock() = Some((dict.clone(), len));
                Some(dict)
            }
            Err(e) => {
                warn!(resource = self.resource.plural, error = %e, "training the watch cache's dictionary");
                current.map(|(d, _)| d)
            }
        }
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
    /// the cache's revision. `indexed`: only those with this value of the
    /// [indexed field](Self::indexed_field), read from its index (ignored for a resource
    /// without one).
    pub fn snapshot_keyed(
        &self,
        prefix: &str,
        indexed: Option<&str>,
    ) -> (Vec<(String, Arc<CachedObject>)>, i64) {
        let inner = self.inner.lock();
        if let Some(value) = indexed.filter(|_| self.indexed_field.is_some()) {
            let items = inner
                .keys_by_value
                .get(value)
                .into_iter()
                .flatten()
                .filter(|k| k.starts_with(prefix))
                .filter_map(|k| Some((k.clone(), inner.objects.get(k)?.clone())))
                .collect();
            return (items, inner.revision);
        }
        let items = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        (items, inner.revision)
    }

    /// The current objects whose key starts with `prefix`, and the cache's revision;
    /// `indexed` as for [`Self::snapshot_keyed`].
    pub fn snapshot(&self, prefix: &str, indexed: Option<&str>) -> (Vec<Arc<CachedObject>>, i64) {
        if indexed.is_some() && self.indexed_field.is_some() {
            let (items, revision) = self.snapshot_keyed(prefix, indexed);
            return (items.into_iter().map(|(_, o)| o).collect(), revision);
        }
        let inner = self.inner.lock();
        let items = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, o)| o.clone())
            .collect();
        (items, inner.revision)
    }

    /// The current object at `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.inner.lock().objects.get(key).cloned()
    }

    /// False when the cache keeps only the event window (see [`UNCACHED`]): lists and gets
    /// go to the store, and a watch without a resourceVersion lists its initial objects there.
    pub fn keeps_objects(&self) -> bool {
        self.keeps_objects
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
                // The window is in revision order: skip what the watcher has seen without
                // looking at it (thousands of agents resume their watches).
                let after = inner.events.partition_point(|e| e.revision <= rv);
                let backlog = inner
                    .events
                    .range(after..)
                    .filter(|e| e.key.starts_with(prefix))
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
        if !self.keeps_objects {
            let revision = storage.current_revision().await?;
            self.install(BTreeMap::new(), revision);
            info!(
                resource = self.resource.plural,
                revision, "watch cache following (events only, no objects)"
            );
            return Ok(revision);
        }
        let (objects, revision) =
            list_cached(storage, &self.resource.key_prefix(), self.resource.kind).await?;
        self.install(objects.into_iter().collect(), revision);
        info!(
            resource = self.resource.plural,
            revision, "watch cache listed"
        );
        Ok(revision)
    }

    /// Replaces the cache's content with `objects`, listed at `revision`.
    fn install(&self, objects: BTreeMap<String, Arc<CachedObject>>, revision: i64) {
        let mut inner = self.inner.lock();
        let restarted = inner.revision > 0;
        inner.object_bytes = objects.values().map(|o| o.size()).sum();
        inner.packed = objects.values().filter(|o| o.is_packed()).count();
        inner.keys_by_value.clear();
        if let Some(field) = self.indexed_field {
            let kind = self.resource.kind;
            for (key, o) in &objects {
                inner.reindex(key, None, Some(o.field(kind, field)));
            }
        }
        inner.objects = objects;
        inner.events.clear();
        inner.window_bytes = 0;
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
            // Indexed watches are not told: they learn the revision when they need it (see
            // `Live::caught_up`), instead of a notice each to thousands of agents.
            let _ = inner.tx.send(Notice::Progress(revision));
            drop(inner);
            self.ready.send_replace(revision);
        }
    }

    fn apply(&self, ev: &etcd_client::Event) -> Result<(), StorageError> {
        let Some(kv) = ev.kv() else { return Ok(()) };
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let change = match ev.event_type() {
            EventType::Put => {
                let stored: Stored = Storage::decode_kv(kv)?;
                // A cache without objects takes the previous state from the store's event
                // (watchers need it to tell a selector's leavers).
                let prev = match self.keeps_objects {
                    true => None,
                    false => ev
                        .prev_kv()
                        .map(Storage::decode_kv)
                        .transpose()?
                        .map(|s| s.object),
                };
                Change::Put {
                    object: stored.object,
                    created: kv.create_revision() == kv.mod_revision(),
                    prev,
                }
            }
            EventType::Delete => Change::Delete {
                prev: ev
                    .prev_kv()
                    .map(Storage::decode_kv)
                    .transpose()?
                    .map(|s| s.object),
            },
        };
        self.apply_change(key, change, kv.mod_revision());
        Ok(())
    }

    /// Applies one change of the object at `key`, made at `revision`.
    fn apply_change(&self, key: String, change: Change, revision: i64) {
        let kind = self.resource.kind;
        // Decoding and encoding happen outside the lock; only this task writes the map.
        let mut prev = self.inner.lock().objects.get(&key).cloned();
        let event = match change {
            Change::Put {
                object,
                created,
                prev: stored_prev,
            } => {
                if let (None, Some(p)) = (&prev, stored_prev) {
                    prev = Some(Arc::new(CachedObject::new(kind, &p, EventKind::Modified)));
                }
                let event = if created {
                    EventKind::Added
                } else {
                    EventKind::Modified
                };
                Event {
                    kind: event,
                    key,
                    object: Arc::new(CachedObject::new(kind, &object, event)),
                    prev,
                    revision,
                }
            }
            Change::Delete { prev: stored_prev } => {
                let mut last = match (&prev, stored_prev) {
                    (Some(p), _) => p.value(),
                    (None, Some(p)) => p,
                    (None, None) => return,
                };
                crate::storage::set_resource_version(&mut last, revision);
                let object = CachedObject::new(kind, &last, EventKind::Deleted);
                Event {
                    kind: EventKind::Deleted,
                    key,
                    object: Arc::new(object),
                    prev,
                    revision,
                }
            }
        };
        let revision = event.revision;
        let mut inner = self.inner.lock();
        let replaced = match event.kind {
            _ if !self.keeps_objects => None,
            EventKind::Deleted => inner.objects.remove(&event.key),
            _ => {
                inner.object_bytes += event.object.size();
                inner
                    .objects
                    .insert(event.key.clone(), event.object.clone())
            }
        };
        if let Some(old) = replaced {
            inner.object_bytes = inner.object_bytes.saturating_sub(old.size());
            if old.is_packed() {
                inner.packed -= 1;
            }
        }
        if let (Some(field), true) = (self.indexed_field, self.keeps_objects) {
            let before = event.prev.as_ref().map(|p| p.field(kind, field));
            let now = match event.kind {
                EventKind::Deleted => None,
                _ => Some(event.object.field(kind, field)),
            };
            inner.reindex(&event.key, before, now);
        }
        let event = Arc::new(event);
        let notice = Notice::Event(Arc::downgrade(&event));
        inner.window_bytes += event.object.size();
        inner.events.push_back(event.clone());
        while inner.events.len() > EVENT_WINDOW
            || (inner.window_bytes > EVENT_WINDOW_BYTES && inner.events.len() > 1)
        {
            if let Some(old) = inner.events.pop_front() {
                inner.oldest = old.revision;
                inner.window_bytes -= old.object.size();
            }
        }
        inner.revision = inner.revision.max(revision);
        if let Some(field) = self.indexed_field {
            if !inner.indexed.is_empty() {
                let now = event.object.field(kind, field).to_string();
                let before = event
                    .prev
                    .as_ref()
                    .map(|p| p.field(kind, field).to_string());
                inner.send_indexed(&now, &notice);
                if let Some(before) = before.filter(|b| *b != now) {
                    inner.send_indexed(&before, &notice);
                }
            }
        }
        let _ = inner.tx.send(notice);
        drop(inner);
        self.ready.send_replace(revision);
    }
}

/// Every object under `prefix` in the store, read at one revision in pages (each page
/// turned into cached objects before the next is read), with its key; and that revision.
pub async fn list_cached(
    storage: &Storage,
    prefix: &str,
    kind: &str,
) -> Result<(Vec<(String, Arc<CachedObject>)>, i64), StorageError> {
    let mut objects = Vec::new();
    let mut start: Option<String> = None;
    let mut revision = 0;
    loop {
        let page = storage
            .list(prefix, start.as_deref(), 1000, revision)
            .await?;
        revision = page.revision;
        for s in page.items {
            start = Some(s.key.clone());
            let object = CachedObject::new(kind, &s.object, EventKind::Added);
            objects.push((s.key, Arc::new(object)));
        }
        if !page.more {
            return Ok((objects, revision));
        }
    }
}

/// One change the store reported, decoded.
enum Change {
    /// The object was created (`created`) or replaced; its resourceVersion is set. `prev`:
    /// its previous state as the store sent it, for a cache that keeps no objects.
    Put {
        object: serde_json::Value,
        created: bool,
        prev: Option<serde_json::Value>,
    },
    /// The object was deleted; `prev` is its last state when the store sent it.
    Delete { prev: Option<serde_json::Value> },
}

/// Every [`PACK_PERIOD`], packs the idle objects of each cache, until the caches are gone.
fn pack_idle_objects(caches: Vec<Weak<WatchCache>>) {
    let mut packer = Packer::default();
    loop {
        std::thread::sleep(PACK_PERIOD);
        let mut alive = false;
        for cache in &caches {
            if let Some(cache) = cache.upgrade() {
                alive = true;
                cache.pack_idle(&mut packer);
            }
        }
        if !alive {
            return;
        }
    }
}

/// The caches of every resource, started together.
pub struct Caches {
    caches: Vec<Arc<WatchCache>>,
}

impl Caches {
    pub fn start(storage: &Storage) -> Caches {
        let caches: Vec<Arc<WatchCache>> = api::registry::RESOURCES
            .iter()
            .map(|r| WatchCache::start(r, storage.clone()))
            .collect();
        let weak: Vec<Weak<WatchCache>> = caches.iter().map(Arc::downgrade).collect();
        // A thread, not a task: packing is CPU work that would hold up a runtime worker.
        let spawned = std::thread::Builder::new()
            .name("cache-packer".into())
            .spawn(move || pack_idle_objects(weak));
        if let Err(e) = spawned {
            warn!(error = %e, "starting the watch cache's packer; objects stay uncompressed");
        }
        Caches { caches }
    }

    /// The cache serving lists and gets of `resource`: None for a resource whose cache keeps
    /// no objects (they are read from the store).
    pub fn get(&self, resource: &Resource) -> Option<&Arc<WatchCache>> {
        self.watch_cache(resource).filter(|c| c.keeps_objects)
    }

    /// The cache feeding watches of `resource` (every resource has one).
    pub fn watch_cache(&self, resource: &Resource) -> Option<&Arc<WatchCache>> {
        self.caches.iter().find(|c| c.resource == resource)
    }

    /// True when every cache has completed its first list.
    pub fn ready(&self) -> bool {
        self.caches.iter().all(|c| c.revision() > 0)
    }

    /// Every cache, for the metrics.
    pub fn all(&self) -> &[Arc<WatchCache>] {
        &self.caches
    }
}

#[cfg(test)]
mod tests {
    use api::selectors::{FieldSelector, LabelSelector};
    use serde_json::{json, Value};

    use super::*;
    use crate::handlers::{
        output::Filter,
        read::{decode_continue, page_of},
    };

    fn try_next(live: &mut Live) -> Option<Notice> {
        match live {
            Live::All(rx) => rx.try_recv().ok(),
            Live::Indexed(rx) => rx.try_recv().ok(),
        }
    }

    fn pods() -> &'static Resource {
        api::registry::find("", "v1", "pods").expect("pods are registered")
    }

    fn pod(ns: &str, name: &str, app: &str, node: &str, rv: i64) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app},
                "resourceVersion": rv.to_string()},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
    }

    fn key(ns: &str, name: &str) -> String {
        pods().key(Some(ns), name)
    }

    /// A cache listed at revision 10 with pods a, b, c in `default` and d in `other`.
    fn listed() -> Arc<WatchCache> {
        let cache = WatchCache::empty(pods());
        let mut objects = BTreeMap::new();
        for (ns, name, app, node, rv) in [
            ("default", "a", "web", "n1", 2),
            ("default", "b", "db", "n2", 3),
            ("default", "c", "web", "n2", 4),
            ("other", "d", "web", "n1", 5),
        ] {
            let o = CachedObject::new("Pod", &pod(ns, name, app, node, rv), EventKind::Added);
            objects.insert(key(ns, name), Arc::new(o));
        }
        cache.install(objects, 10);
        cache
    }

    fn put(cache: &WatchCache, ns: &str, name: &str, app: &str, node: &str, rv: i64) {
        let created = cache.get(&key(ns, name)).is_none();
        let object = pod(ns, name, app, node, rv);
        cache.apply_change(
            key(ns, name),
            Change::Put {
                object,
                created,
                prev: None,
            },
            rv,
        );
    }

    fn names(items: &[Arc<CachedObject>]) -> Vec<String> {
        items
            .iter()
            .map(|o| o.value()["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_list_is_the_state_at_the_revision_it_reports() {
        let cache = listed();
        let (before, rv) = cache.snapshot(&pods().namespace_prefix("default"), None);
        assert_eq!(
            (names(&before), rv),
            (vec!["a".into(), "b".into(), "c".into()], 10)
        );
        put(&cache, "default", "b", "db", "n3", 11);
        put(&cache, "default", "e", "web", "n1", 12);
        cache.apply_change(key("default", "a"), Change::Delete { prev: None }, 13);
        let (after, rv) = cache.snapshot(&pods().namespace_prefix("default"), None);
        assert_eq!(
            (names(&after), rv),
            (vec!["b".into(), "c".into(), "e".into()], 13)
        );
        let b = after[0].value();
        assert_eq!(b["spec"]["nodeName"], "n3");
        assert_eq!(b["metadata"]["resourceVersion"], "11");
        // What an earlier list read is untouched by later changes.
        assert_eq!(names(&before), ["a", "b", "c"]);
        assert_eq!(before[1].value()["spec"]["nodeName"], "n2");
        // Every namespace.
        let (all, _) = cache.snapshot(&pods().key_prefix(), None);
        assert_eq!(names(&all), ["b", "c", "e", "d"]);
    }

    #[test]
    fn label_and_field_selectors_select_as_on_the_decoded_objects() {
        let cache = listed();
        put(&cache, "default", "b", "web", "n1", 11);
        let (all, _) = cache.snapshot(&pods().key_prefix(), None);
        let cases = [
            (Some("app=web"), None),
            (Some("app!=web"), None),
            (Some("app in (db,cache)"), None),
            (None, Some("spec.nodeName=n1")),
            (None, Some("spec.nodeName!=n1,metadata.namespace=default")),
            (Some("app=web"), Some("spec.nodeName=n2")),
            (Some("!app"), None),
        ];
        for (labels, fields) in cases {
            let filter = Filter::new(
                labels.map(|l| LabelSelector::parse(l).unwrap()),
                fields.map(|f| FieldSelector::parse(pods(), f).unwrap()),
            );
            let cached: Vec<String> = all
                .iter()
                .filter(|o| filter.matches_cached(o))
                .map(|o| o.value()["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
            let decoded: Vec<String> = all
                .iter()
                .map(|o| o.value())
                .filter(|v| filter.matches(v))
                .map(|v| v["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(cached, decoded, "{labels:?} {fields:?}");
        }
        let web = Filter::new(Some(LabelSelector::parse("app=web").unwrap()), None);
        let (items, _, _) = page_of(
            &cache.snapshot_keyed(&pods().key_prefix(), None).0,
            &web,
            None,
            11,
        );
        assert_eq!(names(&items), ["a", "b", "c", "d"]);
    }

    #[test]
    fn pages_continue_after_the_last_item_at_the_same_revision() {
        let cache = listed();
        let prefix = pods().key_prefix();
        let everything = Filter::new(None, None);
        let (all, rv) = cache.snapshot_keyed(&prefix, None);
        let (first, next, remaining) = page_of(&all, &everything, Some(3), rv);
        assert_eq!(names(&first), ["a", "b", "c"]);
        assert_eq!(remaining, Some(1));
        let token = decode_continue(&next.expect("a continue token"), &prefix).unwrap();
        assert_eq!(token.rv, 10);
        assert_eq!(token.start, key("default", "c"));
        let after: Vec<_> = all
            .into_iter()
            .filter(|(k, _)| k.as_str() > token.start.as_str())
            .collect();
        let (second, next, _) = page_of(&after, &everything, Some(3), rv);
        assert_eq!(names(&second), ["d"]);
        assert!(next.is_none());
        // With a selector, the token follows the last match and no count is promised.
        let web = Filter::new(Some(LabelSelector::parse("app=web").unwrap()), None);
        let (all, rv) = cache.snapshot_keyed(&prefix, None);
        let (first, next, remaining) = page_of(&all, &web, Some(1), rv);
        assert_eq!(names(&first), ["a"]);
        assert_eq!(remaining, None);
        let token = decode_continue(&next.unwrap(), &prefix).unwrap();
        assert_eq!(token.start, key("default", "a"));
    }

    #[test]
    fn a_watch_replays_the_events_after_its_revision_then_follows() {
        let cache = listed();
        put(&cache, "default", "a", "web", "n2", 11);
        put(&cache, "other", "d", "web", "n2", 12);
        put(&cache, "default", "e", "db", "n1", 13);
        let mut sub = cache
            .subscribe(&pods().namespace_prefix("default"), Some(11), None)
            .unwrap();
        let replayed: Vec<(EventKind, i64)> =
            sub.backlog.iter().map(|e| (e.kind, e.revision)).collect();
        assert_eq!(replayed, [(EventKind::Added, 13)]);
        assert_eq!(sub.revision, 13);
        let line = sub.backlog[0].object.line(EventKind::Added);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"], pod("default", "e", "db", "n1", 13));
        // From the list's own revision: every event since.
        let all = cache
            .subscribe(&pods().key_prefix(), Some(10), None)
            .unwrap();
        let revs: Vec<i64> = all.backlog.iter().map(|e| e.revision).collect();
        assert_eq!(revs, [11, 12, 13]);
        assert_eq!(all.backlog[0].kind, EventKind::Modified);
        let prev = all.backlog[0].prev.as_ref().unwrap().value();
        assert_eq!(prev["metadata"]["resourceVersion"], "2");
        // Live events follow; a deletion carries the last state at the deletion's revision.
        cache.apply_change(key("default", "e"), Change::Delete { prev: None }, 14);
        let Some(Notice::Event(ev)) = try_next(&mut sub.live) else {
            panic!("no live event")
        };
        let ev = ev.upgrade().expect("the window holds the event");
        assert_eq!((ev.kind, ev.revision), (EventKind::Deleted, 14));
        let last = ev.object.value();
        assert_eq!(last["metadata"]["resourceVersion"], "14");
        assert_eq!(last["spec"]["nodeName"], "n1");
        // Without a revision: the current objects first.
        let fresh = cache
            .subscribe(&pods().namespace_prefix("default"), None, None)
            .unwrap();
        assert_eq!(names(&fresh.initial), ["a", "b", "c"]);
        assert!(fresh.backlog.is_empty());
    }

    #[test]
    fn a_revision_older_than_the_window_is_gone() {
        let cache = listed();
        assert!(cache
            .subscribe(&pods().key_prefix(), Some(10), None)
            .is_ok());
        assert!(matches!(
            cache.subscribe(&pods().key_prefix(), Some(9), None),
            Err(CacheError::TooOld { .. })
        ));
        let mut live = cache
            .subscribe(&pods().key_prefix(), Some(10), None)
            .unwrap()
            .live;
        for i in 0..EVENT_WINDOW as i64 + 5 {
            put(&cache, "default", "a", "web", &format!("n{i}"), 11 + i);
        }
        let last = 10 + EVENT_WINDOW as i64 + 5;
        assert!(matches!(
            cache.subscribe(&pods().key_prefix(), Some(14), None),
            Err(CacheError::TooOld {
                requested: 14,
                oldest: 16
            })
        ));
        let ok = cache
            .subscribe(&pods().key_prefix(), Some(15), None)
            .unwrap();
        assert_eq!(ok.backlog.len(), EVENT_WINDOW);
        assert_eq!(ok.backlog.last().unwrap().revision, last);
        // The watcher that read nothing finds its first events gone: it is closed (and
        // resumes, or relists), as one that lagged.
        let Some(Notice::Event(first)) = try_next(&mut live) else {
            panic!("no notice")
        };
        assert!(first.upgrade().is_none());
    }

    #[test]
    fn the_window_holds_at_most_its_bytes() {
        let cache = listed();
        let big = "x".repeat(1 << 20);
        for i in 0..40 {
            let mut object = pod("default", "a", "web", "n1", 11 + i);
            object["metadata"]["annotations"] = json!({ "big": big });
            cache.apply_change(
                key("default", "a"),
                Change::Put {
                    object,
                    created: false,
                    prev: None,
                },
                11 + i,
            );
        }
        let inner = cache.inner.lock();
        assert!(inner.window_bytes <= EVENT_WINDOW_BYTES);
        assert!(inner.events.len() < 40 && inner.events.len() >= 30);
        let held: usize = inner.events.iter().map(|e| e.object.size()).sum();
        assert_eq!(held, inner.window_bytes);
        assert_eq!(inner.oldest, inner.events[0].revision - 1);
    }

    #[test]
    fn an_events_cache_keeps_no_objects_but_feeds_watches_with_their_previous_state() {
        let events = api::registry::find("", "v1", "events").expect("events are registered");
        let cache = WatchCache::empty(events);
        assert!(!cache.keeps_objects());
        cache.install(BTreeMap::new(), 10);
        let ev = |reason: &str, rv: i64| {
            json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "e1", "namespace": "default",
                    "resourceVersion": rv.to_string()},
                "reason": reason, "involvedObject": {"kind": "Pod", "name": "p"}})
        };
        let key = events.key(Some("default"), "e1");
        cache.apply_change(
            key.clone(),
            Change::Put {
                object: ev("Pulled", 11),
                created: true,
                prev: None,
            },
            11,
        );
        cache.apply_change(
            key.clone(),
            Change::Put {
                object: ev("Started", 12),
                created: false,
                prev: Some(ev("Pulled", 11)),
            },
            12,
        );
        cache.apply_change(
            key.clone(),
            Change::Delete {
                prev: Some(ev("Started", 12)),
            },
            13,
        );
        let sizes = cache.sizes();
        assert_eq!((sizes.objects, sizes.object_bytes), (0, 0));
        assert_eq!(sizes.window_events, 3);
        assert!(cache.get(&key).is_none());
        let sub = cache
            .subscribe(&events.key_prefix(), Some(10), None)
            .unwrap();
        let seen: Vec<_> = sub
            .backlog
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.prev
                        .as_ref()
                        .map(|p| p.value()["reason"].as_str().unwrap().to_string()),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (EventKind::Added, None),
                (EventKind::Modified, Some("Pulled".to_string())),
                (EventKind::Deleted, None),
            ]
        );
        assert_eq!(sub.backlog[2].object.value()["reason"], "Started");
    }

    #[test]
    fn lists_of_one_node_read_its_index_which_follows_moves_and_deletes() {
        let cache = listed();
        let on = |c: &WatchCache, node: &str, prefix: &str| {
            let (items, _) = c.snapshot_keyed(prefix, Some(node));
            let keyed: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
            let plain = names(&c.snapshot(prefix, Some(node)).0);
            assert_eq!(keyed.len(), plain.len());
            plain
        };
        let all = pods().key_prefix();
        assert_eq!(on(&cache, "n1", &all), ["a", "d"]);
        assert_eq!(on(&cache, "n1", &pods().namespace_prefix("default")), ["a"]);
        assert_eq!(on(&cache, "n2", &all), ["b", "c"]);
        put(&cache, "default", "b", "db", "n3", 11);
        cache.apply_change(key("default", "c"), Change::Delete { prev: None }, 12);
        put(&cache, "default", "e", "web", "n2", 13);
        assert_eq!(on(&cache, "n2", &all), ["e"]);
        assert_eq!(on(&cache, "n3", &all), ["b"]);
        assert!(on(&cache, "n9", &all).is_empty());
        // A relist rebuilds the index.
        let listed_again = listed();
        assert_eq!(on(&listed_again, "n2", &all), ["b", "c"]);
    }

    #[test]
    fn a_feed_is_caught_up_at_the_revision_once_it_read_every_notice() {
        let cache = listed();
        let prefix = pods().key_prefix();
        let mut n1 = cache.subscribe(&prefix, Some(10), Some("n1")).unwrap().live;
        let mut all = cache.subscribe(&prefix, Some(10), None).unwrap().live;
        // Events of other nodes move the revision without a notice to n1's feed.
        put(&cache, "default", "b", "db", "n2", 11);
        assert_eq!(n1.caught_up(&cache), Some(11));
        assert_eq!(all.caught_up(&cache), None);
        assert!(try_next(&mut all).is_some());
        assert_eq!(all.caught_up(&cache), Some(11));
        put(&cache, "default", "a", "web", "n1", 12);
        assert_eq!(n1.caught_up(&cache), None);
        assert!(try_next(&mut n1).is_some());
        assert_eq!(n1.caught_up(&cache), Some(12));
    }

    #[test]
    fn the_sizes_follow_puts_replacements_and_deletes() {
        let cache = listed();
        let sum =
            |c: &WatchCache| -> usize { c.inner.lock().objects.values().map(|o| o.size()).sum() };
        let listed_bytes = sum(&cache);
        assert_eq!(
            cache.sizes(),
            CacheSizes {
                objects: 4,
                object_bytes: listed_bytes,
                window_events: 0,
                window_bytes: 0,
                terminated_watchers: 0,
                packed_objects: 0,
                dictionary_bytes: 0,
            }
        );
        put(&cache, "default", "b", "a-longer-app-name", "n3", 11);
        put(&cache, "default", "e", "web", "n1", 12);
        cache.apply_change(key("default", "a"), Change::Delete { prev: None }, 13);
        let sizes = cache.sizes();
        assert_eq!(sizes.objects, 4);
        assert_eq!(sizes.object_bytes, sum(&cache));
        assert_ne!(sizes.object_bytes, listed_bytes);
        assert_eq!(sizes.window_events, 3);
        assert_eq!(sizes.window_bytes, cache.inner.lock().window_bytes);
    }

    #[test]
    fn idle_objects_are_packed_once_the_resource_is_big_enough_and_read_the_same() {
        let cache = WatchCache::empty(pods());
        let mut packer = Packer::default();
        let mut objects = BTreeMap::new();
        for i in 0..PACK_FROM - 1 {
            let ns = format!("ns-{}", i % 3);
            let name = format!("p-{i}");
            let o = pod(&ns, &name, "web", &format!("n{}", i % 50), 2 + i as i64);
            let o = CachedObject::new("Pod", &o, EventKind::Added);
            objects.insert(key(&ns, &name), Arc::new(o));
        }
        cache.install(objects, 10_000);
        assert_eq!(
            cache.pack_idle(&mut packer),
            0,
            "too few objects to train on"
        );
        assert_eq!(cache.sizes().dictionary_bytes, 0);
        // The window holds this one's event: it stays plain.
        put(&cache, "default", "new", "web", "n1", 10_001);
        let jsons = |c: &WatchCache| -> Vec<Bytes> {
            c.snapshot("/", None).0.iter().map(|o| o.json()).collect()
        };
        let before = jsons(&cache);
        let bytes_before = cache.sizes().object_bytes;
        // A reader holding an object keeps it plain too.
        let held = cache.get(&key("ns-1", "p-1")).unwrap();
        assert_eq!(cache.pack_idle(&mut packer), PACK_FROM - 2);
        let sizes = cache.sizes();
        assert_eq!(sizes.packed_objects, PACK_FROM - 2);
        assert!(sizes.dictionary_bytes > 0);
        assert!(
            sizes.object_bytes * 3 < bytes_before,
            "{} of {bytes_before}",
            sizes.object_bytes
        );
        let sum =
            |c: &WatchCache| -> usize { c.inner.lock().objects.values().map(|o| o.size()).sum() };
        assert_eq!(sizes.object_bytes, sum(&cache));
        assert_eq!(jsons(&cache), before, "lists read the same JSON");
        assert!(!cache.get(&key("default", "new")).unwrap().is_packed());
        drop(held);
        assert_eq!(cache.pack_idle(&mut packer), 1, "released, then packed");
        // A packed object that changes is plain again; selectors still read packed ones.
        put(&cache, "ns-0", "p-0", "db", "n2", 10_002);
        assert_eq!(cache.sizes().packed_objects, PACK_FROM - 2);
        assert_eq!(cache.sizes().object_bytes, sum(&cache));
        let (n1, _) = cache.snapshot("/", Some("n1"));
        assert_eq!(n1.len(), 20 + 1);
        let sel = LabelSelector::parse("app=db").unwrap();
        let (all, _) = cache.snapshot("/", None);
        assert_eq!(all.iter().filter(|o| o.labels_match(&sel)).count(), 1);
    }

    #[test]
    fn an_indexed_watch_gets_only_the_events_of_its_value_before_and_after() {
        let cache = listed();
        let prefix = pods().key_prefix();
        let mut n1 = cache.subscribe(&prefix, Some(10), Some("n1")).unwrap().live;
        let mut n3 = cache.subscribe(&prefix, Some(10), Some("n3")).unwrap().live;
        let mut all = cache.subscribe(&prefix, Some(10), None).unwrap().live;
        put(&cache, "default", "b", "db", "n2", 11); // n2 only
        put(&cache, "default", "a", "web", "n3", 12); // moves from n1 to n3
        put(&cache, "default", "e", "web", "n1", 13); // new on n1
        let revs = |live: &mut Live| {
            let mut out = Vec::new();
            while let Some(n) = try_next(live) {
                if let Notice::Event(ev) = n {
                    out.push(ev.upgrade().map(|e| e.revision).unwrap_or(-1));
                }
            }
            out
        };
        assert_eq!(revs(&mut n1), vec![12, 13]);
        assert_eq!(revs(&mut n3), vec![12]);
        assert_eq!(revs(&mut all), vec![11, 12, 13]);
        // Progress is not queued to indexed watches: their bookmarks read the revision.
        cache.advance(20);
        assert!(try_next(&mut n3).is_none());
        assert_eq!(n3.caught_up(&cache), Some(20));
        // A resource without an indexed field ignores the value.
        let nodes = WatchCache::empty(api::registry::find("", "v1", "nodes").unwrap());
        nodes.install(BTreeMap::new(), 1);
        assert!(matches!(
            nodes
                .subscribe("/registry/nodes/", Some(1), Some("x"))
                .unwrap()
                .live,
            Live::All(_)
        ));
    }
}
