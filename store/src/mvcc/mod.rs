//! Multi-version key space, etcd's model on RocksDB.
//!
//! Every write transaction gets the next main revision; each change inside it a sub revision.
//! Records live in the `kv` column family keyed by (main, sub) revision, so history reads and
//! compaction are range scans. An in-memory index (key -> revisions), rebuilt at start, answers
//! "which revision of this key is visible at revision R".

mod cache;
mod compactor;
pub mod index;
mod range;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use prost::Message;
use proto::mvccpb::KeyValue;
use serde::{Deserialize, Serialize};

pub use index::{key_range, KeyIndex};
pub use write::{ApplyBatch, WriteTxn};

use crate::db::Db;
use crate::schema::{CF_KV, CF_META, META_COMPACT_REV, META_CURRENT_REV};

/// A revision: `main` is the write transaction, `sub` the change inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rev {
    /// Cluster-wide revision of the transaction.
    pub main: i64,
    /// Position of the change within the transaction.
    pub sub: i64,
}

impl Rev {
    /// The 16-byte big-endian key of this revision in the `kv` column family.
    pub fn to_key(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.main.to_be_bytes());
        k[8..].copy_from_slice(&self.sub.to_be_bytes());
        k
    }

    /// Parses a `kv` column family key.
    pub fn from_key(k: &[u8]) -> Option<Rev> {
        if k.len() != 16 {
            return None;
        }
        let main = i64::from_be_bytes(k[..8].try_into().ok()?);
        let sub = i64::from_be_bytes(k[8..].try_into().ok()?);
        Some(Rev { main, sub })
    }
}

/// Errors of reads and writes in the key space. The texts are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MvccError {
    /// The requested revision is older than the last compaction.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision has not happened yet.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// RocksDB failed or a record did not decode.
    #[error("mvcc: storage failure: {0}")]
    Storage(String),
}

impl From<rocksdb::Error> for MvccError {
    fn from(e: rocksdb::Error) -> Self {
        MvccError::Storage(e.to_string())
    }
}

/// One record of the `kv` column family: a key's value at a revision, or its deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// True for a deletion marker.
    pub tombstone: bool,
    /// The key-value as clients see it (for a tombstone: key and mod_revision only).
    pub kv: KeyValue,
}

impl Record {
    /// Encodes as one kind byte followed by the protobuf `KeyValue`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.kv.encoded_len());
        out.push(u8::from(self.tombstone));
        self.kv.encode(&mut out).expect("Vec has room");
        out
    }

    /// Decodes a record written by [`Record::encode`].
    pub fn decode(b: &[u8]) -> Result<Record, MvccError> {
        let (kind, rest) = b
            .split_first()
            .ok_or_else(|| MvccError::Storage("empty kv record".into()))?;
        let kv =
            KeyValue::decode(rest).map_err(|e| MvccError::Storage(format!("kv record: {e}")))?;
        Ok(Record {
            tombstone: *kind == 1,
            kv,
        })
    }
}

/// The in-memory part of the key space; guarded by [`Mvcc::state`].
#[derive(Debug, Default)]
pub struct MvccState {
    /// Every key with its retained revisions.
    pub index: BTreeMap<Vec<u8>, KeyIndex>,
    /// The revision of the last write transaction.
    pub current_rev: i64,
    /// The revision of the last compaction (0 if none).
    pub compact_rev: i64,
    /// Each key's newest record, as far as the budget goes.
    pub live: cache::LiveCache,
}

impl MvccState {
    /// The record at `rev`: kept in memory, or read from `mvcc`'s RocksDB.
    pub fn record_at(&self, mvcc: &Mvcc, rev: Rev) -> Result<Option<Record>, MvccError> {
        match self.live.get(rev) {
            Some(rec) => Ok(Some(rec.clone())),
            None => mvcc.record_at(rev),
        }
    }

    /// Drops from the index (and the live records) every revision compaction at `rev` makes
    /// unreachable, and keys left with none; returns the dropped revisions, whose records
    /// the compactor deletes.
    pub fn compact_index(&mut self, rev: i64) -> Vec<Rev> {
        let mut dropped = Vec::new();
        let mut emptied = Vec::new();
        for (key, idx) in self.index.iter_mut() {
            for r in idx.compact(rev) {
                self.live.forget(r);
                dropped.push(r);
            }
            if idx.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.index.remove(&key);
        }
        dropped
    }

    /// True when the record at `rev`, of `key`, is still part of the history: above the
    /// compaction point, or retained by it (a compacted record may wait for its deletion).
    pub fn retains(&self, key: &[u8], rev: Rev) -> bool {
        rev.main > self.compact_rev || self.index.get(key).is_some_and(|i| i.contains(rev))
    }
}

