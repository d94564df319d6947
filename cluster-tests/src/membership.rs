//! Changing the cluster's membership: adding and removing members.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use etcd_client::Client;

use crate::clients::RPC_TIMEOUT;
use crate::cluster::START_TIMEOUT;
use crate::member::{Member, State};
use crate::Cluster;

/// How long a membership change may be retried while the cluster calls itself unhealthy.
/// etcd refuses `member add` until the leader has been connected to a quorum for 5 s.
const RECONFIG_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a removed member gets to exit by itself before it is stopped.
const REMOVED_EXIT_GRACE: Duration = Duration::from_secs(5);

impl Cluster {
    /// Allocates name, ports and directory for a new member without touching the cluster, so a
    /// test can add it itself (e.g. with `etcdctl member add`, using [`Cluster::peer_url`] and
    /// [`Cluster::member_name`]) and then call [`Cluster::start_added_member`].
    pub fn reserve_member(&mut self) -> Result<usize> {
        let i = self.members.len();
        let member = Member::new(format!("m{i}"), &self.path)?;
        self.members.push(member);
        Ok(i)
    }

    /// Starts reserved member `i`, already added to the cluster, with
    /// `--initial-cluster-state=existing` and the given `--initial-cluster` (as printed by
    /// `etcdctl member add`), and waits until it serves and knows the leader.
    pub async fn start_added_member(&mut self, i: usize, initial_cluster: &str) -> Result<()> {
        ensure!(
            self.members[i].state == State::Reserved,
            "member {} is not a reserved member",
            self.members[i].name
        );
        self.members[i].initial_cluster = initial_cluster.to_owned();
        self.members[i].state = State::Active;
        self.spawn(i, "existing")?;
        self.wait_ready(&[i], true, START_TIMEOUT).await
    }

    /// Adds a member through the Cluster API (`MemberAdd`), starts its process with
    /// `--initial-cluster-state=existing` and waits until it serves. Returns its index.
    pub async fn add_member(&mut self) -> Result<usize> {
        let i = self.reserve_member()?;
        let peer_url = self.peer_url(i);
        let client = self.client().await?;
        let response = retry_unhealthy("MemberAdd", || {
            let mut client = client.clone();
            let peer_urls = vec![peer_url.clone()];
            async move { client.member_add(peer_urls, None).await }
        })
        .await?;
        let new_id = response
            .member()
            .map(|m| m.id())
            .context("MemberAdd response without the added member")?;
        self.members[i].id = Some(new_id);
        let mut entries = Vec::new();
        for member in response.member_list() {
            let name = if member.id() == new_id {
                self.members[i].name.clone()
            } else {
                self.name_for_peer(member.peer_urls())
                    .unwrap_or_else(|| member.name().to_owned())
            };
            for url in member.peer_urls() {
                entries.push(format!("{name}={url}"));
            }
        }
        self.start_added_member(i, &entries.join(",")).await?;
        Ok(i)
    }

    fn name_for_peer(&self, peer_urls: &[String]) -> Option<String> {
        let tls = self.tls.is_some();
        self.members
            .iter()
            .find(|m| peer_urls.contains(&m.peer_url(tls)))
            .map(|m| m.name.clone())
    }

    /// Removes member `i` through the Cluster API (`MemberRemove`, sent to the other members),
    /// lets its process exit (it is stopped if it does not within 5 s), and waits until the
    /// remaining members have a leader.
    pub async fn remove_member(&mut self, i: usize) -> Result<()> {
        ensure!(
            self.members[i].state == State::Active,
            "member {} is not part of the cluster",
            self.members[i].name
        );
        let id = match self.members[i].id {
            Some(id) => id,
            None => self
                .status(i)
                .await?
                .header()
                .map(|h| h.member_id())
                .context("Status response without header")?,
        };
        let others: Vec<String> = self
            .active_members()
            .into_iter()
            .filter(|&j| j != i)
            .map(|j| self.client_url(j))
            .collect();
        ensure!(!others.is_empty(), "cannot remove the last member");
        let options = self.connect_options()?;
        let client = Client::connect(&others, Some(options))
            .await
            .with_context(|| format!("connecting to {others:?}"))?;
        retry_unhealthy("MemberRemove", || {
            let mut client = client.clone();
            async move { client.member_remove(id).await }
        })
        .await?;
        self.members[i].state = State::Removed;
        let deadline = Instant::now() + REMOVED_EXIT_GRACE;
        while self.members[i].is_running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop(i);
        // Removing the leader leaves the cluster leaderless for an election timeout, and etcd
        // can drop proposals made meanwhile: return once there is a leader again.
        self.leader()
            .await
            .context("no leader after removing a member")?;
        Ok(())
    }
}

/// Runs a membership RPC, retrying while etcd answers "unhealthy cluster" (or the call times
/// out) for up to 20 s; any other error is returned at once.
async fn retry_unhealthy<T, F, Fut>(what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = Instant::now() + RECONFIG_TIMEOUT;
    loop {
        let error = match tokio::time::timeout(RPC_TIMEOUT, call()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) if err.to_string().contains("unhealthy cluster") => err.to_string(),
            Ok(Err(err)) => bail!("{what} failed: {err}"),
            Err(_) => format!("timed out after {RPC_TIMEOUT:?}"),
        };
        if Instant::now() >= deadline {
            bail!("{what} failed for {RECONFIG_TIMEOUT:?}, last: {error}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
