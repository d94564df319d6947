//! The etcd Watch service: many watchers per stream, each replaying history from its start
//! revision and then following the hub, never skipping or reordering an event.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
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
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::mvcc::index::in_range;
use crate::mvcc::MvccError;
use crate::node::Node;

/// The Watch service of a member.
pub struct WatchService {
    node: Arc<Node>,
    progress_interval: Duration,
}

impl WatchService {
    /// Serves `node`; watchers that asked for it get a progress notification after
    /// `progress_interval` without events.
    pub fn new(node: Arc<Node>, progress_interval: Duration) -> Self {
        WatchService { node, progress_interval }
    }
}

type Out = mpsc::Sender<Result<WatchResponse, Status>>;

struct Watcher {
    task: JoinHandle<()>,
    /// Every event up to this revision has been sent.
    synced: Arc<AtomicI64>,
}

/// Revisions read from history per step while catching up.
const HISTORY_BATCH: usize = 256;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(&self, request: Request<Streaming<WatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let node = self.node.clone();
        let interval = self.progress_interval;
        tokio::spawn(async move {
            let mut watchers: HashMap<i64, Watcher> = HashMap::new();
            let mut next_id = 0i64;
            while let Ok(Some(msg)) = inbound.message().await {
                watchers.retain(|_, w| {
                    let done = w.task.is_finished();
                    if done {
                        node.state.hub.watcher_delta(-1);
                    }
                    !done
                });
                match msg.request_union {
                    Some(RequestUnion::CreateRequest(c)) => {
                        let id = if c.watch_id != 0 {
                            c.watch_id
                        } else {
                            while watchers.contains_key(&next_id) {
                                next_id += 1;
                            }
                            next_id
                        };
                        if watchers.contains_key(&id) {
                            // etcd answers a duplicate ID with a created-and-canceled response.
                            let resp = WatchResponse {
                                header: Some(node.header_now()),
                                watch_id: id,
                                created: true,
                                canceled: true,
                                cancel_reason: "etcdserver: watch ID already exists".into(),
                                ..Default::default()
                            };
                            if tx.send(Ok(resp)).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        let synced = Arc::new(AtomicI64::new(0));
                        let task = tokio::spawn(run_watcher(node.clone(), tx.clone(), id, c, synced.clone(), interval));
                        node.state.hub.watcher_delta(1);
                        watchers.insert(id, Watcher { task, synced });
                    }
                    Some(RequestUnion::CancelRequest(c)) => {
                        if let Some(w) = watchers.remove(&c.watch_id) {
                            w.task.abort();
                            node.state.hub.watcher_delta(-1);
                            let resp = WatchResponse {
                                header: Some(node.header_now()),
                                watch_id: c.watch_id,
                                canceled: true,
                                ..Default::default()
                            };
                            if tx.send(Ok(resp)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        // Every event up to the reported revision has already been queued.
                        let cur = node.state.mvcc.current_rev();
                        let rev = watchers.values().map(|w| w.synced.load(Ordering::Acquire)).fold(cur, i64::min);
                        let resp = WatchResponse { header: Some(node.header(rev)), watch_id: -1, ..Default::default() };
                        if tx.send(Ok(resp)).await.is_err() {
                            break;
                        }
                    }
                    None => {}
                }
            }
            for (_, w) in watchers {
                node.state.hub.watcher_delta(-1);
                w.task.abort();
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

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
                let key = e.kv.as_ref().map(|kv| kv.key.as_slice()).unwrap_or_default();
                let is_put = e.r#type == EventType::Put as i32;
                in_range(key, &self.key, &self.range_end) && !(is_put && self.no_put) && !(!is_put && self.no_delete)
            })
            .map(|e| Event {
                r#type: e.r#type,
                kv: e.kv.clone(),
                prev_kv: if self.prev_kv { e.prev_kv.clone() } else { None },
            })
            .collect()
    }
}

async fn run_watcher(node: Arc<Node>, tx: Out, id: i64, c: WatchCreateRequest, synced: Arc<AtomicI64>, interval: Duration) {
    let mvcc = &node.state.mvcc;
    // Subscribe before reading the current revision: anything applied later is either in the
    // hub or (if published before we subscribed) in history.
    let mut sub = node.state.hub.subscribe();
    let cur = mvcc.current_rev();
    let created = WatchResponse { header: Some(node.header(cur)), watch_id: id, created: true, ..Default::default() };
    if tx.send(Ok(created)).await.is_err() {
        return;
    }
    let filter = Filter {
        key: c.key.clone(),
        range_end: c.range_end.clone(),
        no_put: c.filters.contains(&(FilterType::Noput as i32)),
        no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
        prev_kv: c.prev_kv,
    };
    let mut next = if c.start_revision > 0 { c.start_revision } else { cur + 1 };
    let send = |rev: i64, events: Vec<Event>| {
        let tx = tx.clone();
        let header = node.header(rev);
        async move { tx.send(Ok(WatchResponse { header: Some(header), watch_id: id, events, ..Default::default() })).await.is_ok() }
    };
    let cancel = |compact: i64| {
        let tx = tx.clone();
        let header = node.header_now();
        async move {
            let resp = WatchResponse {
                header: Some(header),
                watch_id: id,
                canceled: true,
                compact_revision: compact,
                cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
                ..Default::default()
            };
            let _ = tx.send(Ok(resp)).await;
        }
    };
    'outer: loop {
        // Unsynced: read history up to the current revision.
        loop {
            let cur = mvcc.current_rev();
            if next > cur {
                break;
            }
            match mvcc.history(next, cur, HISTORY_BATCH, true) {
                Ok(batches) => {
                    // As etcd does, history comes in one response per read, not per revision
                    // (transactions stay whole inside it).
                    let complete = batches.len() < HISTORY_BATCH;
                    let mut events = Vec::new();
                    let mut last = next - 1;
                    for (rev, evs) in batches {
                        events.extend(filter.apply(&evs));
                        last = rev;
                    }
                    if !events.is_empty() && !send(last, events).await {
                        break 'outer;
                    }
                    next = last + 1;
                    if complete {
                        next = next.max(cur + 1);
                    }
                    synced.store(next - 1, Ordering::Release);
                }
                Err(MvccError::Compacted) => {
                    cancel(mvcc.compact_rev()).await;
                    break 'outer;
                }
                Err(e) => {
                    tracing::error!(watch_id = id, "watch history read failed: {e}");
                    let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                    break 'outer;
                }
            }
        }
        synced.store(next - 1, Ordering::Release);
        // Synced: follow the hub.
        loop {
            let msg = if c.progress_notify {
                match tokio::time::timeout(interval, sub.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        let rev = synced.load(Ordering::Acquire);
                        let resp = WatchResponse { header: Some(node.header(rev)), watch_id: id, ..Default::default() };
                        if tx.send(Ok(resp)).await.is_err() {
                            break 'outer;
                        }
                        continue;
                    }
                }
            } else {
                sub.recv().await
            };
            match msg {
                Ok(p) if p.reset || p.rev > next => continue 'outer,
                Ok(p) if p.rev < next => {}
                Ok(p) => {
                    let events = filter.apply(&p.events);
                    if !events.is_empty() && !send(p.rev, events).await {
                        break 'outer;
                    }
                    next = p.rev + 1;
                    synced.store(p.rev, Ordering::Release);
                }
                Err(RecvError::Lagged(_)) => continue 'outer,
                Err(RecvError::Closed) => break 'outer,
            }
        }
    }
}
