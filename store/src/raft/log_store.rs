//! The Raft log and vote in RocksDB (`logs` and `raft` column families).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{StorageIOError, Vote};

use super::{LogId, StorageError, TypeConfig};
use crate::codec;
use crate::db::{Db, CF_LOGS, CF_RAFT};
use crate::metrics::Metrics;

type Entry = openraft::Entry<TypeConfig>;

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

/// The log store; cheap to clone (the log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    flusher: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
}

/// Group commit: appends are written to RocksDB unsynced (readable at once, as openraft
/// requires) and their callbacks queued here; one thread syncs the WAL once for everything
/// queued and then reports each append durable, in order. So the leader replicates while its
/// own sync is under way, and concurrent appends share one fsync.
fn spawn_flusher(db: Arc<Db>, metrics: Arc<Metrics>) -> std::sync::mpsc::Sender<LogFlushed<TypeConfig>> {
    let (tx, rx) = std::sync::mpsc::channel::<LogFlushed<TypeConfig>>();
    let spawned = std::thread::Builder::new().name("wal-flusher".into()).spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut pending = vec![first];
            pending.extend(rx.try_iter());
            let started = Instant::now();
            let res = db.raw().flush_wal(true);
            metrics.wal_fsync.observe(started.elapsed().as_secs_f64());
            for cb in pending {
                // Durability point: openraft acknowledges an entry only after this callback.
                cb.log_io_completed(res.clone().map_err(|e| std::io::Error::other(e.to_string())));
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the WAL flusher thread: {e}");
    }
    tx
}

fn index_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

impl LogStore {
    /// A log store on the member database.
    pub fn new(db: Arc<Db>, metrics: Arc<Metrics>) -> LogStore {
        let flusher = spawn_flusher(db.clone(), metrics.clone());
        LogStore { db, flusher }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let raw = self.db.raw().get_cf(self.db.cf(CF_RAFT), key).map_err(|e| StorageIOError::read(&e))?;
        raw.map(|b| codec::decode(&b).map_err(|e| StorageIOError::read(&e).into())).transpose()
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], v: &T, sync: bool) -> Result<(), StorageError> {
        let bytes = codec::encode(v).map_err(|e| StorageIOError::write(&e))?;
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(sync);
        self.db.raw().put_cf_opt(self.db.cf(CF_RAFT), key, bytes, &opts).map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => *i + 1,
            Bound::Unbounded => 0,
        };
        let from = index_key(start);
        let iter = self
            .db
            .raw()
            .iterator_cf(self.db.cf(CF_LOGS), rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward));
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let idx = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| StorageIOError::read_logs(&codec::CodecError("bad log key".into())))?);
            if !range.contains(&idx) {
                break;
            }
            out.push(codec::decode::<Entry>(&v).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(KEY_PURGED)?;
        let mut iter = self.db.raw().iterator_cf(self.db.cf(CF_LOGS), rocksdb::IteratorMode::End);
        let last = match iter.next() {
            Some(item) => {
                let (_, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                Some(codec::decode::<Entry>(&v).map_err(|e| StorageIOError::read_logs(&e))?.log_id)
            }
            None => last_purged,
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        // The vote must survive a crash before we answer the candidate.
        self.put_meta(KEY_VOTE, vote, true).map_err(|_| StorageIOError::write_vote(&codec::CodecError("vote".into())).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put_meta(KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let cf = self.db.cf(CF_LOGS);
        let mut batch = rocksdb::WriteBatch::default();
        for e in entries {
            let bytes = codec::encode(&e).map_err(|err| StorageIOError::write_logs(&err))?;
            batch.put_cf(cf, index_key(e.log_id.index), bytes);
        }
        // Written unsynced; the flusher makes it durable before openraft counts it.
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(false);
        if let Err(e) = self.db.raw().write_opt(batch, &opts) {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(StorageIOError::write_logs(&e).into());
        }
        if let Err(std::sync::mpsc::SendError(cb)) = self.flusher.send(callback) {
            // No flusher thread: sync here.
            let res = self.db.raw().flush_wal(true);
            cb.log_io_completed(res.clone().map_err(|e| std::io::Error::other(e.to_string())));
            res.map_err(|e| StorageIOError::write_logs(&e))?;
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cf = self.db.cf(CF_LOGS);
        self.db
            .raw()
            .delete_range_cf(cf, &index_key(log_id.index)[..], &[0xffu8; 9][..])
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.db.raw().flush_wal(true).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // State-machine writes are not synced on their own; make them durable before the
        // log entries that could replay them go away.
        self.db.raw().flush_wal(true).map_err(|e| StorageIOError::write_logs(&e))?;
        self.put_meta(KEY_PURGED, &log_id, true)?;
        let cf = self.db.cf(CF_LOGS);
        self.db
            .raw()
            .delete_range_cf(cf, index_key(0), index_key(log_id.index + 1))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
