//! The Raft log and vote in RocksDB (`logs` and `raft` column families, see `schema`).

// openraft's storage traits fix the error type (`StorageError`, over 200 bytes).
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{StorageIOError, Vote};

use super::{LogId, StorageError, TypeConfig};
use crate::codec;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::schema::{log_index, log_key, CF_LOGS, CF_RAFT, RAFT_LAST_PURGED, RAFT_VOTE};
use crate::waiting::Appends;

type Entry = openraft::Entry<TypeConfig>;

/// The log store; cheap to clone (the log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    /// This member's ID: appends of the entries it proposes as leader are told apart.
    id: u64,
    /// The vote as last saved.
    vote: Arc<Mutex<Option<Vote<u64>>>>,
    flusher: std::sync::mpsc::Sender<Queued>,
    durability: LogDurability,
    metrics: Arc<Metrics>,
    /// Forwarded entries waited for by the leader's peer service: reported once appended.
    appends: Arc<Appends>,
}

/// A leader's append waiting for the WAL sync (already reported to openraft).
struct Queued {
    /// Index of the last entry appended.
    upto: u64,
    /// The truncation generation it was written in.
    generation: u64,
}

/// How far this member's log is on disk: every entry up to [`LogDurability::synced`] is.
///
/// A leader reports its own appends to openraft before they are synced, so that it
/// replicates while its own sync runs, in parallel with the followers' (as etcd's leader
/// does). openraft may then count an entry committed while the leader's copy is still
/// in flight; to keep "nothing is applied or acknowledged before a quorum holds it on disk",
/// the state machine applies an entry only once it is synced here, and the leader tells
/// followers a commit index no further than its synced log (see the network).
#[derive(Clone)]
pub struct LogDurability {
    synced: Arc<tokio::sync::watch::Sender<Synced>>,
    /// The index of the newest entry this member appended as leader, and when: the start of
    /// the write-path timings (`store_replication_send_lag_seconds`, `store_append_to_apply_seconds`).
    newest: Arc<parking_lot::Mutex<Option<(u64, Instant)>>>,
}

#[derive(Clone, Copy)]
struct Synced {
    /// Counts truncations: a sync of appends queued before one says nothing of the entries
    /// written at those indexes since.
    generation: u64,
    index: u64,
}

impl LogDurability {
    fn new(index: u64) -> LogDurability {
        LogDurability {
            synced: Arc::new(tokio::sync::watch::Sender::new(Synced {
                generation: 0,
                index,
            })),
            newest: Arc::new(parking_lot::Mutex::new(None)),
        }
    }

    /// When this member, as leader, appended the entry at `index`, if that is its newest.
    pub fn appended_at(&self, index: u64) -> Option<Instant> {
        match *self.newest.lock() {
            Some((newest, at)) if newest == index => Some(at),
            _ => None,
        }
    }

    /// Index up to which the log is on disk.
    pub fn synced(&self) -> u64 {
        self.synced.borrow().index
    }

    fn generation(&self) -> u64 {
        self.synced.borrow().generation
    }

    /// Appends of `generation` are on disk up to `index`.
    fn raise(&self, generation: u64, index: u64) {
        self.synced.send_if_modified(|s| {
            let raised = s.generation == generation && index > s.index;
            if raised {
                s.index = index;
            }
            raised
        });
    }

    /// The log was truncated and synced: it is on disk up to `index`.
    fn truncated(&self, index: u64) {
        self.synced.send_modify(|s| {
            s.generation += 1;
            s.index = index;
        });
    }

    /// Waits until the log is on disk up to `index`, for at most `timeout`; true if it is.
    pub async fn wait(&self, index: u64, timeout: std::time::Duration) -> bool {
        if self.synced() >= index {
            return true;
        }
        let mut rx = self.synced.subscribe();
        let synced = tokio::time::timeout(timeout, rx.wait_for(|s| s.index >= index)).await;
        matches!(synced, Ok(Ok(_)))
    }
}

