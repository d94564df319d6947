//! Starting a member: its identity (bootstrap a new cluster or join an existing one), Raft,
//! the listeners, and the node with its background duties (see `node`); and restoring a
//! backup into a new data dir.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::error::{InitializeError, RaftError};
use openraft::SnapshotPolicy;

use crate::config::{ClusterState, ServerConfig};
use crate::db::Db;
use crate::metrics::Metrics;
use crate::node::{hash_id, Limits, MemberIdentity, MembersInfo, Node};
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
                                    "this member ({}) is not in the cluster: add it first \
                                     with `etcdctl member add {} --peer-urls={}`",
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

/// openraft's election timeout range (min, max) for etcd's `--election-timeout` `t` (ms).
///
/// etcd's follower stands a random `[t, 2t)` after the last word from its leader. openraft's
/// follower that knew a leader waits its leader lease (`election_timeout_max`: until then it
/// also refuses to vote for anyone else) plus a random `[min, max)`: with `[t/2, t)` that is
/// `[1.5t, 2t)`, inside etcd's range. The lease stays coherent: a follower refuses votes
/// for `max` after the last word from the leader and stands only after `max + min`, so a
/// candidate's voters' leases have run out too. Linearizable reads confirm leadership with a
/// quorum round, not a lease, so they do not depend on these timeouts; a new leader still
/// restarts every lease clock with `t` to spare (`Limits::election_timeout`, etcd's rule).
pub fn election_timeouts(t: u64) -> (u64, u64) {
    (t / 2, t)
}

/// Runs a member until SIGINT/SIGTERM.
pub async fn run(cfg: ServerConfig) -> anyhow::Result<()> {
    let data_dir = cfg.data_dir();
    let db = Db::open(&data_dir)?;
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(StoreState::load(db.clone()).context("loading the key space")?);
    let peers = PeerClients::new(crate::server::peer_client_tls(&cfg)?);
    let ident = identity(&cfg, &db, &peers).await?;
    tracing::info!(
        member_id = format!("{:x}", ident.id),
        cluster_id = format!("{:x}", ident.cluster_id),
        name = %cfg.name,
        "starting member"
    );

    let (election_timeout_min, election_timeout_max) = election_timeouts(cfg.election_timeout);
    let raft_config = openraft::Config {
        cluster_name: cfg.initial_cluster_token.clone(),
        heartbeat_interval: cfg.heartbeat_interval,
        election_timeout_min,
        election_timeout_max,
        install_snapshot_timeout: 30_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_count),
        max_in_snapshot_log_to_keep: 1000,
        ..Default::default()
    }
    .validate()
    .context("raft configuration")?;
    let log =
        LogStore::new(db.clone(), metrics.clone(), ident.id)?.with_appends(state.appends.clone());
    let durability = log.durability();
    let snap_dir = data_dir.join("member").join("snap");
    let sm = StateMachine::new(
        state.clone(),
        db.clone(),
        metrics.clone(),
        snap_dir.clone(),
        durability.clone(),
    )?;
    let network = Network::new(peers.clone(), metrics.clone(), durability);
    let raft = Raft::new(ident.id, Arc::new(raft_config), network, log, sm).await?;

    let who = MemberIdentity {
        id: ident.id,
        cluster_id: ident.cluster_id,
        name: cfg.name.clone(),
        client_urls: cfg.client_urls(),
        snap_dir,
    };
    let limits = Limits {
        max_request_bytes: cfg.max_request_bytes,
        max_txn_ops: cfg.max_txn_ops,
        strict_reconfig_check: cfg.strict_reconfig_check,
        quota_backend_bytes: cfg.quota_backend_bytes,
        min_lease_ttl: (3 * cfg.election_timeout / 2).div_ceil(1000) as i64,
        election_timeout: Duration::from_millis(cfg.election_timeout),
    };
    let (node, queues) = Node::new(who, limits, raft.clone(), state, db.clone(), peers, metrics);

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

    node.start(queues);

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = raft.shutdown().await;
    let _ = db.raw().flush_wal(true);
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

