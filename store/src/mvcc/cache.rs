//! The live records of the key space, kept in memory up to a byte budget.
//!
//! Every put and delete reads the key's live record first (its create revision, version,
//! lease and the event's `prev_kv`). That record is usually among the newest writes, so
//! RocksDB finds it in the memtable, whose skip-list search over every recent revision was
//! the largest part of the applier's CPU (see BENCHMARKS.md, "the write path"). Records are
//! immutable per revision, so a kept record is right for as long as its revision exists:
//! only compaction removes revisions, and a snapshot install rebuilds the state (and this
//! with it). Only each key's newest record is kept; the one it replaces is dropped.

use std::collections::HashMap;

use super::{Record, Rev};

/// Most bytes of records kept (keys, values and a per-record overhead); past it, new
/// records are read from RocksDB as before.
const BUDGET_BYTES: usize = 32 * 1024 * 1024;

/// Bookkeeping per record, counted against the budget on top of key and value.
const RECORD_OVERHEAD: usize = 96;

/// Newest records by revision; guarded by the key space's state lock.
#[derive(Debug)]
pub struct LiveCache {
    records: HashMap<Rev, Record>,
    bytes: usize,
    budget: usize,
}

impl Default for LiveCache {
    fn default() -> Self {
        LiveCache::with_budget(BUDGET_BYTES)
    }
}

fn cost(rec: &Record) -> usize {
    rec.kv.key.len() + rec.kv.value.len() + RECORD_OVERHEAD
}

impl LiveCache {
    /// A cache of at most `budget` bytes.
    pub fn with_budget(budget: usize) -> LiveCache {
        LiveCache {
            records: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    /// The record at `rev`, if kept.
    pub fn get(&self, rev: Rev) -> Option<&Record> {
        self.records.get(&rev)
    }

    /// `rec` was written at `rev`, replacing its key's newest record at `replaced`: the
    /// replaced one is dropped, and `rec` kept unless it is a deletion or over the budget.
    pub fn wrote(&mut self, replaced: Option<Rev>, rev: Rev, rec: &Record) {
        if let Some(old) = replaced {
            self.forget(old);
        }
        let size = cost(rec);
        if rec.tombstone || self.bytes + size > self.budget {
            return;
        }
        self.bytes += size;
        if let Some(old) = self.records.insert(rev, rec.clone()) {
            self.bytes -= cost(&old);
        }
    }

    /// Drops the record at `rev` (compacted away, or replaced).
    pub fn forget(&mut self, rev: Rev) {
        if let Some(old) = self.records.remove(&rev) {
            self.bytes -= cost(&old);
        }
    }

    /// Bytes kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use proto::mvccpb::KeyValue;

    use super::*;

    fn rec(key: &str, value: &str, tombstone: bool) -> Record {
        Record {
            tombstone,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                ..Default::default()
            },
        }
    }

    fn rev(main: i64) -> Rev {
        Rev { main, sub: 0 }
    }

    #[test]
    fn keeps_the_newest_record_of_a_key_within_the_budget() {
        let mut c = LiveCache::with_budget(2 * (RECORD_OVERHEAD + 2));
        c.wrote(None, rev(2), &rec("a", "1", false));
        assert_eq!(
            c.get(rev(2)).map(|r| r.kv.value.clone()),
            Some(b"1".to_vec())
        );
        // A new value replaces the old one.
        c.wrote(Some(rev(2)), rev(3), &rec("a", "2", false));
        assert!(c.get(rev(2)).is_none());
        assert!(c.get(rev(3)).is_some());
        // Over the budget: not kept, read from RocksDB instead.
        c.wrote(None, rev(4), &rec("b", "1", false));
        c.wrote(None, rev(5), &rec("c", "1", false));
        assert!(c.get(rev(4)).is_some());
        assert!(c.get(rev(5)).is_none());
        // A deletion drops the live record and keeps nothing.
        c.wrote(Some(rev(3)), rev(6), &rec("a", "", true));
        assert!(c.get(rev(3)).is_none() && c.get(rev(6)).is_none());
        assert_eq!(c.bytes(), RECORD_OVERHEAD + 2);
        c.forget(rev(4));
        assert_eq!(c.bytes(), 0);
    }
}
