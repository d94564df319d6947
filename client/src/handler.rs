//! Informers that hand every watch event (initial list, changes, deletions, relists) to a
//! handler, for components that keep their own compact state rather than whole objects (the
//! scheduler's cache). Like [`crate::informer`], the watch resumes from the last
//! resourceVersion and relists on 410 Gone, with back-off after errors.

use futures::{Future, TryStreamExt};
use kube::{
    runtime::{watcher, WatchStreamExt},
    Api, Resource,
};
use serde::de::DeserializeOwned;

/// The future that watches `api` and calls `handler` with each event, in order. A relist
/// arrives as `Init`, one `InitApply` per object, then `InitDone`: objects not seen between
/// `Init` and `InitDone` are gone.
pub fn event_informer<K>(
    api: Api<K>,
    config: watcher::Config,
    handler: impl FnMut(watcher::Event<K>) + Send + 'static,
) -> impl Future<Output = ()> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let stream = watcher(api, config).default_backoff().map_ok(handler);
    crate::drive(stream)
}
