//! Expectations, as client-go's `ControllerExpectations` but keyed by pod name: after a
//! controller creates or deletes pods, it acts again only once its caches show those changes
//! (or after five minutes, in case an event was missed), so a lagging watch never makes it
//! create or delete twice.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant},
};

use client::controller::Key;

/// How long expectations may stay unmet before they are dropped.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// What the cache says about a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not in the cache.
    Absent,
    /// In the cache, not being deleted.
    Present,
    /// In the cache with a deletionTimestamp.
    Terminating,
}

#[derive(Debug)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Instant,
}

/// Pending creations and deletions per controller key.
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<Key, Pending>>,
}

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<Key, Pending>) -> R) -> R {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p)
    }

    /// True when every expected change shows in the cache (`seen` tells what it holds), or the
    /// expectations timed out. Met expectations are dropped.
    pub fn satisfied(&self, key: &Key, seen: impl Fn(&str) -> Seen) -> bool {
        self.with(|all| {
            let Some(p) = all.get_mut(key) else {
                return true;
            };
            p.creates.retain(|n| seen(n) == Seen::Absent);
            p.deletes.retain(|n| seen(n) == Seen::Present);
            if (p.creates.is_empty() && p.deletes.is_empty()) || p.since.elapsed() > TIMEOUT {
                all.remove(key);
                true
            } else {
                false
            }
        })
    }

    /// Records pods just created (by name).
    pub fn created(&self, key: &Key, names: impl IntoIterator<Item = String>) {
        self.with(|all| {
            let p = all.entry(key.clone()).or_insert_with(|| Pending {
                creates: HashSet::new(),
                deletes: HashSet::new(),
                since: Instant::now(),
            });
            p.creates.extend(names);
            p.since = Instant::now();
        })
    }

    /// Records pods just deleted (by name).
    pub fn deleted(&self, key: &Key, names: impl IntoIterator<Item = String>) {
        self.with(|all| {
            let p = all.entry(key.clone()).or_insert_with(|| Pending {
                creates: HashSet::new(),
                deletes: HashSet::new(),
                since: Instant::now(),
            });
            p.deletes.extend(names);
            p.since = Instant::now();
        })
    }

    /// A pod's deletion was observed: a creation expected for it will never show.
    pub fn observe_gone(&self, key: &Key, name: &str) {
        self.with(|all| {
            if let Some(p) = all.get_mut(key) {
                p.creates.remove(name);
                p.deletes.remove(name);
            }
        })
    }

    /// Drops everything pending for `key` (its object is gone).
    pub fn forget(&self, key: &Key) {
        self.with(|all| {
            all.remove(key);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn met_only_when_the_cache_shows_every_change() {
        let e = Expectations::default();
        let k = Key::new(Some("ns"), "rs");
        assert!(e.satisfied(&k, |_| Seen::Absent));
        e.created(&k, ["a".to_string(), "b".to_string()]);
        assert!(!e.satisfied(&k, |_| Seen::Absent));
        assert!(!e.satisfied(&k, |n| if n == "a" {
            Seen::Present
        } else {
            Seen::Absent
        }));
        // a stays met; b shows now.
        assert!(e.satisfied(&k, |n| if n == "b" {
            Seen::Present
        } else {
            Seen::Absent
        }));
        e.deleted(&k, ["c".to_string()]);
        assert!(!e.satisfied(&k, |_| Seen::Present));
        assert!(e.satisfied(&k, |_| Seen::Terminating));
        e.created(&k, ["d".to_string()]);
        e.observe_gone(&k, "d");
        assert!(e.satisfied(&k, |_| Seen::Absent));
    }
}
