//! Starting a member: its identity (bootstrap a new cluster or join an existing one), Raft,
//! the listeners, and the leader's background duties (lease expiry, metrics).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::error::{InitializeError, RaftError};
use openraft::{ServerState, SnapshotPolicy};
use parking_lot::Mutex;

use crate::apply::{Command, MemberAttrs};
use crate::config::{ClusterState, ServerConfig};
use crate::db::Db;
use crate::metrics::Metrics;
use crate::node::{hash_id, Limits, MembersInfo, Node};
use crate::raft::network::{Network, PeerClients, PeerRpc};
use crate::raft::{LogStore, Member, Raft, StateMachine, StoreState};
use crate::schema::{CF_META, META_CLUSTER, META_CLUSTER_ID, META_MEMBER_ID};

/// This member's identity.
struct Identity {
    id: u64,
    cluster_id: u64,
    /// Members to initialize Raft with (a new cluster only).
    initial: Option<BTreeMap<u64, Member>>,
}

fn read_u64(db: &Db, key: &[u8]) -> anyhow::Result<Option<u64>> {
    Ok(db.raw().get_cf(db.cf(CF_META), key)?.map(|b| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8.min(b.len())]);
        u64::from_be_bytes(a)
    }))
}

fn write_identity(db: &Db, id: u64, cluster_id: u64) -> anyhow::Result<()> {
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(db.cf(CF_META), META_MEMBER_ID, id.to_be_bytes());
    batch.put_cf(db.cf(CF_META), META_CLUSTER_ID, cluster_id.to_be_bytes());
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.raw().write_opt(batch, &opts)?;
    Ok(())
}

/// Member ID of an initial member, as every member computes it.
pub fn initial_member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    hash_id(&[&urls.join(","), token])
}

async fn identity(cfg: &ServerConfig, db: &Db, peers: &PeerClients) -> anyhow::Result<Identity> {
    if let (Some(id), Some(cluster_id)) = (
        read_u64(db, META_MEMBER_ID)?,
        read_u64(db, META_CLUSTER_ID)?,
    ) {
        return Ok(Identity {
            id,
            cluster_id,
            initial: None,
        });
    }
    let members = cfg.initial_members()?;
    let mine = cfg.peer_urls();
    match cfg.initial_cluster_state {
        ClusterState::New => {
            let (_, urls) = members
                .iter()
                .find(|(n, _)| *n == cfg.name)
                .with_context(|| {
                    format!(
                        "--initial-cluster has no member named {:?} (--name)",
                        cfg.name
                    )
                })?;
            let (mut a, mut b) = (urls.clone(), mine.clone());
            a.sort();
            b.sort();
            if a != b {
                anyhow::bail!(
                    "--initial-cluster has {}={} but --initial-advertise-peer-urls is {}",
                    cfg.name,
                    urls.join(","),
                    mine.join(",")
                );
            }
            let mut initial = BTreeMap::new();
            for (name, urls) in &members {
                let id = initial_member_id(urls, &cfg.initial_cluster_token);
                initial.insert(
                    id,
                    Member {
                        name: name.clone(),
                        peer_urls: urls.clone(),
                    },
                );
            }
            let ids: Vec<String> = initial.keys().map(|i| i.to_string()).collect();
            let cluster_id = hash_id(&[&ids.join(","), &cfg.initial_cluster_token]);
            let id = initial_member_id(&mine, &cfg.initial_cluster_token);
            write_identity(db, id, cluster_id)?;
            Ok(Identity {
                id,
                cluster_id,
                initial: Some(initial),
            })
        }
        ClusterState::Existing => {
            let mut last_err = String::from("no other member in --initial-cluster");
            for (_, urls) in &members {
                for url in urls.iter().filter(|u| !mine.contains(u)) {
                    match peers
                        .call::<_, MembersInfo>(url, PeerRpc::Members, &(), Duration::from_secs(3))
                        .await
                    {
                        Ok(info) => {
                            let me = info
                                .members
                                .iter()
                                .find(|(_, m, _)| m.peer_urls.iter().any(|u| mine.contains(u)));
                            let Some((id, _, _)) = me else {
                                anyhow::bail!(
                                    "this member ({}) is not in the cluster: add it first with `etcdctl member add {} --peer-urls={}`",
                                    mine.join(","),
                                    cfg.name,
                                    mine.join(",")
                                );
                            };
                            write_identity(db, *id, info.cluster_id)?;
                            return Ok(Identity {
                                id: *id,
                                cluster_id: info.cluster_id,
                                initial: None,
                            });
                        }
                        Err(e) => last_err = format!("{url}: {e}"),
                    }
                }
            }
            anyhow::bail!("cannot reach any member of the existing cluster to join it ({last_err})")
        }
    }
}