/// `store snapshot restore`: a new data dir holding the backup's key space and leases.
///
/// The backup is read twice, never whole into memory: once to check its SHA-256 (nothing is
/// created for a corrupt file), then record by record into a database in
/// `<data-dir>.restoring`, renamed to the data dir once complete, so an interrupted restore
/// leaves no data dir that looks whole.
pub fn restore(file: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Read;
    if data_dir.exists() {
        anyhow::bail!(
            "data-dir {} exists; restore into a new directory",
            data_dir.display()
        );
    }
    let mut part = data_dir.as_os_str().to_owned();
    part.push(".restoring");
    let part = std::path::PathBuf::from(part);
    if part.exists() {
        anyhow::bail!(
            "{} exists (left by a restore that did not finish?); remove it first",
            part.display()
        );
    }
    let body = store_backup::check_file(file)?;
    let restored = (|| -> anyhow::Result<()> {
        let db = Db::open(&part)?;
        let input =
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut records = std::io::BufReader::with_capacity(1 << 20, input.take(body));
        // The cluster's own record (members, alarms) stays behind: a new cluster starts here.
        crate::raft::snapshot::restore_from(&db, &mut records, |key| key != META_CLUSTER)
            .with_context(|| format!("restoring {}", file.display()))
    })();
    if let Err(e) = restored {
        let _ = std::fs::remove_dir_all(&part);
        return Err(e);
    }
    std::fs::rename(&part, data_dir)
        .with_context(|| format!("cannot rename {} to {}", part.display(), data_dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::election_timeouts;
    use super::restore;
    use crate::db::Db;
    use crate::schema::{CF_KV, CF_LEASE, CF_META, META_CLUSTER};

    /// A backup restores record by record into a new data dir (more than one write batch of
    /// them here), without the cluster's own record and without Raft history; a corrupt,
    /// cut-off or undecodable backup leaves no directory behind.
    #[test]
    fn a_backup_restores_in_batches_and_a_bad_one_leaves_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("source")).expect("open db");
        let big = vec![9u8; 1 << 20];
        for i in 0..20u8 {
            db.raw().put_cf(db.cf(CF_KV), [b'k', i], &big).expect("put");
        }
        db.raw()
            .put_cf(db.cf(CF_LEASE), b"l1", b"lease")
            .expect("put");
        db.raw()
            .put_cf(db.cf(CF_META), META_CLUSTER, b"members")
            .expect("put");
        let backup = dir.path().join("backup.db");
        let file = std::fs::File::create(&backup).expect("create");
        let mut sealer = store_backup::Sealer::new(file);
        crate::raft::snapshot::write_to(&db, &mut sealer).expect("write");
        sealer.finish().expect("seal");

        let target = dir.path().join("restored");
        restore(&backup, &target).expect("restore");
        assert!(!dir.path().join("restored.restoring").exists());
        let restored = Db::open(&target).expect("open restored");
        let kv: Vec<_> = restored
            .raw()
            .iterator_cf(restored.cf(CF_KV), rocksdb::IteratorMode::Start)
            .map(|r| r.expect("read"))
            .collect();
        assert_eq!(kv.len(), 20);
        assert!(kv.iter().all(|(_, v)| v.as_ref() == big.as_slice()));
        let lease = restored
            .raw()
            .get_cf(restored.cf(CF_LEASE), b"l1")
            .expect("get");
        assert_eq!(lease.as_deref(), Some(&b"lease"[..]));
        let cluster = restored
            .raw()
            .get_cf(restored.cf(CF_META), META_CLUSTER)
            .expect("get");
        assert_eq!(cluster, None);
        assert!(
            restore(&backup, &target).is_err(),
            "an existing data dir is refused"
        );

        let bytes = std::fs::read(&backup).expect("read");
        for (name, bad) in [
            ("corrupt", [&bytes[..100], b"x", &bytes[101..]].concat()),
            ("cut", bytes[..bytes.len() / 2].to_vec()),
            // A sound checksum over a body that is no payload: found while writing records.
            ("garbage", store_backup::seal(vec![0xff; 600])),
        ] {
            let file = dir.path().join(format!("{name}.db"));
            std::fs::write(&file, bad).expect("write");
            let target = dir.path().join(name);
            assert!(restore(&file, &target).is_err(), "{name}");
            assert!(!target.exists(), "{name}");
            assert!(
                !dir.path().join(format!("{name}.restoring")).exists(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_follower_stands_within_etcds_election_range() {
        for t in [100, 1000, 5000] {
            let (min, max) = election_timeouts(t);
            // Leader lease (max) plus a random [min, max): inside etcd's [t, 2t).
            assert!(max + min >= t && max + max <= 2 * t, "t = {t}");
            assert!(min < max);
        }
        // With the default heartbeat of 100 ms, openraft accepts the range.
        let (min, max) = election_timeouts(1000);
        let config = openraft::Config {
            heartbeat_interval: 100,
            election_timeout_min: min,
            election_timeout_max: max,
            ..Default::default()
        };
        assert!(config.validate().is_ok());
    }
}
