//! The etcd Watch service. Each gRPC watch stream is served by one task that holds one
//! subscription to the member's watch hub and every watcher created on the stream: a
//! transaction applied on this member wakes each stream once, whatever its number of
//! watchers. A watcher that starts at a past revision (or whose stream fell behind the hub)
//! reads history first, a bounded step at a time, then follows the hub; no event is ever
//! skipped, repeated or reordered, and the events of one transaction go out together.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use proto::etcdserverpb::watch_create_request::FilterType;
use proto::etcdserverpb::watch_request::RequestUnion;
use proto::etcdserverpb::watch_server::Watch;
use proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use proto::mvccpb::{event::EventType, Event};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::mvcc::index::in_range;
use crate::mvcc::MvccError;
use crate::node::Node;
use crate::watch::Published;

/// The Watch service of a member.
pub struct WatchService {
    node: Arc<Node>,
    progress_interval: Duration,
}

impl WatchService {
    /// Serves `node`; watchers that asked for it get a progress notification when
    /// `progress_interval` passed without an event for them.
    pub fn new(node: Arc<Node>, progress_interval: Duration) -> Self {
        WatchService {
            node,
            progress_interval,
        }
    }
}

type Out = mpsc::Sender<Result<WatchResponse, Status>>;

/// Revisions read from history per step while a watcher catches up.
const HISTORY_BATCH: usize = 256;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let stream = WatchStream {
            node: self.node.clone(),
            out: tx,
            watchers: BTreeMap::new(),
            next_id: 0,
            catch_up_cursor: -1,
        };
        tokio::spawn(stream.run(inbound, self.progress_interval));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Whether a stream goes on after a step.
#[derive(PartialEq)]
enum Flow {
    Continue,
    /// The client went away (or the member stops).
    Closed,
}

/// One watcher of a stream.
struct Watcher {
    filter: Filter,
    /// The next revision this watcher must see: every event before it was sent.
    next: i64,
    /// Reading history (it started in the past, or its stream fell behind the hub) rather
    /// than following the hub.
    catching_up: bool,
    progress_notify: bool,
    /// Nothing was sent to it since the last progress tick (etcd's rule for notifications).
    quiet: bool,
}

/// The state of one gRPC watch stream.
struct WatchStream {
    node: Arc<Node>,
    out: Out,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    /// The watcher that read history last: the next step goes to the one after it, so
    /// watchers that catch up share the stream fairly.
    catch_up_cursor: i64,
}

