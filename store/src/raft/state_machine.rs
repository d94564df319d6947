//! The Raft state machine: the MVCC key space, leases and cluster metadata, applied from the
//! log in one RocksDB write batch per call together with the last applied log id and the
//! membership.

// openraft's storage traits fix the error type (`StorageError`, over 200 bytes).
#![allow(clippy::result_large_err)]

use std::io::Seek;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{AnyError, EntryPayload, StorageIOError};
use parking_lot::RwLock;

use super::snapshot;
use super::{
    LogDurability, LogId, Member, SnapshotData, StorageError, StoredMembership, TypeConfig,
};
use crate::apply::{self, ApplyCtx, ClusterMeta};
use crate::codec;
use crate::db::Db;
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::{ApplyBatch, Mvcc};
use crate::schema::{CF_META, META_CLUSTER, META_LAST_APPLIED, META_MEMBERSHIP};
use crate::waiting::{Appends, Waiting};
use crate::watch::WatchHub;

type Entry = openraft::Entry<TypeConfig>;

/// What the state machine maintains and the servers read.
pub struct StoreState {
    /// The key space.
    pub mvcc: Mvcc,
    /// Leases.
    pub lessor: Lessor,
    /// Alarms and members' attributes.
    pub cluster: RwLock<ClusterMeta>,
    /// Applied events for watchers.
    pub hub: WatchHub,
    /// Proposers on this member waiting for their entries' results.
    pub waiting: Waiting,
    /// As leader: forwarded entries waiting to be appended (the log store reports them).
    pub appends: Arc<Appends>,
    /// The index of the last log entry applied.
    applied: tokio::sync::watch::Sender<u64>,
}

impl StoreState {
    /// Loads everything from the database.
    pub fn load(db: Arc<Db>) -> anyhow::Result<StoreState> {
        let mvcc = Mvcc::open(db.clone())?;
        let lessor = Lessor::load(&db, mvcc.live_keys_with_lease()?).map_err(anyhow::Error::msg)?;
        let cluster = read_cluster_meta(&db)?;
        let applied = tokio::sync::watch::Sender::new(0);
        Ok(StoreState {
            mvcc,
            lessor,
            cluster: RwLock::new(cluster),
            hub: WatchHub::default(),
            waiting: Waiting::default(),
            appends: Arc::new(Appends::default()),
            applied,
        })
    }

    fn set_applied(&self, last: Option<LogId>) {
        self.applied
            .send_replace(last.map(|l| l.index).unwrap_or(0));
    }

    /// The index of the last log entry applied here.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }
}

fn read_cluster_meta(db: &Db) -> anyhow::Result<ClusterMeta> {
    Ok(match db.raw().get_cf(db.cf(CF_META), META_CLUSTER)? {
        Some(b) => ClusterMeta::decode(&b)?,
        None => ClusterMeta::default(),
    })
}

/// The openraft state machine over [`StoreState`].
pub struct StateMachine {
    state: Arc<StoreState>,
    db: Arc<Db>,
    metrics: Arc<Metrics>,
    files: SnapshotFiles,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    durability: LogDurability,
}

/// How long `apply` waits for the log flusher before syncing the log itself.
const DURABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl StateMachine {
    /// The state machine of a member whose snapshots live in `snap_dir`.
    /// It applies an entry only once `durability` says the log holds it on disk.
    pub fn new(
        state: Arc<StoreState>,
        db: Arc<Db>,
        metrics: Arc<Metrics>,
        snap_dir: PathBuf,
        durability: LogDurability,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&snap_dir)?;
        // A snapshot file of the builds before snapshots were streamed (meta and data in
        // one file): Raft builds a new one when it needs one.
        let old = snap_dir.join("current.snap");
        if old.exists() {
            tracing::info!(path = %old.display(), "removing a snapshot of an older format");
            std::fs::remove_file(&old)?;
        }
        let meta = db.cf(CF_META);
        let last_applied = match db.raw().get_cf(meta, META_LAST_APPLIED)? {
            Some(b) => codec::decode(&b)?,
            None => None,
        };
        let membership = match db.raw().get_cf(meta, META_MEMBERSHIP)? {
            Some(b) => codec::decode(&b)?,
            None => StoredMembership::default(),
        };
        state.set_applied(last_applied);
        Ok(StateMachine {
            state,
            db,
            metrics,
            files: SnapshotFiles(snap_dir),
            last_applied,
            membership,
            durability,
        })
    }
}

