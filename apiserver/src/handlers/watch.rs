//! watch: a chunked stream of `{"type": ..., "object": ...}` lines served from the watch cache,
//! with selector transitions (an object leaving the selection is DELETED for that watcher),
//! BOOKMARKs on request and 410 Gone for a resourceVersion older than the cache's window.

use std::{sync::Arc, time::Duration};

use api::status::StatusError;
use axum::{
    body::{Body, Bytes},
    http::{header, HeaderValue, StatusCode},
    response::Response,
};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{
    output::{Filter, Render},
    read::collection_prefix,
    Ctx,
};
use crate::cache::{CachedObject, Event, EventKind, Notice};

/// Default length of a watch without timeoutSeconds.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// GET ...?watch=true
pub async fn watch(ctx: &Ctx) -> Result<Response, StatusError> {
    let filter = Filter::from_query(ctx)?;
    let render = Render::from_ctx(ctx);
    let cache = ctx
        .state
        .caches
        .watch_cache(ctx.req.resource)
        .cloned()
        .ok_or_else(|| StatusError::internal("no watch cache for this resource"))?;
    let from = match ctx.query.get("resourceVersion") {
        None | Some("0") => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| StatusError::bad_request(format!("invalid resource version {v:?}")))?,
        ),
    };
    let timeout = ctx
        .query
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64))
        .unwrap_or(DEFAULT_TIMEOUT);
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let bookmark_every = Duration::from_secs(ctx.state.config.bookmark_interval.max(1));
    // Only a name restriction via fieldSelector metadata.name narrows the key prefix further.
    let prefix = collection_prefix(ctx);
    if !cache.wait_for(1, Duration::from_secs(5)).await {
        return Err(StatusError::unavailable(
            "the watch cache is not ready yet; try again",
        ));
    }
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let metrics_resource = ctx.req.resource.plural;
    let state = ctx.state.clone();
    let kind = ctx.req.resource.kind;
    let api_version = ctx.req.resource.api_version();
    let table_ctx = TableCtx {
        render,
        resource: ctx.req.resource,
    };
    // A watch of one node's pods (every agent's) is fed only that node's events.
    let indexed = cache.indexed_field().and_then(|f| filter.single_value(f));
    // A cache without objects (events) cannot give the current objects: list them from the
    // store, then follow the cache's window from that list's revision.
    let (from, listed) = match from {
        None if !cache.keeps_objects() => {
            let (objects, revision) =
                crate::cache::list_cached(&ctx.state.storage, &prefix, ctx.req.resource.kind)
                    .await
                    .map_err(|e| super::storage_error(ctx, e))?;
            let objects = objects.into_iter().map(|(_, o)| o).collect();
            if !cache.wait_for(revision, Duration::from_secs(5)).await {
                return Err(StatusError::timeout(format!(
                    "Too large resource version: {revision}, current: {}",
                    cache.revision()
                )));
            }
            (Some(revision), Some(objects))
        }
        from => (from, None),
    };
    let sub = cache.subscribe(&prefix, from, indexed).ok().map(|mut sub| {
        if let Some(objects) = listed {
            sub.initial = objects;
        }
        sub
    });
    let gone = match (&sub, from) {
        (None, Some(rv)) => Some(StatusError::gone(format!(
            "too old resource version: {rv} ({})",
            cache.revision()
        ))),
        _ => None,
    };
    tokio::spawn(async move {
        state
            .metrics
            .watchers
            .with_label_values(&[metrics_resource])
            .inc();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let send = |v: Value| tx.send(line(&v));
        'run: {
            if let Some(err) = gone {
                let _ = send(json!({"type": "ERROR", "object": err.to_status()})).await;
                break 'run;
            }
            let Some(mut sub) = sub else { break 'run };
            let mut last_rv = from.unwrap_or(sub.revision);
            for obj in sub.initial.drain(..) {
                if filter.matches_cached(&obj)
                    && tx
                        .send(table_ctx.line(EventKind::Added, &obj))
                        .await
                        .is_err()
                {
                    break 'run;
                }
            }
            for ev in sub.backlog.drain(..) {
                last_rv = ev.revision;
                if let Some(l) = translate(&ev, &filter, &table_ctx) {
                    if tx.send(l).await.is_err() {
                        break 'run;
                    }
                }
            }
            let mut ticker = tokio::time::interval(bookmark_every);
            ticker.tick().await;
            let mut progress_rv = last_rv;
            loop {
                tokio::select! {
                    _ = &mut deadline => break 'run,
                    _ = tx.closed() => break 'run,
                    _ = ticker.tick(), if bookmarks => {
                        // Every notice read: the bookmark may carry the cache's revision (an
                        // agent's watch of its node's pods then resumes from a recent one).
                        if let Some(r) = sub.live.caught_up(&cache) {
                            progress_rv = progress_rv.max(r);
                        }
                        let rv = progress_rv.max(last_rv);
                        let bm = json!({"type": "BOOKMARK", "object": {"kind": kind,
                            "apiVersion": api_version,
                            "metadata": {"resourceVersion": rv.to_string()}}});
                        if send(bm).await.is_err() { break 'run; }
                    }
                    notice = sub.live.recv() => match notice {
                        Some(Notice::Event(ev)) => {
                            // Gone from the window: this watcher fell further behind than it.
                            let Some(ev) = ev.upgrade() else {
                                state
                                    .metrics
                                    .terminated_watchers
                                    .with_label_values(&[metrics_resource])
                                    .inc();
                                break 'run;
                            };
                            if ev.revision <= last_rv || !ev.key.starts_with(&prefix) {
                                continue;
                            }
                            last_rv = ev.revision;
                            if let Some(l) = translate(&ev, &filter, &table_ctx) {
                                state
                                    .metrics
                                    .watch_events
                                    .with_label_values(&[metrics_resource])
                                    .inc();
                                if tx.send(l).await.is_err() { break 'run; }
                            }
                        }
                        Some(Notice::Progress(rv)) => progress_rv = rv,
                        // Too slow, or the cache restarted: end; the client resumes from its
                        // last resourceVersion or relists.
                        None => break 'run,
                    }
                }
            }
        }
        state
            .metrics
            .watchers
            .with_label_values(&[metrics_resource])
            .dec();
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

/// How watch objects are rendered (plain, or one-row Tables for kubectl get -w).
struct TableCtx {
    render: Render,
    resource: &'static api::registry::Resource,
}

impl TableCtx {
    /// The watch line announcing `obj` as `kind`: plain lines are the cache's own buffers
    /// (shared by every watcher when the kind is the event's); tables are rendered per watcher.
    fn line(&self, kind: EventKind, obj: &CachedObject) -> Bytes {
        match &self.render {
            Render::Plain => obj.line(kind),
            Render::Table(include) => {
                let obj = obj.value();
                let mut t = api::table::table(
                    self.resource,
                    std::slice::from_ref(&obj),
                    *include,
                    jiff::Timestamp::now(),
                );
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(json!(""));
                t["metadata"] = json!({ "resourceVersion": rv });
                line(&json!({"type": kind.name(), "object": t}))
            }
        }
    }
}

/// The event one watcher sees: selector transitions turn MODIFIED into ADDED or DELETED (an
/// object leaving the selection is shown as it is now, with the new resourceVersion). Plain
/// lines are shared by all watchers; tables are rendered per watcher.
fn translate(ev: &Arc<Event>, filter: &Filter, t: &TableCtx) -> Option<Bytes> {
    let now = filter.matches_cached(&ev.object);
    let before = ev.prev.as_ref().is_some_and(|p| filter.matches_cached(p));
    let kind = match ev.kind {
        EventKind::Added if now => EventKind::Added,
        EventKind::Modified if now && before => EventKind::Modified,
        EventKind::Modified if now => EventKind::Added,
        EventKind::Modified if before => EventKind::Deleted,
        EventKind::Deleted if now || before => EventKind::Deleted,
        _ => return None,
    };
    Some(t.line(kind, &ev.object))
}

fn line(v: &Value) -> Bytes {
    let mut l = serde_json::to_vec(v).unwrap_or_default();
    l.push(b'\n');
    Bytes::from(l)
}
