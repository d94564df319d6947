//! A write load: concurrent writers putting unique keys under a prefix, recording every put,
//! and readers reading back the latest acknowledged key linearizably, recording every read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions};
use tokio::task::JoinHandle;

use super::{History, PutOp, PutOutcome, ReadOp, ReadOutcome};
use crate::Cluster;

/// What a [`WriteLoad`] does. Every bound holds even if the test never stops the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Every key starts with this; keys are `<prefix><client>/<n>`, each put exactly once.
    pub prefix: String,
    /// Number of concurrent writers (clients).
    pub writers: usize,
    /// Number of concurrent readers. Each repeatedly reads, linearizably, the key of the put
    /// acknowledged last (by any writer) when the read starts.
    pub readers: usize,
    /// A writer (reader) stops after this many puts (reads).
    pub max_ops_per_writer: usize,
    /// Writers and readers stop this long after the load started.
    pub max_duration: Duration,
    /// Bound on one request (connecting included); past it a put is indeterminate.
    pub op_timeout: Duration,
    /// A writer (reader) waits this long after a failed request before its next one.
    pub pause_after_error: Duration,
}

impl LoadConfig {
    /// 8 writers and 2 readers, at most 6000 requests each and 90 s, 3 s per request, 50 ms
    /// pause after an error.
    pub fn new(prefix: impl Into<String>) -> LoadConfig {
        LoadConfig {
            prefix: prefix.into(),
            writers: 8,
            readers: 2,
            max_ops_per_writer: 6000,
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
    /// Key and revision of the put acknowledged last, for the readers.
    last_acked: Mutex<Option<(String, i64)>>,
}

impl Shared {
    /// The endpoint for a client's `turn`-th request, if there are endpoints.
    fn endpoint(&self, turn: usize) -> Option<String> {
        let endpoints = self
            .endpoints
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if endpoints.is_empty() {
            None
        } else {
            Some(endpoints[turn % endpoints.len()].clone())
        }
    }

    fn last_acked(&self) -> std::sync::MutexGuard<'_, Option<(String, i64)>> {
        self.last_acked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One client per endpoint, connected on first use.
struct Clients {
    options: ConnectOptions,
    by_endpoint: HashMap<String, Client>,
}

impl Clients {
    async fn get(&mut self, endpoint: &str) -> Result<&mut Client> {
        if !self.by_endpoint.contains_key(endpoint) {
            let client = Client::connect([endpoint], Some(self.options.clone()))
                .await
                .with_context(|| format!("connecting to {endpoint}"))?;
            self.by_endpoint.insert(endpoint.to_owned(), client);
        }
        self.by_endpoint
            .get_mut(endpoint)
            .context("client just inserted")
    }
}

/// Running writers. Dropping the load stops them (their records are then lost).
pub struct WriteLoad {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<Vec<PutOp>>>,
    readers: Vec<JoinHandle<Vec<ReadOp>>>,
}

impl WriteLoad {
    /// Starts `cfg.writers` writers and `cfg.readers` readers, sending to every member of the
    /// cluster that belongs to it.
    pub fn start(cluster: &Cluster, cfg: LoadConfig) -> Result<WriteLoad> {
        let options = cluster.connect_options()?;
        let shared = Arc::new(Shared {
            start: Instant::now(),
            stop: AtomicBool::new(false),
            acked: AtomicUsize::new(0),
            endpoints: RwLock::new(cluster.client_urls()),
            last_acked: Mutex::new(None),
        });
        let clients = || Clients {
            options: options.clone(),
            by_endpoint: HashMap::new(),
        };
        let tasks = (0..cfg.writers)
            .map(|id| {
                let writer = Writer {
                    id,
                    cfg: cfg.clone(),
                    shared: shared.clone(),
                    clients: clients(),
                };
                tokio::spawn(writer.run())
            })
            .collect();
        let readers = (0..cfg.readers)
            .map(|id| {
                let reader = Reader {
                    id,
                    cfg: cfg.clone(),
                    shared: shared.clone(),
                    clients: clients(),
                };
                tokio::spawn(reader.run())
            })
            .collect();
        Ok(WriteLoad {
            shared,
            tasks,
            readers,
        })
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
        for task in std::mem::take(&mut self.readers) {
            let reads = task.await.context("a reader task failed")?;
            history.reads.extend(reads);
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
        for task in &self.readers {
            task.abort();
        }
    }
}

struct Writer {
    id: usize,
    cfg: LoadConfig,
    shared: Arc<Shared>,
    clients: Clients,
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
            let Some(endpoint) = self.shared.endpoint(turn) else {
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
                    let mut last = self.shared.last_acked();
                    if last.as_ref().is_none_or(|(_, r)| *r < revision) {
                        *last = Some((key.clone(), revision));
                    }
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
        let client = self.clients.get(endpoint).await?;
        let response = client.put(key, value, None).await?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }
}

struct Reader {
    id: usize,
    cfg: LoadConfig,
    shared: Arc<Shared>,
    clients: Clients,
}

impl Reader {
    async fn run(mut self) -> Vec<ReadOp> {
        let deadline = self.shared.start + self.cfg.max_duration;
        let mut reads = Vec::new();
        // Readers start on a different endpoint than writer 0 does.
        let mut turn = self.id + 1;
        let mut n = 0;
        while n < self.cfg.max_ops_per_writer {
            if self.shared.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                break;
            }
            let target = self.shared.last_acked().clone();
            let (Some(endpoint), Some((key, _))) = (self.shared.endpoint(turn), target) else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            turn += 1;
            n += 1;
            let invoked = self.shared.start.elapsed();
            let result = tokio::time::timeout(self.cfg.op_timeout, self.get(&endpoint, &key)).await;
            let completed = self.shared.start.elapsed();
            let outcome = match result {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(err)) => ReadOutcome::Failed {
                    error: format!("{err:#}"),
                },
                Err(_) => ReadOutcome::Failed {
                    error: format!("timed out after {:?}", self.cfg.op_timeout),
                },
            };
            let failed = matches!(outcome, ReadOutcome::Failed { .. });
            reads.push(ReadOp {
                client: self.id,
                key,
                endpoint,
                invoked,
                completed,
                outcome,
            });
            if failed {
                tokio::time::sleep(self.cfg.pause_after_error).await;
            }
        }
        reads
    }

    /// A linearizable get of `key` through `endpoint`.
    async fn get(&mut self, endpoint: &str, key: &str) -> Result<ReadOutcome> {
        let client = self.clients.get(endpoint).await?;
        let response = client.get(key, None).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(match response.kvs().first() {
            Some(kv) => ReadOutcome::Found {
                revision,
                mod_revision: kv.mod_revision(),
                value: String::from_utf8_lossy(kv.value()).into_owned(),
            },
            None => ReadOutcome::Missing { revision },
        })
    }
}