fn sm_write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            if let Some(at) = self.durability.appended_at(last.log_id.index) {
                self.metrics
                    .append_to_apply
                    .observe(at.elapsed().as_secs_f64());
            }
            // A leader may count its own entries committed before they are on its disk
            // (see LogDurability); nothing is applied, so acknowledged, before they are.
            if !self.durability.wait(last.log_id.index, DURABLE_WAIT).await {
                self.db.raw().flush_wal(true).map_err(sm_write_err)?;
            }
        }
        let state = self.state.clone();
        let started = std::time::Instant::now();
        let mut batch = ApplyBatch::begin(&state.mvcc);
        let mut meta = state.cluster.read().clone();
        let mut ctx = ApplyCtx {
            lessor: &state.lessor,
            meta: &mut meta,
            meta_dirty: false,
        };
        let mut responses = Vec::new();
        let mut answers = Vec::new();
        let mut published = Vec::new();
        let mut commands = 0usize;
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(()),
                EntryPayload::Normal(proposed) => {
                    let mut results = Vec::with_capacity(proposed.cmds.len());
                    for cmd in &proposed.cmds {
                        let (mut applied, events) = apply::apply(&mut batch, &mut ctx, cmd);
                        applied.index = entry.log_id.index;
                        if !events.is_empty() {
                            published.push((applied.revision, events));
                        }
                        results.push(applied);
                    }
                    commands += results.len();
                    answers.push((proposed.proposer, proposed.ticket, results));
                    responses.push(());
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    responses.push(());
                }
            }
        }
        let meta_dirty = ctx.meta_dirty;
        let cf = batch.cf(CF_META);
        batch.batch.put_cf(
            cf,
            META_LAST_APPLIED,
            codec::encode(&self.last_applied).map_err(sm_write_err)?,
        );
        batch.batch.put_cf(
            cf,
            META_MEMBERSHIP,
            codec::encode(&self.membership).map_err(sm_write_err)?,
        );
        if meta_dirty {
            batch.batch.put_cf(
                cf,
                META_CLUSTER,
                codec::encode(&meta).map_err(sm_write_err)?,
            );
        }
        if let Some(pause) = batch.compaction_pause() {
            self.metrics.compaction_pause.observe(pause.as_secs_f64());
        }
        // An unsynced write (memtable and WAL buffer): shorter than handing this worker's
        // other tasks to another thread, which `block_in_place` would do on every apply.
        batch.commit().map_err(sm_write_err)?;
        if meta_dirty {
            *state.cluster.write() = meta;
        }
        self.metrics.applied.inc_by(commands as u64);
        self.metrics
            .backend_commit
            .observe(started.elapsed().as_secs_f64());
        state.set_applied(self.last_applied);
        state.hub.publish(published);
        for (proposer, ticket, results) in answers {
            state.waiting.answer(proposer, ticket, Ok(results));
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            files: self.files.clone(),
            metrics: self.metrics.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.files.receiving())
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Box::new(SnapshotData::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, Member>,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        let sig = Some(meta.signature());
        let write_err = |e: &dyn std::error::Error| {
            StorageIOError::write_snapshot(sig.clone(), AnyError::error(e))
        };
        // tokio's file writes in the background: wait until every chunk is on disk.
        snapshot.sync_all().await.map_err(|e| write_err(&e))?;
        let mut file = snapshot.into_std().await;
        file.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| write_err(&e))?;
        let state = self.state.clone();
        let db = self.db.clone();
        let started = std::time::Instant::now();
        // Reading the whole state into the database is long, blocking work.
        tokio::task::block_in_place(|| -> Result<(), StorageError> {
            let mut st = state.mvcc.state.write();
            let mut input = std::io::BufReader::new(&mut file);
            snapshot::install_from(&db, &mut input, &meta.last_log_id, &meta.last_membership)
                .map_err(|e| write_err(&e))?;
            state.mvcc.rebuild(&mut st).map_err(|e| write_err(&e))?;
            let keys = live_keys(&state, &st).map_err(|e| write_err(&e))?;
            state
                .lessor
                .reload(&db, keys)
                .map_err(|e| write_err(&codec::CodecError(e)))?;
            let cluster =
                read_cluster_meta(&db).map_err(|e| write_err(&codec::CodecError(e.to_string())))?;
            *state.cluster.write() = cluster;
            state.hub.reset(st.current_rev);
            Ok(())
        })?;
        self.metrics
            .snapshot_install
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            snapshot = %meta.snapshot_id,
            last_log_index = meta.last_log_id.map(|l| l.index).unwrap_or(0),
            revision = state.mvcc.current_rev(),
            "installed a snapshot from the leader"
        );
        self.last_applied = meta.last_log_id;
        state.set_applied(self.last_applied);
        self.membership = meta.last_membership.clone();
        // The received file becomes this member's current snapshot.
        self.files
            .keep(&self.files.receiving(), meta)
            .map_err(|e| write_err(&e))?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.files
            .current()
            .map_err(|e| StorageIOError::read_snapshot(None, &e).into())
    }
}