impl WatchStream {
    async fn run(mut self, mut inbound: Streaming<WatchRequest>, interval: Duration) {
        // Subscribed before any watcher reads the current revision: every transaction applied
        // after such a read reaches this stream through the hub (or, if the stream falls
        // behind, the watchers read it from history).
        let mut sub = self.node.hub().subscribe();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let catching_up = self.watchers.values().any(|w| w.catching_up);
            let flow = tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(m)) => self.request(m).await,
                    _ => Flow::Closed,
                },
                p = sub.recv() => self.published(p).await,
                _ = tick.tick() => self.progress_tick().await,
                () = std::future::ready(()), if catching_up => self.catch_up().await,
            };
            if flow == Flow::Closed {
                break;
            }
        }
        self.node.hub().watcher_delta(-(self.watchers.len() as i64));
    }

    async fn send(&self, resp: WatchResponse) -> Flow {
        match self.out.send(Ok(resp)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Closed,
        }
    }

    async fn request(&mut self, msg: WatchRequest) -> Flow {
        match msg.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                if self.watchers.remove(&c.watch_id).is_none() {
                    return Flow::Continue;
                }
                self.node.hub().watcher_delta(-1);
                let resp = WatchResponse {
                    header: Some(self.node.header_now()),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                };
                self.send(resp).await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // Every event up to the reported revision has been sent to every watcher.
                let rev = self.sent_up_to();
                let resp = WatchResponse {
                    header: Some(self.node.header(rev)),
                    watch_id: -1,
                    ..Default::default()
                };
                self.send(resp).await
            }
            None => Flow::Continue,
        }
    }

    /// The revision up to which every watcher of the stream has been sent every event.
    fn sent_up_to(&self) -> i64 {
        let cur = self.node.current_rev();
        self.watchers
            .values()
            .map(|w| w.next - 1)
            .fold(cur, i64::min)
    }

    async fn create(&mut self, c: WatchCreateRequest) -> Flow {
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        if self.watchers.contains_key(&id) {
            // etcd answers a duplicate ID with a created-and-canceled response for no watcher.
            let resp = WatchResponse {
                header: Some(self.node.header_now()),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream".into(),
                ..Default::default()
            };
            return self.send(resp).await;
        }
        let cur = self.node.current_rev();
        let created = WatchResponse {
            header: Some(self.node.header(cur)),
            watch_id: id,
            created: true,
            ..Default::default()
        };
        if self.send(created).await == Flow::Closed {
            return Flow::Closed;
        }
        let next = if c.start_revision > 0 {
            c.start_revision
        } else {
            cur + 1
        };
        let watcher = Watcher {
            filter: Filter {
                no_put: c.filters.contains(&(FilterType::Noput as i32)),
                no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
                prev_kv: c.prev_kv,
                key: c.key,
                range_end: c.range_end,
            },
            next,
            catching_up: next <= cur,
            progress_notify: c.progress_notify,
            quiet: true,
        };
        self.watchers.insert(id, watcher);
        self.node.hub().watcher_delta(1);
        Flow::Continue
    }

    /// A transaction from the hub: sent to every following watcher it concerns.
    async fn published(&mut self, p: Result<Arc<Published>, RecvError>) -> Flow {
        let p = match p {
            Ok(p) => p,
            // The stream fell behind the hub's buffer: the transactions it missed are read
            // from history.
            Err(RecvError::Lagged(_)) => {
                self.watchers
                    .values_mut()
                    .for_each(|w| w.catching_up = true);
                return Flow::Continue;
            }
            Err(RecvError::Closed) => return Flow::Closed,
        };
        if p.reset {
            // A snapshot was installed: the key space jumped, history has the rest.
            self.watchers
                .values_mut()
                .for_each(|w| w.catching_up = true);
            return Flow::Continue;
        }
        let header = self.node.header(p.rev);
        let out = &self.out;
        let mut sent = false;
        for (id, w) in self.watchers.iter_mut() {
            if w.catching_up || p.rev < w.next {
                continue;
            }
            if p.rev > w.next {
                // A revision went by unseen: read it from history.
                w.catching_up = true;
                continue;
            }
            w.next = p.rev + 1;
            let events = w.filter.apply(&p.events);
            if events.is_empty() {
                continue;
            }
            w.quiet = false;
            let resp = WatchResponse {
                header: Some(header),
                watch_id: *id,
                events,
                ..Default::default()
            };
            if out.send(Ok(resp)).await.is_err() {
                return Flow::Closed;
            }
            sent = true;
        }
        if sent {
            self.node
                .metrics()
                .watch_delivery
                .observe(p.at.elapsed().as_secs_f64());
        }
        Flow::Continue
    }

    /// One bounded step of history for the next watcher that is catching up.
    async fn catch_up(&mut self) -> Flow {
        let after = (Bound::Excluded(self.catch_up_cursor), Bound::Unbounded);
        let pick = |(id, w): (&i64, &Watcher)| w.catching_up.then_some(*id);
        let Some(id) = self
            .watchers
            .range(after)
            .find_map(pick)
            .or_else(|| self.watchers.iter().find_map(pick))
        else {
            return Flow::Continue;
        };
        self.catch_up_cursor = id;
        let mvcc = &self.node.mvcc();
        let cur = mvcc.current_rev();
        let Some(w) = self.watchers.get_mut(&id) else {
            return Flow::Continue;
        };
        if w.next > cur {
            w.catching_up = false;
            return Flow::Continue;
        }
        match mvcc.history(w.next, cur, HISTORY_BATCH, true) {
            Ok(batches) => {
                // As etcd does, history goes out in one response per read, not per revision
                // (transactions stay whole inside it).
                let complete = batches.len() < HISTORY_BATCH;
                let mut events = Vec::new();
                let mut last = w.next - 1;
                for (rev, evs) in batches {
                    events.extend(w.filter.apply(&evs));
                    last = rev;
                }
                w.next = last + 1;
                if complete {
                    // Read up to `cur`; whatever comes after it arrives through the hub.
                    w.next = w.next.max(cur + 1);
                    w.catching_up = false;
                }
                if events.is_empty() {
                    return Flow::Continue;
                }
                w.quiet = false;
                let resp = WatchResponse {
                    header: Some(self.node.header(last)),
                    watch_id: id,
                    events,
                    ..Default::default()
                };
                self.send(resp).await
            }
            Err(MvccError::Compacted) => {
                self.watchers.remove(&id);
                self.node.hub().watcher_delta(-1);
                let resp = WatchResponse {
                    header: Some(self.node.header_now()),
                    watch_id: id,
                    canceled: true,
                    // No reason, as etcd: clients tell compaction from the compact revision.
                    compact_revision: mvcc.compact_rev(),
                    ..Default::default()
                };
                self.send(resp).await
            }
            Err(e) => {
                tracing::error!(watch_id = id, "watch history read failed: {e}");
                let _ = self.out.send(Err(Status::internal(e.to_string()))).await;
                Flow::Closed
            }
        }
    }

    /// Progress notifications, as etcd sends them: to each following watcher that asked for
    /// them and was sent nothing since the previous tick.
    async fn progress_tick(&mut self) -> Flow {
        let cur = self.node.current_rev();
        let out = &self.out;
        for (id, w) in self.watchers.iter_mut() {
            let due = w.progress_notify && w.quiet && !w.catching_up;
            w.quiet = true;
            if !due {
                continue;
            }
            let header = self.node.header((w.next - 1).min(cur));
            let resp = WatchResponse {
                header: Some(header),
                watch_id: *id,
                ..Default::default()
            };
            if out.send(Ok(resp)).await.is_err() {
                return Flow::Closed;
            }
        }
        Flow::Continue
    }
}

/// What a watcher asks for.
struct Filter {
    key: Vec<u8>,
    range_end: Vec<u8>,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
}

impl Filter {
    fn apply(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| {
                let key =
                    e.kv.as_ref()
                        .map(|kv| kv.key.as_slice())
                        .unwrap_or_default();
                let is_put = e.r#type == EventType::Put as i32;
                in_range(key, &self.key, &self.range_end)
                    && !(is_put && self.no_put)
                    && (is_put || !self.no_delete)
            })
            .map(|e| Event {
                r#type: e.r#type,
                kv: e.kv.clone(),
                prev_kv: if self.prev_kv {
                    e.prev_kv.clone()
                } else {
                    None
                },
            })
            .collect()
    }
}
