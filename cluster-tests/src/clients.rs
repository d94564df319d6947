//! Talking to a cluster: etcd-client connections, Status, the leader, and etcdctl.

use std::collections::HashMap;
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions, StatusResponse};

use crate::etcdctl::Etcdctl;
use crate::Cluster;

/// Bound on one RPC the harness makes for itself.
pub(crate) const RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// How long [`Cluster::leader`] waits for an election to settle.
const LEADER_TIMEOUT: Duration = Duration::from_secs(15);

impl Cluster {
    /// Connect options for this cluster: TLS (CA and client certificate) when the cluster uses
    /// it, and a 2 s connect timeout. Add a request timeout if you need one.
    pub fn connect_options(&self) -> Result<ConnectOptions> {
        let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(2));
        if let Some(files) = &self.tls {
            options = options.with_tls(files.client_tls_options()?);
        }
        Ok(options)
    }

    /// An etcd-client connected to every member of the cluster.
    pub async fn client(&self) -> Result<Client> {
        self.connect(&self.client_urls(), self.connect_options()?)
            .await
    }

    /// An etcd-client connected to member `i` only.
    pub async fn member_client(&self, i: usize) -> Result<Client> {
        self.connect(&[self.client_url(i)], self.connect_options()?)
            .await
    }

    async fn connect(&self, urls: &[String], options: ConnectOptions) -> Result<Client> {
        // The channel connects lazily, but bound it anyway in case that ever changes.
        tokio::time::timeout(RPC_TIMEOUT, Client::connect(urls, Some(options)))
            .await
            .with_context(|| format!("connecting to {urls:?} timed out"))?
            .with_context(|| format!("connecting to {urls:?}"))
    }

    /// Status of member `i`, bounded by a 3 s timeout.
    pub async fn status(&self, i: usize) -> Result<StatusResponse> {
        let options = self.connect_options()?.with_timeout(RPC_TIMEOUT);
        let url = self.client_url(i);
        let mut client = self.connect(std::slice::from_ref(&url), options).await?;
        tokio::time::timeout(RPC_TIMEOUT, client.status())
            .await
            .with_context(|| format!("Status of {url} timed out"))?
            .with_context(|| format!("Status of {url}"))
    }

    /// Index of the leader, as reported by the Status of the members. Waits (up to 15 s) until
    /// a member names a leader that itself answers Status. Members killed or stopped through
    /// the harness are not asked.
    pub async fn leader(&self) -> Result<usize> {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        let mut ids: HashMap<u64, usize> = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.id.map(|id| (id, i)))
            .collect();
        loop {
            // (member, leader it names) for each member that answers Status.
            let mut reports = Vec::new();
            let mut errors = Vec::new();
            let started = self
                .active_members()
                .into_iter()
                .filter(|&i| self.members[i].child.is_some());
            for i in started {
                match self.status(i).await {
                    Ok(status) => {
                        if let Some(header) = status.header() {
                            ids.insert(header.member_id(), i);
                        }
                        reports.push((i, status.leader()));
                    }
                    Err(err) => errors.push(format!("{err:#}")),
                }
            }
            // Only a member that answers itself counts: a killed leader may still be named
            // by the others until they time out and elect a new one.
            for &(_, leader) in &reports {
                if let Some(&i) = ids.get(&leader) {
                    if reports.iter().any(|&(j, _)| j == i) {
                        return Ok(i);
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "no leader among the running members within {LEADER_TIMEOUT:?}; \
                     (member, leader id) reports: {reports:?}; errors: {errors:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An etcdctl prefix for this cluster (all endpoints, TLS flags), to adjust and run.
    pub fn etcdctl_cmd(&self) -> Etcdctl {
        Etcdctl::new(self.client_urls(), self.tls.clone())
    }

    /// Runs `ETCDCTL_API=3 etcdctl --endpoints=<all> [TLS flags] args...` (killed after 30 s).
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.etcdctl_cmd().run(args)
    }

    /// Like [`Cluster::etcdctl`], with `stdin` fed to etcdctl (for `txn`).
    pub fn etcdctl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.etcdctl_cmd().run_stdin(args, stdin)
    }

    /// Like [`Cluster::etcdctl`], against the given members only.
    pub fn etcdctl_on(&self, members: &[usize], args: &[&str]) -> Output {
        let endpoints = members.iter().map(|&i| self.client_url(i)).collect();
        self.etcdctl_cmd().endpoints(endpoints).run(args)
    }
}
