//! Consistent copies of a member's state: for Raft snapshot transfer, for `etcdctl snapshot
//! save` backups, and for `store snapshot restore`.
//!
//! A snapshot holds the key space, the leases and the state-machine metadata as they are in
//! one RocksDB snapshot. Backups add a SHA-256 of the payload at the end, as etcd's do; that
//! file format is the `store-backup` crate's, which clients use without the database.

use serde::{Deserialize, Serialize};

use super::{LogId, StoredMembership};
use crate::codec;
use crate::db::Db;
use crate::schema::{CF_KV, CF_LEASE, CF_META, LOCAL_META, META_LAST_APPLIED, META_MEMBERSHIP};

/// The content of a snapshot.
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

/// Reads a consistent payload from the database.
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
    let meta_get = |key: &[u8]| snap.get_cf(db.cf(CF_META), key);
    let last_applied = match meta_get(META_LAST_APPLIED)? {
        Some(b) => codec::decode(&b)?,
        None => None,
    };
    let membership = match meta_get(META_MEMBERSHIP)? {
        Some(b) => codec::decode(&b)?,
        None => StoredMembership::default(),
    };
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

/// Replaces the replicated state in the database with `p` (one atomic write).
pub fn install(db: &Db, p: &Payload) -> Result<(), SnapshotError> {
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
    for (cf, rows) in [(CF_KV, &p.kv), (CF_LEASE, &p.lease), (CF_META, &p.meta)] {
        for (k, v) in rows {
            batch.put_cf(db.cf(cf), k, v);
        }
    }
    batch.put_cf(
        db.cf(CF_META),
        META_LAST_APPLIED,
        codec::encode(&p.last_applied)?,
    );
    batch.put_cf(
        db.cf(CF_META),
        META_MEMBERSHIP,
        codec::encode(&p.membership)?,
    );
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    raw.write_opt(batch, &opts)?;
    Ok(())
}

/// Encodes a payload as a backup file: the bincode payload sealed as `store_backup` says
/// (padded, with a SHA-256 trailer).
pub fn to_backup(p: &Payload) -> Result<Vec<u8>, SnapshotError> {
    Ok(store_backup::seal(codec::encode(p)?))
}

/// Decodes a backup file written by [`to_backup`], checking its SHA-256.
pub fn from_backup(bytes: &[u8]) -> Result<Payload, SnapshotError> {
    // The padding after the payload is ignored by the decoder.
    Ok(codec::decode(store_backup::open(bytes)?)?)
}
