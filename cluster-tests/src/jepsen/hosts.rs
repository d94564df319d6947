//! The store's members (ours or the reference etcd), each in its own container with its own
//! address on a private network: started, inspected, killed, paused, cut off, and reconfigured.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions};

use super::docker::{Container, Network, RunSpec};
use super::image;
use crate::Flavor;

const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;
/// Bound on one RPC the suite makes for itself (status, membership).
const RPC_TIMEOUT: Duration = Duration::from_secs(2);

/// One member host.
pub struct Member {
    pub name: String,
    pub ip: String,
    /// Raft member ID, once known.
    pub id: Option<u64>,
    /// `None` once the member was removed from the cluster.
    container: Option<Container>,
    paused: bool,
    killed: bool,
}

impl Member {
    pub fn client_url(&self) -> String {
        format!("http://{}:{CLIENT_PORT}", self.ip)
    }

    fn peer_url(&self) -> String {
        format!("http://{}:{PEER_PORT}", self.ip)
    }

    /// Part of the cluster (not removed).
    pub fn active(&self) -> bool {
        self.container.is_some()
    }
}

/// The client URLs of the active members, shared with the workloads' clients so they can
/// reconnect to members added later.
pub type Endpoints = Arc<RwLock<Vec<String>>>;

/// A store cluster in containers. Dropping it removes the containers, then the network.
pub struct StoreHosts {
    pub flavor: Flavor,
    image: String,
    token: String,
    members: Vec<Member>,
    endpoints: Endpoints,
    /// Declared last: dropped after the containers.
    network: Network,
}

impl StoreHosts {
    /// Builds the image if needed, creates the network `jepsen-RUN` and starts `n` members,
    /// then waits until they elected a leader.
    pub async fn start(flavor: Flavor, n: usize, run: &str, subnet_hint: u8) -> Result<StoreHosts> {
        let image = image::ensure(flavor.name(), &flavor.binary())?;
        let network = Network::create(&format!("jepsen-{run}"), subnet_hint)?;
        let mut hosts = StoreHosts {
            flavor,
            image,
            token: format!("jepsen-{run}"),
            members: Vec::new(),
            endpoints: Arc::new(RwLock::new(Vec::new())),
            network,
        };
        for i in 0..n {
            hosts.members.push(hosts.new_member(i));
        }
        let initial = hosts
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for i in 0..n {
            hosts.spawn(i, &initial, "new")?;
        }
        hosts.refresh_endpoints();
        hosts.wait_healthy(Duration::from_secs(30)).await?;
        Ok(hosts)
    }

    fn new_member(&self, i: usize) -> Member {
        let octet = u8::try_from(11 + i).unwrap_or(254);
        Member {
            name: format!("n{}", i + 1),
            ip: self.network.ip(octet),
            id: None,
            container: None,
            paused: false,
            killed: false,
        }
    }

    fn spawn(&mut self, i: usize, initial_cluster: &str, state: &str) -> Result<()> {
        let m = &self.members[i];
        let (client, peer) = (m.client_url(), m.peer_url());
        let args = vec![
            format!("--name={}", m.name),
            "--data-dir=/tmp/data".to_owned(),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={initial_cluster}"),
            format!("--initial-cluster-state={state}"),
            format!("--initial-cluster-token={}", self.token),
        ];
        let name = format!("{}-{}", self.network.name, m.name);
        let container = Container::run(RunSpec {
            name: &name,
            image: &self.image,
            network: &self.network,
            ip: &m.ip,
            mounts: Vec::new(),
            args,
        })?;
        self.members[i].container = Some(container);
        Ok(())
    }

    fn refresh_endpoints(&self) {
        let urls = self
            .members
            .iter()
            .filter(|m| m.active())
            .map(Member::client_url)
            .collect();
        if let Ok(mut endpoints) = self.endpoints.write() {
            *endpoints = urls;
        }
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The active members' client URLs, kept current through membership changes.
    pub fn endpoints(&self) -> Endpoints {
        self.endpoints.clone()
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Indices of the members still in the cluster.
    pub fn active(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].active())
            .collect()
    }

