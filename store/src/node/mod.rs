//! A member: Raft, the state machine it drives, and what the gRPC services need of them.
//!
//! The parts: proposing commands and the linearizable read barrier, forwarded to the leader
//! when this member does not lead ([`propose`]); membership ([`membership`]); and the
//! background duties of a running member (leadership, lease expiry, peer probes, publishing
//! its attributes: [`duties`]). The fields are private: services ask the node.

mod duties;
mod membership;
mod propose;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::RaftError;
use proto::etcdserverpb::ResponseHeader;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

pub use membership::{hash_id, new_member_id, valid_url, MemberChange, MembersInfo};
pub use propose::{LeaseOp, LeaseOpResult};

use crate::apply::{self, Applied, ApplyCtx, Command};
use crate::db::Db;
use crate::error::StoreError;
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::{ApplyBatch, Mvcc};
use crate::raft::network::PeerClients;
use crate::raft::{Member, Raft, StoreState};
use crate::watch::WatchHub;
use propose::{Forward, Proposal, ReadWaiter};

/// How long a client request may wait for Raft (commit, leader election).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// Limits applied to client requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request in bytes (`--max-request-bytes`).
    pub max_request_bytes: usize,
    /// Most operations in one txn branch (`--max-txn-ops`).
    pub max_txn_ops: usize,
    /// Backend quota in bytes (`--quota-backend-bytes`); 0 for the default 2 GiB.
    pub quota_backend_bytes: u64,
    /// Smallest lease TTL granted, in seconds.
    pub min_lease_ttl: i64,
    /// Election timeout, by which a new leader extends leases.
    pub election_timeout: Duration,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
}

/// Who a member is: what [`Node::new`] needs besides Raft and the state.
#[derive(Debug, Clone)]
pub struct MemberIdentity {
    /// This member's ID.
    pub id: u64,
    /// The cluster's ID.
    pub cluster_id: u64,
    /// `--name`.
    pub name: String,
    /// `--advertise-client-urls`.
    pub client_urls: Vec<String>,
    /// This member's snapshot directory (Raft snapshots, backups on their way to a client).
    pub snap_dir: PathBuf,
}

/// One member of the store cluster.
pub struct Node {
    /// This member's ID.
    id: u64,
    /// The cluster's ID.
    cluster_id: u64,
    /// `--name`.
    name: String,
    /// `--advertise-client-urls`.
    client_urls: Vec<String>,
    /// See [`MemberIdentity::snap_dir`].
    snap_dir: PathBuf,
    /// Raft.
    raft: Raft,
    /// Key space, leases, metadata.
    state: Arc<StoreState>,
    /// The database.
    db: Arc<Db>,
    /// Channels to peers.
    peers: PeerClients,
    /// Metrics.
    metrics: Arc<Metrics>,
    /// Request limits.
    limits: Limits,
    /// The current Raft term, kept by the leadership watcher for response headers.
    term: AtomicU64,
    /// The same term, for tasks that wait for it to change (it changes only with elections).
    terms: tokio::sync::watch::Sender<u64>,
    /// Set when this member was removed from the cluster.
    removed: AtomicBool,
    /// Commands waiting for [`Node::serve_proposals`] (this member as leader).
    proposals: UnboundedSender<Proposal>,
    /// Commands waiting for [`Node::serve_forwards`] (this member as follower).
    forwards: UnboundedSender<Forward>,
    /// Linearizable reads waiting for a read index; served in batches by
    /// [`Node::serve_read_index`], one leader round trip per batch.
    read_waiters: UnboundedSender<ReadWaiter>,
    /// The term in which this member, as leader, restarted the lease clocks (0: not leading).
    lease_term: AtomicU64,
    /// Held by each membership change this member runs as leader, one at a time.
    member_changes: tokio::sync::Mutex<()>,
}

/// The queues of a new [`Node`], served once it is started ([`Node::start`]).
pub struct Queues {
    proposals: UnboundedReceiver<Proposal>,
    forwards: UnboundedReceiver<Forward>,
    reads: UnboundedReceiver<ReadWaiter>,
}

