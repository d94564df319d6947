//! Consistent copies of a member's state: for Raft snapshot transfer, for `etcdctl snapshot
//! save` backups, and for `store snapshot restore`.
//!
//! A snapshot holds the key space, the leases and the state-machine metadata as they are in
//! one RocksDB snapshot. Backups add a SHA-256 of the payload at the end, as etcd's do; that
//! file format is the `store-backup` crate's, which clients use without the database.
//! Raft snapshots and backups are streamed record by record between the database and a file
//! ([`write_to`], [`install_from`], [`restore_from`]): a copy of a large key space is never
//! held in memory twice (a Raft snapshot installs as one atomic write batch; a restore, into
//! a new database, writes bounded batches).

use serde::{Deserialize, Serialize};

use super::{LogId, StoredMembership};
use crate::codec;
use crate::db::Db;
use crate::schema::{CF_KV, CF_LEASE, CF_META, LOCAL_META, META_LAST_APPLIED, META_MEMBERSHIP};

/// The content of a snapshot, whole (the tests' reference for the streamed format).
#[cfg(test)]
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct Payload {
    /// The last applied log id and membership stored with the data.
    pub last_applied: Option<LogId>,
    /// Membership as of `last_applied`.
    pub membership: StoredMembership,
    /// Records of the `kv` column family.
    pub kv: Vec<(Vec<u8>, Vec<u8>)>,
    /// Records of the `lease` column family.
    pub lease: Vec<(Vec<u8>, Vec<u8>)>,
    /// Replicated metadata records.
    pub meta: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Errors making or reading snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// RocksDB failed.
    #[error("snapshot storage: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A record did not decode.
    #[error("snapshot: {0}")]
    Codec(#[from] codec::CodecError),
    /// A backup file whose checksum does not match.
    #[error(transparent)]
    Backup(#[from] store_backup::BackupError),
}

/// Reads a consistent payload from the database, whole (the tests' reference for
/// [`write_to`], which streams it).
#[cfg(test)]
pub fn capture(db: &Db) -> Result<Payload, SnapshotError> {
    let raw = db.raw();
    let snap = raw.snapshot();
    let read = |cf: &str| -> Result<Vec<(Vec<u8>, Vec<u8>)>, SnapshotError> {
        let mut out = Vec::new();
        for item in snap.iterator_cf(db.cf(cf), rocksdb::IteratorMode::Start) {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    };
    let (last_applied, membership) = applied_at(db, &snap)?;
    let mut meta = read(CF_META)?;
    meta.retain(|(k, _)| !LOCAL_META.contains(&k.as_slice()));
    Ok(Payload {
        last_applied,
        membership,
        kv: read(CF_KV)?,
        lease: read(CF_LEASE)?,
        meta,
    })
}

/// The last applied log id and the membership as of a RocksDB snapshot.
fn applied_at(
    db: &Db,
    snap: &rocksdb::Snapshot<'_>,
) -> Result<(Option<LogId>, StoredMembership), SnapshotError> {
    let meta_get = |key: &[u8]| snap.get_cf(db.cf(CF_META), key);
    let last_applied = match meta_get(META_LAST_APPLIED)? {
        Some(b) => codec::decode(&b)?,
        None => None,
    };
    let membership = match meta_get(META_MEMBERSHIP)? {
        Some(b) => codec::decode(&b)?,
        None => StoredMembership::default(),
    };
    Ok((last_applied, membership))
}

/// One atomic write that deletes the replicated state, lets `fill` put the new records and
/// records `last_applied` and `membership` with them.
fn replace_state(
    db: &Db,
    last_applied: &Option<LogId>,
    membership: &StoredMembership,
    fill: impl FnOnce(&mut rocksdb::WriteBatch) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let raw = db.raw();
    let mut batch = rocksdb::WriteBatch::default();
    for cf in [CF_KV, CF_LEASE] {
        for item in raw.iterator_cf(db.cf(cf), rocksdb::IteratorMode::Start) {
            let (k, _) = item?;
            batch.delete_cf(db.cf(cf), k);
        }
    }
    for item in raw.iterator_cf(db.cf(CF_META), rocksdb::IteratorMode::Start) {
        let (k, _) = item?;
        if !LOCAL_META.contains(&k.as_ref()) {
            batch.delete_cf(db.cf(CF_META), k);
        }
    }
    fill(&mut batch)?;
    write_applied(db, batch, last_applied, membership)
}

/// Puts `last_applied` and `membership` in `batch` and writes it, synced.
fn write_applied(
    db: &Db,
    mut batch: rocksdb::WriteBatch,
    last_applied: &Option<LogId>,
    membership: &StoredMembership,
) -> Result<(), SnapshotError> {
    batch.put_cf(
        db.cf(CF_META),
        META_LAST_APPLIED,
        codec::encode(last_applied)?,
    );
    batch.put_cf(db.cf(CF_META), META_MEMBERSHIP, codec::encode(membership)?);
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.raw().write_opt(batch, &opts)?;
    Ok(())
}

/// Reads the payload `input` holds (written by [`write_to`] or `codec::encode`) one record at
/// a time, handing each to `record` with its column family; the payload's own last applied
/// log id and membership are skipped (the caller says what they are).
fn read_records(
    input: &mut impl std::io::Read,
    mut record: impl FnMut(&'static str, Vec<u8>, Vec<u8>) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let _: Option<LogId> = take(input)?;
    let _: StoredMembership = take(input)?;
    for cf in [CF_KV, CF_LEASE, CF_META] {
        let count: u64 = take(input)?;
        for _ in 0..count {
            let RecordIn(k, v) = take(input)?;
            record(cf, k, v)?;
        }
    }
    Ok(())
}

/// A record's key or value as bincode writes a byte string (the length, then the bytes).
#[derive(Serialize)]
struct RecordOut<'a>(
    #[serde(with = "codec::bytes")] &'a [u8],
    #[serde(with = "codec::bytes")] &'a [u8],
);

/// A record read back.
#[derive(Deserialize)]
struct RecordIn(
    #[serde(with = "codec::bytes")] Vec<u8>,
    #[serde(with = "codec::bytes")] Vec<u8>,
);

fn codec_err(e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Codec(codec::CodecError(e.to_string()))
}

/// Writes a consistent payload of the database to `out`, one record at a time, in exactly
/// the bytes `codec::encode(&capture(db))` would hold, but without the state in memory
/// (a Raft snapshot of a large key space held it three times over). Returns the last
/// applied log id and the membership it was taken at.
pub fn write_to(
    db: &Db,
    out: &mut impl std::io::Write,
) -> Result<(Option<LogId>, StoredMembership), SnapshotError> {
    let raw = db.raw();
    let snap = raw.snapshot();
    let (last_applied, membership) = applied_at(db, &snap)?;
    put(out, &last_applied)?;
    put(out, &membership)?;
    for cf in [CF_KV, CF_LEASE, CF_META] {
        let kept = |k: &[u8]| cf != CF_META || !LOCAL_META.contains(&k);
        // bincode writes a sequence's length first: count, then write, from the same snapshot.
        let mut count = 0u64;
        for item in snap.iterator_cf_opt(db.cf(cf), scan(), rocksdb::IteratorMode::Start) {
            let (k, _) = item?;
            if kept(&k) {
                count += 1;
            }
        }
        put(out, &count)?;
        for item in snap.iterator_cf_opt(db.cf(cf), scan(), rocksdb::IteratorMode::Start) {
            let (k, v) = item?;
            if kept(&k) {
                put(out, &RecordOut(&k, &v))?;
            }
        }
    }
    Ok((last_applied, membership))
}

/// Replaces the replicated state in the database with the payload `input` holds (written by
/// [`write_to`] or `codec::encode`), read one record at a time into one atomic write;
/// `last_applied` and `membership` come from the snapshot's metadata, as Raft sent them.
pub fn install_from(
    db: &Db,
    input: &mut impl std::io::Read,
    last_applied: &Option<LogId>,
    membership: &StoredMembership,
) -> Result<(), SnapshotError> {
    // Raft's metadata says what the snapshot holds; the payload's own copy is skipped.
    replace_state(db, last_applied, membership, |batch| {
        read_records(input, |cf, k, v| {
            batch.put_cf(db.cf(cf), k, v);
            Ok(())
        })
    })
}

/// Bytes of records a restore writes at a time.
const RESTORE_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Writes the state a backup's body holds (a payload as [`write_to`] writes it) into `db`, a
/// new database, one record at a time in batches of about [`RESTORE_BATCH_BYTES`]; metadata
/// records that `keep_meta` refuses are left out. The state starts with no Raft history and
/// no membership (a restored member starts a new cluster). Anything after the payload (the
/// backup's padding) is not read.
pub fn restore_from(
    db: &Db,
    input: &mut impl std::io::Read,
    keep_meta: impl Fn(&[u8]) -> bool,
) -> Result<(), SnapshotError> {
    let mut batch = rocksdb::WriteBatch::default();
    read_records(input, |cf, k, v| {
        if cf == CF_META && !keep_meta(&k) {
            return Ok(());
        }
        batch.put_cf(db.cf(cf), k, v);
        if batch.size_in_bytes() >= RESTORE_BATCH_BYTES {
            db.raw().write(std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    // The earlier batches went unsynced: this synced write makes the WAL durable up to here.
    write_applied(db, batch, &None, &StoredMembership::default())
}

/// A file written with its data synced every [`PacedFile::SYNC_EVERY`] bytes. A snapshot
/// written whole into the page cache and synced at the end had the disk write hundreds of
/// megabytes at once, and the WAL's fsyncs waited behind it (up to 0.5 s on this machine,
/// stalling every write; BENCHMARKS.md, "3,000 nodes again"): synced as it goes, the file
/// never holds much unwritten data.
#[derive(Debug)]
pub struct PacedFile {
    file: std::fs::File,
    unsynced: usize,
}

impl PacedFile {
    /// Bytes written between two syncs.
    pub const SYNC_EVERY: usize = 8 * 1024 * 1024;

    /// Paces writes to `file`.
    pub fn new(file: std::fs::File) -> PacedFile {
        PacedFile { file, unsynced: 0 }
    }

    /// Syncs what is left and returns the file.
    pub fn finish(self) -> std::io::Result<std::fs::File> {
        self.file.sync_all()?;
        Ok(self.file)
    }
}

impl std::io::Write for PacedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buf)?;
        self.unsynced += written;
        if self.unsynced >= Self::SYNC_EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Read options of a scan of the whole state: its blocks do not displace the clients' in
/// RocksDB's block cache.
fn scan() -> rocksdb::ReadOptions {
    let mut opts = rocksdb::ReadOptions::default();
    opts.fill_cache(false);
    opts
}

/// Writes one part of a streamed payload.
fn put<T: Serialize>(out: &mut impl std::io::Write, v: &T) -> Result<(), SnapshotError> {
    bincode::serde::encode_into_std_write(v, out, bincode::config::standard())
        .map(|_| ())
        .map_err(codec_err)
}

/// Reads one part of a streamed payload.
fn take<T: serde::de::DeserializeOwned>(
    input: &mut impl std::io::Read,
) -> Result<T, SnapshotError> {
    bincode::serde::decode_from_std_read(input, bincode::config::standard()).map_err(codec_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_with(records: &[(&str, &[u8], &[u8])]) -> (tempfile::TempDir, std::sync::Arc<Db>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("data")).expect("open db");
        for (cf, k, v) in records {
            db.raw().put_cf(db.cf(cf), k, v).expect("put");
        }
        (dir, db)
    }

    /// A streamed snapshot holds the bytes of the payload encoded in one piece (members of
    /// either way read each other's), and installs the same state.
    #[test]
    fn a_streamed_snapshot_is_the_encoded_payload_and_installs_the_same_state() {
        let big = vec![7u8; 70_000];
        let applied = Some(LogId::new(openraft::CommittedLeaderId::new(3, 1), 42));
        let (_dir, db) = db_with(&[
            (CF_KV, b"a", b"1"),
            (CF_KV, b"b", &big),
            (CF_KV, b"", b""),
            (CF_LEASE, b"l1", b"ttl"),
            (CF_META, b"cluster", b"meta"),
            (
                CF_META,
                META_LAST_APPLIED,
                &codec::encode(&applied).expect("encode"),
            ),
            (
                CF_META,
                META_MEMBERSHIP,
                &codec::encode(&StoredMembership::default()).expect("encode"),
            ),
        ]);
        let mut streamed = Vec::new();
        let (last, _) = write_to(&db, &mut streamed).expect("stream");
        assert_eq!(last, applied);
        let whole = capture(&db).expect("capture");
        assert_eq!(streamed, codec::encode(&whole).expect("encode"));

        let (_dir2, other) = db_with(&[(CF_KV, b"stale", b"x"), (CF_LEASE, b"old", b"y")]);
        install_from(
            &other,
            &mut streamed.as_slice(),
            &whole.last_applied,
            &whole.membership,
        )
        .expect("install");
        let installed = capture(&other).expect("capture");
        assert_eq!(installed.kv, whole.kv);
        assert_eq!(installed.lease, whole.lease);
        assert_eq!(installed.meta, whole.meta);
        assert_eq!(installed.last_applied, applied);
    }

    /// A paced file holds exactly what was written, across several syncs.
    #[test]
    fn a_paced_file_holds_what_was_written() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("paced");
        let file = std::fs::File::create(&path).expect("create");
        let mut out = std::io::BufWriter::with_capacity(1 << 20, PacedFile::new(file));
        let chunk: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
        for _ in 0..7 {
            out.write_all(&chunk).expect("write");
        }
        let paced = out.into_inner().expect("flush");
        assert!(paced.unsynced < PacedFile::SYNC_EVERY);
        paced.finish().expect("finish");
        let read = std::fs::read(&path).expect("read");
        assert_eq!(read.len(), 7 * chunk.len());
        assert!(read.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
    }

    /// A cut-off stream is an error and leaves the state as it was.
    #[test]
    fn a_truncated_stream_installs_nothing() {
        let (_dir, db) = db_with(&[(CF_KV, b"a", b"1"), (CF_KV, b"b", b"2")]);
        let mut streamed = Vec::new();
        write_to(&db, &mut streamed).expect("stream");
        let (_dir2, other) = db_with(&[(CF_KV, b"kept", b"x")]);
        let cut = &streamed[..streamed.len() - 1];
        assert!(install_from(&other, &mut &cut[..], &None, &StoredMembership::default()).is_err());
        let after = capture(&other).expect("capture");
        assert_eq!(after.kv, vec![(b"kept".to_vec(), b"x".to_vec())]);
    }
}
