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

/// Tickets of entries this member proposed and has not yet answered.
pub struct Waiting {
    next: AtomicU64,
    answers: Mutex<HashMap<u64, Answer>>,
}

impl Default for Waiting {
    fn default() -> Self {
        // Tickets start from the clock, so an entry proposed before a restart and applied
        // after it cannot carry the ticket of a new proposal (0 means "nobody waits").
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            .max(1);
        Waiting { next: AtomicU64::new(start), answers: Mutex::new(HashMap::new()) }
    }
}

impl Waiting {
    /// Registers `answer` and returns the ticket to put in the entry.
    pub fn register(&self, answer: Answer) -> u64 {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed).max(1);
        self.answers.lock().insert(ticket, answer);
        ticket
    }

    /// Answers `ticket`, if it is still waiting; true if it was.
    pub fn answer(&self, ticket: u64, result: Result<Vec<Applied>, StoreError>) -> bool {
        if ticket == 0 {
            return false;
        }
        let Some(answer) = self.answers.lock().remove(&ticket) else { return false };
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
        let t = w.register(Box::new(move |r| {
            let _ = tx.send(r.map(|v| v.len()));
        }));
        assert_ne!(t, 0);
        assert!(w.answer(t, Ok(Vec::new())));
        assert!(!w.answer(t, Err(StoreError::NoLeader)));
        assert!(matches!(rx.recv(), Ok(Ok(0))));
        assert!(rx.try_recv().is_err());
        assert!(!w.answer(0, Ok(Vec::new())));
    }
}
