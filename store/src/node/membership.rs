//! Membership: the members as this member knows them, and changes to them (add, remove,
//! promote, update) run by the leader through joint consensus, with etcd's strict
//! reconfiguration checks; and member IDs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::{raft_unavailable, Node};
use crate::apply::MemberAttrs;
use crate::error::StoreError;
use crate::raft::network::PeerRpc;
use crate::raft::Member;

/// How long a peer must have been answering to count as connected for a membership change
/// (etcd's HealthInterval).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

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
        if started < voters.len().div_ceil(2) + 1 {
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
