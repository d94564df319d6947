//! Deleting compacted records in the background, as etcd's compactor does.
//!
//! Applying a compaction only drops the revisions from the in-memory index (readers below the
//! compaction point are refused from then on, and nothing else reaches those records). The
//! records themselves are deleted from RocksDB here, on a thread of their own, in batches of
//! [`BATCH`] with a pause between them, so a compaction of hundreds of thousands of revisions
//! does not hold the applier, and every write waiting behind it, for seconds.
//!
//! A record not deleted yet when the member stops is found again at the next start (the
//! index rebuild compacts at the stored compaction revision and deletes what it drops).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{MvccError, Rev};
use crate::db::Db;
use crate::schema::CF_KV;

/// Records deleted per RocksDB write (etcd's `--experimental-compaction-batch-limit`).
const BATCH: usize = 1000;
/// The pause between two batches (etcd's `--experimental-compaction-sleep-interval`).
const PAUSE: Duration = Duration::from_millis(10);

/// What the deleting thread and the key space share.
struct Shared {
    db: Arc<Db>,
    /// The key space's retained bytes (see `Mvcc::bytes`), lowered as records go.
    bytes: Arc<AtomicU64>,
    /// The key space's generation: a job of an older one (scheduled before the data was
    /// replaced by a snapshot) is dropped. Held while a batch is written, so a reload never
    /// interleaves with a batch.
    generation: Mutex<u64>,
    /// Revisions scheduled and not yet deleted.
    pending: AtomicU64,
    /// Revisions deleted since start.
    deleted: AtomicU64,
    /// Jobs scheduled since start (each job's number).
    scheduled: AtomicU64,
    /// The number of the last job done with (deleted, or dropped with its generation).
    finished: AtomicU64,
}

/// One compaction's dropped revisions.
struct Job {
    number: u64,
    generation: u64,
    revs: Vec<Rev>,
}

/// The background deleter of compacted records; stops (after its queue) when dropped.
pub struct Compactor {
    shared: Arc<Shared>,
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Compactor {
    /// Starts the deleting thread for `db`, lowering `bytes` as it deletes.
    pub fn start(db: Arc<Db>, bytes: Arc<AtomicU64>) -> Result<Compactor, MvccError> {
        let shared = Arc::new(Shared {
            db,
            bytes,
            generation: Mutex::new(0),
            pending: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            scheduled: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        });
        let (tx, rx) = channel();
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mvcc-compactor".into())
            .spawn(move || run(&worker, rx))
            .map_err(|e| MvccError::Storage(format!("starting the compactor: {e}")))?;
        Ok(Compactor {
            shared,
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Schedules the deletion of `revs`, whose records are in RocksDB already.
    pub fn schedule(&self, revs: Vec<Rev>) {
        if revs.is_empty() {
            return;
        }
        let generation = *self.shared.generation.lock();
        self.shared
            .pending
            .fetch_add(revs.len() as u64, Ordering::Relaxed);
        let number = self.shared.scheduled.fetch_add(1, Ordering::AcqRel) + 1;
        let job = Job {
            number,
            generation,
            revs,
        };
        if let Some(tx) = self.jobs.lock().as_ref() {
            if let Err(returned) = tx.send(job) {
                // The thread is gone (it only ends when the sender is dropped): delete here.
                let job = returned.0;
                delete_now(&self.shared, &job.revs);
                self.shared
                    .pending
                    .fetch_sub(job.revs.len() as u64, Ordering::Relaxed);
                self.shared.finished.store(job.number, Ordering::Release);
            }
        }
    }

    /// The number of the last compaction scheduled: once [`Compactor::finished`] reaches it,
    /// every compaction applied so far is physically done (etcd's `physical` compaction).
    pub fn scheduled(&self) -> u64 {
        self.shared.scheduled.load(Ordering::Acquire)
    }

    /// The number of the last compaction whose records are deleted.
    pub fn finished(&self) -> u64 {
        self.shared.finished.load(Ordering::Acquire)
    }

    /// Starts a new generation: jobs scheduled before are dropped, and none is being written
    /// while `replace` runs (it rewrites the key space).
    pub fn new_generation<T>(&self, replace: impl FnOnce() -> T) -> T {
        let mut generation = self.shared.generation.lock();
        *generation += 1;
        self.shared.pending.store(0, Ordering::Relaxed);
        replace()
    }

    /// Revisions scheduled for deletion and not deleted yet.
    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Revisions deleted since start.
    pub fn deleted(&self) -> u64 {
        self.shared.deleted.load(Ordering::Relaxed)
    }

    /// Deletes `revs` at once (at start, when the index rebuild finds them).
    pub fn delete_now(&self, revs: &[Rev]) {
        delete_now(&self.shared, revs);
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.jobs.lock().take();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let started = Instant::now();
        let mut deleted = 0usize;
        for chunk in job.revs.chunks(BATCH) {
            {
                let generation = shared.generation.lock();
                if *generation != job.generation {
                    tracing::info!("dropping a compaction's deletions: the key space was replaced");
                    break;
                }
                if let Err(e) = delete_batch(shared, chunk) {
                    // The records stay: invisible to readers (below the compaction point),
                    // and deleted again by the next start's rebuild.
                    tracing::warn!(error = %e, "deleting compacted records failed");
                    break;
                }
                shared
                    .pending
                    .fetch_sub(chunk.len() as u64, Ordering::Relaxed);
            }
            deleted += chunk.len();
            if deleted < job.revs.len() {
                std::thread::sleep(PAUSE);
            }
        }
        tracing::info!(
            revisions = deleted,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "deleted compacted records"
        );
        shared.finished.store(job.number, Ordering::Release);
    }
}

fn delete_now(shared: &Shared, revs: &[Rev]) {
    for chunk in revs.chunks(BATCH) {
        if let Err(e) = delete_batch(shared, chunk) {
            tracing::warn!(error = %e, "deleting compacted records failed");
            return;
        }
    }
}

/// Deletes the records of `revs` in one unsynced write (the next synced Raft append shares
/// the WAL), lowering the retained bytes by their sizes.
fn delete_batch(shared: &Shared, revs: &[Rev]) -> Result<(), MvccError> {
    let raw = shared.db.raw();
    let kv = shared.db.cf(CF_KV);
    let mut batch = rocksdb::WriteBatch::default();
    let mut freed = 0u64;
    for rev in revs {
        let key = rev.to_key();
        if let Some(v) = raw.get_pinned_cf(kv, key)? {
            freed += (v.len() + key.len()) as u64;
        }
        batch.delete_cf(kv, key);
    }
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(false);
    raw.write_opt(batch, &opts)?;
    let _ = shared
        .bytes
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
            Some(b.saturating_sub(freed))
        });
    shared
        .deleted
        .fetch_add(revs.len() as u64, Ordering::Relaxed);
    Ok(())
}
