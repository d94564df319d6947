//! Helpers for the checkers' unit tests: operations built from milliseconds, and a small
//! deterministic random number generator for generated histories.

use std::time::Duration;

use crate::jepsen::history::{Op, Outcome};

/// An operation of `process` invoked at `invoke` ms and completed at `complete` ms.
pub fn op<V>(process: usize, invoke: u64, complete: u64, outcome: Outcome, value: V) -> Op<V> {
    Op {
        process,
        invoke: Duration::from_millis(invoke),
        complete: Duration::from_millis(complete),
        outcome,
        value,
    }
}

pub fn ok<V>(process: usize, invoke: u64, complete: u64, value: V) -> Op<V> {
    op(process, invoke, complete, Outcome::Ok, value)
}

pub fn fail<V>(process: usize, invoke: u64, complete: u64, value: V) -> Op<V> {
    op(process, invoke, complete, Outcome::Fail, value)
}

pub fn unknown<V>(process: usize, invoke: u64, complete: u64, value: V) -> Op<V> {
    op(process, invoke, complete, Outcome::Unknown, value)
}

/// xorshift64*: enough randomness for generated test histories, reproducible from the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}
