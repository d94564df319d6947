//! A member: Raft, the state machine it drives, and the operations the gRPC services need
//! (propose, linearizable read barrier, leader-only lease and membership operations), each
//! forwarded to the leader when this member does not lead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use proto::etcdserverpb::ResponseHeader;
use serde::{Deserialize, Serialize};

use crate::apply::{Applied, Command, MemberAttrs, Proposed};
use crate::db::Db;
use crate::error::StoreError;
use crate::lease::LeaseTtl;
use crate::metrics::Metrics;
use crate::raft::network::{PeerCallError, PeerClients, PeerRpc};
use crate::raft::{Member, Raft, StoreState};

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

/// How long a peer must have been answering to count as connected for a membership change
/// (etcd's HealthInterval).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// A leader-only lease operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaseOp {
    /// Renew: returns the TTL, or None for an unknown lease.
    KeepAlive(i64),
    /// Remaining TTL and keys.
    TimeToLive(i64),
}

/// Result of a [`LeaseOp`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaseOpResult {
    /// KeepAlive's answer.
    Renewed(Option<i64>),
    /// TimeToLive's answer.
    Ttl(Option<LeaseTtl>),
}

/// A membership change, executed by the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MemberChange {
    /// Add a member (voter, or learner).
    Add {
        peer_urls: Vec<String>,
        learner: bool,
    },
    /// Remove a member.
    Remove { id: u64 },
    /// Make a learner a voter.
    Promote { id: u64 },
    /// Change a member's peer URLs.
    Update { id: u64, peer_urls: Vec<String> },
}

/// Members as a member knows them: the answer of the peer `Members` call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembersInfo {
    /// Cluster ID.
    pub cluster_id: u64,
    /// ID, member, learner flag.
    pub members: Vec<(u64, Member, bool)>,
}

/// Where the result of a queued command goes.
type Waiter = tokio::sync::oneshot::Sender<Result<Applied, StoreError>>;

/// A command waiting to be put in a log entry, with where its result goes.
pub struct Proposal {
    cmd: Command,
    tx: Waiter,
}

/// A command this member (a follower) forwards to the leader, with where its result goes.
pub struct Forward {
    cmd: Command,
    /// The leader's peer URL when the command was queued.
    url: String,
    tx: Waiter,
}

/// Most commands in one batch: one log entry, or one forwarding call.
const BATCH_MAX_COMMANDS: usize = 1024;
/// Most bytes of commands in one batch.
const BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The next batch from `rx`: the item carried over from the previous batch or else the next to
/// arrive, then whatever is already queued, up to [`BATCH_MAX_COMMANDS`] commands and
/// [`BATCH_MAX_BYTES`]; the first item that does not fit, or that `joins` refuses next to
/// the batch's first, is carried over. None once the queue is closed.
async fn next_batch<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    carry: &mut Option<T>,
    cmd: impl Fn(&T) -> &Command,
    joins: impl Fn(&T, &T) -> bool,
) -> Option<Vec<T>> {
    let first = match carry.take() {
        Some(item) => item,
        None => rx.recv().await?,
    };
    let mut bytes = cmd(&first).size();
    let mut batch = vec![first];
    while batch.len() < BATCH_MAX_COMMANDS {
        let Ok(next) = rx.try_recv() else { break };
        let size = cmd(&next).size();
        if bytes + size > BATCH_MAX_BYTES || !joins(&batch[0], &next) {
            *carry = Some(next);
            break;
        }
        bytes += size;
        batch.push(next);
    }
    Some(batch)
}

/// A queued command's result, waited for at most `within`.
async fn result_within(
    rx: tokio::sync::oneshot::Receiver<Result<Applied, StoreError>>,
    within: Duration,
) -> Result<Applied, StoreError> {
    match tokio::time::timeout(within, rx).await {
        Err(_) => Err(StoreError::Timeout),
        Ok(Err(_)) => Err(StoreError::Stopped),
        Ok(Ok(r)) => r,
    }
}

/// Answers each waiter of a batch with its own result, or every one with the batch's error.
fn answer(waiters: Vec<Waiter>, results: Result<Vec<Result<Applied, StoreError>>, StoreError>) {
    let err = match results {
        Ok(results) if results.len() == waiters.len() => {
            for (w, r) in waiters.into_iter().zip(results) {
                let _ = w.send(r);
            }
            return;
        }
        Ok(results) => StoreError::Internal(format!(
            "{} results for {} commands",
            results.len(),
            waiters.len()
        )),
        Err(e) => e,
    };
    for w in waiters {
        let _ = w.send(Err(err.clone()));
    }
}

