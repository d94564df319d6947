//! Membership: the members as this member knows them, and changes to them (add, remove,
//! promote, update) run by the leader through joint consensus, with etcd's strict
//! reconfiguration checks; the promotion of voters added to a one-voter cluster, which join
//! as learners; and member IDs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::{raft_unavailable, Node};
use crate::apply::{Command, MemberAttrs};
use crate::error::StoreError;
use crate::raft::network::PeerRpc;
use crate::raft::Member;

/// How long a peer must have been answering to count as connected for a membership change
/// (etcd's HealthInterval).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// How long the leader waits for the promotion of a caught-up pending voter to commit before
/// it lets other membership changes run (and tries again).
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(10);

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

impl Node {
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

    /// Members as clients see them: a voter that Raft still holds as a learner until it has
    /// caught up (`ClusterMeta::pending_voters`) is listed as the voter it was added as.
    pub fn members_for_clients(&self) -> MembersInfo {
        let mut info = self.members();
        let cluster = self.state.cluster.read();
        for (id, _, learner) in &mut info.members {
            if cluster.pending_voters.contains(id) {
                *learner = false;
            }
        }
        info
    }

    /// Whether this member is a learner as clients see it (see [`Node::members_for_clients`]).
    pub fn is_learner(&self) -> bool {
        let voter = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.id);
        !voter && !self.state.cluster.read().pending_voters.contains(&self.id)
    }

    /// Whether the leader has replicated at least 90% of its log to learner `id` (etcd's
    /// condition for promoting a learner).
    fn caught_up(&self, id: u64) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let last = m.last_log_index.unwrap_or(0);
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned())
            .flatten()
            .map(|l| l.index);
        matched.is_some_and(|i| i as f64 >= 0.9 * last as f64)
    }

    /// On the leader, once a second: promotes the pending voters that have caught up, and
    /// forgets those that were removed or are voters already.
    pub(super) async fn promote_pending_voters(self: Arc<Self>) {
        let node = self;
        let mut tick = super::duties::every_second();
        while node.tick_as_member(&mut tick).await {
            let pending = node.state.cluster.read().pending_voters.clone();
            if pending.is_empty()
                || node.raft.metrics().borrow().state != openraft::ServerState::Leader
            {
                continue;
            }
            for id in pending {
                // Not while a change runs: an added voter is marked before it is added.
                let _changing = node.member_changes.lock().await;
                let info = node.members();
                let learner = info.members.iter().any(|(i, _, l)| *i == id && *l);
                if learner {
                    if !node.caught_up(id) {
                        continue;
                    }
                    let voters = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                    let change = node.raft.change_membership(voters, false);
                    match tokio::time::timeout(PROMOTE_TIMEOUT, change).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::debug!(member = id, "promoting an added voter: {e}; retrying");
                            continue;
                        }
                        Err(_) => {
                            tracing::warn!(member = id, "promoting an added voter: not committed within {PROMOTE_TIMEOUT:?}; retrying");
                            continue;
                        }
                    }
                    tracing::info!(member = id, "added voter caught up; promoted from learner");
                }
                let done = Command::PendingVoter { id, pending: false };
                if let Err(e) = node.propose(done).await {
                    tracing::debug!(member = id, "clearing a pending voter: {e}; retrying");
                }
            }
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
    /// As etcd, a cluster of one started voter may take a second (restoring from a backup
    /// starts that way). `info`: the members as clients see them.
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
        let one_voter = voters.len() == 1 && started == 1;
        if !one_voter && started < voters.len().div_ceil(2) + 1 {
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
        let _changing = self.member_changes.lock().await;
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
                    self.may_add_voter(&self.members_for_clients())?;
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
                // Raft changes voters by joint consensus: with one voter, the joint
                // configuration needs the new member's vote, so it could not commit (nor the
                // call return) before the new member runs, where etcd answers at once. Such a
                // voter joins as a learner, marked first, and the leader promotes it once it
                // has caught up; clients see a voter throughout.
                if !learner && !self.state.cluster.read().pending_voters.is_empty() {
                    // A voter added earlier is still a learner (it has not caught up), so
                    // Raft counts fewer voters than clients see; another would widen that
                    // gap. Refused as etcd refuses a change while members are not all
                    // connected (clients retry): the earlier one is promoted within a second
                    // of catching up, and etcd's 5 s health interval for it is longer.
                    return Err(StoreError::Unhealthy);
                }
                let voters = info.members.iter().filter(|(_, _, l)| !l).count();
                let via_learner = !learner && voters == 1;
                if via_learner {
                    self.propose(Command::PendingVoter { id, pending: true })
                        .await?;
                }
                self.raft
                    .add_learner(id, member.clone(), false)
                    .await
                    .map_err(change_err)?;
                if !learner && !via_learner {
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
                if self.state.cluster.read().pending_voters.contains(&id) {
                    self.propose(Command::PendingVoter { id, pending: false })
                        .await?;
                }
                Ok(None)
            }
            MemberChange::Promote { id } => {
                let learner = self
                    .members_for_clients()
                    .members
                    .iter()
                    .find(|(i, _, _)| *i == id)
                    .map(|(_, _, learner)| *learner)
                    .ok_or(StoreError::MemberNotFound)?;
                if !learner {
                    return Err(StoreError::MemberNotLearner);
                }
                if !self.caught_up(id) {
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
