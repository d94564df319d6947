//! get and list: single objects read linearizably from the store, or with a resourceVersion
//! (`0`: any) from the watch cache; lists read from the store page by page (limit/continue)
//! or, with `resourceVersion=0`, from the watch cache.

use api::status::StatusError;
use axum::http::StatusCode;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::cache::CachedObject;

use super::{
    output::{Filter, Render},
    storage_error, Ctx, Json,
};

/// get (also of the status subresource, which shows the whole object).
pub async fn get(ctx: &Ctx) -> Result<Json, StatusError> {
    // With a resourceVersion, a state at least that recent will do (0: any), as Kubernetes
    // serves it: from the watch cache once it has caught up, without a store read. Agents
    // read their Node so every few seconds.
    if let Some(rv) = ctx.query.get("resourceVersion") {
        if let Some(cache) = cache_at_least(ctx, rv).await? {
            let cached = cache.get(&ctx.key()).ok_or_else(|| ctx.not_found())?;
            return Ok(Render::from_ctx(ctx).object(ctx, StatusCode::OK, cached.value()));
        }
    }
    let stored = ctx
        .state
        .storage
        .get(&ctx.key())
        .await
        .map_err(|e| storage_error(ctx, e))?
        .ok_or_else(|| ctx.not_found())?;
    Ok(Render::from_ctx(ctx).object(ctx, StatusCode::OK, stored.object))
}

/// The watch cache of the request's resource once it has reached the resourceVersion `rv`
/// (`0`: any), for a read that a state at least that recent satisfies; None when the
/// resource keeps no objects in its cache. A cache that does not get there within 3 s is a
/// 504 Timeout, as Kubernetes answers "Too large resource version".
async fn cache_at_least<'a>(
    ctx: &'a Ctx,
    rv: &str,
) -> Result<Option<&'a Arc<crate::cache::WatchCache>>, StatusError> {
    let min: i64 = rv
        .parse()
        .map_err(|_| StatusError::bad_request(format!("invalid resource version {rv:?}")))?;
    let Some(cache) = ctx.state.caches.get(ctx.req.resource) else {
        return Ok(None);
    };
    if !cache
        .wait_for(min.max(1), std::time::Duration::from_secs(3))
        .await
    {
        return Err(StatusError::timeout(format!(
            "Too large resource version: {min}, current: {}",
            cache.revision()
        )));
    }
    Ok(Some(cache))
}

/// The continue token: where the next page starts and the revision the list is read at.
#[derive(Serialize, Deserialize)]
pub(crate) struct Continue {
    pub rv: i64,
    pub start: String,
}