/// A linearizable read waiting for the read index.
pub type ReadWaiter = tokio::sync::oneshot::Sender<Result<Option<u64>, StoreError>>;

/// One member of the store cluster.
pub struct Node {
    /// This member's ID.
    pub id: u64,
    /// The cluster's ID.
    pub cluster_id: u64,
    /// `--name`.
    pub name: String,
    /// `--advertise-client-urls`.
    pub client_urls: Vec<String>,
    /// Raft.
    pub raft: Raft,
    /// Key space, leases, metadata.
    pub state: Arc<StoreState>,
    /// The database.
    pub db: Arc<Db>,
    /// Channels to peers.
    pub peers: PeerClients,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Request limits.
    pub limits: Limits,
    /// The current Raft term, kept by the leadership watcher for response headers.
    pub term: std::sync::atomic::AtomicU64,
    /// Set when this member was removed from the cluster.
    pub removed: AtomicBool,
    /// Commands waiting for [`Node::serve_proposals`] (this member as leader).
    pub proposals: tokio::sync::mpsc::UnboundedSender<Proposal>,
    /// Commands waiting for [`Node::serve_forwards`] (this member as follower).
    pub forwards: tokio::sync::mpsc::UnboundedSender<Forward>,
    /// Linearizable reads waiting for a read index; served in batches by
    /// [`Node::serve_read_index`], one leader round trip per batch.
    pub read_waiters: tokio::sync::mpsc::UnboundedSender<ReadWaiter>,
    /// The term in which this member, as leader, restarted the lease clocks (0: not leading).
    pub lease_term: std::sync::atomic::AtomicU64,
}

fn raft_unavailable<E: std::fmt::Debug>(e: RaftError<u64, E>) -> StoreError {
    match e {
        RaftError::Fatal(_) => StoreError::Stopped,
        RaftError::APIError(e) => StoreError::Internal(format!("{e:?}")),
    }
}

fn forward_err(e: PeerCallError) -> StoreError {
    match e {
        // The leader may have carried it out: the client must not be told to retry.
        PeerCallError::Timeout | PeerCallError::Lost(_) => StoreError::Timeout,
        _ => StoreError::NoLeader,
    }
}

impl Node {
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
        self.metrics.watchers.set(self.state.hub.watchers());
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

    fn peer_url(m: &Member) -> Result<&str, StoreError> {
        m.peer_urls
            .first()
            .map(String::as_str)
            .ok_or(StoreError::NoLeader)
    }

    /// Runs `cmd` through Raft (on the leader, forwarding if needed); returns once applied
    /// on the member that proposed it.
    pub async fn propose(&self, cmd: Command) -> Result<Applied, StoreError> {
        self.metrics.pending.inc();
        let started = std::time::Instant::now();
        let res = self.propose_inner(cmd).await;
        self.metrics
            .proposal_duration
            .observe(started.elapsed().as_secs_f64());
        self.metrics.pending.dec();
        if res.is_err() {
            self.metrics.failed.inc();
        }
        res
    }

    async fn propose_inner(&self, cmd: Command) -> Result<Applied, StoreError> {
        let applied = self
            .leader_or_else(
                || self.propose_as_leader(cmd.clone()),
                |url, left| self.forward_proposal(cmd.clone(), url, left),
            )
            .await?;
        // Read-your-writes on this member: wait until it applied the same entry (not only
        // the same revision: a compaction or a lease change leaves the revision as it is).
        if !self
            .state
            .wait_applied(applied.index, REQUEST_TIMEOUT)
            .await
        {
            return Err(StoreError::Timeout);
        }
        Ok(applied)
    }

