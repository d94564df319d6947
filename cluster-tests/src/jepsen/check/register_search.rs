//! The linearizability search for one register (one key): Wing & Gong's algorithm with Lowe's
//! memoisation, as Porcupine runs it.
//!
//! The operations' call and return events are kept in time order in a doubly linked list. The
//! search walks the list from its head: at a call it tries to linearize that operation next
//! (apply it to the register); if the model allows it and the pair (set of linearized
//! operations, register state) was never reached before, the operation is lifted out of the
//! list and the walk restarts from the head. Reaching a return means the operation it belongs to
//! must have been linearized by now: the search backtracks (restores the last lifted
//! operation and tries the next call after it). Operations whose outcome is unknown have their
//! return at infinity, so they never force a backtrack and need not be linearized at all.
//!
//! Two prunings keep the search small:
//! - a read that may come next and returns the register's current value is linearized next
//!   without trying anything else (moving it to the front of any linearization from that point
//!   keeps it one);
//! - an unknown write that is overwritten before anyone reads (or compares against) its value
//!   could as well never have happened, so the search never lets a write directly follow an
//!   unobserved unknown write;
//! - of several acknowledged writes of one value that may come next, only the one that
//!   completed first is tried (any linearization stays one with the two swapped);
//! - a value only one operation writes (or the initial absence) never comes back once
//!   overwritten, so the search does not overwrite it while acknowledged operations that
//!   observe it are still to be linearized.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::jepsen::history::RegisterF;

/// One operation of the key, as the search sees it.
pub(super) struct SearchOp {
    pub invoke: Duration,
    /// `None` for an operation whose outcome is unknown: it may take effect any time after its
    /// invocation, or never.
    pub complete: Option<Duration>,
    pub f: RegisterF,
}

impl SearchOp {
    /// The value this operation writes if it takes effect.
    fn writes(&self) -> Option<u64> {
        match self.f {
            RegisterF::Write(value) | RegisterF::Cas { to: value, .. } => Some(value),
            RegisterF::Read(_) => None,
        }
    }

    /// The value this operation observes (reads, or compares against).
    fn observes(&self) -> Option<Option<u64>> {
        match self.f {
            RegisterF::Read(value) => Some(value),
            RegisterF::Cas { from, .. } => Some(Some(from)),
            RegisterF::Write(_) => None,
        }
    }
}

/// Why the search stopped.
pub(super) enum Found {
    Linearizable,
    /// No linearization exists; the deepest point the search reached.
    NotLinearizable(Failure),
    /// The budget of search steps ran out first.
    Exhausted,
}

/// The deepest point the search reached before it ran out of choices.
pub(super) struct Failure {
    /// How many operations were linearized there.
    pub linearized: usize,
    /// The register's value there.
    pub state: Option<u64>,
    /// The operation whose return came before it could be linearized.
    pub blocking: usize,
    /// The last operation linearized before that point.
    pub last: Option<usize>,
    /// The other not yet linearized operations invoked before `blocking` returned.
    pub concurrent: Vec<usize>,
    /// The acknowledged operations not yet linearized that read (or compare against) the
    /// register's value there.
    pub waiting: Vec<usize>,
}

pub(super) struct Search {
    pub found: Found,
    pub steps: u64,
}

/// The register's state in the search.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct State {
    value: Option<u64>,
    /// The last operation applied was an unknown write (or compare-and-set) nobody observed yet.
    fresh_unknown: bool,
}

impl State {
    /// The state after `op`, or `None` if the register does not allow `op` now.
    fn step(self, op: &SearchOp) -> Option<State> {
        let unknown = op.complete.is_none();
        match op.f {
            RegisterF::Read(value) => (self.value == value).then_some(State {
                value: self.value,
                fresh_unknown: false,
            }),
            RegisterF::Write(value) => (!self.fresh_unknown).then_some(State {
                value: Some(value),
                fresh_unknown: unknown,
            }),
            RegisterF::Cas { from, to } => (self.value == Some(from)).then_some(State {
                value: Some(to),
                fresh_unknown: unknown,
            }),
        }
    }
}

const NIL: usize = usize::MAX;

/// A random 128-bit key for operation `op` (splitmix64 of its index), so that sets of
/// operations are remembered as the exclusive or of their keys (Zobrist hashing): 16 bytes per
/// remembered set, and two different sets collide with a probability of about 2^-128.
fn set_key(op: usize) -> u128 {
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let op = op as u64;
    (u128::from(mix(2 * op)) << 64) | u128::from(mix(2 * op + 1))
}

