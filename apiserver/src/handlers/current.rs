//! Where a read-modify-write starts. Kubernetes' GuaranteedUpdate begins from the watch
//! cache's copy of the object and reads the store only when a try fails: the write is a
//! compare-and-swap on the copy's resourceVersion, so a stale copy cannot be written over
//! newer data, it only costs one more try. Most updates (an agent's pod status, a lease
//! renewal, a binding) find the cache current and save the store read that used to precede
//! every write.

use std::time::{Duration, Instant};

use api::status::StatusError;
use serde_json::Value;

use super::{storage_error, Ctx};
use crate::storage::Stored;

/// How long an update keeps trying while other writers change the object under it (each
/// conflict means one of them succeeded). Kubernetes' GuaranteedUpdate tries until it
/// succeeds, within the request's timeout; a fixed count of tries made concurrent writers to
/// one object fail with 409 although none of them gave a resourceVersion.
const TRY_FOR: Duration = Duration::from_secs(30);

/// The state a try of an update starts from: the cache's copy first, then the store's.
pub struct Current {
    /// The next read may use the cache.
    cache_next: bool,
    /// The last read came from the cache.
    cached: bool,
    /// When the first try started; None before it.
    started: Option<Instant>,
}

impl Current {
    /// Starts an update of the request's object. A dry run reads the store: its answer is
    /// not checked by a write.
    pub fn new(ctx: &Ctx) -> Current {
        let cacheable = ctx.state.caches.get(ctx.req.resource).is_some()
            && !ctx.query.dry_run().unwrap_or(true);
        Current {
            cache_next: cacheable,
            cached: false,
            started: None,
        }
    }

    /// Whether to make a(nother) try: the first always, more while within [`TRY_FOR`].
    pub fn another_try(&mut self) -> bool {
        match self.started {
            None => {
                self.started = Some(Instant::now());
                true
            }
            Some(t) => t.elapsed() < TRY_FOR,
        }
    }

    /// The object to try the update on: the cache's copy on the first try when the cache
    /// holds the object, the store's otherwise. None: the store holds no such object (a
    /// cache without it proves nothing; it may not have seen the creation yet).
    pub async fn read(&mut self, ctx: &Ctx) -> Result<Option<Stored>, StatusError> {
        let key = ctx.key();
        if std::mem::take(&mut self.cache_next) {
            if let Some(copy) = ctx
                .state
                .caches
                .get(ctx.req.resource)
                .and_then(|cache| cache.get(&key))
                .and_then(|cached| from_cache(&key, cached.value()))
            {
                self.cached = true;
                return Ok(Some(copy));
            }
        }
        self.cached = false;
        ctx.state
            .storage
            .get(&key)
            .await
            .map_err(|e| storage_error(ctx, e))
    }

    /// True when the last copy came from the cache. Whatever made a try on it fail (a
    /// conflict, a refused precondition, validation against the old object) may be the
    /// copy's age, so the caller tries again from the store's copy instead of answering; and
    /// a no-op write on it is confirmed on the store's copy before it is answered.
    pub fn was_cached(&self) -> bool {
        self.cached
    }
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
