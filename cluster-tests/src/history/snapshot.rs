//! Reading the final state under a prefix: linearizably through the cluster, or serializably
//! from each member until they agree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, GetOptions};

use super::watch::{EventKind, WatchedEvent};
use crate::Cluster;

/// Bound on one read.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts of a retried read.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// One key as a range read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// The keys under a prefix and the revision (response header) they were read at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub revision: i64,
    pub kvs: BTreeMap<String, Kv>,
}

impl Snapshot {
    /// The largest `mod_revision` among the keys (0 if there are none).
    pub fn max_mod_revision(&self) -> i64 {
        self.kvs
            .values()
            .map(|kv| kv.mod_revision)
            .max()
            .unwrap_or(0)
    }

    /// The events a watch from revision 1 on the prefix must have delivered if every write
    /// under it was a put of a key never written again (as a [`super::WriteLoad`] does): one
    /// PUT per key, in revision order.
    pub fn as_put_events(&self) -> Vec<WatchedEvent> {
        let mut events: Vec<WatchedEvent> = self
            .kvs
            .iter()
            .map(|(key, kv)| WatchedEvent {
                revision: kv.mod_revision,
                key: key.clone(),
                kind: EventKind::Put,
                value: kv.value.clone(),
            })
            .collect();
        events.sort_by(|a, b| (a.revision, &a.key).cmp(&(b.revision, &b.key)));
        events
    }
}

/// Reads every key under `prefix` in one range request (bounded by 5 s).
pub async fn read_prefix(
    client: &mut Client,
    prefix: &str,
    serializable: bool,
) -> Result<Snapshot> {
    let mut options = GetOptions::new().with_prefix();
    if serializable {
        options = options.with_serializable();
    }
    let response = tokio::time::timeout(READ_TIMEOUT, client.get(prefix, Some(options)))
        .await
        .with_context(|| format!("range {prefix:?} timed out after {READ_TIMEOUT:?}"))?
        .with_context(|| format!("range {prefix:?}"))?;
    if response.more() {
        bail!("range {prefix:?} returned a partial result (more = true)");
    }
    let revision = response
        .header()
        .map(|h| h.revision())
        .context("range response without header")?;
    let mut kvs = BTreeMap::new();
    for kv in response.kvs() {
        let key = kv.key_str().context("key is not UTF-8")?.to_owned();
        let value = kv.value_str().context("value is not UTF-8")?.to_owned();
        kvs.insert(
            key,
            Kv {
                value,
                create_revision: kv.create_revision(),
                mod_revision: kv.mod_revision(),
                version: kv.version(),
                lease: kv.lease(),
            },
        );
    }
    Ok(Snapshot { revision, kvs })
}

/// A linearizable read of `prefix` through the given members, retried (elections, restarts)
/// for up to `timeout`.
pub async fn linearizable_snapshot(
    cluster: &Cluster,
    members: &[usize],
    prefix: &str,
    timeout: Duration,
) -> Result<Snapshot> {
    let urls: Vec<String> = members.iter().map(|&i| cluster.client_url(i)).collect();
    let deadline = Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        let url = &urls[attempt % urls.len()];
        attempt += 1;
        let result = async {
            let mut client = Client::connect([url], Some(cluster.connect_options()?)).await?;
            read_prefix(&mut client, prefix, false).await
        }
        .await;
        match result {
            Ok(snapshot) => return Ok(snapshot),
            Err(err) if Instant::now() >= deadline => {
                return Err(err).context(format!(
                    "no linearizable read of {prefix:?} succeeded within {timeout:?} \
                     ({attempt} attempts), last through {url}"
                ))
            }
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Serializable reads of `prefix` on each of `members`, repeated until all members return the
/// same revision and the same keys (values, revisions, versions, leases). Fails after
/// `timeout` with what each member last returned.
pub async fn converged_snapshot(
    cluster: &Cluster,
    members: &[usize],
    prefix: &str,
    timeout: Duration,
) -> Result<Snapshot> {
    anyhow::ensure!(!members.is_empty(), "no members to compare");
    let deadline = Instant::now() + timeout;
    loop {
        let mut reads: Vec<(usize, Result<Snapshot>)> = Vec::new();
        for &i in members {
            let result = async {
                let mut client = cluster.member_client(i).await?;
                read_prefix(&mut client, prefix, true).await
            }
            .await;
            reads.push((i, result));
        }
        if let Ok(first) = &reads[0].1 {
            let all_same = reads
                .iter()
                .all(|(_, r)| r.as_ref().is_ok_and(|s| s == first));
            if all_same {
                return Ok(first.clone());
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "members did not converge on {prefix:?} within {timeout:?}:\n{}",
                describe_divergence(cluster, &reads)
            );
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Per member: revision and key count, and the first keys on which it differs from the
/// union of all members' keys.
fn describe_divergence(cluster: &Cluster, reads: &[(usize, Result<Snapshot>)]) -> String {
    let mut union: BTreeMap<&str, Vec<(usize, &Kv)>> = BTreeMap::new();
    for (i, read) in reads {
        if let Ok(snapshot) = read {
            for (key, kv) in &snapshot.kvs {
                union.entry(key).or_default().push((*i, kv));
            }
        }
    }
    let mut text = String::new();
    for (i, read) in reads {
        let name = cluster.member_name(*i);
        match read {
            Ok(snapshot) => {
                let _ = writeln!(
                    text,
                    "  {name}: revision {}, {} keys",
                    snapshot.revision,
                    snapshot.kvs.len()
                );
            }
            Err(err) => {
                let _ = writeln!(text, "  {name}: read failed: {err:#}");
            }
        }
    }
    let ok_members = reads.iter().filter(|(_, r)| r.is_ok()).count();
    let mut shown = 0;
    for (key, holders) in &union {
        let same = holders.len() == ok_members && holders.iter().all(|(_, kv)| *kv == holders[0].1);
        if same {
            continue;
        }
        if shown == 10 {
            let _ = writeln!(text, "  ...");
            break;
        }
        shown += 1;
        let held: Vec<String> = holders
            .iter()
            .map(|(i, kv)| {
                format!(
                    "{} (mod {}, value {:?})",
                    cluster.member_name(*i),
                    kv.mod_revision,
                    kv.value
                )
            })
            .collect();
        let _ = writeln!(text, "  key {key}: held by {}", held.join(", "));
    }
    text
}
