//! Running the reference `etcdctl` (API v3) against a cluster, always bounded in time.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process;
use crate::tls::TlsFiles;

/// Path of the reference etcdctl.
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";

/// How long one etcdctl run may take before it is killed.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// An etcdctl invocation prefix: endpoints, TLS flags and a time limit.
///
/// Made by `Cluster::etcdctl_cmd`; adjust it with the builder methods, then `run` it.
#[derive(Debug, Clone)]
pub struct Etcdctl {
    endpoints: Vec<String>,
    tls: Option<TlsFiles>,
    client_cert: bool,
    timeout: Duration,
}

impl Etcdctl {
    pub(crate) fn new(endpoints: Vec<String>, tls: Option<TlsFiles>) -> Etcdctl {
        Etcdctl {
            endpoints,
            tls,
            client_cert: true,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Talks to these endpoints instead.
    pub fn endpoints(mut self, endpoints: Vec<String>) -> Etcdctl {
        self.endpoints = endpoints;
        self
    }

    /// Trusts the CA but presents no client certificate (for a TLS cluster).
    pub fn without_client_cert(mut self) -> Etcdctl {
        self.client_cert = false;
        self
    }

    /// Passes no TLS flags at all.
    pub fn without_tls(mut self) -> Etcdctl {
        self.tls = None;
        self
    }

    /// Kills etcdctl after `timeout` (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Etcdctl {
        self.timeout = timeout;
        self
    }

    /// The command, ready to run: `ETCDCTL_API=3 etcdctl --endpoints=... [tls] args...`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(ETCDCTL_BIN);
        cmd.env("ETCDCTL_API", "3")
            // Keep stray ETCDCTL_* settings of the caller's shell out of the tests.
            .env_remove("ETCDCTL_ENDPOINTS")
            .env_remove("ETCDCTL_CACERT")
            .env_remove("ETCDCTL_CERT")
            .env_remove("ETCDCTL_KEY")
            .arg(format!("--endpoints={}", self.endpoints.join(",")));
        if let Some(files) = &self.tls {
            cmd.arg(format!("--cacert={}", files.ca_cert.display()));
            if self.client_cert {
                cmd.arg(format!("--cert={}", files.client_cert.display()));
                cmd.arg(format!("--key={}", files.client_key.display()));
            }
        }
        cmd.args(args);
        cmd
    }

    /// Runs etcdctl to completion (or the time limit) and returns what it printed.
    ///
    /// If etcdctl cannot be started, the output has exit code 127 and the reason on stderr; if
    /// it runs out of time it is killed and a note is appended to stderr.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Like [`Etcdctl::run`], feeding `stdin` to etcdctl (for `txn`).
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.run_with_stdin(args, Some(stdin))
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        match self.try_run(args, stdin) {
            Ok(out) => out,
            Err(err) => Output {
                status: ExitStatus::from_raw(127 << 8),
                stdout: Vec::new(),
                stderr: format!("cluster-tests: {err:#}\n").into_bytes(),
            },
        }
    }

    fn try_run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut cmd = self.command(args);
        if stdin.is_none() {
            cmd.stdin(Stdio::null());
        }
        let run =
            process::output_within(&mut cmd, stdin.map(|s| s.as_bytes().to_vec()), self.timeout)
                .with_context(|| format!("spawning {ETCDCTL_BIN}"))?;
        let mut output = run.output;
        if run.timed_out {
            let note = format!(
                "cluster-tests: etcdctl {} killed after {:?}\n",
                args.join(" "),
                self.timeout
            );
            output.stderr.extend_from_slice(note.as_bytes());
        }
        Ok(output)
    }

    /// Starts a long-running etcdctl (e.g. `watch`) whose stdout is read line by line.
    pub fn spawn(&self, args: &[&str]) -> Result<EtcdctlProcess> {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {ETCDCTL_BIN}"))?;
        let stdout = child.stdout.take().context("etcdctl stdout")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr_text);
        let stderr = child.stderr.take().context("etcdctl stderr")?;
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap_or_else(|p| p.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        Ok(EtcdctlProcess {
            child,
            lines,
            stderr: stderr_text,
            seen: Vec::new(),
        })
    }
}

/// A running etcdctl; killed when dropped.
pub struct EtcdctlProcess {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    seen: Vec<String>,
}

impl EtcdctlProcess {
    /// The next stdout line, waiting at most `timeout`; `None` on timeout or end of output.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next `n` stdout lines, all within `timeout`; the error tells what came instead.
    pub fn lines(&mut self, n: usize, timeout: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) => got.push(line),
                None => bail!(
                    "expected {n} lines from etcdctl within {timeout:?}, got {got:?}; stderr: {}",
                    self.stderr()
                ),
            }
        }
        Ok(got)
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether etcdctl is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills etcdctl (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        process::kill(&mut self.child);
    }
}

impl Drop for EtcdctlProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
