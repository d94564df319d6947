//! A watch on one member that records every event it is sent, and re-creates itself from the
//! last seen revision + 1 whenever its stream breaks (as a real client does).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions, EventType, WatchOptions, WatchStream};
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::Cluster;

/// Bound on connecting and creating the watch.
const CREATE_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause before re-creating a broken watch.
const RECREATE_PAUSE: Duration = Duration::from_millis(200);
/// How long `finish` waits for the watch task to notice it should stop.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// PUT or DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One event as a watcher received it. `revision` is the key's `mod_revision` in the event
/// (the revision of the write, for puts and deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub revision: i64,
    pub key: String,
    pub kind: EventKind,
    pub value: String,
}

impl fmt::Display for WatchedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            EventKind::Put => write!(f, "PUT {}={} @{}", self.key, self.value, self.revision),
            EventKind::Delete => write!(f, "DELETE {} @{}", self.key, self.revision),
        }
    }
}

/// What a [`WatchRecorder`] saw.
#[derive(Debug, Clone, Default)]
pub struct WatchLog {
    /// Who watched what, for messages (e.g. `m1 watching "p/" from 1`).
    pub label: String,
    /// Every event received, in arrival order, across re-creations.
    pub events: Vec<WatchedEvent>,
    /// The highest event revision received (start revision - 1 before any).
    pub last_revision: i64,
    /// The start revision of each watch created successfully; more than one entry means
    /// the watch was re-created.
    pub created_from: Vec<i64>,
    /// Why streams broke or creating failed, in order (at most 50 kept).
    pub breaks: Vec<String>,
    /// Number of failed creation attempts.
    pub failed_creates: usize,
    /// Set when the server canceled the watch because its start revision was compacted:
    /// continuity can no longer be checked.
    pub compacted: Option<String>,
}

impl WatchLog {
    fn note_break(&mut self, why: String) {
        if self.breaks.len() < 50 {
            self.breaks.push(why);
        }
    }

    /// One line: label, events, re-creations, last break.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} events up to revision {}, created from {:?}, {} failed creates{}",
            self.label,
            self.events.len(),
            self.last_revision,
            self.created_from,
            self.failed_creates,
            self.breaks
                .last()
                .map(|b| format!(", last break: {b}"))
                .unwrap_or_default()
        )
    }
}

/// A recording watch running in a task. Dropping it stops the task.
pub struct WatchRecorder {
    log: Arc<Mutex<WatchLog>>,
    stop: signal::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl WatchRecorder {
    /// Starts watching every key under `prefix` on member `member` only, from
    /// `start_revision`. Returns at once; the watch is created in the background (and
    /// re-created from the last seen revision + 1 each time its stream breaks, for as long as
    /// the recorder runs).
    pub fn start(
        cluster: &Cluster,
        member: usize,
        prefix: &str,
        start_revision: i64,
    ) -> Result<WatchRecorder> {
        let url = cluster.client_url(member);
        let options = cluster.connect_options()?;
        let log = Arc::new(Mutex::new(WatchLog {
            label: format!(
                "{} watching {prefix:?} from {start_revision}",
                cluster.member_name(member)
            ),
            last_revision: start_revision - 1,
            ..WatchLog::default()
        }));
        let (stop, stopped) = signal::channel(false);
        let task = tokio::spawn(run(url, options, prefix.to_owned(), log.clone(), stopped));
        Ok(WatchRecorder {
            log,
            stop,
            task: Some(task),
        })
    }

    /// A copy of what was recorded so far.
    pub fn log(&self) -> WatchLog {
        lock(&self.log).clone()
    }

    /// Waits until an event with revision `revision` or later has been received; fails after
    /// `timeout` with the recorder's state.
    pub async fn wait_for_revision(&self, revision: i64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let (last, compacted) = {
                let log = lock(&self.log);
                (log.last_revision, log.compacted.clone())
            };
            if last >= revision {
                return Ok(());
            }
            if let Some(reason) = compacted {
                bail!("watch canceled by compaction ({reason}) before revision {revision}");
            }
            if Instant::now() >= deadline {
                bail!(
                    "watch did not reach revision {revision} within {timeout:?}: {}",
                    self.log().summary()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the watch and returns everything it recorded.
    pub async fn finish(mut self) -> WatchLog {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(FINISH_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        self.log()
    }
}

impl Drop for WatchRecorder {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn lock(log: &Mutex<WatchLog>) -> std::sync::MutexGuard<'_, WatchLog> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The watch task: create, record until the stream breaks, re-create from last + 1.
async fn run(
    url: String,
    options: ConnectOptions,
    prefix: String,
    log: Arc<Mutex<WatchLog>>,
    mut stopped: signal::Receiver<bool>,
) {
    loop {
        if *stopped.borrow() || lock(&log).compacted.is_some() {
            return;
        }
        let from = lock(&log).last_revision + 1;
        let created =
            tokio::time::timeout(CREATE_TIMEOUT, create(&url, &options, &prefix, from)).await;
        match created {
            Ok(Ok(stream)) => {
                lock(&log).created_from.push(from);
                tokio::select! {
                    why = record(stream, &log) => lock(&log).note_break(why),
                    _ = stopped.changed() => return,
                }
            }
            Ok(Err(err)) => {
                let mut log = lock(&log);
                log.failed_creates += 1;
                log.note_break(format!("create from {from}: {err:#}"));
            }
            Err(_) => {
                let mut log = lock(&log);
                log.failed_creates += 1;
                log.note_break(format!("create from {from}: timed out"));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECREATE_PAUSE) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn create(
    url: &str,
    options: &ConnectOptions,
    prefix: &str,
    from: i64,
) -> Result<WatchStream> {
    let mut client = Client::connect([url], Some(options.clone()))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    client
        .watch(prefix, Some(options))
        .await
        .with_context(|| format!("watch on {url}"))
}

/// Records the stream's events until it breaks; returns why it broke.
async fn record(mut stream: WatchStream, log: &Mutex<WatchLog>) -> String {
    loop {
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return "stream ended".to_owned(),
            Err(err) => return format!("stream error: {err}"),
        };
        let mut log = lock(log);
        for event in response.events() {
            let Some(kv) = event.kv() else {
                log.note_break("event without kv".to_owned());
                continue;
            };
            let kind = match event.event_type() {
                EventType::Put => EventKind::Put,
                EventType::Delete => EventKind::Delete,
            };
            let recorded = WatchedEvent {
                revision: kv.mod_revision(),
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                kind,
                value: String::from_utf8_lossy(kv.value()).into_owned(),
            };
            log.last_revision = log.last_revision.max(recorded.revision);
            log.events.push(recorded);
        }
        if response.canceled() {
            if response.compact_revision() > 0 {
                log.compacted = Some(format!(
                    "compact revision {}, reason {:?}",
                    response.compact_revision(),
                    response.cancel_reason()
                ));
            }
            return format!("canceled by the server: {:?}", response.cancel_reason());
        }
    }
}