/// A member's snapshot files in its snapshot directory: the data of each snapshot in a file
/// named by its id, and `current.meta`, written last, saying which one is current. The data
/// is streamed from and to these files, never held in memory whole.
#[derive(Clone)]
struct SnapshotFiles(PathBuf);

impl SnapshotFiles {
    fn meta_path(&self) -> PathBuf {
        self.0.join("current.meta")
    }

    fn data_path(&self, snapshot_id: &str) -> PathBuf {
        self.0.join(format!("{snapshot_id}.data"))
    }

    /// Where a snapshot from the leader is received.
    fn receiving(&self) -> PathBuf {
        self.0.join("receiving.tmp")
    }

    /// Where a snapshot is built.
    fn building(&self) -> PathBuf {
        self.0.join("building.tmp")
    }

    /// Makes the finished data file `data` (synced) the current snapshot described by
    /// `meta`, and removes the data files of earlier ones. Returns where the data now is.
    fn keep(
        &self,
        data: &std::path::Path,
        meta: &SnapshotMeta<u64, Member>,
    ) -> std::io::Result<PathBuf> {
        let target = self.data_path(&meta.snapshot_id);
        std::fs::rename(data, &target)?;
        let bytes = codec::encode(meta).map_err(std::io::Error::other)?;
        let tmp = self.meta_path().with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.meta_path())?;
        std::fs::File::open(&self.0)?.sync_all()?;
        for entry in std::fs::read_dir(&self.0)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "data") && path != target {
                // A reader that opened it (a snapshot being sent) keeps its open file.
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(target)
    }

    /// The current snapshot, its data file open at the start; None before the first.
    fn current(&self) -> std::io::Result<Option<Snapshot<TypeConfig>>> {
        let bytes = match std::fs::read(self.meta_path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta: SnapshotMeta<u64, Member> =
            codec::decode(&bytes).map_err(std::io::Error::other)?;
        let file = std::fs::File::open(self.data_path(&meta.snapshot_id))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::from_std(file)),
        }))
    }
}

/// Live keys with their lease from a locked state (for the lessor after an install).
fn live_keys(
    state: &StoreState,
    st: &crate::mvcc::MvccState,
) -> Result<Vec<(Vec<u8>, i64)>, crate::mvcc::MvccError> {
    let mut out = Vec::new();
    for (key, idx) in &st.index {
        if let Some(rev) = idx.visible_at(st.current_rev) {
            if let Some(rec) = st.record_at(&state.mvcc, rev)? {
                if rec.kv.lease != 0 {
                    out.push((key.clone(), rec.kv.lease));
                }
            }
        }
    }
    Ok(out)
}

