//! Prometheus metrics of a member, named as etcd names them so dashboards carry over.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntGauge, Registry, TextEncoder,
};

/// The member's metrics.
pub struct Metrics {
    registry: Registry,
    /// Proposals committed (Raft commit index).
    pub committed: IntGauge,
    /// Log entries applied.
    pub applied: IntCounter,
    /// Proposals waiting for commit.
    pub pending: IntGauge,
    /// Proposals that failed.
    pub failed: IntCounter,
    /// Leader changes seen.
    pub leader_changes: IntCounter,
    /// 1 when a leader is known.
    pub has_leader: IntGauge,
    /// 1 when this member leads.
    pub is_leader: IntGauge,
    /// Synced Raft log appends.
    pub wal_fsync: Histogram,
    /// State-machine batch writes.
    pub backend_commit: Histogram,
    /// Raft AppendEntries round trips to peers, as the leader sees them.
    pub peer_rtt: Histogram,
    /// Raft AppendEntries round trips to peers by kind (`entries`, or `commit` when only the
    /// commit index is news), as the leader sees them; finer than `peer_rtt`.
    pub append_rtt: HistogramVec,
    /// Time a follower takes to handle AppendEntries (append and sync included), by kind.
    pub append_handling: HistogramVec,
    /// On the leader: from appending its newest entry until replication sends it to a
    /// follower (the Raft core handing it over, the replication task reading it back, and
    /// waiting for that follower's previous AppendEntries to be answered).
    pub send_lag: Histogram,
    /// On the leader: from appending its newest entry until applying it (replication to a
    /// quorum and commit included).
    pub append_to_apply: Histogram,
    /// Time from proposing a command to its response (commit and apply included).
    pub proposal_duration: Histogram,
    /// Commands per proposed log entry.
    pub batch_size: Histogram,
    /// On a follower: sending a batch of forwarded commands until the leader says it appended
    /// them to its log.
    pub forward_accept: Histogram,
    /// On the leader: a forwarded batch, from its arrival until appended to the log.
    pub forward_handling: Histogram,
    /// On a follower: a forwarded batch, from the leader's acceptance until this member
    /// applied it (which answers its clients).
    pub forward_apply: Histogram,
    /// From applying a transaction to handing its events to a watch stream (per stream).
    pub watch_delivery: Histogram,
    /// Watchers on this member.
    pub watchers: IntGauge,
    /// Streaming a Raft snapshot of the state into its file.
    pub snapshot_build: Histogram,
    /// Installing a snapshot received from the leader.
    pub snapshot_install: Histogram,
    /// Database size in bytes.
    pub db_size: IntGauge,
    /// RocksDB's memory by part (memtables, table_readers, block_cache).
    pub memory: prometheus::IntGaugeVec,
    /// Current revision.
    pub revision: IntGauge,
    /// Time a compaction held the applier (the index's part; records go in the background).
    pub compaction_pause: Histogram,
    /// Compacted revisions whose records are not deleted yet.
    pub compaction_pending: IntGauge,
    /// Compacted records deleted since start.
    pub compaction_deleted: IntGauge,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn histogram(r: &Registry, name: &str, help: &str) -> Histogram {
    let buckets = prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets");
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

/// The first bucket of the histograms that split a write into its steps: 25 µs.
const FINE: f64 = 0.000_025;

/// [`histogram_from`] with one label.
fn histogram_vec_from(
    r: &Registry,
    name: &str,
    help: &str,
    label: &str,
    first: f64,
) -> HistogramVec {
    let buckets = prometheus::exponential_buckets(first, 2.0, 18).expect("valid buckets");
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &[label])
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

/// A histogram of short durations: buckets doubling from `first` seconds, 18 of them.
fn histogram_from(r: &Registry, name: &str, help: &str, first: f64) -> Histogram {
    let buckets = prometheus::exponential_buckets(first, 2.0, 18).expect("valid buckets");
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let r = Registry::new();
        Metrics {
            committed: gauge(
                &r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            applied: counter(
                &r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            pending: gauge(
                &r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            failed: counter(
                &r,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            leader_changes: counter(
                &r,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            has_leader: gauge(
                &r,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                &r,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            wal_fsync: histogram(
                &r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of synced Raft log appends.",
            ),
            backend_commit: histogram(
                &r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of state-machine batch writes.",
            ),
            peer_rtt: histogram(
                &r,
                "etcd_network_peer_round_trip_time_seconds",
                "Round-trip time of Raft AppendEntries to peers.",
            ),
            append_rtt: histogram_vec_from(
                &r,
                "store_peer_append_entries_seconds",
                "Round trips of Raft AppendEntries to peers, by kind: entries, or commit (only the commit index is news).",
                "kind",
                FINE,
            ),
            append_handling: histogram_vec_from(
                &r,
                "store_peer_append_entries_handling_seconds",
                "Time this member takes to handle a Raft AppendEntries, by kind: entries (appended and synced), or commit (only the commit index is news).",
                "kind",
                FINE,
            ),
            send_lag: histogram_from(
                &r,
                "store_replication_send_lag_seconds",
                "On the leader: from appending its newest entry until it is sent to a follower.",
                FINE,
            ),
            append_to_apply: histogram_from(
                &r,
                "store_append_to_apply_seconds",
                "On the leader: from appending its newest entry until applying it (replication and commit included).",
                FINE,
            ),
            proposal_duration: histogram_from(
                &r,
                "store_proposal_duration_seconds",
                "Time from proposing a command until it is applied.",
                FINE,
            ),
            batch_size: {
                let buckets = prometheus::exponential_buckets(1.0, 2.0, 12).expect("valid buckets");
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "store_proposal_batch_commands",
                        "Commands per proposed log entry.",
                    )
                    .buckets(buckets),
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            forward_accept: histogram_from(
                &r,
                "store_forward_accept_seconds",
                "Time a follower waits for the leader to append a batch of forwarded commands.",
                0.00005,
            ),
            forward_handling: histogram_from(
                &r,
                "store_forward_handling_seconds",
                "Time the leader takes to append a batch of forwarded commands to its log.",
                0.00005,
            ),
            snapshot_build: histogram_from(
                &r,
                "store_snapshot_build_seconds",
                "Time to write a Raft snapshot of the whole state to its file.",
                0.001,
            ),
            snapshot_install: histogram_from(
                &r,
                "store_snapshot_install_seconds",
                "Time to install a snapshot received from the leader.",
                0.001,
            ),
            forward_apply: histogram_from(
                &r,
                "store_forward_apply_seconds",
                "Time from the leader's acceptance of forwarded commands until this member applied them.",
                0.00005,
            ),
            watch_delivery: histogram_from(
                &r,
                "store_watch_delivery_seconds",
                "Time from applying a transaction to handing its events to a watch stream.",
                0.00005,
            ),
            watchers: gauge(
                &r,
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            ),
            db_size: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database in bytes.",
            ),
            memory: {
                let g = prometheus::IntGaugeVec::new(
                    prometheus::Opts::new(
                        "store_memory_bytes",
                        "RocksDB's memory by part: memtables, table readers (index and filter blocks), block cache.",
                    ),
                    &["part"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            revision: gauge(
                &r,
                "etcd_debugging_mvcc_current_revision",
                "The current revision of the store.",
            ),
            compaction_pause: histogram_from(
                &r,
                "store_compaction_index_pause_seconds",
                "Time a compaction held the applier: dropping revisions from the index (the records are deleted in the background).",
                FINE,
            ),
            compaction_pending: gauge(
                &r,
                "store_compaction_pending_revisions",
                "Compacted revisions whose records are not deleted yet.",
            ),
            compaction_deleted: gauge(
                &r,
                "etcd_debugging_mvcc_db_compaction_keys_total",
                "Compacted records deleted since start.",
            ),
            registry: r,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}