/// Runs a member until SIGINT/SIGTERM.
pub async fn run(cfg: ServerConfig) -> anyhow::Result<()> {
    let data_dir = cfg.data_dir();
    let db = Db::open(&data_dir)?;
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(StoreState::load(db.clone()).context("loading the key space")?);
    let peers = PeerClients::new(crate::server::peer_client_tls(&cfg)?);
    let ident = identity(&cfg, &db, &peers).await?;
    tracing::info!(member_id = format!("{:x}", ident.id), cluster_id = format!("{:x}", ident.cluster_id), name = %cfg.name, "starting member");

    let raft_config = openraft::Config {
        cluster_name: cfg.initial_cluster_token.clone(),
        heartbeat_interval: cfg.heartbeat_interval,
        election_timeout_min: cfg.election_timeout,
        election_timeout_max: cfg.election_timeout * 2,
        install_snapshot_timeout: 30_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_count),
        max_in_snapshot_log_to_keep: 1000,
        ..Default::default()
    }
    .validate()
    .context("raft configuration")?;
    let log = LogStore::new(db.clone(), metrics.clone(), ident.id)?;
    let durability = log.durability();
    let sm = StateMachine::new(
        state.clone(),
        db.clone(),
        metrics.clone(),
        data_dir.join("member").join("snap"),
        durability.clone(),
    )?;
    let network = Network::new(peers.clone(), metrics.clone(), durability);
    let raft = Raft::new(ident.id, Arc::new(raft_config), network, log, sm).await?;

    let election_timeout = Duration::from_millis(cfg.election_timeout);
    let (read_waiters, read_queue) = tokio::sync::mpsc::unbounded_channel();
    let (proposals, proposal_queue) = tokio::sync::mpsc::unbounded_channel();
    let (forwards, forward_queue) = tokio::sync::mpsc::unbounded_channel();
    let node = Arc::new(Node {
        id: ident.id,
        cluster_id: ident.cluster_id,
        name: cfg.name.clone(),
        client_urls: cfg.client_urls(),
        raft: raft.clone(),
        state,
        db,
        peers,
        metrics,
        limits: Limits {
            max_request_bytes: cfg.max_request_bytes,
            max_txn_ops: cfg.max_txn_ops,
            strict_reconfig_check: cfg.strict_reconfig_check,
            quota_backend_bytes: cfg.quota_backend_bytes,
            min_lease_ttl: ((3 * cfg.election_timeout / 2 + 999) / 1000) as i64,
            election_timeout,
        },
        removed: Default::default(),
        term: Default::default(),
        read_waiters,
        proposals,
        forwards,
        lease_term: Default::default(),
    });

    crate::server::serve_peers(&cfg, node.clone()).await?;
    if let Some(initial) = ident.initial {
        match raft.initialize(initial).await {
            Ok(()) => {}
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(anyhow::anyhow!("initializing raft: {e}")),
        }
    }
    crate::server::serve_clients(&cfg, node.clone()).await?;
    crate::server::serve_metrics(&cfg, node.clone()).await?;

    tokio::spawn(node.clone().serve_read_index(read_queue));
    tokio::spawn(node.clone().serve_proposals(proposal_queue));
    tokio::spawn(node.clone().serve_forwards(forward_queue));
    tokio::spawn(watch_leadership(node.clone()));
    tokio::spawn(expire_leases(node.clone()));
    tokio::spawn(publish_attrs(node.clone()));
    tokio::spawn(probe_peers(node.clone()));

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = raft.shutdown().await;
    let _ = node.db.raw().flush_wal(true);
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Follows Raft metrics: leader changes, lease clocks on promotion, removal of this member.
async fn watch_leadership(node: Arc<Node>) {
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
            tracing::error!("the member has been permanently removed from the cluster; exiting");
            tokio::time::sleep(Duration::from_millis(200)).await;
            std::process::exit(0);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// On the leader: revokes leases whose clock ran out.
async fn expire_leases(node: Arc<Node>) {
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
async fn probe_peers(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if node.removed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let info = node.members();
        let probes = info
            .members
            .iter()
            .filter(|(id, _, _)| *id != node.id)
            .filter_map(|(id, m, _)| {
                let url = m.peer_urls.first()?.clone();
                let (id, peers) = (*id, node.peers.clone());
                Some(async move {
                    let ok = peers
                        .call::<_, MembersInfo>(&url, PeerRpc::Members, &(), Duration::from_secs(1))
                        .await
                        .is_ok();
                    peers.mark(id, ok);
                })
            });
        futures::future::join_all(probes).await;
    }
}

/// Publishes this member's name and client URLs through the log (once they differ).
async fn publish_attrs(node: Arc<Node>) {
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

/// `store snapshot restore`: a new data dir holding the backup's key space and leases.
pub fn restore(file: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    if data_dir.exists() {
        anyhow::bail!(
            "data-dir {} exists; restore into a new directory",
            data_dir.display()
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut payload = crate::raft::snapshot::from_backup(&bytes)?;
    // A restored member starts a new cluster: no Raft history, no membership.
    payload.last_applied = None;
    payload.membership = Default::default();
    payload.meta.retain(|(k, _)| k.as_slice() != META_CLUSTER);
    let db = Db::open(data_dir)?;
    crate::raft::snapshot::install(&db, &payload)?;
    Ok(())
}
