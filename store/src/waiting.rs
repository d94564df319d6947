//! Results that a member's proposers wait for. The state machine answers them as it applies
//! their log entry, so a write's result goes straight from the applier to the client's task
//! (not through Raft's core and back).

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
}
