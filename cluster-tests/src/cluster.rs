//! A running cluster: start, process control, URLs and logs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tempfile::TempDir;

use crate::member::{Launch, Member, State};
use crate::tls::TlsFiles;
use crate::{ClusterConfig, Flavor};

/// How long starting (or restarting) members may take until they serve.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a member gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of each member's log printed when a test fails.
const LOG_LINES_ON_PANIC: usize = 40;

/// A cluster of store (or etcd) processes on 127.0.0.1.
///
/// Members are numbered from 0 in the order they were created; a number stays valid after
/// the member is killed or removed. Dropping the cluster kills every member and deletes its
/// directory, unless `CLUSTER_TESTS_KEEP=1` is set. If the thread is panicking (a failing
/// test), the tail of every member's log is printed first.
pub struct Cluster {
    pub(crate) dir: Option<TempDir>,
    pub(crate) path: PathBuf,
    pub(crate) flavor: Flavor,
    pub(crate) tls: Option<TlsFiles>,
    pub(crate) token: String,
    pub(crate) extra_args: Vec<String>,
    pub(crate) members: Vec<Member>,
}

impl Cluster {
    /// Spawns all members and waits (up to 30 s) until each answers Status and knows a leader.
    pub async fn start(cfg: ClusterConfig) -> Result<Cluster> {
        ensure!(cfg.members > 0, "a cluster needs at least one member");
        let binary = cfg.flavor.binary();
        ensure!(
            binary.is_file(),
            "{} binary not found at {} (build it with `cargo build -p store`, or set STORE_BIN; \
             STORE_FLAVOR=etcd runs the reference etcd)",
            cfg.flavor.name(),
            binary.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("cluster-tests-")
            .tempdir()
            .context("creating the cluster directory")?;
        let path = dir.path().to_path_buf();
        let tls = if cfg.tls {
            let tls_dir = path.join("tls");
            std::fs::create_dir_all(&tls_dir)
                .with_context(|| format!("creating {}", tls_dir.display()))?;
            Some(TlsFiles::generate(&tls_dir)?)
        } else {
            None
        };
        static CLUSTERS: AtomicU64 = AtomicU64::new(0);
        let token = format!(
            "cluster-tests-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        let mut cluster = Cluster {
            dir: Some(dir),
            path,
            flavor: cfg.flavor,
            tls,
            token,
            extra_args: cfg.extra_args,
            members: Vec::with_capacity(cfg.members),
        };
        for i in 0..cfg.members {
            let member = Member::new(format!("m{i}"), &cluster.path)?;
            cluster.members.push(member);
        }
        let tls = cluster.tls.is_some();
        let initial_cluster = cluster
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url(tls)))
            .collect::<Vec<_>>()
            .join(",");
        for i in 0..cfg.members {
            cluster.members[i].initial_cluster = initial_cluster.clone();
            cluster.members[i].state = State::Active;
            cluster.spawn(i, "new")?;
        }
        let all: Vec<usize> = (0..cfg.members).collect();
        cluster.wait_ready(&all, true, START_TIMEOUT).await?;
        cluster.wait_published(START_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Waits until the member list shows every member started (named, with client URLs). etcd
    /// publishes a member's attributes before it serves clients; ours publishes them through
    /// the log just after, so a test that starts with `member list` must not race that.
    async fn wait_published(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut last = String::from("no answer");
            if let Ok(mut client) = self.client().await {
                match tokio::time::timeout(Duration::from_secs(3), client.member_list()).await {
                    Ok(Ok(list)) => {
                        let members = list.members();
                        if members.len() == self.members.len()
                            && members
                                .iter()
                                .all(|m| !m.name().is_empty() && !m.client_urls().is_empty())
                        {
                            return Ok(());
                        }
                        last = format!("{} members listed, not all published", members.len());
                    }
                    Ok(Err(e)) => last = e.to_string(),
                    Err(_) => last = "member list timed out".into(),
                }
            }
            if Instant::now() >= deadline {
                bail!("members did not publish their attributes within {timeout:?} ({last})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn spawn(&mut self, i: usize, cluster_state: &str) -> Result<()> {
        let launch = Launch {
            flavor: self.flavor,
            tls: self.tls.as_ref(),
            token: &self.token,
            extra_args: &self.extra_args,
        };
        self.members[i].spawn(&launch, cluster_state)
    }

    /// Waits until each of `members` answers Status (and, if `need_leader`, reports a leader).
    /// Fails early if one of them exits; errors carry the tail of its log.
    pub(crate) async fn wait_ready(
        &mut self,
        members: &[usize],
        need_leader: bool,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for &i in members {
            loop {
                if let Some(status) = self.members[i].exit_status() {
                    bail!(
                        "member {} exited ({status}) while starting; log tail:\n{}",
                        self.members[i].name,
                        self.members[i].log_tail(30)
                    );
                }
                let last_error = match self.status(i).await {
                    Ok(status) if !need_leader || status.leader() != 0 => {
                        if let Some(id) = status.header().map(|h| h.member_id()) {
                            self.members[i].id = Some(id);
                        }
                        break;
                    }
                    Ok(_) => "answers Status but knows no leader".to_owned(),
                    Err(err) => format!("{err:#}"),
                };
                if Instant::now() >= deadline {
                    bail!(
                        "member {} not ready within {timeout:?} ({last_error}); log tail:\n{}",
                        self.members[i].name,
                        self.members[i].log_tail(30)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The binary flavor the members run.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The cluster's directory: one subdirectory per member (`data/`, `member.log`) and `tls/`.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The certificate files, for a TLS cluster.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Number of member slots, including killed, removed and reserved ones.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no member slot at all (never true after `start`).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Indices of the members that belong to the cluster (running or not).
    pub fn active_members(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].state == State::Active)
            .collect()
    }

    /// The `--name` of member `i`.
    pub fn member_name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    /// Raft member ID of member `i`, once known.
    pub fn member_id(&self, i: usize) -> Option<u64> {
        self.members[i].id
    }

    /// Client URLs of all members that belong to the cluster, killed ones included.
    pub fn client_urls(&self) -> Vec<String> {
        self.active_members()
            .into_iter()
            .map(|i| self.client_url(i))
            .collect()
    }

    /// Client URL of member `i`, e.g. `http://127.0.0.1:23791` (https for TLS clusters).
    pub fn client_url(&self, i: usize) -> String {
        self.members[i].client_url(self.tls.is_some())
    }

    /// Peer URL of member `i`.
    pub fn peer_url(&self, i: usize) -> String {
        self.members[i].peer_url(self.tls.is_some())
    }

    /// Metrics URL of member `i` (`--listen-metrics-urls`, always plain http).
    pub fn metrics_url(&self, i: usize) -> String {
        self.members[i].metrics_url()
    }

    /// Data directory of member `i`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.members[i].data_dir()
    }

    /// Log file of member `i` (stdout and stderr of every run).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.members[i].log_path()
    }

    /// Whether member `i`'s process is alive.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i].is_running()
    }

    /// SIGKILL member `i`; its data directory stays.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// SIGTERM member `i` and wait for it to exit (SIGKILL after 10 s).
    pub fn stop(&mut self, i: usize) {
        self.members[i].terminate(STOP_GRACE);
    }

    /// Starts a killed or stopped member again on its data directory, with
    /// `--initial-cluster-state=existing`. Waits until it answers Status, and also until it
    /// knows a leader if a majority of the members is running.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        ensure!(
            self.members[i].state == State::Active,
            "member {} is not part of the cluster",
            self.members[i].name
        );
        self.spawn(i, "existing")?;
        let active = self.active_members();
        let running = active
            .iter()
            .filter(|&&j| self.members[j].is_running())
            .count();
        let need_leader = running > active.len() / 2;
        self.wait_ready(&[i], need_leader, START_TIMEOUT).await
    }

    /// The process id of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(|c| c.id())
    }

    /// The last `lines` lines of member `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        self.members[i].log_tail(lines)
    }

    /// The last `lines` lines of every member's log, each under a header.
    pub fn logs_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        for member in &self.members {
            text.push_str(&format!(
                "----- {} ({}) -----\n{}\n",
                member.name,
                member.log_path().display(),
                member.log_tail(lines)
            ));
        }
        text
    }

    /// Prints [`Cluster::logs_tail`] to stderr.
    pub fn print_logs(&self, lines: usize) {
        eprintln!("{}", self.logs_tail(lines));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "cluster-tests: test failed; member logs ({} flavor):\n{}",
                self.flavor.name(),
                self.logs_tail(LOG_LINES_ON_PANIC)
            );
        }
        for member in &mut self.members {
            member.kill();
        }
        let keep = std::env::var("CLUSTER_TESTS_KEEP").is_ok_and(|v| !v.is_empty() && v != "0");
        if keep {
            if let Some(dir) = self.dir.take() {
                eprintln!("cluster-tests: keeping {}", dir.keep().display());
            }
        }
    }
}