/// Call and return events in time order, as a doubly linked list that operations can be lifted
/// out of and restored into (in reverse order).
struct Events {
    /// Entry `2 * op` is the call of `op`, `2 * op + 1` its return; the head sentinel is last.
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl Events {
    fn new(ops: &[SearchOp]) -> Events {
        let mut order: Vec<(Duration, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoke, false, 2 * i));
            order.push((op.complete.unwrap_or(Duration::MAX), true, 2 * i + 1));
        }
        // At equal times calls come first: the operations count as concurrent.
        order.sort();
        let head = ops.len() * 2;
        let mut next = vec![NIL; head + 1];
        let mut prev = vec![NIL; head + 1];
        let mut last = head;
        for &(_, _, entry) in &order {
            next[last] = entry;
            prev[entry] = last;
            last = entry;
        }
        Events { next, prev, head }
    }

    fn lift(&mut self, op: usize) {
        for entry in [2 * op, 2 * op + 1] {
            let (p, n) = (self.prev[entry], self.next[entry]);
            self.next[p] = n;
            if n != NIL {
                self.prev[n] = p;
            }
        }
    }

    fn unlift(&mut self, op: usize) {
        for entry in [2 * op + 1, 2 * op] {
            let (p, n) = (self.prev[entry], self.next[entry]);
            self.next[p] = entry;
            if n != NIL {
                self.prev[n] = entry;
            }
        }
    }
}

/// Searches for a linearization of `ops` starting from an absent register, taking at most
/// `budget` steps.
pub(super) fn search(ops: &[SearchOp], budget: u64) -> Search {
    let mut writers: HashMap<u64, usize> = HashMap::new();
    let mut observers: HashMap<Option<u64>, usize> = HashMap::new();
    for op in ops {
        if let Some(value) = op.writes() {
            *writers.entry(value).or_insert(0) += 1;
        }
        if let Some(value) = op.observes().filter(|_| op.complete.is_some()) {
            *observers.entry(value).or_insert(0) += 1;
        }
    }
    let mut searcher = Searcher {
        ops,
        single_writer: writers
            .into_iter()
            .filter(|(_, n)| *n == 1)
            .map(|(value, _)| value)
            .collect(),
        observers,
        required: ops.iter().filter(|op| op.complete.is_some()).count(),
        events: Events::new(ops),
        keys: (0..ops.len()).map(set_key).collect(),
        linearized: 0,
        state: State {
            value: None,
            fresh_unknown: false,
        },
        seen: HashSet::new(),
        stack: Vec::new(),
        done_required: 0,
        failure: None,
    };
    let mut steps = 0u64;
    let found = searcher.run(budget, &mut steps);
    Search { found, steps }
}

/// One linearized operation on the search's stack.
struct Frame {
    op: usize,
    /// The state before it.
    before: State,
    /// A read linearized because it was possible: if what follows fails, so does the node.
    forced: bool,
}

struct Searcher<'a> {
    ops: &'a [SearchOp],
    /// Values only one operation writes.
    single_writer: HashSet<u64>,
    /// For each value, how many acknowledged operations not yet linearized observe it.
    observers: HashMap<Option<u64>, usize>,
    required: usize,
    events: Events,
    /// Each operation's random key; a set of operations is the exclusive or of its keys.
    keys: Vec<u128>,
    /// The set of linearized operations.
    linearized: u128,
    state: State,
    seen: HashSet<(u128, State)>,
    stack: Vec<Frame>,
    done_required: usize,
    failure: Option<Failure>,
}

