//! The watch hub: the applier publishes each write transaction's events here, once, in
//! revision order; every watcher of this member subscribes.
//!
//! A watcher that started at a past revision reads history from the key space first
//! ("unsynced"), then follows the hub ("synced"). One that falls behind the hub's buffer
//! (`Lagged`) goes back to reading history, so no event is ever skipped.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use proto::mvccpb::Event;
use tokio::sync::broadcast;

/// The events of one write transaction (or a reset marker after a snapshot install).
#[derive(Debug)]
pub struct Published {
    /// The revision of the transaction.
    pub rev: i64,
    /// Its events in order; empty for a reset.
    pub events: Vec<Event>,
    /// The store jumped to `rev` by installing a snapshot: watchers re-read history.
    pub reset: bool,
    /// When it was published (for the delivery-time metric).
    pub at: std::time::Instant,
}

/// Fan-out of applied events to the watchers of this member.
pub struct WatchHub {
    tx: broadcast::Sender<Arc<Published>>,
    watchers: AtomicI64,
}

/// How many transactions the hub buffers for slow watchers before they fall back to history.
const HUB_CAPACITY: usize = 16 * 1024;

impl Default for WatchHub {
    fn default() -> Self {
        WatchHub {
            tx: broadcast::channel(HUB_CAPACITY).0,
            watchers: AtomicI64::new(0),
        }
    }
}

impl WatchHub {
    /// Publishes applied transactions (in revision order).
    pub fn publish(&self, batches: Vec<(i64, Vec<Event>)>) {
        let at = std::time::Instant::now();
        for (rev, events) in batches {
            // No subscriber is not an error.
            let _ = self.tx.send(Arc::new(Published {
                rev,
                events,
                reset: false,
                at,
            }));
        }
    }

    /// Tells watchers the store jumped to `rev` (snapshot install).
    pub fn reset(&self, rev: i64) {
        let _ = self.tx.send(Arc::new(Published {
            rev,
            events: Vec::new(),
            reset: true,
            at: std::time::Instant::now(),
        }));
    }

    /// Subscribes to transactions published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Counts a watcher in or out (for metrics).
    pub fn watcher_delta(&self, d: i64) {
        self.watchers.fetch_add(d, Ordering::Relaxed);
    }

    /// Current number of watchers.
    pub fn watchers(&self) -> i64 {
        self.watchers.load(Ordering::Relaxed)
    }
}