fn encode_continue(rv: i64, last_key: &str) -> String {
    let json = serde_json::to_vec(&Continue {
        rv,
        start: last_key.to_string(),
    })
    .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

pub(crate) fn decode_continue(token: &str, prefix: &str) -> Result<Continue, StatusError> {
    let bad = || {
        StatusError::bad_request(format!(
            "invalid continue token {token:?}: start a new list without the continue parameter"
        ))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let c: Continue = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if !c.start.starts_with(prefix) || c.rv <= 0 {
        return Err(bad());
    }
    Ok(c)
}

const EXPIRED_CONTINUE: &str =
    "The provided continue parameter is too old to display a consistent \
    list result. You can start a new list without the continue parameter, or use the continue \
    token in this response to retrieve the remainder of the results. Continuing with the provided \
    token results in an inconsistent list - objects that were created, modified, or deleted \
    between the time the first chunk was returned and now may show up in the list.";

/// The storage prefix a collection request covers (one namespace or all).
pub fn collection_prefix(ctx: &Ctx) -> String {
    match ctx.namespace() {
        Some(ns) if ctx.req.resource.namespaced => ctx.req.resource.namespace_prefix(ns),
        _ => ctx.req.resource.key_prefix(),
    }
}

/// list.
pub async fn list(ctx: &Ctx) -> Result<axum::response::Response, StatusError> {
    use axum::response::IntoResponse;
    let filter = Filter::from_query(ctx)?;
    let render = Render::from_ctx(ctx);
    let prefix = collection_prefix(ctx);
    let limit = ctx.query.int("limit")?.filter(|l| *l > 0);
    let rv = ctx.query.get("resourceVersion");
    let cont = ctx.query.get("continue");
    let exact = ctx.query.get("resourceVersionMatch") == Some("Exact");
    if let Some(m) = ctx.query.get("resourceVersionMatch") {
        if !matches!(m, "Exact" | "NotOlderThan") {
            return Err(StatusError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: \
                {m:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
        if rv.is_none() {
            return Err(StatusError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
    }
    if cont.is_some() && rv.is_some_and(|v| v != "0") {
        return Err(StatusError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    // resourceVersion=0 (and NotOlderThan a version the cache has): any recent state will do.
    if let (None, false, Some(rv)) = (cont, exact, rv) {
        if let Some(cache) = cache_at_least(ctx, rv).await? {
            let indexed = cache.indexed_field().and_then(|f| filter.single_value(f));
            let (items, crv) = cache.snapshot(&prefix, indexed);
            let items = items
                .into_iter()
                .filter(|o| filter.matches_cached(o))
                .collect();
            return Ok(render.list_shared(ctx, items, crv, None, None));
        }
    }
    // A consistent first page (no resourceVersion): the cache once it has caught up with the
    // store's current revision, as Kubernetes' consistent reads from cache.
    if cont.is_none() && rv.is_none() {
        if let Some(page) = consistent_from_cache(ctx, &filter, &prefix, limit).await? {
            let (items, revision, next, remaining) = page;
            return Ok(render.list_shared(ctx, items, revision, next, remaining));
        }
    }
    // A continuation of a list the cache served, when nothing changed since: serve it from the
    // cache too (the same state as the store holds at the token's revision).
    if let Some(token) = cont {
        let c = decode_continue(token, &prefix)?;
        if let Some(cache) = ctx.state.caches.get(ctx.req.resource) {
            if cache.revision() == c.rv {
                let indexed = cache.indexed_field().and_then(|f| filter.single_value(f));
                let (all, revision) = cache.snapshot_keyed(&prefix, indexed);
                if revision == c.rv {
                    let after: Vec<(String, Arc<CachedObject>)> = all
                        .into_iter()
                        .filter(|(k, _)| k.as_str() > c.start.as_str())
                        .collect();
                    let (items, next, remaining) = page_of(&after, &filter, limit, revision);
                    return Ok(render.list_shared(ctx, items, revision, next, remaining));
                }
            }
        }
    }
    let (mut start, mut revision) = match cont {
        Some(token) => {
            let c = decode_continue(token, &prefix)?;
            (Some(c.start), c.rv)
        }
        None if exact => {
            let v: i64 = rv.unwrap_or("").parse().map_err(|_| {
                StatusError::bad_request(format!("invalid resource version {:?}", rv.unwrap_or("")))
            })?;
            (None, v)
        }
        None => (None, 0),
    };
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    let mut remaining = None;
    // Page through the store until `limit` objects matched (selectors filter after reading).
    // Each range asks for one key more than it needs, to learn whether more follow.
    loop {
        let want = limit.map(|l| (l - items.len() as i64).max(1));
        let batch = match (want, filter.is_everything()) {
            (Some(w), true) => w + 1,
            (Some(w), false) => w.max(500) + 1,
            (None, _) => 0,
        };
        let page = match ctx
            .state
            .storage
            .list(&prefix, start.as_deref(), batch, revision)
            .await
        {
            Ok(p) => p,
            Err(crate::storage::StorageError::Compacted(rv)) => {
                return Err(if cont.is_some() {
                    StatusError::gone(EXPIRED_CONTINUE)
                } else {
                    StatusError::gone(format!("too old resource version: {rv}"))
                })
            }
            Err(e) => return Err(storage_error(ctx, e)),
        };
        if revision == 0 {
            revision = page.revision;
        }
        let len = page.items.len();
        let mut last_key = None;
        let mut filled_at = None;
        for (i, s) in page.items.into_iter().enumerate() {
            if limit.is_some_and(|l| items.len() as i64 >= l) {
                filled_at = Some(i);
                break;
            }
            last_key = Some(s.key.clone());
            if filter.matches(&s.object) {
                items.push(s.object);
            }
        }
        let filled = filled_at.is_some() || limit.is_some_and(|l| items.len() as i64 >= l);
        if filled {
            let unread = filled_at.map(|i| len - i).unwrap_or(0) as i64;
            if unread > 0 || page.more {
                next = Some(encode_continue(
                    revision,
                    last_key.as_deref().unwrap_or_default(),
                ));
                if filter.is_everything() {
                    remaining = Some(unread + page.remaining);
                }
            }
            break;
        }
        if !page.more {
            break;
        }
        start = last_key;
    }
    Ok(render
        .list(ctx, items, revision, next, remaining)
        .into_response())
}

/// One page of cached objects (in key order): the items, the continue token, the count left.
pub(crate) fn page_of(
    all: &[(String, Arc<CachedObject>)],
    filter: &Filter,
    limit: Option<i64>,
    revision: i64,
) -> (Vec<Arc<CachedObject>>, Option<String>, Option<i64>) {
    let mut items = Vec::new();
    let mut next = None;
    let mut remaining = None;
    let mut last_key: Option<&str> = None;
    for (i, (key, obj)) in all.iter().enumerate() {
        if !filter.matches_cached(obj) {
            continue;
        }
        if limit.is_some_and(|l| items.len() as i64 >= l) {
            // Something matching follows: the token continues after the last item sent.
            next = Some(encode_continue(revision, last_key.unwrap_or_default()));
            if filter.is_everything() {
                remaining = Some((all.len() - i) as i64);
            }
            break;
        }
        last_key = Some(key);
        items.push(obj.clone());
    }
    (items, next, remaining)
}

type CachePage = (Vec<Arc<CachedObject>>, i64, Option<String>, Option<i64>);

/// Serves a list from the watch cache after it has seen the store's current revision; None
/// when the cache cannot catch up quickly (the caller then reads the store).
async fn consistent_from_cache(
    ctx: &Ctx,
    filter: &Filter,
    prefix: &str,
    limit: Option<i64>,
) -> Result<Option<CachePage>, StatusError> {
    let Some(cache) = ctx.state.caches.get(ctx.req.resource) else {
        return Ok(None);
    };
    let current = ctx
        .state
        .storage
        .current_revision()
        .await
        .map_err(|e| storage_error(ctx, e))?;
    if !cache
        .wait_for(current, std::time::Duration::from_secs(1))
        .await
    {
        return Ok(None);
    }
    // A node's pods (every agent's list) come from the index instead of a scan of all pods.
    let indexed = cache.indexed_field().and_then(|f| filter.single_value(f));
    let (all, revision) = cache.snapshot_keyed(prefix, indexed);
    let (items, next, remaining) = page_of(&all, filter, limit, revision);
    Ok(Some((items, revision, next, remaining)))
}
