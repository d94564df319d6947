//! Where a read-modify-write starts. Kubernetes' GuaranteedUpdate begins from the watch
//! cache's copy of the object and reads the store only when a try fails: the write is a
//! compare-and-swap on the copy's resourceVersion, so a stale copy cannot be written over
//! newer data, it only costs one more try. Most updates (an agent's pod status, a lease
//! renewal, a binding) find the cache current and save the store read that used to precede
//! every write.

use std::future::Future;
use std::time::{Duration, Instant};

use api::status::StatusError;
use serde_json::Value;

use super::{storage_error, Ctx};
use crate::storage::{StorageError, Stored};

/// How long an update keeps trying while other writers change the object under it (each
/// conflict means one of them succeeded). Kubernetes' GuaranteedUpdate tries until it
/// succeeds, within the request's timeout; a fixed count of tries made concurrent writers to
/// one object fail with 409 although none of them gave a resourceVersion.
const TRY_FOR: Duration = Duration::from_secs(30);

/// Kubernetes' GuaranteedUpdate: runs `attempt` on the request's object until it has written
/// it, and answers what it wrote; None when the store holds no such object. `attempt` gets
/// the object and whether it is the watch cache's copy (which may be behind the store).
/// The first try takes the cache's copy; any failure on that copy (a conflict, a refused
/// precondition, validation against the old object) may be the copy's age, so it is tried
/// again from the store's copy instead of being answered. A conflict (or an allocation taken
/// concurrently) on the store's copy means another writer won: try again, for up to
/// [`TRY_FOR`]. Where a conflict is the answer (the client's resourceVersion), `attempt`
/// answers it as a `StatusError` itself.
pub async fn guaranteed_update<T, F, Fut>(
    ctx: &Ctx,
    mut attempt: F,
) -> Result<Option<T>, StatusError>
where
    F: FnMut(Stored, bool) -> Fut,
    Fut: Future<Output = Result<Result<T, StorageError>, StatusError>>,
{
    let started = Instant::now();
    // A dry run reads the store: its answer is not checked by a write.
    let mut cache_first =
        ctx.state.caches.get(ctx.req.resource).is_some() && !ctx.query.dry_run().unwrap_or(true);
    loop {
        let cached_copy = if std::mem::take(&mut cache_first) {
            cached(ctx)
        } else {
            None
        };
        let cached = cached_copy.is_some();
        let current = match cached_copy {
            Some(copy) => copy,
            None => match ctx
                .state
                .storage
                .get(&ctx.key())
                .await
                .map_err(|e| storage_error(ctx, e))?
            {
                Some(stored) => stored,
                // A cache without the object proves nothing (it may not have seen the
                // creation yet); only the store's answer does.
                None => return Ok(None),
            },
        };
        match attempt(current, cached).await {
            Ok(Ok(written)) => return Ok(Some(written)),
            _ if cached => {}
            Err(e) => return Err(e),
            Ok(Err(StorageError::Conflict | StorageError::Reserved(_))) => {}
            Ok(Err(e)) => return Err(storage_error(ctx, e)),
        }
        if started.elapsed() >= TRY_FOR {
            return Err(ctx.conflict());
        }
    }
}

/// The watch cache's copy of the request's object, if the cache keeps objects and has it.
fn cached(ctx: &Ctx) -> Option<Stored> {
    let key = ctx.key();
    let copy = ctx.state.caches.get(ctx.req.resource)?.get(&key)?;
    from_cache(&key, copy.value())
}

/// A cached object as the store would return it, its resourceVersion being the revision the
/// compare-and-swap checks.
fn from_cache(key: &str, object: Value) -> Option<Stored> {
    let mod_revision = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())?;
    Some(Stored {
        key: key.to_string(),
        object,
        mod_revision,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::from_cache;

    #[test]
    fn a_cached_copy_carries_its_resource_version_as_the_revision_to_compare() {
        let copy = from_cache(
            "/registry/pods/default/p",
            json!({"metadata": {"name": "p", "resourceVersion": "42"}}),
        )
        .expect("a copy");
        assert_eq!(copy.mod_revision, 42);
        assert_eq!(copy.key, "/registry/pods/default/p");
        assert!(from_cache("k", json!({"metadata": {"name": "p"}})).is_none());
        assert!(from_cache("k", json!({"metadata": {"resourceVersion": "x"}})).is_none());
    }
}
