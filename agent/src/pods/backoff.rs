//! Kubernetes' restart back-off (client-go's `flowcontrol.Backoff` as the kubelet uses it):
//! the first restart is immediate, then each restart waits 10 s, 20 s, 40 s... up to 5 min
//! after the container's end; an entry not renewed for twice the maximum (the container ran
//! 10 minutes) starts over. The same shape delays image pulls after a failure.

use std::{collections::HashMap, time::Duration};

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Back-off per key (pod uid + container name).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last: Timestamp,
}

fn since(later: Timestamp, earlier: Timestamp) -> Duration {
    let d: SignedDuration = later.duration_since(earlier);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

impl Backoff {
    /// Kubernetes' container back-off: 10 s doubling to 5 min.
    pub fn containers() -> Backoff {
        Backoff::new(Duration::from_secs(10), Duration::from_secs(300))
    }

    /// A back-off from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, e: &Entry, event: Timestamp) -> bool {
        since(event, e.last) > self.max * 2
    }

    /// When the back-off started by `event` (the container's end) is over, if it is still
    /// running at `now`: the time left.
    pub fn remaining(&self, key: &str, event: Timestamp, now: Timestamp) -> Option<Duration> {
        let e = self.entries.get(key)?;
        if self.expired(e, event) {
            return None;
        }
        let elapsed = since(now, event);
        (elapsed < e.delay).then(|| e.delay - elapsed)
    }

    /// The current delay of `key` (what [`Backoff::remaining`] counts from).
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    /// When `key` was last recorded.
    pub fn last(&self, key: &str) -> Option<Timestamp> {
        self.entries.get(key).map(|e| e.last)
    }

    /// Records a restart after `event`: the next one waits twice as long.
    pub fn next(&mut self, key: &str, event: Timestamp) {
        let delay = match self.entries.get(key) {
            Some(e) if !self.expired(e, event) => (e.delay * 2).min(self.max),
            _ => self.initial,
        };
        self.entries
            .insert(key.to_string(), Entry { delay, last: event });
    }

    /// Forgets every key starting with `prefix` (a pod that is gone).
    pub fn forget_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn doubles_to_five_minutes_then_resets_after_ten() {
        let mut b = Backoff::containers();
        // First exit: restart at once.
        assert_eq!(b.remaining("p/c", t(100), t(100)), None);
        b.next("p/c", t(100));
        // Second exit at 101: 10 s from then.
        assert_eq!(
            b.remaining("p/c", t(101), t(105)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(b.remaining("p/c", t(101), t(111)), None);
        b.next("p/c", t(111));
        assert_eq!(b.delay("p/c"), Some(Duration::from_secs(20)));
        let mut at = 111;
        for _ in 0..10 {
            at += 1;
            b.next("p/c", t(at));
        }
        assert_eq!(b.delay("p/c"), Some(Duration::from_secs(300)));
        // It then ran 11 minutes: the back-off starts over.
        assert_eq!(b.remaining("p/c", t(at + 660), t(at + 661)), None);
        b.next("p/c", t(at + 660));
        assert_eq!(b.delay("p/c"), Some(Duration::from_secs(10)));
        b.forget_prefix("p/");
        assert_eq!(b.delay("p/c"), None);
    }
}