/// Builds snapshots from a RocksDB snapshot, apart from the applier.
pub struct SnapshotBuilder {
    db: Arc<Db>,
    files: SnapshotFiles,
    metrics: Arc<Metrics>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Copying the whole state is long, blocking work: keep it off the async workers.
        let started = std::time::Instant::now();
        let built = tokio::task::block_in_place(|| self.build_blocking())?;
        self.metrics
            .snapshot_build
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            snapshot = %built.meta.snapshot_id,
            seconds = started.elapsed().as_secs_f64(),
            "built a snapshot"
        );
        Ok(built)
    }
}

impl SnapshotBuilder {
    /// Streams a consistent copy of the state into a file, record by record.
    fn build_blocking(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let read_err =
            |e: &dyn std::error::Error| StorageIOError::read_state_machine(AnyError::error(e));
        let path = self.files.building();
        let file = std::fs::File::create(&path).map_err(|e| read_err(&e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, snapshot::PacedFile::new(file));
        let (last_applied, membership) =
            snapshot::write_to(&self.db, &mut out).map_err(|e| read_err(&e))?;
        let paced = out.into_inner().map_err(|e| read_err(e.error()))?;
        paced.finish().map_err(|e| read_err(&e))?;
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, rand::random::<u32>()),
            None => format!("0-0-{}", rand::random::<u32>()),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let data = self
            .files
            .keep(&path, &meta)
            .and_then(std::fs::File::open)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::from_std(data)),
        })
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;
    use prost::Message;
    use proto::etcdserverpb::PutRequest;

    use super::*;
    use crate::apply::{Command, Proposed};
    use crate::raft::LogStore;

    fn put(key: &str) -> Command {
        Command::Put(
            PutRequest {
                key: key.as_bytes().to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            }
            .encode_to_vec(),
        )
    }

    fn entry(index: u64, proposer: u64, ticket: u64, cmds: Vec<Command>) -> Entry {
        Entry {
            log_id: openraft::LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposed {
                proposer,
                ticket,
                cmds,
            }),
        }
    }

    /// A follower (member 7) forwarded an entry that the leader (member 1) appended: the
    /// follower's own apply answers its ticket with the results of its own state machine;
    /// an entry of another member with the same ticket number answers nothing here.
    #[tokio::test]
    async fn the_proposer_is_answered_by_its_own_apply() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("data")).expect("open db");
        let metrics = Arc::new(Metrics::new());
        let state = Arc::new(StoreState::load(db.clone()).expect("load state"));
        let log = LogStore::new(db.clone(), metrics.clone(), 7).expect("log store");
        let mut sm = StateMachine::new(
            state.clone(),
            db,
            metrics,
            dir.path().join("snap"),
            log.durability(),
        )
        .expect("state machine");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ticket = state.waiting.register(
            7,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        sm.apply(vec![
            entry(1, 1, ticket, vec![put("a")]),
            entry(2, 9, ticket, vec![put("b")]),
        ])
        .await
        .expect("applied");
        assert!(
            rx.try_recv().is_err(),
            "another member's entries are not ours"
        );
        assert_eq!(state.waiting.len(), 1);
        sm.apply(vec![entry(3, 7, ticket, vec![put("c"), put("d")])])
            .await
            .expect("applied");
        let results = rx.try_recv().expect("answered").expect("results");
        assert_eq!(
            results
                .iter()
                .map(|a| (a.revision, a.index))
                .collect::<Vec<_>>(),
            [(4, 3), (5, 3)]
        );
        assert!(results.iter().all(|a| a.result.is_ok()));
        assert!(state.waiting.is_empty());
        assert_eq!(state.applied_index(), 3);
    }
}
