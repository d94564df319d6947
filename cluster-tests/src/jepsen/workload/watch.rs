//! Watch: writers put and delete keys under one prefix (some transactions touch two keys at one
//! revision) while watchers, spread over the members, watch the prefix from the revision the run
//! started at; a watcher whose stream breaks or stalls re-creates it from the revision after the
//! last event it saw, on the next member. At the end each watcher must have seen exactly the
//! committed events under the prefix (read back by a fresh watch on a healthy member): no gap,
//! duplicate, reorder or split transaction.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use etcd_client::{EventType, Txn, TxnOp, WatchOptions, WatchResponse};
use futures::future::BoxFuture;
use rand::Rng;
use tokio::task::JoinHandle;

use super::client::connect;
use super::{jsonl, timings, Checked, Ctx, Graded, Progress, Recorder, Session, Workload};
use crate::jepsen::check;
use crate::jepsen::history::{Outcome, WatchEvent, WatchLog};
use crate::jepsen::hosts::Endpoints;

const PREFIX: &str = "watch/";
const KEYS: u64 = 16;
/// A stream that delivers nothing for this long is re-created on the next member.
const STALL: Duration = Duration::from_secs(4);
/// How long the watchers get, after the faults, to catch up with the final revision.
const CATCH_UP: Duration = Duration::from_secs(30);

pub(super) struct Watch {
    writes: Recorder<Vec<String>>,
    logs: Arc<Mutex<Vec<WatchLog>>>,
    watchers: Mutex<Vec<JoinHandle<()>>>,
    /// The revision the watchers started from.
    start_revision: Mutex<i64>,
    /// Set once the final revision is known: watchers stop when they reach it.
    target: Arc<Mutex<Option<i64>>>,
}

impl Watch {
    pub(super) fn new(progress: Arc<Progress>) -> Watch {
        Watch {
            writes: Recorder::new(progress),
            logs: Arc::new(Mutex::new(Vec::new())),
            watchers: Mutex::new(Vec::new()),
            start_revision: Mutex::new(0),
            target: Arc::new(Mutex::new(None)),
        }
    }

    async fn writer(&self, ctx: &Ctx, index: usize) {
        let mut rng = ctx.rng(index, 0x2545_f491);
        let mut session = Session::new(index, ctx);
        let mut n = 0u64;
        while ctx.running() {
            session.pace().await;
            let Ok(mut client) = session.client().await else {
                session.reconnect().await;
                continue;
            };
            n += 1;
            let keys: Vec<String> = (0..rng.random_range(1..=2))
                .map(|_| format!("{PREFIX}{}", rng.random_range(0..KEYS)))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let ops: Vec<TxnOp> = keys
                .iter()
                .map(|k| {
                    if rng.random_bool(0.1) {
                        TxnOp::delete(k.clone(), None)
                    } else {
                        TxnOp::put(k.clone(), format!("{index}-{n}"), None)
                    }
                })
                .collect();
            let invoke = ctx.now();
            let outcome = match session.timed(client.txn(Txn::new().and_then(ops))).await {
                Ok(_) => Outcome::Ok,
                Err(_) => Outcome::Unknown,
            };
            self.writes
                .record(ctx, session.process, invoke, outcome, keys);
            if outcome == Outcome::Unknown {
                session.crashed().await;
            }
        }
    }

    async fn start_revision(ctx: &Ctx) -> Result<i64> {
        let url = first_endpoint(&ctx.endpoints)?;
        let mut client = connect(&url).await?;
        let resp = client.get(PREFIX, None).await?;
        Ok(resp.header().map_or(0, |h| h.revision()) + 1)
    }
}

fn first_endpoint(endpoints: &Endpoints) -> Result<String> {
    endpoints
        .read()
        .ok()
        .and_then(|e| e.first().cloned())
        .context("no member")
}