fn raft_unavailable<E: std::fmt::Debug>(e: RaftError<u64, E>) -> StoreError {
    match e {
        RaftError::Fatal(_) => StoreError::Stopped,
        RaftError::APIError(e) => StoreError::Internal(format!("{e:?}")),
    }
}

impl Node {
    /// A member over `raft` and its state; nothing runs until [`Node::start`].
    pub fn new(
        who: MemberIdentity,
        limits: Limits,
        raft: Raft,
        state: Arc<StoreState>,
        db: Arc<Db>,
        peers: PeerClients,
        metrics: Arc<Metrics>,
    ) -> (Arc<Node>, Queues) {
        let (read_waiters, reads) = unbounded_channel();
        let (proposals, proposal_queue) = unbounded_channel();
        let (forwards, forward_queue) = unbounded_channel();
        let node = Arc::new(Node {
            id: who.id,
            cluster_id: who.cluster_id,
            name: who.name,
            client_urls: who.client_urls,
            snap_dir: who.snap_dir,
            raft,
            state,
            db,
            peers,
            metrics,
            limits,
            term: AtomicU64::new(0),
            terms: tokio::sync::watch::Sender::new(0),
            removed: AtomicBool::new(false),
            proposals,
            forwards,
            read_waiters,
            lease_term: AtomicU64::new(0),
            member_changes: tokio::sync::Mutex::new(()),
        });
        let queues = Queues {
            proposals: proposal_queue,
            forwards: forward_queue,
            reads,
        };
        (node, queues)
    }

    /// Starts serving the queues and the background duties (see [`duties`]).
    pub fn start(self: &Arc<Self>, queues: Queues) {
        tokio::spawn(self.clone().serve_read_index(queues.reads));
        tokio::spawn(self.clone().serve_proposals(queues.proposals));
        tokio::spawn(self.clone().serve_forwards(queues.forwards));
        tokio::spawn(self.clone().watch_leadership());
        tokio::spawn(self.clone().expire_leases());
        tokio::spawn(self.clone().publish_attrs());
        tokio::spawn(self.clone().promote_pending_voters());
        tokio::spawn(self.clone().probe_peers());
    }

    /// This member's ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Raft (its metrics, and the peer service's Raft calls).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The member database.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// See [`MemberIdentity::snap_dir`].
    pub fn snap_dir(&self) -> &std::path::Path {
        &self.snap_dir
    }

    /// Metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Request limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The key space.
    pub fn mvcc(&self) -> &Mvcc {
        &self.state.mvcc
    }

    /// Leases.
    pub fn lessor(&self) -> &Lessor {
        &self.state.lessor
    }

    /// Applied events, for watchers.
    pub fn hub(&self) -> &WatchHub {
        &self.state.hub
    }

    /// The current revision of the key space.
    pub fn current_rev(&self) -> i64 {
        self.state.mvcc.current_rev()
    }

    /// Active alarms: (member ID, alarm type).
    pub fn alarms(&self) -> Vec<(u64, i32)> {
        self.state.cluster.read().alarms.clone()
    }

    /// A leader's AppendEntries, handled as a follower. openraft appends (and so syncs) the
    /// entries before it looks at the commit index that came with them; while writes stream
    /// in, that index would wait a sync each time before this member applies. So when the
    /// request carries entries and the leader's commit index is ahead of what this member
    /// applied, the part of it this member already holds (up to the request's previous log
    /// id, which openraft checks) is handed over first, alone, and applied while the new
    /// entries are synced: the watchers and the writers waiting on this member see their
    /// events a sync earlier. Nothing is committed that the leader did not say is committed.
    pub async fn append_entries(
        &self,
        rpc: openraft::raft::AppendEntriesRequest<crate::raft::TypeConfig>,
    ) -> Result<openraft::raft::AppendEntriesResponse<u64>, RaftError<u64>> {
        if let (false, Some(prev), Some(commit)) =
            (rpc.entries.is_empty(), rpc.prev_log_id, rpc.leader_commit)
        {
            let upto = if commit.index <= prev.index {
                commit
            } else {
                prev
            };
            if upto.index > self.state.applied_index() {
                let commit_only = openraft::raft::AppendEntriesRequest {
                    vote: rpc.vote,
                    prev_log_id: rpc.prev_log_id,
                    entries: Vec::new(),
                    leader_commit: Some(upto),
                };
                // Its answer is the same as the full request's would be for these ids; the
                // full request follows and is answered.
                let _ = self.raft.append_entries(commit_only).await;
            }
        }
        self.raft.append_entries(rpc).await
    }