impl Searcher<'_> {
    fn run(&mut self, budget: u64, steps: &mut u64) -> Found {
        let mut entry = self.events.next[self.events.head];
        // Whether the walk is at the head of a node not yet looked at.
        let mut new_node = true;
        loop {
            if self.done_required == self.required {
                return Found::Linearizable;
            }
            *steps += 1;
            if *steps > budget {
                return Found::Exhausted;
            }
            if new_node {
                new_node = false;
                // A read that can come next may as well come next: any linearization from here
                // stays one with the read moved to the front.
                if let Some(read) = self.possible_read() {
                    let after = State {
                        value: self.state.value,
                        fresh_unknown: false,
                    };
                    if self.lift(read, after, true) {
                        new_node = true;
                        entry = self.events.next[self.events.head];
                        continue;
                    }
                    match self.backtrack() {
                        Some(next) => entry = next,
                        None => return Found::NotLinearizable(self.take_failure(entry)),
                    }
                    continue;
                }
            }
            let op = entry / 2;
            if entry.is_multiple_of(2) {
                let after = self.state.step(&self.ops[op]);
                let pruned = |_: &State| self.strands_observers(op) || self.dominated(op);
                if let Some(after) = after.filter(|after| !pruned(after)) {
                    if self.lift(op, after, false) {
                        new_node = true;
                        entry = self.events.next[self.events.head];
                        continue;
                    }
                }
                entry = self.events.next[entry];
                continue;
            }
            // A return: `op` had to be linearized before this point.
            if self
                .failure
                .as_ref()
                .is_none_or(|f| self.stack.len() > f.linearized)
            {
                self.failure = Some(self.describe_failure(entry));
            }
            match self.backtrack() {
                Some(next) => entry = next,
                None => return Found::NotLinearizable(self.take_failure(entry)),
            }
        }
    }

    /// A not yet linearized read that may come next and returns the current value.
    fn possible_read(&self) -> Option<usize> {
        let mut entry = self.events.next[self.events.head];
        while entry != NIL && entry.is_multiple_of(2) {
            let op = entry / 2;
            if self.ops[op].f == RegisterF::Read(self.state.value) {
                return Some(op);
            }
            entry = self.events.next[entry];
        }
        None
    }

    /// Whether linearizing `op` now would change a value that is never written again while
    /// acknowledged operations that observe it are still to be linearized (a dead end).
    fn strands_observers(&self, op: usize) -> bool {
        let op = &self.ops[op];
        let value = self.state.value;
        if op.writes().is_none() || value.is_some_and(|v| !self.single_writer.contains(&v)) {
            return false;
        }
        let mut pending = self.observers.get(&value).copied().unwrap_or(0);
        if op.complete.is_some() && op.observes() == Some(value) {
            pending -= 1;
        }
        pending > 0
    }

    /// Whether `op` is an acknowledged write and another one of the same value, which must be
    /// linearized no later than it, may come next too: trying that one first is enough (the
    /// two can swap places in any linearization).
    fn dominated(&self, op: usize) -> bool {
        let (&RegisterF::Write(value), Some(complete)) = (&self.ops[op].f, self.ops[op].complete)
        else {
            return false;
        };
        let mut entry = self.events.next[self.events.head];
        while entry != NIL && entry.is_multiple_of(2) {
            let other = &self.ops[entry / 2];
            if other.f == RegisterF::Write(value)
                && other
                    .complete
                    .is_some_and(|c| (c, entry / 2) < (complete, op))
            {
                return true;
            }
            entry = self.events.next[entry];
        }
        false
    }

    fn count_observer(&mut self, op: usize, delta: isize) {
        let op = &self.ops[op];
        if let Some(value) = op.observes().filter(|_| op.complete.is_some()) {
            let count = self.observers.entry(value).or_insert(0);
            *count = count.saturating_add_signed(delta);
        }
    }

    /// Linearizes `op` next, leading to `after`, unless that was tried before.
    fn lift(&mut self, op: usize, after: State, forced: bool) -> bool {
        if !self.seen.insert((self.linearized ^ self.keys[op], after)) {
            return false;
        }
        self.linearized ^= self.keys[op];
        self.stack.push(Frame {
            op,
            before: self.state,
            forced,
        });
        self.state = after;
        self.events.lift(op);
        self.count_observer(op, -1);
        if self.ops[op].complete.is_some() {
            self.done_required += 1;
        }
        true
    }

    /// Undoes linearized operations up to the last one chosen freely, and returns the entry
    /// after its call (where the walk goes on); `None` when nothing is left to undo.
    fn backtrack(&mut self) -> Option<usize> {
        loop {
            let frame = self.stack.pop()?;
            self.linearized ^= self.keys[frame.op];
            if self.ops[frame.op].complete.is_some() {
                self.done_required -= 1;
            }
            self.state = frame.before;
            self.events.unlift(frame.op);
            self.count_observer(frame.op, 1);
            if !frame.forced {
                return Some(self.events.next[2 * frame.op]);
            }
        }
    }

    fn take_failure(&mut self, entry: usize) -> Failure {
        match self.failure.take() {
            Some(failure) => failure,
            None => self.describe_failure(entry),
        }
    }

    fn describe_failure(&self, ret: usize) -> Failure {
        let blocking = ret / 2;
        let mut concurrent = Vec::new();
        let mut entry = self.events.next[self.events.head];
        while entry != ret && entry != NIL {
            if entry.is_multiple_of(2) && entry / 2 != blocking {
                concurrent.push(entry / 2);
            }
            entry = self.events.next[entry];
        }
        // Acknowledged operations not linearized yet that observe the register's value.
        let mut waiting = Vec::new();
        let mut entry = self.events.next[self.events.head];
        while entry != NIL {
            let op = &self.ops[entry / 2];
            if entry.is_multiple_of(2)
                && op.complete.is_some()
                && op.observes() == Some(self.state.value)
            {
                waiting.push(entry / 2);
            }
            entry = self.events.next[entry];
        }
        Failure {
            linearized: self.stack.len(),
            state: self.state.value,
            blocking,
            last: self.stack.last().map(|frame| frame.op),
            concurrent,
            waiting,
        }
    }
}
