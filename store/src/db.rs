//! The member's RocksDB: one database, one write-ahead log, a column family per concern (the
//! names and keys are in `schema`).
//!
//! Raft log and vote, the MVCC key space, leases and metadata share one RocksDB so that a
//! single synced write (the Raft log append) also makes every earlier state-machine write
//! durable: they sit in the same WAL.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

use crate::schema::{ALL_CFS, CF_META, FORMAT_VALUE, META_FORMAT, OLDER_FORMATS, STATE_CFS};

/// Errors opening a data directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory holds files, but not a store database.
    #[error(
        "data dir {0} is not empty and holds no store database; refusing to use it (move it \
         away or pick another --data-dir)"
    )]
    Foreign(String),
    /// A RocksDB database, but not one this program wrote.
    #[error("data dir {0} holds a database of another format ({1}); refusing to use it")]
    WrongFormat(String, String),
    /// A database an earlier build wrote, whose Raft log this build cannot read.
    #[error(
        "data dir {0} was written by an earlier build (format {1}), whose Raft log this build \
         cannot read; refusing to use it (take a backup with that build, `etcdctl snapshot \
         save`, and make a new data dir from it with `store snapshot restore`)"
    )]
    OlderFormat(String, String),
    /// RocksDB refused to open the database (corruption, permissions, lock held, ...).
    #[error(
        "cannot open the database in {0}: {1} (refusing to start; if it is damaged, restore it \
         from a backup with `store snapshot restore`)"
    )]
    Rocks(String, rocksdb::Error),
    /// The database is damaged in a way RocksDB would not notice.
    #[error(
        "the database in {0} is damaged ({1}); refusing to start rather than lose data \
         (restore it from a backup with `store snapshot restore`)"
    )]
    Damaged(String, String),
    /// Creating the directory failed.
    #[error("cannot create data dir {0}: {1}")]
    Io(String, std::io::Error),
}

/// Bytes of memtables across all column families before the largest is flushed. RocksDB's
/// default is a 64 MiB memtable per column family (two while one is flushed): the Raft log's
/// and the key space's together held 127 MiB of a 314 MiB store at 1,000 nodes, though
/// every write reaches the disk (WAL) at once and the key space is read through the record
/// cache (`mvcc::cache`) and the block cache.
const MEMTABLE_BUDGET: usize = 64 << 20;

/// RocksDB's memory by kind, in bytes (see [`Db::memory`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct DbMemory {
    pub memtables: u64,
    pub table_readers: u64,
    pub block_cache: u64,
}

/// An opened member database.
pub struct Db {
    db: DB,
    /// True when this open created the database (no earlier state).
    pub fresh: bool,
}

impl Db {
    /// Opens (or creates) the database under `<data_dir>/member/db`.
    pub fn open(data_dir: &Path) -> Result<Arc<Db>, OpenError> {
        let shown = data_dir.display().to_string();
        let path = data_dir.join("member").join("db");
        let fresh = !path.join("CURRENT").exists();
        if fresh
            && path.exists()
            && std::fs::read_dir(&path)
                .map_err(|e| OpenError::Io(shown.clone(), e))?
                .next()
                .is_some()
        {
            // Database files without RocksDB's CURRENT: damaged, never silently recreated.
            return Err(OpenError::Damaged(
                shown,
                "the database has files but no CURRENT file".into(),
            ));
        }
        if fresh && data_dir.exists() {
            let foreign = std::fs::read_dir(data_dir)
                .map_err(|e| OpenError::Io(shown.clone(), e))?
                .filter_map(Result::ok)
                .any(|e| e.file_name() != "member");
            if foreign {
                return Err(OpenError::Foreign(shown));
            }
        }
        std::fs::create_dir_all(&path).map_err(|e| OpenError::Io(shown.clone(), e))?;
        let mut opts = Options::default();
        opts.create_if_missing(fresh);
        opts.create_missing_column_families(fresh);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_max_background_jobs(2);
        opts.set_paranoid_checks(true);
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        let cfs = ALL_CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, &path, cfs)
            .map_err(|e| OpenError::Rocks(shown.clone(), e))?;
        let db = Db { db, fresh };
        let meta = db.cf(CF_META);
        match db
            .db
            .get_cf(meta, META_FORMAT)
            .map_err(|e| OpenError::Rocks(shown.clone(), e))?
        {
            Some(v) if v == FORMAT_VALUE => {}
            Some(v) if OLDER_FORMATS.contains(&v.as_slice()) => {
                return Err(OpenError::OlderFormat(
                    shown,
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            }
            Some(v) => {
                return Err(OpenError::WrongFormat(
                    shown,
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            }
            None if fresh => {
                db.db
                    .put_cf(meta, META_FORMAT, FORMAT_VALUE)
                    .map_err(|e| OpenError::Rocks(shown.clone(), e))?;
            }
            None => return Err(OpenError::WrongFormat(shown, "no format marker".into())),
        }
        Ok(Arc::new(db))
    }

    /// The raw RocksDB handle.
    pub fn raw(&self) -> &DB {
        &self.db
    }

    /// A column family handle; the names are fixed at open, so absence is a bug.
    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} opened at start"))
    }

    /// Bytes of the replicated state (key space, leases, metadata) in table files on disk.
    /// The Raft log, like etcd's WAL, is not counted; nor are memtables, whose RocksDB
    /// figures are arena allocations rather than data (see `Node::db_size`).
    pub fn size(&self) -> u64 {
        self.sum_properties(&["rocksdb.total-sst-files-size"])
    }

    /// RocksDB's own memory, by kind, over every column family: memtables (the active,
    /// the immutable ones waiting for a flush, and those kept for conflict checks), the
    /// table readers' index and filter blocks, and the block cache.
    pub fn memory(&self) -> DbMemory {
        let sum = |prop: &str| -> u64 {
            ALL_CFS
                .iter()
                .map(|name| {
                    self.db
                        .property_int_value_cf(self.cf(name), prop)
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                })
                .sum()
        };
        DbMemory {
            memtables: sum("rocksdb.size-all-mem-tables"),
            table_readers: sum("rocksdb.estimate-table-readers-mem"),
            block_cache: sum("rocksdb.block-cache-usage"),
        }
    }

    fn sum_properties(&self, props: &[&str]) -> u64 {
        let mut total = 0u64;
        for name in STATE_CFS {
            for prop in props {
                total += self
                    .db
                    .property_int_value_cf(self.cf(name), *prop)
                    .ok()
                    .flatten()
                    .unwrap_or(0);
            }
        }
        total
    }

    /// Compacts every column family fully: RocksDB's equivalent of etcd's defragmentation.
    pub fn defragment(&self) -> Result<(), rocksdb::Error> {
        for name in ALL_CFS {
            self.db
                .compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
        self.db.flush_wal(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_of_an_earlier_format_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let db = Db::open(dir.path()).expect("a new data dir opens");
            db.db
                .put_cf(db.cf(CF_META), META_FORMAT, b"pctl-store/1")
                .expect("mark as format 1");
        }
        let err = Db::open(dir.path()).err().expect("refused");
        assert!(
            matches!(err, OpenError::OlderFormat(_, ref f) if f == "pctl-store/1"),
            "{err}"
        );
        assert!(err.to_string().contains("store snapshot restore"), "{err}");
        // Still refused the second time: nothing was rewritten.
        assert!(matches!(
            Db::open(dir.path()),
            Err(OpenError::OlderFormat(..))
        ));
    }
}