    /// Whether this member knows a leader.
    pub fn has_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader.is_some()
    }

    /// Applies `cmd` to this member's state as the log would, without a log entry, and
    /// discards what it wrote: a read-only transaction.
    pub fn apply_read_only(&self, cmd: &Command) -> Applied {
        let state = &self.state;
        let mut batch = ApplyBatch::begin(&state.mvcc);
        let mut meta = state.cluster.read().clone();
        let mut ctx = ApplyCtx {
            lessor: &state.lessor,
            meta: &mut meta,
            meta_dirty: false,
        };
        let (applied, _) = apply::apply(&mut batch, &mut ctx, cmd);
        // Nothing was written: dropping the batch discards it.
        applied
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision,
            raft_term: self.term.load(Ordering::Relaxed),
        }
    }

    /// The database size etcd would report: table files on disk, or the retained records
    /// when more of them are still in memtables. Quota checks and Status use it.
    pub fn db_size(&self) -> u64 {
        self.db.size().max(self.state.mvcc.bytes())
    }

    /// Updates gauges read on scrape (database size, revision, watchers).
    pub fn refresh_gauges(&self) {
        self.metrics.db_size.set(self.db_size() as i64);
        self.metrics.revision.set(self.state.mvcc.current_rev());
        self.metrics
            .compaction_pending
            .set(self.state.mvcc.compaction_pending() as i64);
        self.metrics
            .compaction_deleted
            .set(self.state.mvcc.compaction_deleted() as i64);
        self.metrics.watchers.set(self.state.hub.watchers());
        let mem = self.db.memory();
        for (part, bytes) in [
            ("memtables", mem.memtables),
            ("table_readers", mem.table_readers),
            ("block_cache", mem.block_cache),
        ] {
            self.metrics
                .memory
                .with_label_values(&[part])
                .set(bytes as i64);
        }
    }

    /// A response header at the current revision.
    pub fn header_now(&self) -> ResponseHeader {
        self.header(self.state.mvcc.current_rev())
    }

    /// The current leader, waiting (bounded) for an election to finish.
    pub async fn leader(&self) -> Result<(u64, Member), StoreError> {
        let mut rx = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            if self.removed.load(Ordering::Relaxed) {
                return Err(StoreError::Stopped);
            }
            {
                let m = rx.borrow_and_update();
                if let Some(l) = m.current_leader {
                    if let Some(node) = m.membership_config.membership().get_node(&l) {
                        return Ok((l, node.clone()));
                    }
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(StoreError::Stopped),
                Err(_) => return Err(StoreError::NoLeader),
            }
        }
    }

    /// Whether a write of `cost` bytes must be refused for the backend quota; raises the
    /// NOSPACE alarm the first time, as etcd does.
    pub async fn check_quota(&self, cost: usize) -> Result<(), StoreError> {
        const NOSPACE: i32 = 1;
        if self
            .state
            .cluster
            .read()
            .alarms
            .iter()
            .any(|(_, a)| *a == NOSPACE)
        {
            return Err(StoreError::NoSpace);
        }
        let quota = match self.limits.quota_backend_bytes {
            0 => 2 * 1024 * 1024 * 1024,
            q => q,
        };
        if self.db_size() + cost as u64 > quota {
            let _ = self
                .propose(Command::Alarm {
                    activate: true,
                    member_id: self.id,
                    alarm: NOSPACE,
                })
                .await;
            return Err(StoreError::NoSpace);
        }
        Ok(())
    }
}
