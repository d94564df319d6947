//! The scheduling queue, as kube-scheduler's: pods wait in one of three places.
//!
//! - *active*: ready to be tried, highest `spec.priority` first, then first come;
//! - *back-off*: tried and failed recently; each goes back to active when its back-off (1 s
//!   doubling per attempt up to 10 s) has passed;
//! - *unschedulable*: no node fitted; it stays until a cluster event that one of the plugins
//!   that rejected it cares about happens (then back-off or active), or 5 minutes pass.
//!
//! A pod being tried is *in flight*; if an event arrives meanwhile and the attempt then fails,
//! the pod goes to back-off rather than unschedulable, so the event is not lost.

use std::{
    cmp::Reverse,
    collections::{BTreeSet, BinaryHeap, HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;

use crate::{framework::ClusterEvent, nodeinfo::pod_key};

/// First back-off.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest stay among the unschedulable pods without an event.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// A pod taken from the queue.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    pub key: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When the queue first saw the pod (for the end-to-end latency).
    pub first_seen: Instant,
    /// The scheduling cycle of this attempt.
    pub cycle: u64,
}

/// Back-off after `attempts` failed attempts.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

#[derive(Debug)]
enum Place {
    Active,
    Backoff,
    Unschedulable {
        since: Instant,
        plugins: BTreeSet<&'static str>,
    },
    InFlight,
}

struct Slot {
    qp: QueuedPod,
    place: Place,
    /// Matches the heap entry that is current for this pod.
    seq: u64,
    last_attempt: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_seq: u64,
    cycle: u64,
    move_request_cycle: u64,
}

/// Sizes of the three places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
}

/// The queue. Shared between the informers (producers) and the scheduling loop (the one
/// consumer).
pub struct Queue {
    inner: Mutex<Inner>,
    notify: Notify,
    /// Plugin name → events it cares about.
    interest: HashMap<&'static str, Vec<ClusterEvent>>,
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

impl Inner {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn move_to_active(&mut self, key: &str) {
        let seq = self.seq();
        if let Some(slot) = self.slots.get_mut(key) {
            slot.place = Place::Active;
            slot.seq = seq;
            self.active
                .push((priority(&slot.qp.pod), Reverse(seq), key.to_string()));
        }
    }