/// One watcher: records into `logs[slot]` until it reaches the target revision.
async fn watcher(
    ctx: Ctx,
    slot: usize,
    logs: Arc<Mutex<Vec<WatchLog>>>,
    target: Arc<Mutex<Option<i64>>>,
) {
    let mut next = logs.lock().map(|l| l[slot].start_revision).unwrap_or(1);
    let mut responses = 0u64;
    let mut endpoint = slot;
    loop {
        let done = target
            .lock()
            .ok()
            .and_then(|t| *t)
            .is_some_and(|t| next > t);
        if done {
            return;
        }
        let url = {
            let endpoints = ctx.endpoints.read().map(|e| e.clone()).unwrap_or_default();
            endpoint += 1;
            endpoints.get(endpoint % endpoints.len().max(1)).cloned()
        };
        let Some(url) = url else { return };
        let stream = async {
            let mut client = connect(&url).await?;
            let options = WatchOptions::new().with_prefix().with_start_revision(next);
            client
                .watch(PREFIX, Some(options))
                .await
                .map_err(anyhow::Error::from)
        };
        let Ok(Ok(mut stream)) = tokio::time::timeout(STALL, stream).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            let message = tokio::time::timeout(STALL, stream.message()).await;
            let Ok(Ok(Some(resp))) = message else { break };
            if resp.canceled() {
                break;
            }
            let events = events_of(&resp, responses);
            if !events.is_empty() {
                responses += 1;
            }
            if let Some(last) = events.last() {
                next = last.revision + 1;
            }
            if let Ok(mut logs) = logs.lock() {
                logs[slot].events.extend(events);
            }
            let done = target
                .lock()
                .ok()
                .and_then(|t| *t)
                .is_some_and(|t| next > t);
            if done {
                return;
            }
        }
        if let Ok(mut logs) = logs.lock() {
            logs[slot].restarts.push((ctx.now(), next));
        }
    }
}

fn events_of(resp: &WatchResponse, response: u64) -> Vec<WatchEvent> {
    resp.events()
        .iter()
        .filter_map(|e| {
            let kv = e.kv()?;
            Some(WatchEvent {
                revision: kv.mod_revision(),
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                value: match e.event_type() {
                    EventType::Put => Some(String::from_utf8_lossy(kv.value()).into_owned()),
                    EventType::Delete => None,
                },
                response,
            })
        })
        .collect()
}

impl Workload for Watch {
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let start = Self::start_revision(ctx).await?;
            if let Ok(mut s) = self.start_revision.lock() {
                *s = start;
            }
            let watchers = ctx.clients.max(2);
            if let Ok(mut logs) = self.logs.lock() {
                *logs = (0..watchers)
                    .map(|w| WatchLog {
                        watcher: w,
                        prefix: PREFIX.to_owned(),
                        start_revision: start,
                        restarts: Vec::new(),
                        events: Vec::new(),
                    })
                    .collect();
            }
            let handles = (0..watchers)
                .map(|w| {
                    tokio::spawn(watcher(
                        ctx.clone(),
                        w,
                        self.logs.clone(),
                        self.target.clone(),
                    ))
                })
                .collect();
            if let Ok(mut w) = self.watchers.lock() {
                *w = handles;
            }
            futures::future::join_all((0..ctx.clients).map(|i| self.writer(ctx, i))).await;
            Ok(())
        })
    }

    fn check<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Checked>> {
        Box::pin(async move {
            let url = first_endpoint(&ctx.endpoints)?;
            let mut client = connect(&url).await?;
            let final_revision = client
                .get(PREFIX, None)
                .await?
                .header()
                .map_or(0, |h| h.revision());
            if let Ok(mut t) = self.target.lock() {
                *t = Some(final_revision);
            }
            let handles = self
                .watchers
                .lock()
                .map(|mut w| std::mem::take(&mut *w))
                .unwrap_or_default();
            for handle in handles {
                if tokio::time::timeout(CATCH_UP, handle).await.is_err() {
                    bail!("a watcher did not reach revision {final_revision} within {CATCH_UP:?}");
                }
            }
            let start = self.start_revision.lock().map(|s| *s).unwrap_or(1);
            let reference = read_reference(&mut client, start, final_revision).await?;
            let logs = self.logs.lock().map(|l| l.clone()).unwrap_or_default();
            let writes = self.writes.history();
            let result = check::watch::check(&logs, &reference);
            Ok(Checked {
                results: vec![Graded::must_hold(result)],
                timings: timings(&writes),
                history_jsonl: jsonl(&logs),
            })
        })
    }
}

/// Every event under the prefix from `start` to `end`, by a fresh watch on a healthy member.
async fn read_reference(
    client: &mut etcd_client::Client,
    start: i64,
    end: i64,
) -> Result<Vec<WatchEvent>> {
    let mut events = Vec::new();
    if end < start {
        return Ok(events);
    }
    let options = WatchOptions::new().with_prefix().with_start_revision(start);
    let mut stream = client.watch(PREFIX, Some(options)).await?;
    while events.last().is_none_or(|e: &WatchEvent| e.revision < end) {
        let resp = tokio::time::timeout(CATCH_UP, stream.message())
            .await
            .context("reading the reference events timed out")??
            .context("the reference watch ended")?;
        events.extend(events_of(&resp, 0));
    }
    Ok(events)
}
