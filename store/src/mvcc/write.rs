//! The write side: an apply batch (one RocksDB write for many Raft entries) and the write
//! transactions inside it, each taking the next revision.

use std::collections::HashMap;

use parking_lot::RwLockWriteGuard;
use proto::etcdserverpb::{RangeRequest, RangeResponse};
use proto::mvccpb::{event::EventType, Event, KeyValue};
use rocksdb::WriteBatch;

use super::range::range_with;
use super::{key_range, Mvcc, MvccError, MvccState, Record, Rev};
use crate::schema::{CF_KV, CF_META, META_COMPACT_REV, META_CURRENT_REV};

/// Changes of several Raft entries, collected under the exclusive state lock and written to
/// RocksDB in one batch by [`ApplyBatch::commit`].
pub struct ApplyBatch<'a> {
    mvcc: &'a Mvcc,
    /// The key space, held exclusively until commit.
    pub st: RwLockWriteGuard<'a, MvccState>,
    /// The pending RocksDB writes; callers add their own (lease, meta) records.
    pub batch: WriteBatch,
    /// Records written by this batch, not yet in RocksDB.
    overlay: HashMap<Rev, Record>,
    /// Revisions a compaction in this batch dropped: deleted once the batch is written.
    compacted: Vec<Rev>,
    /// Time the compactions of this batch held it.
    compaction_pause: std::time::Duration,
}

impl<'a> ApplyBatch<'a> {
    /// Starts a batch, taking the state lock.
    pub fn begin(mvcc: &'a Mvcc) -> ApplyBatch<'a> {
        ApplyBatch {
            mvcc,
            st: mvcc.state.write(),
            batch: WriteBatch::default(),
            overlay: HashMap::new(),
            compacted: Vec::new(),
            compaction_pause: std::time::Duration::ZERO,
        }
    }

    /// The column family handle for `name`.
    pub fn cf(&self, name: &str) -> &'a rocksdb::ColumnFamily {
        let mvcc: &'a Mvcc = self.mvcc;
        mvcc.db().cf(name)
    }

    fn fetch(&self, rev: Rev) -> Result<Option<Record>, MvccError> {
        match self.overlay.get(&rev) {
            Some(r) => Ok(Some(r.clone())),
            None => self.st.record_at(self.mvcc, rev),
        }
    }

    /// Starts a write transaction at the next revision.
    pub fn txn(&mut self) -> WriteTxn<'_, 'a> {
        let begin_rev = self.st.current_rev;
        WriteTxn {
            b: self,
            begin_rev,
            sub: 0,
            events: Vec::new(),
        }
    }

    /// Compacts history up to `rev` (etcd's Compact): afterwards reads below `rev` fail. Only
    /// the index changes here; the dropped records are deleted from RocksDB in the background
    /// once this batch is written (see `compactor`), so the applier is not held for them.
    pub fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        if rev <= self.st.compact_rev {
            return Err(MvccError::Compacted);
        }
        if rev > self.st.current_rev {
            return Err(MvccError::FutureRev);
        }
        let started = std::time::Instant::now();
        let dropped = self.st.compact_index(rev);
        self.compacted.extend(dropped);
        self.st.compact_rev = rev;
        self.compaction_pause += started.elapsed();
        Ok(())
    }

    /// Time spent compacting the index in this batch (the applier held meanwhile).
    pub fn compaction_pause(&self) -> Option<std::time::Duration> {
        (!self.compaction_pause.is_zero()).then_some(self.compaction_pause)
    }

    /// Writes the batch (with the current and compact revisions) to RocksDB and releases the
    /// state lock. Not synced: the next Raft log append, synced, shares the WAL.
    pub fn commit(mut self) -> Result<(), MvccError> {
        let meta = self.mvcc.db().cf(CF_META);
        self.batch
            .put_cf(meta, META_CURRENT_REV, self.st.current_rev.to_be_bytes());
        self.batch
            .put_cf(meta, META_COMPACT_REV, self.st.compact_rev.to_be_bytes());
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(false);
        self.mvcc
            .db()
            .raw()
            .write_opt(std::mem::take(&mut self.batch), &opts)?;
        self.mvcc
            .compactor
            .schedule(std::mem::take(&mut self.compacted));
        Ok(())
    }
}

