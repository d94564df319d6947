//! A rate-limited, de-duplicating work queue, as client-go's `workqueue`: a key added while it
//! waits is queued once; a key added while a worker processes it is queued again only when that
//! worker is done, so one key is never processed by two workers at once. Failed keys come back
//! after a per-key exponential back-off (5 ms doubling to 1000 s) that is also held to an
//! overall token bucket (10 per second, bursts of 100), the larger delay winning, exactly as
//! client-go's default controller rate limiter. A key added after a delay waits once, as in
//! client-go's delaying queue: another delayed add of the same key only ever brings its time
//! forward, so a controller that asks to look at a key again after each reconcile keeps one
//! timer for it, not one more per reconcile.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use crate::throttle::TokenBucket;

/// Per-key exponential back-off plus an overall token bucket.
#[derive(Debug)]
pub struct RateLimiter<T> {
    base: Duration,
    max: Duration,
    failures: HashMap<T, u32>,
    bucket: TokenBucket,
}

impl<T: Eq + Hash + Clone> RateLimiter<T> {
    /// client-go's `DefaultControllerRateLimiter`: 5 ms .. 1000 s per key, 10 qps burst 100.
    pub fn new() -> Self {
        Self::with(
            Duration::from_millis(5),
            Duration::from_secs(1000),
            10.0,
            100,
        )
    }

    /// A limiter with the given back-off bounds and bucket (rate per second, burst).
    pub fn with(base: Duration, max: Duration, qps: f64, burst: u32) -> Self {
        RateLimiter {
            base,
            max,
            failures: HashMap::new(),
            bucket: TokenBucket::new(qps, burst),
        }
    }

    /// How long `key` must wait before its next try, counting this failure.
    pub fn when(&mut self, key: &T, now: Instant) -> Duration {
        let n = self.failures.entry(key.clone()).or_insert(0);
        let exp = *n;
        *n += 1;
        let backoff = self
            .base
            .checked_mul(2u32.saturating_pow(exp.min(31)))
            .unwrap_or(self.max)
            .min(self.max);
        backoff.max(self.bucket.reserve(now))
    }

    /// The number of failures recorded for `key`.
    pub fn retries(&self, key: &T) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }

    /// Forgets `key`'s failures (after a success).
    pub fn forget(&mut self, key: &T) {
        self.failures.remove(key);
    }
}

impl<T: Eq + Hash + Clone> Default for RateLimiter<T> {
    fn default() -> Self {
        Self::new()
    }
}

struct State<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    /// Keys added after a delay, and when they are due.
    waiting: HashMap<T, Instant>,
    limiter: RateLimiter<T>,
    shut_down: bool,
}

