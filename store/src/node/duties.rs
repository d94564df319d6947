//! The background duties of a running member: following Raft's leadership (term, metrics,
//! lease clocks, removal), revoking expired leases as leader, probing peers for the strict
//! reconfiguration check, and publishing this member's attributes.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use parking_lot::Mutex;

use super::{MembersInfo, Node};
use crate::apply::{Command, MemberAttrs};
use crate::raft::network::PeerRpc;

/// The clock of a duty that runs once a second (a late tick is not made up).
pub(super) fn every_second() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

impl Node {
    /// Waits for the duty's next tick; false once this member has been removed from the
    /// cluster, when the duty ends.
    pub(super) async fn tick_as_member(&self, tick: &mut tokio::time::Interval) -> bool {
        tick.tick().await;
        !self.removed.load(Ordering::Relaxed)
    }

    /// Follows Raft metrics: leader changes, lease clocks on promotion, removal of this member.
    pub(super) async fn watch_leadership(self: Arc<Self>) {
        let node = self;
        let mut rx = node.raft.metrics();
        let mut last_leader = None;
        let mut member_seen = false;
        loop {
            let m = rx.borrow_and_update().clone();
            if m.current_leader != last_leader {
                if m.current_leader.is_some() {
                    node.metrics.leader_changes.inc();
                }
                last_leader = m.current_leader;
            }
            node.term.store(m.current_term, Ordering::Relaxed);
            node.terms.send_if_modified(|t| {
                let changed = *t != m.current_term;
                *t = m.current_term;
                changed
            });
            let leading = m.state == ServerState::Leader;
            node.metrics
                .has_leader
                .set(i64::from(m.current_leader.is_some()));
            node.metrics.is_leader.set(i64::from(leading));
            node.metrics
                .committed
                .set(m.last_applied.map(|l| l.index as i64).unwrap_or(0));
            let led_term = node.lease_term.load(Ordering::Acquire);
            if leading && led_term != m.current_term {
                // A new leader restarts every lease clock: no lease expires early for the change.
                node.state.lessor.promote(node.limits.election_timeout);
                node.lease_term.store(m.current_term, Ordering::Release);
            } else if !leading && led_term != 0 {
                node.lease_term.store(0, Ordering::Release);
            }
            let in_config = m
                .membership_config
                .membership()
                .get_node(&node.id)
                .is_some();
            if in_config {
                member_seen = true;
            } else if member_seen && m.membership_config.log_id().is_some() {
                node.removed.store(true, Ordering::Relaxed);
                tracing::error!(
                    "the member has been permanently removed from the cluster; exiting"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                std::process::exit(0);
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// On the leader: revokes leases whose clock ran out.
    pub(super) async fn expire_leases(self: Arc<Self>) {
        let node = self;
        let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let term = node.raft.metrics().borrow().current_term;
            if node.lease_term.load(Ordering::Acquire) != term || term == 0 {
                continue;
            }
            for id in node.state.lessor.expired() {
                if !in_flight.lock().insert(id) {
                    continue;
                }
                let node = node.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    tracing::info!(lease = id, "lease expired; revoking");
                    if let Err(e) = node.propose_as_leader(Command::LeaseRevoke { id }).await {
                        tracing::warn!(lease = id, "revoking expired lease failed: {e}");
                    }
                    in_flight.lock().remove(&id);
                });
            }
        }
    }

    /// Asks every other member for its view of the membership once a second, so that each member
    /// (not only the leader, whose replication also counts) knows since when its peers have been
    /// answering: the strict reconfiguration check needs that right after a leader change too,
    /// as etcd's transport keeps it for every peer.
    pub(super) async fn probe_peers(self: Arc<Self>) {
        let node = self;
        let mut tick = every_second();
        while node.tick_as_member(&mut tick).await {
            let info = node.members();
            let probes = info
                .members
                .iter()
                .filter(|(id, _, _)| *id != node.id)
                .filter_map(|(id, m, _)| {
                    let url = m.peer_urls.first()?.clone();
                    let (id, peers) = (*id, node.peers.clone());
                    Some(async move {
                        let timeout = Duration::from_secs(1);
                        let ok = peers
                            .call::<_, MembersInfo>(&url, PeerRpc::Members, &(), timeout)
                            .await
                            .is_ok();
                        peers.mark(id, ok);
                    })
                });
            futures::future::join_all(probes).await;
        }
    }

    /// Publishes this member's name and client URLs through the log (once they differ).
    pub(super) async fn publish_attrs(self: Arc<Self>) {
        let node = self;
        let attrs = MemberAttrs {
            name: node.name.clone(),
            client_urls: node.client_urls.clone(),
        };
        loop {
            if node.member_attrs().get(&node.id) == Some(&attrs) {
                return;
            }
            match node
                .propose(Command::MemberAttrs {
                    id: node.id,
                    attrs: attrs.clone(),
                })
                .await
            {
                Ok(_) => return,
                Err(e) => tracing::debug!("publishing member attributes: {e}; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