/// One write transaction: all its changes share one main revision.
pub struct WriteTxn<'b, 'a> {
    b: &'b mut ApplyBatch<'a>,
    begin_rev: i64,
    sub: i64,
    /// Events produced so far, in order.
    pub events: Vec<Event>,
}

impl WriteTxn<'_, '_> {
    /// The revision reads in this transaction see (its own earlier changes included).
    fn read_rev(&self) -> i64 {
        if self.sub > 0 {
            self.begin_rev + 1
        } else {
            self.begin_rev
        }
    }

    /// The revision this transaction writes at.
    pub fn write_rev(&self) -> i64 {
        self.begin_rev + 1
    }

    /// The store revision as this transaction leaves it (unchanged if it wrote nothing).
    pub fn rev(&self) -> i64 {
        self.read_rev()
    }

    /// A Range read inside the transaction.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        range_with(&self.b.st, self.read_rev(), req, |rev| self.b.fetch(rev))
    }

    /// The live value of one key inside the transaction.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, MvccError> {
        let Some(rev) = self
            .b
            .st
            .index
            .get(key)
            .and_then(|i| i.visible_at(self.read_rev()))
        else {
            return Ok(None);
        };
        Ok(self.b.fetch(rev)?.map(|r| r.kv))
    }

    /// The live keys in an interval inside the transaction.
    pub fn keys_in(&self, key: &[u8], range_end: &[u8]) -> Vec<Vec<u8>> {
        let at = self.read_rev();
        match key_range(key, range_end) {
            Some(bounds) => self
                .b
                .st
                .index
                .range(bounds)
                .filter(|(_, i)| i.visible_at(at).is_some())
                .map(|(k, _)| k.clone())
                .collect(),
            None => Vec::new(),
        }
    }

    fn next_rev(&mut self) -> Rev {
        let rev = Rev {
            main: self.begin_rev + 1,
            sub: self.sub,
        };
        self.sub += 1;
        rev
    }

    fn write(&mut self, rev: Rev, rec: Record) {
        let kv = self.b.mvcc.db().cf(CF_KV);
        let bytes = rec.encode();
        self.b.mvcc.add_bytes((bytes.len() + 16) as u64);
        self.b.batch.put_cf(kv, rev.to_key(), bytes);
        let st = &mut *self.b.st;
        let idx = st.index.entry(rec.kv.key.clone()).or_default();
        let replaced = idx.newest();
        idx.push(rev, rec.tombstone);
        st.live.wrote(replaced, rev, &rec);
        self.b.overlay.insert(rev, rec);
    }

    /// Puts `key`; returns the previous live value.
    pub fn put(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        lease: i64,
    ) -> Result<Option<KeyValue>, MvccError> {
        let prev = self.get(key)?;
        let rev = self.next_rev();
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(rev.main, |p| p.create_revision),
            mod_revision: rev.main,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        self.write(
            rev,
            Record {
                tombstone: false,
                kv: kv.clone(),
            },
        );
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: prev.clone(),
        });
        Ok(prev)
    }

    /// Deletes every live key in the interval; returns the deleted values.
    pub fn delete_range(
        &mut self,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<Vec<KeyValue>, MvccError> {
        let mut deleted = Vec::new();
        for k in self.keys_in(key, range_end) {
            let Some(prev) = self.get(&k)? else { continue };
            let rev = self.next_rev();
            let kv = KeyValue {
                key: k,
                mod_revision: rev.main,
                ..Default::default()
            };
            self.write(
                rev,
                Record {
                    tombstone: true,
                    kv: kv.clone(),
                },
            );
            self.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(kv),
                prev_kv: Some(prev.clone()),
            });
            deleted.push(prev);
        }
        Ok(deleted)
    }

    /// Ends the transaction: the revision it produced (if it wrote) and its events.
    pub fn end(self) -> (i64, Vec<Event>) {
        if self.sub > 0 {
            self.b.st.current_rev = self.begin_rev + 1;
        }
        (self.b.st.current_rev, self.events)
    }
}