    /// Runs `local` if this member leads, else sends `req` to the leader's `rpc`. While no
    /// leader is known or reachable (an election is under way), waits and tries again, up to
    /// [`REQUEST_TIMEOUT`]. A request that may have reached the leader is never repeated.
    async fn leader_or_forward<Req, T, F, Fut>(
        &self,
        rpc: PeerRpc,
        req: &Req,
        local: F,
    ) -> Result<T, StoreError>
    where
        Req: Serialize,
        T: serde::de::DeserializeOwned,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        self.leader_or_else(local, |url, left| async move {
            match self
                .peers
                .call::<Req, Result<T, StoreError>>(&url, rpc, req, left)
                .await
            {
                Ok(r) => r,
                Err(e) => Err(forward_err(e)),
            }
        })
        .await
    }

    /// Runs `local` if this member leads, else `remote` with the leader's peer URL and the
    /// time left; retries on [`StoreError::NoLeader`] as [`Node::leader_or_forward`] says.
    async fn leader_or_else<T, F, Fut, R, RFut>(&self, local: F, remote: R) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
        R: Fn(String, Duration) -> RFut,
        RFut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            let (leader, node) = self.leader().await?;
            let res = if leader == self.id {
                local().await
            } else {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                remote(Self::peer_url(&node)?.to_string(), left).await
            };
            match res {
                Err(StoreError::NoLeader) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// Queues `cmd` for [`Node::serve_forwards`], which sends concurrent commands to the
    /// leader at `url` in one call.
    async fn forward_proposal(
        &self,
        cmd: Command,
        url: String,
        left: Duration,
    ) -> Result<Applied, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.forwards
            .send(Forward { cmd, url, tx })
            .map_err(|_| StoreError::Stopped)?;
        result_within(rx, left).await
    }

    /// On a follower, sends queued commands to the leader in batches: once 8 calls are under
    /// way, everything queued meanwhile goes in the next one (bounded in count and bytes), as
    /// the leader puts concurrent commands in one log entry. Each command gets its own
    /// result; a call that cannot have reached the leader answers NoLeader, so the commands
    /// are retried, and one that may have reached it is never repeated.
    pub async fn serve_forwards(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Forward>,
    ) {
        const MAX_CALLS_IN_FLIGHT: usize = 8;
        let mut carry: Option<Forward> = None;
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_CALLS_IN_FLIGHT));
        loop {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let Some(batch) = next_batch(
                &mut rx,
                &mut carry,
                |f| &f.cmd,
                |first, f| f.url == first.url,
            )
            .await
            else {
                return;
            };
            let url = batch[0].url.clone();
            let node = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let (cmds, waiters): (Vec<Command>, Vec<_>) =
                    batch.into_iter().map(|f| (f.cmd, f.tx)).unzip();
                let res = node
                    .peers
                    .call::<Vec<Command>, Vec<Result<Applied, StoreError>>>(
                        &url,
                        PeerRpc::Propose,
                        &cmds,
                        REQUEST_TIMEOUT,
                    )
                    .await;
                answer(waiters, res.map_err(forward_err));
            });
        }
    }

    /// Proposes on this member as leader (also for commands forwarded by followers):
    /// queued for [`Node::serve_proposals`], which puts concurrent commands in one entry.
    pub async fn propose_as_leader(&self, cmd: Command) -> Result<Applied, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.proposals
            .send(Proposal { cmd, tx })
            .map_err(|_| StoreError::Stopped)?;
        result_within(rx, REQUEST_TIMEOUT).await
    }

    /// Batches queued proposals into log entries: everything queued while the previous
    /// entry was being submitted goes into the next one (bounded in count and bytes), so
    /// under load Raft handles few large entries instead of many small ones. Entries are
    /// submitted in order and their results awaited concurrently.
    pub async fn serve_proposals(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Proposal>,
    ) {
        const MAX_ENTRIES_IN_FLIGHT: usize = 2;
        let mut carry: Option<Proposal> = None;
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_ENTRIES_IN_FLIGHT));
        loop {
            // While the entries in flight are not applied, proposals queue up and the next
            // entry takes them all: the batch grows with the load.
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let Some(batch) = next_batch(&mut rx, &mut carry, |p| &p.cmd, |_, _| true).await else {
                return;
            };
            let (cmds, waiters): (Vec<Command>, Vec<_>) =
                batch.into_iter().map(|p| (p.cmd, p.tx)).unzip();
            self.metrics.batch_size.observe(cmds.len() as f64);
            // The state machine answers the waiters as it applies the entry (and so frees
            // its place in flight); Raft's responder only reports an entry that failed.
            let proposer = self.id;
            let ticket = self.state.waiting.register(
                proposer,
                Box::new(move |results| {
                    let _permit = permit;
                    answer(waiters, results.map(|r| r.into_iter().map(Ok).collect()));
                }),
            );
            match self
                .raft
                .client_write_ff(Proposed {
                    proposer,
                    ticket,
                    cmds,
                })
                .await
            {
                Err(_) => {
                    self.state
                        .waiting
                        .answer(proposer, ticket, Err(StoreError::Stopped));
                }
                Ok(responder) => {
                    let node = self.clone();
                    tokio::spawn(async move {
                        let err = match responder.await {
                            // Applied, so answered already (this only guards against a leak).
                            Ok(Ok(_)) => {
                                StoreError::Internal("entry applied without its results".into())
                            }
                            Ok(Err(ClientWriteError::ForwardToLeader(_))) => StoreError::NoLeader,
                            Ok(Err(e)) => StoreError::Internal(e.to_string()),
                            Err(_) => StoreError::Stopped,
                        };
                        node.state.waiting.answer(proposer, ticket, Err(err));
                    });
                }
            }
        }
    }

    /// The linearizable read barrier (etcd's ReadIndex): confirms leadership with a quorum
    /// and waits until this member applied everything committed before the call.
    pub async fn read_index(&self) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.read_waiters
            .send(tx)
            .map_err(|_| StoreError::Stopped)?;
        let index = rx.await.map_err(|_| StoreError::Stopped)??;
        if let Some(index) = index {
            self.raft
                .wait(Some(REQUEST_TIMEOUT))
                .applied_index_at_least(Some(index), "read index")
                .await
                .map_err(|_| StoreError::Timeout)?;
        }
        Ok(())
    }

    /// Serves queued linearizable reads: every read queued before a leader round trip
    /// starts may use the index it returns, so one round trip serves the whole batch.
    pub async fn serve_read_index(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<ReadWaiter>,
    ) {
        while let Some(first) = rx.recv().await {
            let mut waiters = vec![first];
            while let Ok(w) = rx.try_recv() {
                waiters.push(w);
            }
            let res = self
                .leader_or_forward(PeerRpc::ReadIndex, &(), || self.leader_read_index())
                .await;
            for w in waiters {
                let _ = w.send(res.clone());
            }
        }
    }

    /// On the leader: the log index a linearizable read must wait for.
    pub async fn leader_read_index(&self) -> Result<Option<u64>, StoreError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.raft.get_read_log_id()).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(Ok((read, _applied))) => Ok(read.map(|l| l.index)),
            Ok(Err(RaftError::APIError(_))) => Err(StoreError::NoLeader),
            Ok(Err(e)) => Err(raft_unavailable(e)),
        }
    }

    /// Runs a lease operation on the leader.
    pub async fn lease_op(&self, op: LeaseOp) -> Result<LeaseOpResult, StoreError> {
        self.leader_or_forward(PeerRpc::LeaseOp, &op, || {
            std::future::ready(self.leader_lease_op(op.clone()))
        })
        .await
    }

    /// A lease operation, on this member as leader.
    pub fn leader_lease_op(&self, op: LeaseOp) -> Result<LeaseOpResult, StoreError> {
        if self.raft.metrics().borrow().state != ServerState::Leader {
            return Err(StoreError::NoLeader);
        }
        Ok(match op {
            LeaseOp::KeepAlive(id) => LeaseOpResult::Renewed(self.state.lessor.renew(id)),
            LeaseOp::TimeToLive(id) => LeaseOpResult::Ttl(self.state.lessor.time_to_live(id)),
        })
    }

    /// Members as this member knows them.
    pub fn members(&self) -> MembersInfo {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let membership = m.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, n)| (*id, n.clone(), !voters.contains(id)))
            .collect();
        MembersInfo {
            cluster_id: self.cluster_id,
            members,
        }
    }

    /// Published attributes of members.
    pub fn member_attrs(&self) -> BTreeMap<u64, MemberAttrs> {
        self.state.cluster.read().members.clone()
    }

    /// Voters that have answered this leader without a failure since `since` (this member
    /// counts itself).
    fn connected_since(&self, voters: &[u64], since: std::time::Instant) -> usize {
        voters
            .iter()
            .filter(|id| {
                **id == self.id || self.peers.active_since(**id).is_some_and(|t| t <= since)
            })
            .count()
    }

    /// etcd's mayAddMember: a new voter raises the quorum, so the started members must still
    /// make one, and every voter must be connected (else the new quorum may be unreachable).
    fn may_add_voter(&self, info: &MembersInfo) -> Result<(), StoreError> {
        if !self.limits.strict_reconfig_check {
            return Ok(());
        }
        let voters: Vec<u64> = info
            .members
            .iter()
            .filter(|(_, _, learner)| !learner)
            .map(|(id, _, _)| *id)
            .collect();
        let attrs = self.member_attrs();
        let started = voters
            .iter()
            .filter(|id| attrs.get(id).is_some_and(|a| !a.name.is_empty()))
            .count();
        if started < (voters.len() + 1) / 2 + 1 {
            return Err(StoreError::MemberNotEnoughStarted);
        }
        let since = std::time::Instant::now()
            .checked_sub(HEALTH_INTERVAL)
            .unwrap_or_else(std::time::Instant::now);
        if self.connected_since(&voters, since) < voters.len() {
            return Err(StoreError::Unhealthy);
        }
        Ok(())
    }

    /// etcd's mayRemoveMember: a member that is down may go; otherwise the remaining
    /// connected voters must still make a quorum of the remaining ones.
    fn may_remove_voter(&self, info: &MembersInfo, id: u64) -> Result<(), StoreError> {
        if !self.limits.strict_reconfig_check {
            return Ok(());
        }
        if id != self.id && self.peers.active_since(id).is_none() {
            return Ok(());
        }
        let voters: Vec<u64> = info
            .members
            .iter()
            .filter(|(_, _, learner)| !learner)
            .map(|(id, _, _)| *id)
            .collect();
        let since = std::time::Instant::now()
            .checked_sub(HEALTH_INTERVAL)
            .unwrap_or_else(std::time::Instant::now);
        let active = self.connected_since(&voters, since);
        if active.saturating_sub(1) < 1 + (voters.len() - 1) / 2 {
            return Err(StoreError::Unhealthy);
        }
        Ok(())
    }

    /// Runs a membership change on the leader; returns the added member, if any.
    pub async fn member_change(
        &self,
        change: MemberChange,
    ) -> Result<Option<(u64, Member)>, StoreError> {
        self.leader_or_forward(PeerRpc::MemberChange, &change, || {
            self.leader_member_change(change.clone())
        })
        .await
    }

    /// A membership change, on this member as leader, through joint consensus.
    pub async fn leader_member_change(
        &self,
        change: MemberChange,
    ) -> Result<Option<(u64, Member)>, StoreError> {
        let info = self.members();
        let find = |id: u64| info.members.iter().find(|(i, _, _)| *i == id).cloned();
        let change_err = |e: RaftError<u64, ClientWriteError<u64, Member>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => StoreError::NoLeader,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                StoreError::Internal(e.to_string())
            }
            e => raft_unavailable(e),
        };
        match change {
            MemberChange::Add { peer_urls, learner } => {
                if peer_urls.is_empty() || !peer_urls.iter().all(|u| valid_url(u)) {
                    return Err(StoreError::MemberBadUrls);
                }
                if !learner {
                    self.may_add_voter(&info)?;
                }
                if info
                    .members
                    .iter()
                    .any(|(_, m, _)| m.peer_urls.iter().any(|u| peer_urls.contains(u)))
                {
                    return Err(StoreError::PeerUrlExist);
                }
                let id = new_member_id(&peer_urls, self.cluster_id);
                if find(id).is_some() {
                    return Err(StoreError::MemberExist);
                }
                let member = Member {
                    name: String::new(),
                    peer_urls,
                };
                self.raft
                    .add_learner(id, member.clone(), false)
                    .await
                    .map_err(change_err)?;
                if !learner {
                    let voters = BTreeSet::from([id]);
                    self.raft
                        .change_membership(ChangeMembers::AddVoterIds(voters), false)
                        .await
                        .map_err(change_err)?;
                }
                Ok(Some((id, member)))
            }
            MemberChange::Remove { id } => {
                let (_, _, learner) = find(id).ok_or(StoreError::MemberNotFound)?;
                if !learner {
                    self.may_remove_voter(&info, id)?;
                }
                let ids = BTreeSet::from([id]);
                let change = if learner {
                    ChangeMembers::RemoveNodes(ids)
                } else {
                    ChangeMembers::RemoveVoters(ids)
                };
                self.raft
                    .change_membership(change, false)
                    .await
                    .map_err(change_err)?;
                Ok(None)
            }
            MemberChange::Promote { id } => {
                let (_, _, learner) = find(id).ok_or(StoreError::MemberNotFound)?;
                if !learner {
                    return Err(StoreError::MemberNotLearner);
                }
                let m = self.raft.metrics().borrow().clone();
                let last = m.last_log_index.unwrap_or(0);
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned())
                    .flatten()
                    .map(|l| l.index)
                    .unwrap_or(0);
                // etcd promotes a learner once it has 90% of the leader's log.
                if (matched as f64) < 0.9 * last as f64 {
                    return Err(StoreError::LearnerNotReady);
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(change_err)?;
                Ok(None)
            }
            MemberChange::Update { id, peer_urls } => {
                let (_, mut member, _) = find(id).ok_or(StoreError::MemberNotFound)?;
                if peer_urls.is_empty() || !peer_urls.iter().all(|u| valid_url(u)) {
                    return Err(StoreError::MemberBadUrls);
                }
                member.peer_urls = peer_urls;
                self.raft
                    .change_membership(
                        ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                        false,
                    )
                    .await
                    .map_err(change_err)?;
                Ok(None)
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

/// A URL etcd accepts for a member: http or https with host and port.
pub fn valid_url(u: &str) -> bool {
    match url::Url::parse(u) {
        Ok(p) => {
            matches!(p.scheme(), "http" | "https") && p.host_str().is_some() && p.port().is_some()
        }
        Err(_) => false,
    }
}

/// A member ID derived from its peer URLs and the cluster (plus the time for added members,
/// so that re-adding the same URLs gives a new ID, as in etcd).
pub fn new_member_id(peer_urls: &[String], cluster_id: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hash_id(&[
        &peer_urls.join(","),
        &cluster_id.to_string(),
        &now.to_string(),
    ])
}

/// A stable non-zero 64-bit ID from strings.
pub fn hash_id(parts: &[&str]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let id = u64::from_be_bytes(d[..8].try_into().unwrap_or_default());
    id.max(1)
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    fn cmd(member_id: u64) -> Command {
        Command::Alarm {
            activate: true,
            member_id,
            alarm: 1,
        }
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_and_carries_over_what_does_not_join() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (id, url) in [(1, "a"), (2, "a"), (3, "b"), (4, "b")] {
            tx.send((cmd(id), url)).expect("queued");
        }
        let mut carry = None;
        let by_url = |first: &(Command, &str), next: &(Command, &str)| first.1 == next.1;
        let first = next_batch(&mut rx, &mut carry, |x| &x.0, by_url)
            .await
            .expect("a batch");
        assert_eq!(first.iter().map(|x| x.1).collect::<Vec<_>>(), ["a", "a"]);
        let second = next_batch(&mut rx, &mut carry, |x| &x.0, by_url)
            .await
            .expect("a batch");
        assert_eq!(second.len(), 2);
        assert!(carry.is_none());
        drop(tx);
        assert!(next_batch(&mut rx, &mut carry, |x| &x.0, by_url)
            .await
            .is_none());
    }

    #[tokio::test]
    async fn every_waiter_gets_its_own_result_or_the_batch_error() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| tokio::sync::oneshot::channel()).unzip();
        let applied = |revision| Applied {
            revision,
            index: 1,
            result: Ok(Vec::new()),
        };
        answer(txs, Ok(vec![Ok(applied(5)), Err(StoreError::NoLeader)]));
        let got: Vec<_> = futures::future::join_all(rxs)
            .await
            .into_iter()
            .map(|r| r.expect("answered"))
            .collect();
        assert!(matches!(&got[0], Ok(a) if a.revision == 5));
        assert!(matches!(&got[1], Err(StoreError::NoLeader)));
        // A leader that answers for fewer commands than it was sent fails the whole batch.
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| tokio::sync::oneshot::channel()).unzip();
        answer(txs, Ok(vec![Ok(applied(6))]));
        for r in futures::future::join_all(rxs).await {
            assert!(matches!(r.expect("answered"), Err(StoreError::Internal(_))));
        }
    }
}