/// Group commit for the leader's own appends: they are written to RocksDB unsynced (readable
/// at once, as openraft requires) and queued here; one thread syncs the WAL once for
/// everything queued and records how far the log is on disk.
fn spawn_flusher(
    db: Arc<Db>,
    metrics: Arc<Metrics>,
    durability: LogDurability,
) -> std::sync::mpsc::Sender<Queued> {
    let (tx, rx) = std::sync::mpsc::channel::<Queued>();
    let spawned = std::thread::Builder::new()
        .name("wal-flusher".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut pending = vec![first];
                pending.extend(rx.try_iter());
                let started = Instant::now();
                let res = db.raw().flush_wal(true);
                metrics.wal_fsync.observe(started.elapsed().as_secs_f64());
                if let Err(e) = res {
                    // The appends were already reported; their entries can no longer be made
                    // durable. etcd stops on a failed WAL sync too.
                    tracing::error!("cannot sync the Raft log (WAL): {e}; stopping");
                    std::process::exit(1);
                }
                for q in &pending {
                    durability.raise(q.generation, q.upto);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the WAL flusher thread: {e}");
    }
    tx
}

fn decode_index(k: &[u8]) -> Result<u64, StorageError> {
    log_index(k)
        .ok_or_else(|| StorageIOError::read_logs(&codec::CodecError("bad log key".into())).into())
}

impl LogStore {
    /// The log store of member `id` on the member database. Syncs the WAL first: whatever
    /// the log holds at start is on disk.
    pub fn new(db: Arc<Db>, metrics: Arc<Metrics>, id: u64) -> Result<LogStore, StorageError> {
        db.raw()
            .flush_wal(true)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let synced = {
            let mut last = db
                .raw()
                .iterator_cf(db.cf(CF_LOGS), rocksdb::IteratorMode::End);
            match last.next() {
                Some(item) => {
                    let (k, _) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                    decode_index(&k)?
                }
                None => 0,
            }
        };
        let durability = LogDurability::new(synced);
        let flusher = spawn_flusher(db.clone(), metrics.clone(), durability.clone());
        Ok(LogStore {
            db,
            id,
            vote: Arc::new(Mutex::new(None)),
            flusher,
            durability,
            metrics,
            appends: Arc::new(Appends::default()),
        })
    }

    /// Reports the forwarded entries this member appends as leader to `appends`.
    pub fn with_appends(mut self, appends: Arc<Appends>) -> LogStore {
        self.appends = appends;
        self
    }

    /// How far the log is on disk.
    pub fn durability(&self) -> LogDurability {
        self.durability.clone()
    }

    /// Whether `last` was proposed by this member as the leader it currently is: its own
    /// vote is the last one saved and the entry carries it.
    fn own_leader_entry(&self, last: &LogId) -> bool {
        match &*self.vote.lock() {
            Some(v) => v.leader_id().node_id == self.id && last.leader_id == *v.leader_id(),
            None => false,
        }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        let raw = self
            .db
            .raw()
            .get_cf(self.db.cf(CF_RAFT), key)
            .map_err(|e| StorageIOError::read(&e))?;
        raw.map(|b| codec::decode(&b).map_err(|e| StorageIOError::read(&e).into()))
            .transpose()
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        v: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let bytes = codec::encode(v).map_err(|e| StorageIOError::write(&e))?;
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(sync);
        self.db
            .raw()
            .put_cf_opt(self.db.cf(CF_RAFT), key, bytes, &opts)
            .map_err(|e| StorageIOError::write(&e))?;
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
        let from = log_key(start);
        let iter = self.db.raw().iterator_cf(
            self.db.cf(CF_LOGS),
            rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let idx = decode_index(&k)?;
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
        let last_purged: Option<LogId> = self.get_meta(RAFT_LAST_PURGED)?;
        let mut iter = self
            .db
            .raw()
            .iterator_cf(self.db.cf(CF_LOGS), rocksdb::IteratorMode::End);
        let last = match iter.next() {
            Some(item) => {
                let (_, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                Some(
                    codec::decode::<Entry>(&v)
                        .map_err(|e| StorageIOError::read_logs(&e))?
                        .log_id,
                )
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        // The vote must survive a crash before we answer the candidate.
        self.put_meta(RAFT_VOTE, vote, true)
            .map_err(|_| StorageIOError::write_vote(&codec::CodecError("vote".into())))?;
        *self.vote.lock() = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        let vote: Option<Vote<u64>> = self.get_meta(RAFT_VOTE)?;
        *self.vote.lock() = vote;
        Ok(vote)
    }

    // The committed log id is not saved (openraft's default): the state machine saves its
    // last applied id with every batch, and a restarted member learns how far the log is
    // committed from the leader. Saving it was one more RocksDB write per commit.

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let cf = self.db.cf(CF_LOGS);
        let mut batch = rocksdb::WriteBatch::default();
        let mut last = None;
        // Entries forwarded by followers, when someone waits for them (a leader's appends).
        let waited = !self.appends.is_empty();
        let mut forwarded = Vec::new();
        for e in entries {
            let bytes = codec::encode(&e).map_err(|err| StorageIOError::write_logs(&err))?;
            batch.put_cf(cf, log_key(e.log_id.index), bytes);
            if let (true, openraft::EntryPayload::Normal(p)) = (waited, &e.payload) {
                if p.proposer != self.id {
                    forwarded.push((p.proposer, p.ticket, e.log_id.index));
                }
            }
            last = Some(e.log_id);
        }
        let Some(last) = last else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        // Written unsynced; the flusher makes it durable.
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(false);
        if let Err(e) = self.db.raw().write_opt(batch, &opts) {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(StorageIOError::write_logs(&e).into());
        }
        if !self.own_leader_entry(&last) {
            // A follower's append: openraft waits for it before the next one, so there is
            // nothing to group with. The sync runs on the blocking pool: on this worker it
            // would hold back every task queued behind Raft's (the apply of the commit
            // handed over just before, the client requests), and the worker's last woken
            // task cannot be stolen by the other worker meanwhile.
            let started = Instant::now();
            let db = self.db.clone();
            let res = match tokio::task::spawn_blocking(move || db.raw().flush_wal(true)).await {
                Ok(res) => res.map_err(|e| e.to_string()),
                Err(e) => Err(format!("WAL sync task: {e}")),
            };
            self.metrics
                .wal_fsync
                .observe(started.elapsed().as_secs_f64());
            if res.is_ok() {
                self.durability
                    .raise(self.durability.generation(), last.index);
            }
            callback.log_io_completed(res.clone().map_err(std::io::Error::other));
            return res.map_err(|e| StorageIOError::write_logs(&std::io::Error::other(e)).into());
        }
        *self.durability.newest.lock() = Some((last.index, Instant::now()));
        // A leader's own entries are reported at once (see LogDurability) and synced by the
        // flusher, which groups concurrent appends into one sync.
        callback.log_io_completed(Ok(()));
        for (proposer, ticket, index) in forwarded {
            self.appends.appended(proposer, ticket, index);
        }
        let queued = Queued {
            upto: last.index,
            generation: self.durability.generation(),
        };
        if let Err(std::sync::mpsc::SendError(q)) = self.flusher.send(queued) {
            // No flusher thread: sync here.
            self.db
                .raw()
                .flush_wal(true)
                .map_err(|e| StorageIOError::write_logs(&e))?;
            self.durability.raise(q.generation, q.upto);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cf = self.db.cf(CF_LOGS);
        self.db
            .raw()
            .delete_range_cf(cf, &log_key(log_id.index)[..], &[0xffu8; 9][..])
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.db
            .raw()
            .flush_wal(true)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // All that is left is on disk; entries appended at these indexes count once synced.
        self.durability.truncated(log_id.index.saturating_sub(1));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // State-machine writes are not synced on their own; make them durable before the
        // log entries that could replay them go away.
        self.db
            .raw()
            .flush_wal(true)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.put_meta(RAFT_LAST_PURGED, &log_id, true)?;
        let cf = self.db.cf(CF_LOGS);
        self.db
            .raw()
            .delete_range_cf(cf, log_key(0), log_key(log_id.index + 1))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::LogDurability;

    #[tokio::test]
    async fn a_sync_queued_before_a_truncation_does_not_count_after_it() {
        let d = LogDurability::new(5);
        let before = d.generation();
        d.raise(before, 9);
        assert_eq!(d.synced(), 9);
        // Entries 8.. were truncated; the log is on disk up to 7.
        d.truncated(7);
        // A sync of appends queued before the truncation says nothing of what is at 8.. now.
        d.raise(before, 12);
        assert_eq!(d.synced(), 7);
        d.raise(d.generation(), 8);
        assert_eq!(d.synced(), 8);
        // Never lowered by a late report.
        d.raise(d.generation(), 6);
        assert_eq!(d.synced(), 8);
    }

    #[tokio::test]
    async fn wait_returns_once_synced_or_after_the_timeout() {
        let d = LogDurability::new(1);
        assert!(d.wait(1, Duration::ZERO).await);
        assert!(!d.wait(3, Duration::from_millis(20)).await);
        let raiser = d.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            raiser.raise(raiser.generation(), 3);
        });
        assert!(d.wait(3, Duration::from_secs(5)).await);
    }
}