/// The queue. Cheap to clone; all clones share one queue.
pub struct WorkQueue<T> {
    state: Arc<Mutex<State<T>>>,
    notify: Arc<Notify>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue {
            state: self.state.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl<T: Eq + Hash + Clone + Send + 'static> WorkQueue<T> {
    /// An empty queue with client-go's default rate limiter.
    pub fn new() -> Self {
        Self::with_limiter(RateLimiter::new())
    }

    /// An empty queue with the given rate limiter.
    pub fn with_limiter(limiter: RateLimiter<T>) -> Self {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                waiting: HashMap::new(),
                limiter,
                shut_down: false,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves the plain collections consistent enough.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` unless it is already waiting; a key being processed is queued again when
    /// its worker calls [`WorkQueue::done`].
    pub fn add(&self, key: T) {
        let mut s = self.lock();
        if s.shut_down || !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`; if it already waits to be queued sooner, nothing changes.
    pub fn add_after(&self, key: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let due = Instant::now() + delay;
        {
            let mut s = self.lock();
            if s.shut_down || s.waiting.get(&key).is_some_and(|&d| d <= due) {
                return;
            }
            s.waiting.insert(key.clone(), due);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            // Only the timer of the key's current due time queues it: one set for a later time
            // was replaced by an earlier one, which has already queued the key.
            let mut s = q.lock();
            if s.waiting.get(&key) == Some(&due) {
                s.waiting.remove(&key);
                drop(s);
                q.add(key);
            }
        });
    }

    /// Queues `key` after its rate-limited back-off (a failure is counted).
    pub fn add_rate_limited(&self, key: T) {
        let delay = self.lock().limiter.when(&key, Instant::now());
        self.add_after(key, delay);
    }

    /// Resets `key`'s back-off (after it was processed successfully).
    pub fn forget(&self, key: &T) {
        self.lock().limiter.forget(key);
    }

    /// How many times `key` was re-queued after a failure since its last success.
    pub fn retries(&self, key: &T) -> u32 {
        self.lock().limiter.retries(key)
    }

    /// The next key to process, waiting for one; None once the queue is shut down and empty.
    /// Call [`WorkQueue::done`] with it when finished.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                if s.shut_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &T) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Keys waiting (not counting those being processed).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// True when no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops accepting keys and wakes every waiting worker.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }
}

impl<T: Eq + Hash + Clone + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn duplicates_are_queued_once() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_in_process_is_requeued_only_when_done() {
        let q = WorkQueue::new();
        q.add("a");
        let k = q.get().await.unwrap();
        q.add("a");
        q.add("a");
        // Not handed to a second worker while the first holds it.
        assert!(q.is_empty());
        q.done(&k);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn shut_down_wakes_workers() {
        let q: WorkQueue<&str> = WorkQueue::new();
        let w = {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        };
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(w.await.unwrap(), None);
        q.add("x");
        assert!(q.is_empty());
    }

    #[test]
    fn backoff_doubles_per_key_up_to_the_cap() {
        let mut l = RateLimiter::with(
            Duration::from_millis(5),
            Duration::from_secs(1000),
            1e9,
            1_000_000,
        );
        let now = Instant::now();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(l.when(&"a", now)), 5);
        assert_eq!(ms(l.when(&"a", now)), 10);
        assert_eq!(ms(l.when(&"a", now)), 20);
        assert_eq!(ms(l.when(&"b", now)), 5);
        assert_eq!(l.retries(&"a"), 3);
        for _ in 0..40 {
            l.when(&"a", now);
        }
        assert_eq!(l.when(&"a", now), Duration::from_secs(1000));
        l.forget(&"a");
        assert_eq!(ms(l.when(&"a", now)), 5);
    }

    #[test]
    fn the_bucket_limits_overall_rate() {
        let mut l = RateLimiter::with(Duration::from_millis(5), Duration::from_secs(1000), 10.0, 2);
        let now = Instant::now();
        // Two tokens of burst, then one every 100 ms.
        assert_eq!(l.when(&1, now), Duration::from_millis(5));
        assert_eq!(l.when(&2, now), Duration::from_millis(5));
        assert_eq!(l.when(&3, now).as_millis(), 100);
        assert_eq!(l.when(&4, now).as_millis(), 200);
        // Time refills it.
        let later = now + Duration::from_secs(10);
        assert_eq!(l.when(&5, later), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_delayed_key_waits_once_at_its_earliest_time() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_secs(10));
        // Later times do not add a second timer; an earlier one replaces the first.
        q.add_after("a", Duration::from_secs(20));
        q.add_after("a", Duration::from_secs(5));
        assert_eq!(q.lock().waiting.len(), 1);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(q.is_empty());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        // The replaced timer (10 s) and the later one (20 s) queue nothing.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(q.is_empty());
        assert!(q.lock().waiting.is_empty());
        // Once due, the key may wait again.
        q.add_after("a", Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(q.len(), 1);
    }

    #[tokio::test]
    async fn add_after_delays() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_millis(30));
        assert!(q.is_empty());
        let got = tokio::time::timeout(Duration::from_secs(2), q.get()).await;
        assert_eq!(got.unwrap(), Some("a"));
    }
}