    /// Back-off if it has not expired yet, else active. Returns whether it went to active.
    fn move_to_backoff_or_active(&mut self, key: &str, now: Instant) -> bool {
        let seq = self.seq();
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let until = slot.last_attempt.map(|t| t + backoff(slot.qp.attempts));
        match until {
            Some(until) if until > now => {
                slot.place = Place::Backoff;
                slot.seq = seq;
                self.backoff.push(Reverse((until, seq, key.to_string())));
                false
            }
            _ => {
                self.move_to_active(key);
                true
            }
        }
    }
}

impl Queue {
    /// A queue; `interest` maps each plugin to the events that may make a pod it rejected
    /// schedulable.
    pub fn new(interest: HashMap<&'static str, Vec<ClusterEvent>>) -> Queue {
        Queue {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            interest,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a pending pod, or updates the one queued. An unschedulable pod whose spec or labels
    /// changed is tried again.
    pub fn add(&self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.get_mut(&key) {
            let changed =
                slot.qp.pod.spec != pod.spec || slot.qp.pod.metadata.labels != pod.metadata.labels;
            slot.qp.pod = pod;
            if changed
                && matches!(slot.place, Place::Unschedulable { .. })
                && inner.move_to_backoff_or_active(&key, Instant::now())
            {
                self.notify.notify_one();
            }
            return;
        }
        let qp = QueuedPod {
            pod,
            key: key.clone(),
            attempts: 0,
            first_seen: Instant::now(),
            cycle: 0,
        };
        inner.slots.insert(
            key.clone(),
            Slot {
                qp,
                place: Place::Active,
                seq: 0,
                last_attempt: None,
            },
        );
        inner.move_to_active(&key);
        drop(inner);
        self.notify.notify_one();
    }

    /// Forgets a pod (deleted, bound, or no longer ours).
    pub fn delete(&self, key: &str) {
        self.lock().slots.remove(key);
    }

    /// Whether the queue holds the pod (in any place, or in flight).
    pub fn contains(&self, key: &str) -> bool {
        self.lock().slots.contains_key(key)
    }

    /// Keeps only the pods whose keys are in `keep` (after a relist).
    pub fn retain(&self, keep: &HashSet<String>) {
        self.lock().slots.retain(|k, _| keep.contains(k));
    }

    /// The next pod to try (waits for one), marked in flight.
    pub async fn pop(&self) -> QueuedPod {
        loop {
            if let Some(qp) = self.try_pop() {
                return qp;
            }
            self.notify.notified().await;
        }
    }

    /// The next active pod, if any.
    pub fn try_pop(&self) -> Option<QueuedPod> {
        let mut inner = self.lock();
        while let Some((_, Reverse(seq), key)) = inner.active.pop() {
            inner.cycle += 1;
            let cycle = inner.cycle;
            let Some(slot) = inner.slots.get_mut(&key) else {
                continue;
            };
            if slot.seq != seq || !matches!(slot.place, Place::Active) {
                continue;
            }
            slot.place = Place::InFlight;
            slot.qp.attempts += 1;
            slot.qp.cycle = cycle;
            return Some(slot.qp.clone());
        }
        None
    }

    /// The pod was placed (assumed): it leaves the queue.
    pub fn done(&self, key: &str) {
        self.delete(key);
    }

    /// No node fitted in the attempt of `cycle`; `plugins` rejected it.
    pub fn unschedulable(&self, key: &str, plugins: BTreeSet<&'static str>, cycle: u64) {
        let now = Instant::now();
        let mut inner = self.lock();
        let moved_meanwhile = inner.move_request_cycle >= cycle;
        let Some(slot) = inner.slots.get_mut(key) else {
            return;
        };
        slot.last_attempt = Some(now);
        if moved_meanwhile {
            inner.move_to_backoff_or_active(key, now);
        } else {
            slot.place = Place::Unschedulable {
                since: now,
                plugins,
            };
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// The attempt failed for another reason (plugin error): back-off.
    pub fn error(&self, key: &str) {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.get_mut(key) {
            slot.last_attempt = Some(now);
            inner.move_to_backoff_or_active(key, now);
        }
    }

    /// Puts back a pod whose binding failed, to be retried after its back-off.
    pub fn requeue(&self, qp: QueuedPod) {
        let now = Instant::now();
        let mut inner = self.lock();
        let key = qp.key.clone();
        inner.slots.insert(
            key.clone(),
            Slot {
                qp,
                place: Place::Backoff,
                seq: 0,
                last_attempt: Some(now),
            },
        );
        inner.move_to_backoff_or_active(&key, now);
        drop(inner);
        self.notify.notify_one();
    }

    /// A cluster event: unschedulable pods rejected by a plugin interested in it are retried.
    pub fn on_event(&self, event: ClusterEvent) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.move_request_cycle = inner.cycle;
        let keys: Vec<String> = inner
            .slots
            .iter()
            .filter(|(_, s)| match &s.place {
                Place::Unschedulable { plugins, .. } => {
                    plugins.is_empty()
                        || plugins
                            .iter()
                            .any(|p| self.interest.get(p).is_some_and(|evs| evs.contains(&event)))
                }
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut woke = false;
        for k in keys {
            woke |= inner.move_to_backoff_or_active(&k, now);
        }
        drop(inner);
        if woke {
            self.notify.notify_one();
        }
    }

    /// Moves pods whose back-off has passed to active, and pods unschedulable for too long to
    /// back-off or active. Call periodically.
    pub fn flush(&self) {
        self.flush_at(Instant::now());
    }

    /// [`Queue::flush`] as of `now`.
    pub fn flush_at(&self, now: Instant) {
        let mut inner = self.lock();
        let mut woke = false;
        while let Some(Reverse((until, seq, key))) = inner.backoff.peek().cloned() {
            if until > now {
                break;
            }
            inner.backoff.pop();
            let current = inner
                .slots
                .get(&key)
                .is_some_and(|s| s.seq == seq && matches!(s.place, Place::Backoff));
            if current {
                inner.move_to_active(&key);
                woke = true;
            }
        }
        let stale: Vec<String> = inner
            .slots
            .iter()
            .filter(|(_, s)| {
                matches!(&s.place, Place::Unschedulable { since, .. } if now.duration_since(*since) >= MAX_UNSCHEDULABLE)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            woke |= inner.move_to_backoff_or_active(&k, now);
        }
        drop(inner);
        if woke {
            self.notify.notify_one();
        }
    }

    /// How many pods are in each place.
    pub fn sizes(&self) -> Sizes {
        let inner = self.lock();
        let mut s = Sizes::default();
        for slot in inner.slots.values() {
            match slot.place {
                Place::Active => s.active += 1,
                Place::Backoff => s.backoff += 1,
                Place::Unschedulable { .. } => s.unschedulable += 1,
                Place::InFlight => {}
            }
        }
        s
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