/// The key space of one member.
pub struct Mvcc {
    db: Arc<Db>,
    /// Bytes of the records retained in the `kv` column family (keys and values), kept as
    /// records are written and compacted away: the logical size quotas are checked against.
    bytes: Arc<std::sync::atomic::AtomicU64>,
    /// Deletes compacted records in the background.
    compactor: compactor::Compactor,
    /// Readers take it shared; the applier holds it exclusively from the first change of a
    /// batch until the batch is written to RocksDB, so readers never see half a batch.
    pub state: RwLock<MvccState>,
}

impl Mvcc {
    /// Loads the key space from the database, rebuilding the in-memory index.
    pub fn open(db: Arc<Db>) -> Result<Mvcc, MvccError> {
        let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mvcc = Mvcc {
            compactor: compactor::Compactor::start(db.clone(), bytes.clone())?,
            db,
            bytes,
            state: RwLock::new(MvccState::default()),
        };
        mvcc.reload()?;
        Ok(mvcc)
    }

    /// Rebuilds the in-memory state from RocksDB (at start and after a snapshot install).
    pub fn reload(&self) -> Result<(), MvccError> {
        let mut guard = self.state.write();
        self.rebuild(&mut guard)
    }

    /// Rebuilds `st` from RocksDB; the caller holds the state lock. Deletions of compacted
    /// records still scheduled are dropped; the records a compaction left (a stop before
    /// they were deleted, or a snapshot taken meanwhile) are found and deleted here.
    pub fn rebuild(&self, out: &mut MvccState) -> Result<(), MvccError> {
        self.compactor.new_generation(|| self.rebuild_index(out))
    }

    fn rebuild_index(&self, out: &mut MvccState) -> Result<(), MvccError> {
        let raw = self.db.raw();
        let mut st = MvccState::default();
        let mut bytes = 0u64;
        let iter = raw.iterator_cf(self.db.cf(CF_KV), rocksdb::IteratorMode::Start);
        for item in iter {
            let (k, v) = item?;
            bytes += (k.len() + v.len()) as u64;
            let rev =
                Rev::from_key(&k).ok_or_else(|| MvccError::Storage("bad revision key".into()))?;
            let rec = Record::decode(&v)?;
            st.index
                .entry(rec.kv.key)
                .or_default()
                .push(rev, rec.tombstone);
            st.current_rev = st.current_rev.max(rev.main);
        }
        let meta = self.db.cf(CF_META);
        // An empty store is at revision 1, as etcd's: the first write gets revision 2.
        st.current_rev = st
            .current_rev
            .max(read_i64(raw, meta, META_CURRENT_REV)?)
            .max(1);
        st.compact_rev = read_i64(raw, meta, META_COMPACT_REV)?;
        self.bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        let left = if st.compact_rev > 0 {
            st.compact_index(st.compact_rev)
        } else {
            Vec::new()
        };
        if !left.is_empty() {
            tracing::info!(
                revisions = left.len(),
                "deleting records an earlier compaction left"
            );
            self.compactor.delete_now(&left);
        }
        *out = st;
        Ok(())
    }

    /// The database under the key space.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Bytes of the retained records (keys and values of every kept revision).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a written record's bytes (the compactor takes them off as records go).
    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Compacted revisions whose records are not deleted yet.
    pub fn compaction_pending(&self) -> u64 {
        self.compactor.pending()
    }

    /// Compacted records deleted since start.
    pub fn compaction_deleted(&self) -> u64 {
        self.compactor.deleted()
    }

