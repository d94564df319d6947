//! One member of a test cluster: its identity, ports, directory and process.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process;
use crate::tls::TlsFiles;
use crate::Flavor;

/// Where a member is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Name and ports reserved, not yet part of the cluster (see `Cluster::reserve_member`).
    Reserved,
    /// Part of the cluster, running or not.
    Active,
    /// Removed from the cluster.
    Removed,
}

pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) client_port: u16,
    pub(crate) peer_port: u16,
    pub(crate) metrics_port: u16,
    /// `<cluster dir>/<name>`: holds `data/` and `member.log`.
    pub(crate) dir: PathBuf,
    /// `--initial-cluster` this member was (first) started with.
    pub(crate) initial_cluster: String,
    /// Raft member ID, learned from the first Status answer (or from `member add`).
    pub(crate) id: Option<u64>,
    pub(crate) state: State,
    pub(crate) child: Option<Child>,
}

/// Everything a member's command line depends on besides the member itself.
pub(crate) struct Launch<'a> {
    pub(crate) flavor: Flavor,
    pub(crate) tls: Option<&'a TlsFiles>,
    pub(crate) token: &'a str,
    pub(crate) extra_args: &'a [String],
}

impl Member {
    pub(crate) fn new(name: String, cluster_dir: &Path) -> Result<Member> {
        let dir = cluster_dir.join(&name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating member directory {}", dir.display()))?;
        Ok(Member {
            name,
            client_port: crate::ports::allocate()?,
            peer_port: crate::ports::allocate()?,
            metrics_port: crate::ports::allocate()?,
            dir,
            initial_cluster: String::new(),
            id: None,
            state: State::Reserved,
            child: None,
        })
    }

    fn scheme(tls: bool) -> &'static str {
        if tls {
            "https"
        } else {
            "http"
        }
    }

    pub(crate) fn client_url(&self, tls: bool) -> String {
        format!("{}://127.0.0.1:{}", Self::scheme(tls), self.client_port)
    }

    pub(crate) fn peer_url(&self, tls: bool) -> String {
        format!("{}://127.0.0.1:{}", Self::scheme(tls), self.peer_port)
    }

    pub(crate) fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.metrics_port)
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("member.log")
    }

    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The flags etcd 3.4 (and our store) take, in `--flag=value` form.
    fn args(&self, launch: &Launch<'_>, cluster_state: &str) -> Result<Vec<String>> {
        let tls = launch.tls.is_some();
        let mut args = vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir().display()),
            format!("--listen-client-urls={}", self.client_url(tls)),
            format!("--advertise-client-urls={}", self.client_url(tls)),
            format!("--listen-peer-urls={}", self.peer_url(tls)),
            format!("--initial-advertise-peer-urls={}", self.peer_url(tls)),
            format!("--initial-cluster={}", self.initial_cluster),
            format!("--initial-cluster-state={cluster_state}"),
            format!("--initial-cluster-token={}", launch.token),
            format!("--listen-metrics-urls={}", self.metrics_url()),
        ];
        if let Some(files) = launch.tls {
            let path = |p: &Path| -> Result<String> {
                p.to_str()
                    .map(str::to_owned)
                    .with_context(|| format!("path is not UTF-8: {}", p.display()))
            };
            args.extend([
                format!("--cert-file={}", path(&files.server_cert)?),
                format!("--key-file={}", path(&files.server_key)?),
                format!("--trusted-ca-file={}", path(&files.ca_cert)?),
                "--client-cert-auth".to_owned(),
                format!("--peer-cert-file={}", path(&files.server_cert)?),
                format!("--peer-key-file={}", path(&files.server_key)?),
                format!("--peer-trusted-ca-file={}", path(&files.ca_cert)?),
                "--peer-client-cert-auth".to_owned(),
            ]);
        }
        args.extend(launch.extra_args.iter().cloned());
        Ok(args)
    }

    /// Starts the process; `cluster_state` is `new` or `existing`.
    pub(crate) fn spawn(&mut self, launch: &Launch<'_>, cluster_state: &str) -> Result<()> {
        anyhow::ensure!(
            !self.is_running(),
            "member {} is already running",
            self.name
        );
        let args = self.args(launch, cluster_state)?;
        let binary = launch.flavor.binary();
        let child = process::spawn_logged(&binary, &args, &self.log_path())
            .with_context(|| format!("starting member {} ({})", self.name, binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill(&mut child);
        }
    }

    pub(crate) fn terminate(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            process::terminate(&mut child, grace);
        }
    }

    /// The exit status if the process has ended (the child stays recorded).
    pub(crate) fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        match process::tail(&self.log_path(), lines) {
            Ok(text) => text,
            Err(err) => format!("(no log: {err:#})"),
        }
    }
}
