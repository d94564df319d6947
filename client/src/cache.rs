//! An informer's cache with secondary indexes, as client-go's Indexer: besides lookups by
//! namespace/name (kube-rs' reflector store), objects are found by the values index functions
//! give them, e.g. pods by `spec.nodeName` for the scheduler and agent, objects by owner uid
//! for the garbage collector.
//!
//! Indexes follow the same watch events as the store (a relist rebuilds them wholesale, as the
//! store does). A lookup re-checks each object against the index function, so it never returns
//! an object that no longer has the value, even in the instant between the store's update and
//! the index's.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use futures::{Future, TryStreamExt};
use kube::{
    runtime::{
        reflector::{self, ObjectRef},
        watcher, WatchStreamExt,
    },
    Api, Resource,
};
use serde::de::DeserializeOwned;

/// An index function: the values an object is indexed under (none: not indexed).
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

struct Indexes<K: Resource> {
    by_value: HashMap<(String, String), HashSet<ObjectRef<K>>>,
    values_of: HashMap<ObjectRef<K>, Vec<(String, String)>>,
}

impl<K: Resource> Default for Indexes<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn default() -> Self {
        Indexes {
            by_value: HashMap::new(),
            values_of: HashMap::new(),
        }
    }
}

impl<K: Resource> Indexes<K>
where
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    fn remove(&mut self, r: &ObjectRef<K>) {
        for key in self.values_of.remove(r).unwrap_or_default() {
            if let Some(set) = self.by_value.get_mut(&key) {
                set.remove(r);
                if set.is_empty() {
                    self.by_value.remove(&key);
                }
            }
        }
    }

    fn insert(&mut self, fns: &[(String, IndexFn<K>)], obj: &K) {
        let r = ObjectRef::from_obj(obj);
        self.remove(&r);
        let mut keys = Vec::new();
        for (name, f) in fns {
            for v in f(obj) {
                let key = (name.clone(), v);
                self.by_value
                    .entry(key.clone())
                    .or_default()
                    .insert(r.clone());
                keys.push(key);
            }
        }
        self.values_of.insert(r, keys);
    }
}

struct State<K: Resource> {
    fns: Vec<(String, IndexFn<K>)>,
    live: Indexes<K>,
    /// Built during a (re)list, swapped in when it completes.
    building: Option<Indexes<K>>,
}

/// A shared cache with indexes. Cheap to clone; every clone sees the same objects.
pub struct Indexed<K: Resource + 'static>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: reflector::Store<K>,
    state: Arc<RwLock<State<K>>>,
}

impl<K: Resource + 'static> Clone for Indexed<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn clone(&self) -> Self {
        Indexed {
            store: self.store.clone(),
            state: self.state.clone(),
        }
    }
}

impl<K> Indexed<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    /// The plain store: lookups by namespace/name, the whole state.
    pub fn store(&self) -> &reflector::Store<K> {
        &self.store
    }

    /// The objects indexed under `value` by the index `index`, in no particular order.
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Arc<K>> {
        let Ok(state) = self.state.read() else {
            return Vec::new();
        };
        let Some(f) = state
            .fns
            .iter()
            .find(|(n, _)| n == index)
            .map(|(_, f)| f.clone())
        else {
            return Vec::new();
        };
        let refs: Vec<ObjectRef<K>> = state
            .live
            .by_value
            .get(&(index.to_string(), value.to_string()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        drop(state);
        refs.iter()
            .filter_map(|r| self.store.get(r))
            .filter(|o| f(o).iter().any(|v| v == value))
            .collect()
    }

    /// The values of `index` that at least one object has.
    pub fn index_values(&self, index: &str) -> Vec<String> {
        let Ok(state) = self.state.read() else {
            return Vec::new();
        };
        let mut values: Vec<String> = state
            .live
            .by_value
            .keys()
            .filter(|(n, _)| n == index)
            .map(|(_, v)| v.clone())
            .collect();
        values.sort();
        values
    }

    fn apply(&self, event: &watcher::Event<K>) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        let State {
            fns,
            live,
            building,
        } = &mut *state;
        match event {
            watcher::Event::Apply(obj) => live.insert(fns, obj),
            watcher::Event::Delete(obj) => live.remove(&ObjectRef::from_obj(obj)),
            watcher::Event::Init => *building = Some(Indexes::default()),
            watcher::Event::InitApply(obj) => building
                .get_or_insert_with(Indexes::default)
                .insert(fns, obj),
            watcher::Event::InitDone => *live = building.take().unwrap_or_default(),
        }
    }
}

