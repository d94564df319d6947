//! A write load: concurrent writers putting unique keys under a prefix, recording every put.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions};
use tokio::task::JoinHandle;

use super::{History, PutOp, PutOutcome};
use crate::Cluster;

/// What a [`WriteLoad`] does. Every bound holds even if the test never stops the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Every key starts with this; keys are `<prefix><client>/<n>`, each put exactly once.
    pub prefix: String,
    /// Number of concurrent writers (clients).
    pub writers: usize,
    /// A writer stops after this many puts.
    pub max_ops_per_writer: usize,
    /// A writer stops this long after the load started.
    pub max_duration: Duration,
    /// Bound on one put (connecting included); past it the put is indeterminate.
    pub op_timeout: Duration,
    /// A writer waits this long after a failed put before its next one.
    pub pause_after_error: Duration,
}

impl LoadConfig {
    /// 8 writers, at most 1500 puts each and 90 s, 3 s per put, 50 ms pause after an error.
    pub fn new(prefix: impl Into<String>) -> LoadConfig {
        LoadConfig {
            prefix: prefix.into(),
            writers: 8,
            max_ops_per_writer: 1500,
            max_duration: Duration::from_secs(90),
            op_timeout: Duration::from_secs(3),
            pause_after_error: Duration::from_millis(50),
        }
    }
}

/// State shared by the writers and the test.
struct Shared {
    start: Instant,
    stop: AtomicBool,
    acked: AtomicUsize,
    /// Client URLs the writers send to; writer `w` sends its `n`-th put to entry `(w + n) % len`.
    endpoints: RwLock<Vec<String>>,
}

/// Running writers. Dropping the load stops them (their records are then lost).
pub struct WriteLoad {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<Vec<PutOp>>>,
}

impl WriteLoad {
    /// Starts `cfg.writers` writers sending to every member of the cluster that belongs to it.
    pub fn start(cluster: &Cluster, cfg: LoadConfig) -> Result<WriteLoad> {
        let options = cluster.connect_options()?;
        let shared = Arc::new(Shared {
            start: Instant::now(),
            stop: AtomicBool::new(false),
            acked: AtomicUsize::new(0),
            endpoints: RwLock::new(cluster.client_urls()),
        });
        let tasks = (0..cfg.writers)
            .map(|w| {
                let writer = Writer {
                    id: w,
                    cfg: cfg.clone(),
                    options: options.clone(),
                    shared: shared.clone(),
                    clients: HashMap::new(),
                };
                tokio::spawn(writer.run())
            })
            .collect();
        Ok(WriteLoad { shared, tasks })
    }

    /// Replaces the endpoints the writers send to (e.g. after a membership change).
    pub fn set_endpoints(&self, endpoints: Vec<String>) {
        *self
            .shared
            .endpoints
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = endpoints;
    }

    /// Number of puts acknowledged so far.
    pub fn acked(&self) -> usize {
        self.shared.acked.load(Ordering::Relaxed)
    }

    /// Waits until `n` more puts than now have been acknowledged; fails after `timeout` (the
    /// cluster made no progress) or if every writer has stopped.
    pub async fn wait_progress(&self, n: usize, timeout: Duration) -> Result<()> {
        let target = self.acked() + n;
        let deadline = Instant::now() + timeout;
        while self.acked() < target {
            if self.tasks.iter().all(JoinHandle::is_finished) {
                bail!(
                    "all writers stopped (op or time bound reached) at {} acknowledged puts, \
                     before {target}",
                    self.acked()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "no progress: {} puts acknowledged, waited {timeout:?} for {target}",
                    self.acked()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops the writers (each finishes its current put, bounded by the op timeout) and
    /// returns what they recorded.
    pub async fn stop(mut self) -> Result<History> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut history = History::default();
        for task in std::mem::take(&mut self.tasks) {
            let ops = task.await.context("a writer task failed")?;
            history.ops.extend(ops);
        }
        Ok(history)
    }
}

impl Drop for WriteLoad {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Writer {
    id: usize,
    cfg: LoadConfig,
    options: ConnectOptions,
    shared: Arc<Shared>,
    /// One client per endpoint, connected on first use.
    clients: HashMap<String, Client>,
}

impl Writer {
    async fn run(mut self) -> Vec<PutOp> {
        let deadline = self.shared.start + self.cfg.max_duration;
        let mut ops = Vec::new();
        let mut turn = self.id;
        for n in 0..self.cfg.max_ops_per_writer {
            if self.shared.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                break;
            }
            let endpoint = {
                let endpoints = self
                    .shared
                    .endpoints
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if endpoints.is_empty() {
                    None
                } else {
                    Some(endpoints[turn % endpoints.len()].clone())
                }
            };
            let Some(endpoint) = endpoint else {
                tokio::time::sleep(self.cfg.pause_after_error).await;
                continue;
            };
            turn += 1;
            let key = format!("{}{:02}/{n:06}", self.cfg.prefix, self.id);
            let value = format!("c{}-n{n}", self.id);
            let invoked = self.shared.start.elapsed();
            let result =
                tokio::time::timeout(self.cfg.op_timeout, self.put(&endpoint, &key, &value)).await;
            let completed = self.shared.start.elapsed();
            let outcome = match result {
                Ok(Ok(revision)) => {
                    self.shared.acked.fetch_add(1, Ordering::Relaxed);
                    PutOutcome::Acked { revision }
                }
                Ok(Err(err)) => PutOutcome::Indeterminate {
                    error: format!("{err:#}"),
                },
                Err(_) => PutOutcome::Indeterminate {
                    error: format!("timed out after {:?}", self.cfg.op_timeout),
                },
            };
            let failed = matches!(outcome, PutOutcome::Indeterminate { .. });
            ops.push(PutOp {
                client: self.id,
                key,
                value,
                endpoint,
                invoked,
                completed,
                outcome,
            });
            if failed {
                tokio::time::sleep(self.cfg.pause_after_error).await;
            }
        }
        ops
    }

    /// Puts through `endpoint`'s client and returns the response header's revision (0 if the
    /// response has no header, which the checkers then report).
    async fn put(&mut self, endpoint: &str, key: &str, value: &str) -> Result<i64> {
        if !self.clients.contains_key(endpoint) {
            let client = Client::connect([endpoint], Some(self.options.clone()))
                .await
                .with_context(|| format!("connecting to {endpoint}"))?;
            self.clients.insert(endpoint.to_owned(), client);
        }
        let client = self
            .clients
            .get_mut(endpoint)
            .context("client just inserted")?;
        let response = client.put(key, value, None).await?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }
}