    /// Waits until the compacted records are deleted (tests).
    #[cfg(test)]
    pub fn settle_compaction(&self) {
        let number = self.compactions_scheduled();
        while !self.compacted_through(number) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The number of the last compaction applied here (see `compacted_through`).
    pub fn compactions_scheduled(&self) -> u64 {
        self.compactor.scheduled()
    }

    /// True once the records of compaction `number` and of every one before it are deleted
    /// (or dropped with a replaced key space): etcd's `physical` compaction is done.
    pub fn compacted_through(&self, number: u64) -> bool {
        self.compactor.finished() >= number
    }

    /// True when the record at `rev`, of `key`, is still part of the history: above the
    /// compaction point, or retained by it (a compacted record may wait for its deletion).
    pub fn retains(&self, key: &[u8], rev: Rev) -> bool {
        self.state.read().retains(key, rev)
    }

    /// A checksum of the history up to revision `upto` (all of it for 0), with the compaction
    /// revision it starts from (etcd's HashKV): members that applied the same entries agree,
    /// whatever their compacted records' deletion has reached.
    pub fn hash_kv(&self, upto: i64) -> Result<(u32, i64), MvccError> {
        let compact = self.compact_rev();
        let mut h = crc32fast::Hasher::new();
        for item in self
            .db
            .raw()
            .iterator_cf(self.db.cf(CF_KV), rocksdb::IteratorMode::Start)
        {
            let (k, v) = item?;
            let rev =
                Rev::from_key(&k).ok_or_else(|| MvccError::Storage("bad revision key".into()))?;
            if upto > 0 && rev.main > upto {
                break;
            }
            if rev.main <= compact && !self.retains(&Record::decode(&v)?.kv.key, rev) {
                // Compacted, its deletion not done yet.
                continue;
            }
            h.update(&k);
            h.update(&v);
        }
        Ok((h.finalize(), compact))
    }

    /// The current revision.
    pub fn current_rev(&self) -> i64 {
        self.state.read().current_rev
    }

    /// The last compacted revision.
    pub fn compact_rev(&self) -> i64 {
        self.state.read().compact_rev
    }

    /// Reads the record stored at a revision.
    pub fn record_at(&self, rev: Rev) -> Result<Option<Record>, MvccError> {
        match self
            .db
            .raw()
            .get_pinned_cf(self.db.cf(CF_KV), rev.to_key())?
        {
            Some(b) => Ok(Some(Record::decode(&b)?)),
            None => Ok(None),
        }
    }

    /// The live key-value of `key` at the current revision.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, MvccError> {
        let st = self.state.read();
        let Some(idx) = st.index.get(key).and_then(|i| i.visible_at(st.current_rev)) else {
            return Ok(None);
        };
        Ok(st.record_at(self, idx)?.map(|r| r.kv))
    }

    /// Every live key with its lease (for rebuilding lease attachments at start).
    pub fn live_keys_with_lease(&self) -> Result<Vec<(Vec<u8>, i64)>, MvccError> {
        let st = self.state.read();
        let mut out = Vec::new();
        for (key, idx) in &st.index {
            if let Some(rev) = idx.visible_at(st.current_rev) {
                if let Some(rec) = self.record_at(rev)? {
                    if rec.kv.lease != 0 {
                        out.push((key.clone(), rec.kv.lease));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Events of revisions `from..=to` (at most `max_revs` revisions), in revision order,
    /// grouped by revision. Each event's `prev_kv` is filled when `with_prev` is set.
    pub fn history(
        &self,
        from: i64,
        to: i64,
        max_revs: usize,
        with_prev: bool,
    ) -> Result<Vec<(i64, Vec<proto::mvccpb::Event>)>, MvccError> {
        use proto::mvccpb::{event::EventType, Event};
        let st = self.state.read();
        if from <= st.compact_rev && from != 0 {
            // Revisions up to the compaction point are only partly retained.
            if from < st.compact_rev {
                return Err(MvccError::Compacted);
            }
        }
        let start = Rev { main: from, sub: 0 }.to_key();
        let iter = self.db.raw().iterator_cf(
            self.db.cf(CF_KV),
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        let mut out: Vec<(i64, Vec<Event>)> = Vec::new();
        for item in iter {
            let (k, v) = item?;
            let rev =
                Rev::from_key(&k).ok_or_else(|| MvccError::Storage("bad revision key".into()))?;
            if rev.main > to {
                break;
            }
            let rec = Record::decode(&v)?;
            if !st.retains(&rec.kv.key, rev) {
                // Compacted away, its deletion not done yet.
                continue;
            }
            if out.last().map(|(r, _)| *r) != Some(rev.main) {
                if out.len() == max_revs {
                    break;
                }
                out.push((rev.main, Vec::new()));
            }
            let prev_kv = if with_prev {
                match st
                    .index
                    .get(&rec.kv.key)
                    .and_then(|i| i.visible_before(rev))
                {
                    Some(p) => st.record_at(self, p)?.map(|r| r.kv),
                    None => None,
                }
            } else {
                None
            };
            let typ = if rec.tombstone {
                EventType::Delete
            } else {
                EventType::Put
            };
            if let Some((_, evs)) = out.last_mut() {
                evs.push(Event {
                    r#type: typ as i32,
                    kv: Some(rec.kv),
                    prev_kv,
                });
            }
        }
        Ok(out)
    }
}

pub(crate) fn read_i64(
    db: &rocksdb::DB,
    cf: &rocksdb::ColumnFamily,
    key: &[u8],
) -> Result<i64, MvccError> {
    match db.get_cf(cf, key)? {
        Some(b) if b.len() == 8 => Ok(i64::from_be_bytes(b[..8].try_into().unwrap_or_default())),
        Some(_) => Err(MvccError::Storage(format!(
            "bad meta value for {}",
            String::from_utf8_lossy(key)
        ))),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests;
