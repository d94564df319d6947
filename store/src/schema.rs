//! The member database's schema: every column family, every fixed key and how keys are encoded.
//! Everything that reads or writes RocksDB names its column families and keys from here.
//!
//! These names and bytes are the on-disk format (checked through [`FORMAT_VALUE`] at open):
//! renaming a column family or a key, or changing an encoding, needs a new format value and a
//! refusal of the old one (see [`OLDER_FORMATS`]).
//!
//! Values are bincode (`codec`) unless a key's documentation says otherwise.

// ---- Column families --------------------------------------------------------------------------

/// Raft log entries, keyed by [`log_key`] (big-endian index, so they iterate in order); the
/// value is the openraft `Entry`.
pub const CF_LOGS: &str = "logs";
/// Raft's own records: [`RAFT_VOTE`] and [`RAFT_LAST_PURGED`].
pub const CF_RAFT: &str = "raft";
/// MVCC records keyed by revision (main, sub) as 16 big-endian bytes (`mvcc::Rev::to_key`),
/// as etcd's `key` bucket; the value is `mvcc::Record` (a kind byte, then the protobuf
/// `KeyValue`).
pub const CF_KV: &str = "kv";
/// Leases keyed by [`lease_key`]; the value is the lease's record (TTL).
pub const CF_LEASE: &str = "lease";
/// Metadata, under the `META_*` keys: the state machine's (replicated, part of snapshots) and
/// this member's own ([`LOCAL_META`], never in a snapshot).
pub const CF_META: &str = "meta";

/// Every column family, in the order the database is opened with.
pub const ALL_CFS: [&str; 5] = [CF_LOGS, CF_RAFT, CF_KV, CF_LEASE, CF_META];

/// The column families that hold the replicated state (what a database's size counts).
pub const STATE_CFS: [&str; 3] = [CF_KV, CF_LEASE, CF_META];

// ---- Keys of the `raft` column family -----------------------------------------------------------

/// The last vote saved (openraft `Vote`).
pub const RAFT_VOTE: &[u8] = b"vote";
/// The id of the last log entry purged (openraft `LogId`).
pub const RAFT_LAST_PURGED: &[u8] = b"last_purged";

// ---- Keys of the `meta` column family: this member's own ----------------------------------------

/// The data dir format, [`FORMAT_VALUE`] (raw bytes); written once when the data dir is made.
pub const META_FORMAT: &[u8] = b"format";
/// This member's ID (8 big-endian bytes).
pub const META_MEMBER_ID: &[u8] = b"member_id";
/// The cluster's ID (8 big-endian bytes).
pub const META_CLUSTER_ID: &[u8] = b"cluster_id";

/// Meta keys that describe this member's database rather than the replicated state: kept out of
/// snapshots and kept when one is installed.
pub const LOCAL_META: [&[u8]; 3] = [META_FORMAT, META_CLUSTER_ID, META_MEMBER_ID];

// ---- Keys of the `meta` column family: the state machine's --------------------------------------

/// The last applied log id (`Option<LogId>`).
pub const META_LAST_APPLIED: &[u8] = b"last_applied";
/// The membership as of the last applied entry (openraft `StoredMembership`).
pub const META_MEMBERSHIP: &[u8] = b"membership";
/// Alarms and members' published attributes (`apply::ClusterMeta`).
pub const META_CLUSTER: &[u8] = b"cluster_meta";
/// The revision of the last write transaction (8 big-endian bytes, `i64`).
pub const META_CURRENT_REV: &[u8] = b"current_rev";
/// The revision of the last compaction (8 big-endian bytes, `i64`).
pub const META_COMPACT_REV: &[u8] = b"compact_rev";

// ---- Format -------------------------------------------------------------------------------------

/// The value of [`META_FORMAT`] this build writes and reads. 2: log entries carry their
/// proposer's ticket (`apply::Proposed`).
pub const FORMAT_VALUE: &[u8] = b"pctl-store/2";
/// Earlier formats this build cannot read (refused with the way forward).
pub const OLDER_FORMATS: &[&[u8]] = &[b"pctl-store/1"];

// ---- Key encodings ------------------------------------------------------------------------------

/// The key of the log entry at `index` in [`CF_LOGS`].
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index of a [`CF_LOGS`] key; None if it is not one.
pub fn log_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// The key of lease `id` in [`CF_LEASE`].
pub fn lease_key(id: i64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The lease ID of a [`CF_LEASE`] key; None if it is not one.
pub fn lease_id(key: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(key.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names and bytes are the on-disk format: this test fails when one changes.
    #[test]
    fn the_on_disk_names_are_those_of_format_2() {
        assert_eq!(ALL_CFS, ["logs", "raft", "kv", "lease", "meta"]);
        let keys: [&[u8]; 10] = [
            RAFT_VOTE,
            RAFT_LAST_PURGED,
            META_FORMAT,
            META_MEMBER_ID,
            META_CLUSTER_ID,
            META_LAST_APPLIED,
            META_MEMBERSHIP,
            META_CLUSTER,
            META_CURRENT_REV,
            META_COMPACT_REV,
        ];
        let want: [&[u8]; 10] = [
            b"vote",
            b"last_purged",
            b"format",
            b"member_id",
            b"cluster_id",
            b"last_applied",
            b"membership",
            b"cluster_meta",
            b"current_rev",
            b"compact_rev",
        ];
        assert_eq!(keys, want);
        assert_eq!(FORMAT_VALUE, b"pctl-store/2");
        assert_eq!(log_key(0x0102), [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(log_index(&log_key(u64::MAX - 3)), Some(u64::MAX - 3));
        assert_eq!(lease_id(&lease_key(-7)), Some(-7));
        assert_eq!(log_index(b"short"), None);
    }
}