/// An informer whose cache has the given indexes (name, function). Run the future and read
/// the cache, as with [`crate::informer`].
pub fn indexed_informer<K>(
    api: Api<K>,
    config: watcher::Config,
    indexes: Vec<(String, IndexFn<K>)>,
) -> (Indexed<K>, impl Future<Output = ()> + Send)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let cache = Indexed {
        store: reader,
        state: Arc::new(RwLock::new(State {
            fns: indexes,
            live: Indexes::default(),
            building: None,
        })),
    };
    let indexer = cache.clone();
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| indexer.apply(event));
    (cache, crate::drive(stream))
}

/// Index of pods by the node they are bound to (`spec.nodeName`).
pub fn pods_by_node() -> (String, IndexFn<k8s_openapi::api::core::v1::Pod>) {
    (
        "nodeName".to_string(),
        Arc::new(|p: &k8s_openapi::api::core::v1::Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .into_iter()
                .collect()
        }),
    )
}

/// Index of objects by the uid of each owner (`metadata.ownerReferences[].uid`).
pub fn by_owner<K: Resource>() -> (String, IndexFn<K>) {
    (
        "owner".to_string(),
        Arc::new(|o: &K| {
            o.meta()
                .owner_references
                .iter()
                .flatten()
                .map(|r| r.uid.clone())
                .collect()
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, PodSpec};
    use kube::api::ObjectMeta;

    fn pod(name: &str, node: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn indexes_follow_events_and_relists() {
        let (reader, mut writer) = reflector::store::<Pod>();
        let cache = Indexed {
            store: reader,
            state: Arc::new(RwLock::new(State {
                fns: vec![pods_by_node()],
                live: Indexes::default(),
                building: None,
            })),
        };
        let mut feed = |e: watcher::Event<Pod>| {
            writer.apply_watcher_event(&e);
            cache.apply(&e);
        };
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(pod("a", Some("n1"))));
        feed(watcher::Event::InitApply(pod("b", Some("n1"))));
        feed(watcher::Event::InitApply(pod("c", None)));
        feed(watcher::Event::InitDone);
        let names = |v: Vec<Arc<Pod>>| {
            let mut n: Vec<String> = v.iter().filter_map(|p| p.metadata.name.clone()).collect();
            n.sort();
            n
        };
        assert_eq!(names(cache.by_index("nodeName", "n1")), ["a", "b"]);
        feed(watcher::Event::Apply(pod("c", Some("n2"))));
        feed(watcher::Event::Apply(pod("a", Some("n2"))));
        assert_eq!(names(cache.by_index("nodeName", "n1")), ["b"]);
        assert_eq!(names(cache.by_index("nodeName", "n2")), ["a", "c"]);
        feed(watcher::Event::Delete(pod("c", Some("n2"))));
        assert_eq!(names(cache.by_index("nodeName", "n2")), ["a"]);
        assert_eq!(cache.index_values("nodeName"), ["n1", "n2"]);
        // A relist replaces everything.
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(pod("z", Some("n3"))));
        feed(watcher::Event::InitDone);
        assert!(cache.by_index("nodeName", "n1").is_empty());
        assert_eq!(names(cache.by_index("nodeName", "n3")), ["z"]);
        assert!(cache.by_index("unknown", "n3").is_empty());
    }
}
