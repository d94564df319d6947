//! Results that a member's proposers wait for. The state machine answers them as it applies
//! their log entry, so a write's result goes straight from the applier to the client's task
//! (not through Raft's core and back). A follower's forwarded entries are answered the same
//! way, by the follower's own apply; the leader only tells it that it appended them
//! ([`Appends`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::apply::Applied;
use crate::error::StoreError;

/// Where the results of one entry's commands go.
pub type Answer = Box<dyn FnOnce(Result<Vec<Applied>, StoreError>) + Send>;

/// Tickets of entries this member proposed and has not yet answered, by (proposer, ticket):
/// an entry another member proposed never matches, whatever its ticket number.
pub struct Waiting {
    next: AtomicU64,
    answers: Mutex<HashMap<(u64, u64), Answer>>,
}

impl Default for Waiting {
    fn default() -> Self {
        // Tickets start from the clock, so an entry proposed before a restart and applied
        // after it cannot carry the ticket of a new proposal.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            .max(1);
        Waiting {
            next: AtomicU64::new(start),
            answers: Mutex::new(HashMap::new()),
        }
    }
}

impl Waiting {
    /// Registers `answer` for an entry `proposer` (this member) proposes; returns the ticket
    /// to put in the entry.
    pub fn register(&self, proposer: u64, answer: Answer) -> u64 {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed).max(1);
        self.answers.lock().insert((proposer, ticket), answer);
        ticket
    }

    /// Answers `ticket` of `proposer`, if it is still waiting here; true if it was.
    pub fn answer(
        &self,
        proposer: u64,
        ticket: u64,
        result: Result<Vec<Applied>, StoreError>,
    ) -> bool {
        let Some(answer) = self.answers.lock().remove(&(proposer, ticket)) else {
            return false;
        };
        answer(result);
        true
    }

    /// Gives up on `ticket` of `proposer`: its waiters are answered [`StoreError::Timeout`]
    /// (the entry may still be committed: the outcome is unknown) and the registration is
    /// dropped, so an entry that is never applied here (truncated after a leader change, or
    /// covered by a snapshot) does not leak. True if it was still waiting.
    pub fn cancel(&self, proposer: u64, ticket: u64) -> bool {
        self.answer(proposer, ticket, Err(StoreError::Timeout))
    }

    /// How many tickets are waiting.
    pub fn len(&self) -> usize {
        self.answers.lock().len()
    }

    /// Whether no ticket is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// On the leader: forwarded entries whose handler waits to see them appended to the leader's
/// log, by (proposer, ticket). The log store reports each forwarded entry it appends as
/// leader with its index ([`Appends::appended`]); the handler then acknowledges the follower.
#[derive(Default)]
pub struct Appends {
    waiters: Mutex<HashMap<(u64, u64), tokio::sync::oneshot::Sender<u64>>>,
}

impl Appends {
    /// Waits for the entry `ticket` of `proposer`: the receiver gets its log index once
    /// appended. The caller must [`Appends::forget`] it if it gives up.
    pub fn expect(&self, proposer: u64, ticket: u64) -> tokio::sync::oneshot::Receiver<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters.lock().insert((proposer, ticket), tx);
        rx
    }

    /// The entry `ticket` of `proposer` was appended at `index`.
    pub fn appended(&self, proposer: u64, ticket: u64, index: u64) {
        if let Some(tx) = self.waiters.lock().remove(&(proposer, ticket)) {
            let _ = tx.send(index);
        }
    }

    /// No longer waits for the entry `ticket` of `proposer`.
    pub fn forget(&self, proposer: u64, ticket: u64) {
        self.waiters.lock().remove(&(proposer, ticket));
    }

    /// Whether no entry is waited for (the log store then skips its lookups).
    pub fn is_empty(&self) -> bool {
        self.waiters.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_answered_once() {
        let w = Waiting::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = w.register(
            7,
            Box::new(move |r| {
                let _ = tx.send(r.map(|v| v.len()));
            }),
        );
        // The same ticket number from another proposer is not ours.
        assert!(!w.answer(8, t, Err(StoreError::NoLeader)));
        assert!(w.answer(7, t, Ok(Vec::new())));
        assert!(!w.answer(7, t, Err(StoreError::NoLeader)));
        assert!(matches!(rx.recv(), Ok(Ok(0))));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_cancelled_ticket_is_answered_timeout_and_forgotten() {
        let w = Waiting::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = w.register(
            7,
            Box::new(move |r| {
                let _ = tx.send(r.map(|v| v.len()));
            }),
        );
        assert_eq!(w.len(), 1);
        assert!(w.cancel(7, t));
        assert!(w.is_empty());
        assert!(matches!(rx.recv(), Ok(Err(StoreError::Timeout))));
        // The entry applied late finds nobody waiting, and nothing is answered twice.
        assert!(!w.answer(7, t, Ok(Vec::new())));
        assert!(!w.cancel(7, t));
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn an_expected_append_reports_its_index_once() {
        let a = Appends::default();
        let rx = a.expect(7, 1);
        let forgotten = a.expect(7, 2);
        assert!(!a.is_empty());
        a.appended(8, 1, 40); // another proposer's ticket 1: not this one
        a.appended(7, 1, 41);
        assert_eq!(rx.await.ok(), Some(41));
        a.forget(7, 2);
        assert!(a.is_empty());
        assert!(forgotten.await.is_err());
        a.appended(7, 1, 42); // nobody waits any more
    }
}