    fn container(&self, i: usize) -> Result<&Container> {
        self.members[i]
            .container
            .as_ref()
            .with_context(|| format!("member {} was removed", self.members[i].name))
    }

    async fn connect(url: &str) -> Result<Client> {
        let options = ConnectOptions::new()
            .with_connect_timeout(RPC_TIMEOUT)
            .with_timeout(RPC_TIMEOUT);
        tokio::time::timeout(RPC_TIMEOUT, Client::connect([url], Some(options)))
            .await
            .with_context(|| format!("connecting to {url} timed out"))?
            .with_context(|| format!("connecting to {url}"))
    }

    /// `(member id, leader id)` as member `i` reports them.
    async fn status(&self, i: usize) -> Result<(u64, u64)> {
        let url = self.members[i].client_url();
        let mut client = Self::connect(&url).await?;
        let status = tokio::time::timeout(RPC_TIMEOUT, client.status())
            .await
            .with_context(|| format!("Status of {url} timed out"))??;
        let id = status
            .header()
            .map(|h| h.member_id())
            .context("Status without a header")?;
        Ok((id, status.leader()))
    }

    /// The member the reachable members name as leader, if they agree on one.
    pub async fn leader(&mut self) -> Option<usize> {
        let mut leaders = BTreeSet::new();
        for i in self.active() {
            if self.members[i].paused || self.members[i].killed {
                continue;
            }
            if let Ok((id, leader)) = self.status(i).await {
                self.members[i].id = Some(id);
                if leader != 0 {
                    leaders.insert(leader);
                }
            }
        }
        let leader = (leaders.len() == 1).then(|| leaders.into_iter().next())??;
        self.members.iter().position(|m| m.id == Some(leader))
    }

    /// Waits until every active member answers Status, all name the same leader, and a
    /// linearizable read succeeds through each.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut problem = None;
            let mut leaders = BTreeSet::new();
            for i in self.active() {
                match self.status(i).await {
                    Ok((id, leader)) => {
                        self.members[i].id = Some(id);
                        leaders.insert(leader);
                    }
                    Err(e) => problem = Some(format!("{}: {e:#}", self.members[i].name)),
                }
            }
            if problem.is_none() && (leaders.len() != 1 || leaders.contains(&0)) {
                problem = Some(format!("members name leaders {leaders:?}"));
            }
            if problem.is_none() {
                for i in self.active() {
                    let url = self.members[i].client_url();
                    let read = async {
                        let mut client = Self::connect(&url).await?;
                        client.get("health", None).await?;
                        anyhow::Ok(())
                    };
                    if let Err(e) = read.await {
                        problem = Some(format!("read through {url}: {e:#}"));
                    }
                }
            }
            let Some(problem) = problem else {
                return Ok(());
            };
            if Instant::now() > deadline {
                bail!(
                    "the {} cluster did not become healthy in {timeout:?}: {problem}",
                    self.flavor.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    /// SIGKILL of member `i`'s container.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.container(i)?.kill()?;
        self.members[i].killed = true;
        Ok(())
    }

    /// Starts killed member `i` again, with its data.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.container(i)?.start()?;
        self.members[i].killed = false;
        Ok(())
    }

    /// Freezes member `i`'s whole container.
    pub fn pause(&mut self, i: usize) -> Result<()> {
        self.container(i)?.pause()?;
        self.members[i].paused = true;
        Ok(())
    }

    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.container(i)?.unpause()?;
        self.members[i].paused = false;
        Ok(())
    }

    /// Cuts the network so that two members talk only if some group holds both (a member in
    /// two groups is a bridge). Clients on the machine still reach every member.
    pub fn partition(&self, groups: &[Vec<usize>]) -> Result<()> {
        let active = self.active();
        for &a in &active {
            for &b in &active {
                let together = groups.iter().any(|g| g.contains(&a) && g.contains(&b));
                if a != b && !together {
                    self.container(a)?.drop_from(&self.members[b].ip)?;
                }
            }
        }
        Ok(())
    }

    /// One-way loss: the members of `to` drop every packet from the members of `from`.
    pub fn drop_one_way(&self, from: &[usize], to: &[usize]) -> Result<()> {
        for &b in to {
            for &a in from {
                self.container(b)?.drop_from(&self.members[a].ip)?;
            }
        }
        Ok(())
    }

    /// Removes the network rules of member `i` (a no-op for a stopped member: its rules went
    /// with its network namespace).
    pub fn heal_network(&self, i: usize) -> Result<()> {
        let container = self.container(i)?;
        if self.members[i].killed || !container.is_running() {
            return Ok(());
        }
        container.heal()
    }

    /// Removes every network rule, resumes paused and restarts killed members.
    pub fn heal_all(&mut self) -> Result<()> {
        for i in self.active() {
            if self.members[i].paused {
                self.resume(i)?;
            }
            if self.members[i].killed || !self.container(i)?.is_running() {
                self.restart(i)?;
            }
            self.container(i)?.heal()?;
        }
        Ok(())
    }

    /// Removes member `i` from the cluster (MemberRemove through another member) and its host.
    pub async fn remove_member(&mut self, i: usize) -> Result<()> {
        let id = match self.members[i].id {
            Some(id) => id,
            None => self.status(i).await?.0,
        };
        let mut last = None;
        for j in self.active() {
            if j == i || self.members[j].paused || self.members[j].killed {
                continue;
            }
            let url = self.members[j].client_url();
            let attempt = async {
                let mut client = Self::connect(&url).await?;
                tokio::time::timeout(RPC_TIMEOUT, client.member_remove(id))
                    .await
                    .context("MemberRemove timed out")??;
                anyhow::Ok(())
            };
            match attempt.await {
                Ok(()) => {
                    self.members[i].container = None;
                    self.refresh_endpoints();
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no member to ask")))
            .with_context(|| format!("removing member {}", self.members[i].name))
    }

    /// Adds a fresh member (MemberAdd, then its host started with
    /// `--initial-cluster-state=existing`). Returns its index.
    pub async fn add_member(&mut self) -> Result<usize> {
        let i = self.members.len();
        if i > 200 {
            bail!("no addresses left for new members");
        }
        let member = self.new_member(i);
        let peer = member.peer_url();
        let name = member.name.clone();
        self.members.push(member);
        let mut last = None;
        for j in self.active() {
            if self.members[j].paused || self.members[j].killed {
                continue;
            }
            let url = self.members[j].client_url();
            let attempt = async {
                let mut client = Self::connect(&url).await?;
                let response =
                    tokio::time::timeout(RPC_TIMEOUT, client.member_add([peer.clone()], None))
                        .await
                        .context("MemberAdd timed out")??;
                let new_id = response.member().map(|m| m.id());
                let mut entries = Vec::new();
                for m in response.member_list() {
                    let known = if Some(m.id()) == new_id {
                        Some(name.clone())
                    } else {
                        self.members
                            .iter()
                            .find(|x| m.peer_urls().contains(&x.peer_url()))
                            .map(|x| x.name.clone())
                    };
                    let label = known.unwrap_or_else(|| m.name().to_owned());
                    for url in m.peer_urls() {
                        entries.push(format!("{label}={url}"));
                    }
                }
                anyhow::Ok((new_id, entries.join(",")))
            };
            match attempt.await {
                Ok((id, initial)) => {
                    self.members[i].id = id;
                    self.spawn(i, &initial, "existing")?;
                    self.refresh_endpoints();
                    return Ok(i);
                }
                Err(e) => last = Some(e),
            }
        }
        self.members.pop();
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no member to ask"))).context("adding a member")
    }

    /// The last lines of every member's output, for a failure report.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = String::new();
        for m in &self.members {
            if let Some(c) = &m.container {
                out.push_str(&format!(
                    "--- {} ({}) ---\n{}\n",
                    m.name,
                    m.ip,
                    c.logs(lines)
                ));
            }
        }
        out
    }
}
