//! The workloads: each runs against one started cluster and returns its figures.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::ValueEnum;
use cluster_tests::etcd_client::{
    Client, ConnectOptions, GetOptions, KvClient, LeaseClient, LeaseKeepAliveStream, LeaseKeeper,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use crate::stats::{Latencies, Metric};
use crate::Args;

/// Per-request deadline, so a stuck server fails a workload instead of hanging the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the watch workload waits for the last events after the writer stops.
const WATCH_DRAIN: Duration = Duration::from_secs(15);
/// How long the watch workload waits for its watchers to be registered.
const WATCH_SETUP: Duration = Duration::from_secs(60);
/// TTL of granted leases: longer than any workload, so none expires while measured.
const LEASE_TTL: i64 = 120;
/// Clients that load the keys the range workloads read.
const PRELOAD_CLIENTS: usize = 32;

/// Which members a workload's connections go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// Every connection to the leader.
    Leader,
    /// Every connection to the same follower (writes are forwarded to the leader).
    Follower,
    /// Every connection is a client given all members, which spreads its requests over them
    /// (as the apiserver's etcd client does with `--etcd-servers a,b,c`).
    All,
    /// Connection `i` to member `i` mod n, counted from the leader (the lines without a
    /// layout of their own).
    #[value(skip)]
    Spread,
}

impl Layout {
    /// The suffix of a line's name; none for [`Layout::Spread`].
    fn suffix(self) -> &'static str {
        match self {
            Layout::Leader => ", via the leader",
            Layout::Follower => ", via a follower",
            Layout::All => ", via all members",
            Layout::Spread => "",
        }
    }

    /// The endpoints connection `i` is given, from `urls` (the leader's first).
    pub fn endpoints(self, urls: &[String], i: usize) -> Result<Vec<String>> {
        ensure!(!urls.is_empty(), "no member to connect to");
        Ok(match self {
            Layout::Leader => vec![urls[0].clone()],
            Layout::Follower => {
                ensure!(
                    urls.len() > 1,
                    "the follower layout needs at least 2 members"
                );
                vec![urls[1].clone()]
            }
            // Rotated, so the connections do not all list the same member first.
            Layout::All => (0..urls.len())
                .map(|k| urls[(i + k) % urls.len()].clone())
                .collect(),
            Layout::Spread => vec![urls[i % urls.len()].clone()],
        })
    }
}

/// One line group of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// One client, one put at a time, `--ops` puts, on the leader.
    SeqPut,
    /// Closed-loop puts from this many concurrent clients.
    Put { clients: usize, layout: Layout },
    /// Closed-loop single-key gets from `--range-clients` clients.
    Range { serializable: bool },
    /// One writer, `--watchers` watchers on the written key.
    Watch { layout: Layout },
    /// Closed-loop lease grants from `--lease-clients` clients.
    LeaseGrant,
    /// Closed-loop keep-alives, each client on its own lease and keep-alive stream.
    KeepAlive,
}

impl Workload {
    /// Every workload the arguments ask for, in the order they run.
    pub fn selected(args: &Args) -> Vec<Workload> {
        let wants = |name: &str| args.workloads.iter().any(|w| w == name || w == "all");
        let mut out = Vec::new();
        if wants("seq-put") {
            out.push(Workload::SeqPut);
        }
        if wants("put") {
            for &clients in &args.put_clients {
                if args.layout_put_clients.contains(&clients) {
                    out.extend(
                        args.layouts
                            .iter()
                            .map(|&layout| Workload::Put { clients, layout }),
                    );
                } else {
                    out.push(Workload::Put {
                        clients,
                        layout: Layout::Spread,
                    });
                }
            }
        }
        if wants("range") {
            out.push(Workload::Range {
                serializable: false,
            });
            out.push(Workload::Range { serializable: true });
        }
        if wants("watch") {
            out.extend(
                args.layouts
                    .iter()
                    .map(|&layout| Workload::Watch { layout }),
            );
        }
        if wants("lease") {
            out.push(Workload::LeaseGrant);
            out.push(Workload::KeepAlive);
        }
        out
    }

    pub fn name(&self, args: &Args) -> String {
        match self {
            Workload::SeqPut => "sequential put, 1 client".to_owned(),
            Workload::Put { clients: 1, layout } => format!("put, 1 client{}", layout.suffix()),
            Workload::Put { clients, layout } => {
                format!("put, {clients} clients{}", layout.suffix())
            }
            Workload::Range { serializable } => format!(
                "range {}, {} clients",
                if *serializable {
                    "serializable"
                } else {
                    "linearizable"
                },
                args.range_clients
            ),
            Workload::Watch { layout } => format!(
                "watch fan-out, 1 writer, {} watchers{}",
                args.watchers,
                layout.suffix()
            ),
            Workload::LeaseGrant => format!("lease grant, {} clients", args.lease_clients),
            Workload::KeepAlive => format!("lease keep-alive, {} clients", args.lease_clients),
        }
    }

    /// The figures [`Workload::run`] returns, in the same order.
    pub fn metrics(&self) -> &'static [Metric] {
        match self {
            Workload::SeqPut => &[Metric::P50Ms, Metric::P99Ms, Metric::MeanMs],
            Workload::Watch { .. } => &[Metric::EventsPerSec, Metric::P50Ms, Metric::P99Ms],
            _ => &[Metric::OpsPerSec, Metric::P99Ms],
        }
    }

    /// An upper bound on how long the workload may take, setup included.
    pub fn time_limit(&self, args: &Args) -> Duration {
        let measured = args.warmup() + args.duration();
        match self {
            // Counted, not timed: stops early at 3 × --duration anyway.
            Workload::SeqPut => 3 * args.duration() + Duration::from_secs(30),
            Workload::Watch { .. } => {
                measured + WATCH_SETUP + WATCH_DRAIN + Duration::from_secs(30)
            }
            _ => measured + Duration::from_secs(60),
        }
    }

    pub async fn run(&self, bench: &Bench<'_>) -> Result<Vec<f64>> {
        match self {
            Workload::SeqPut => bench.sequential_put().await,
            Workload::Put { clients, layout } => bench.put(*clients, *layout).await,
            Workload::Range { serializable } => bench.range(*serializable).await,
            Workload::Watch { layout } => bench.watch(*layout).await,
            Workload::LeaseGrant => bench.lease_grant().await,
            Workload::KeepAlive => bench.keep_alive().await,
        }
    }
}

/// One started cluster and what the workloads share on it.
pub struct Bench<'a> {
    pub args: &'a Args,
    /// Client URLs, the leader's first, then the followers (see [`Layout`]).
    pub urls: Vec<String>,
    /// Origin of the timestamps the watch writer puts in its values.
    pub epoch: Instant,
    preloaded: OnceCell<()>,
}

impl<'a> Bench<'a> {
    pub fn new(args: &'a Args, urls: Vec<String>) -> Bench<'a> {
        Bench {
            args,
            urls,
            epoch: Instant::now(),
            preloaded: OnceCell::new(),
        }
    }

    /// Client `i` of `layout`: one gRPC (HTTP/2) connection to each of its endpoints.
    async fn connect(&self, layout: Layout, i: usize) -> Result<Client> {
        let endpoints = layout.endpoints(&self.urls, i)?;
        let options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(Duration::from_secs(5));
        Client::connect(&endpoints, Some(options))
            .await
            .with_context(|| format!("connecting to {}", endpoints.join(",")))
    }

    /// `min(clients, --conns)` clients of `layout` for a workload with `clients` clients.
    async fn connections(&self, clients: usize, layout: Layout) -> Result<Vec<Client>> {
        let n = clients.clamp(1, self.args.conns.max(1));
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(self.connect(layout, i).await?);
        }
        Ok(out)
    }

    fn value(&self, size: usize, seed: u64) -> Vec<u8> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..size).map(|_| rng.random_range(b'a'..=b'z')).collect()
    }

    async fn sequential_put(&self) -> Result<Vec<f64>> {
        let args = self.args;
        let mut kv = self.connect(Layout::Leader, 0).await?.kv_client();
        let value = self.value(args.value_size, 1);
        let mut rng = StdRng::seed_from_u64(2);
        let warmup = (args.ops / 10).max(1);
        let give_up = Instant::now() + 3 * args.duration();
        let mut lat = Latencies::new();
        for i in 0..warmup + args.ops {
            if Instant::now() >= give_up {
                break;
            }
            let key = put_key(rng.random_range(0..args.keys));
            let start = Instant::now();
            kv.put(key, value.clone(), None).await.context("put")?;
            if i >= warmup {
                lat.record(start.elapsed());
            }
        }
        ensure!(
            lat.len() > 0,
            "no put finished within {:?}",
            3 * args.duration()
        );
        if lat.len() < args.ops {
            eprintln!(
                "    (only {} of {} puts within 3 × --duration)",
                lat.len(),
                args.ops
            );
        }
        Ok(vec![
            lat.quantile_ms(0.5),
            lat.quantile_ms(0.99),
            lat.mean_ms(),
        ])
    }

    async fn put(&self, clients: usize, layout: Layout) -> Result<Vec<f64>> {
        let conns = self.connections(clients, layout).await?;
        let value = self.value(self.args.value_size, 1);
        let workers = (0..clients)
            .map(|i| PutWorker {
                kv: conns[i % conns.len()].kv_client(),
                rng: StdRng::seed_from_u64(100 + i as u64),
                keys: self.args.keys,
                value: value.clone(),
            })
            .collect();
        let result = closed_loop(workers, self.args.warmup(), self.args.duration()).await?;
        Ok(result.figures())
    }

    /// Writes the keys the range workloads read, once per cluster.
    async fn preload(&self) -> Result<()> {
        self.preloaded
            .get_or_try_init(|| async {
                let conns = self.connections(PRELOAD_CLIENTS, Layout::Spread).await?;
                let value = self.value(self.args.value_size, 3);
                let next = Arc::new(AtomicUsize::new(0));
                let total = self.args.range_keys;
                let tasks: Vec<JoinHandle<Result<()>>> = (0..PRELOAD_CLIENTS)
                    .map(|i| {
                        let mut kv = conns[i % conns.len()].kv_client();
                        let (next, value) = (next.clone(), value.clone());
                        tokio::spawn(async move {
                            loop {
                                let k = next.fetch_add(1, Ordering::Relaxed);
                                if k >= total {
                                    return Ok(());
                                }
                                kv.put(read_key(k), value.clone(), None)
                                    .await
                                    .context("preload put")?;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await??;
                }
                Ok::<(), anyhow::Error>(())
            })
            .await?;
        Ok(())
    }

    async fn range(&self, serializable: bool) -> Result<Vec<f64>> {
        self.preload().await?;
        let clients = self.args.range_clients;
        let conns = self.connections(clients, Layout::Spread).await?;
        let workers = (0..clients)
            .map(|i| GetWorker {
                kv: conns[i % conns.len()].kv_client(),
                rng: StdRng::seed_from_u64(200 + i as u64),
                keys: self.args.range_keys,
                serializable,
            })
            .collect();
        let result = closed_loop(workers, self.args.warmup(), self.args.duration()).await?;
        Ok(result.figures())
    }

    async fn lease_grant(&self) -> Result<Vec<f64>> {
        let clients = self.args.lease_clients;
        let conns = self.connections(clients, Layout::Spread).await?;
        let workers = (0..clients)
            .map(|i| GrantWorker {
                lease: conns[i % conns.len()].lease_client(),
            })
            .collect();
        let result = closed_loop(workers, self.args.warmup(), self.args.duration()).await?;
        Ok(result.figures())
    }

    async fn keep_alive(&self) -> Result<Vec<f64>> {
        let clients = self.args.lease_clients;
        let conns = self.connections(clients, Layout::Spread).await?;
        let mut workers = Vec::with_capacity(clients);
        for i in 0..clients {
            let mut lease = conns[i % conns.len()].lease_client();
            let id = lease
                .grant(LEASE_TTL, None)
                .await
                .context("lease grant")?
                .id();
            let (keeper, stream) = lease.keep_alive(id).await.context("lease keep-alive")?;
            workers.push(KeepAliveWorker { keeper, stream });
        }
        let result = closed_loop(workers, self.args.warmup(), self.args.duration()).await?;
        Ok(result.figures())
    }

    /// Watch fan-out. The watchers all watch one key and are spread over `--watch-streams`
    /// gRPC watch streams on `--watch-conns` connections; each stream is read by its own task.
    /// The writer puts as fast as it can, one put at a time, for `--duration`; every value
    /// carries the time its put was sent, and a watcher's lag is the time from then until its
    /// stream yields the event. Events per second are all events delivered to all watchers
    /// over the time from the first put to the last delivery.
    async fn watch(&self, layout: Layout) -> Result<Vec<f64>> {
        let args = self.args;
        ensure!(args.watchers > 0, "--watchers must be at least 1");
        let key = b"bench/watch/key".to_vec();
        let conns = self.connections(args.watch_conns.max(1), layout).await?;
        let streams = args.watch_streams.clamp(1, args.watchers);
        let shared = Arc::new(WatchShared::default());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

        let setup_deadline = Instant::now() + WATCH_SETUP;
        let mut tasks = Vec::with_capacity(streams);
        for s in 0..streams {
            // Watchers dealt out as evenly as possible over the streams.
            let n = args.watchers / streams + usize::from(s < args.watchers % streams);
            let mut client = conns[s % conns.len()].watch_client();
            let mut stream = client.watch(key.clone(), None).await.context("watch")?;
            for _ in 1..n {
                stream.watch(key.clone(), None).await.context("watch")?;
            }
            tasks.push(tokio::spawn(read_watch_stream(
                stream,
                n,
                self.epoch,
                shared.clone(),
                stop_rx.clone(),
            )));
        }
        let watchers = args.watchers;
        wait_for(
            &mut tasks,
            setup_deadline,
            "all watches to be created",
            || shared.created.load(Ordering::Relaxed) >= watchers,
        )
        .await?;

        // One put that every watcher must see before the clock starts. The writer is a client
        // of the same layout as the watchers.
        let mut kv = self.connect(layout, streams).await?.kv_client();
        kv.put(key.clone(), stamped_value(0, args.watch_value_size), None)
            .await
            .context("put")?;
        wait_for(
            &mut tasks,
            setup_deadline,
            "the first event to reach every watcher",
            || shared.ready.load(Ordering::Relaxed) >= watchers,
        )
        .await?;

        let first_put = Instant::now();
        let stop_writing = first_put + args.duration();
        let mut puts = 0u64;
        while Instant::now() < stop_writing {
            let sent = (self.epoch.elapsed().as_nanos() as u64).max(1);
            kv.put(
                key.clone(),
                stamped_value(sent, args.watch_value_size),
                None,
            )
            .await
            .context("put")?;
            puts += 1;
        }
        let expected = puts * watchers as u64;
        let drain_deadline = Instant::now() + WATCH_DRAIN;
        let drained = wait_for(&mut tasks, drain_deadline, "the last events", || {
            shared.delivered.load(Ordering::Relaxed) >= expected
        })
        .await;
        if let Err(err) = &drained {
            // A reader that failed fails the workload; a slow one only leaves events behind.
            ensure!(err.is::<TimedOut>(), "{err:#}");
        }
        let _ = stop_tx.send(true);

        let mut lags = Latencies::new();
        let mut last_delivery = first_put;
        for task in tasks {
            let (task_lags, last) = task.await??;
            lags.merge(task_lags);
            if let Some(last) = last {
                last_delivery = last_delivery.max(last);
            }
        }
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if let Err(err) = drained {
            eprintln!("    ({err:#}: {delivered} of {expected} events delivered)");
        }
        ensure!(delivered > 0, "no event delivered");
        let secs = last_delivery.duration_since(first_put).as_secs_f64();
        Ok(vec![
            delivered as f64 / secs,
            lags.quantile_ms(0.5),
            lags.quantile_ms(0.99),
        ])
    }
}

fn put_key(i: usize) -> Vec<u8> {
    format!("bench/put/{i:08}").into_bytes()
}

fn read_key(i: usize) -> Vec<u8> {
    format!("bench/read/{i:08}").into_bytes()
}

/// `size` bytes (at least 8) starting with `nanos` in little-endian order.
fn stamped_value(nanos: u64, size: usize) -> Vec<u8> {
    let mut value = nanos.to_le_bytes().to_vec();
    value.resize(size.max(8), b'x');
    value
}

/// What one watch stream reader returns: the lag of each timed event and when the last came.
type ReaderResult = Result<(Latencies, Option<Instant>)>;

#[derive(Debug)]
struct TimedOut(String);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "timed out waiting for {}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// Polls `done` until it holds. Fails with [`TimedOut`] at `deadline`, and at once with its
/// error if a watch stream reader has ended (before the stop signal, a reader ends only when
/// its stream fails).
async fn wait_for(
    readers: &mut [JoinHandle<ReaderResult>],
    deadline: Instant,
    what: &str,
    done: impl Fn() -> bool,
) -> Result<()> {
    while !done() {
        if let Some(reader) = readers.iter_mut().find(|r| r.is_finished()) {
            reader.await.context("watch stream reader panicked")??;
            bail!("a watch stream reader ended early");
        }
        if Instant::now() >= deadline {
            return Err(TimedOut(what.to_owned()).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[derive(Default)]
struct WatchShared {
    /// Watches whose creation the server confirmed.
    created: AtomicUsize,
    /// Watchers that saw the put made before the clock started.
    ready: AtomicUsize,
    /// Events delivered after the clock started, over all watchers.
    delivered: AtomicU64,
}

/// Reads one watch stream carrying `watches` watches until told to stop; returns the lag of
/// every timed event and when the last one arrived.
async fn read_watch_stream(
    stream: cluster_tests::etcd_client::WatchStream,
    watches: usize,
    epoch: Instant,
    shared: Arc<WatchShared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ReaderResult {
    // Keep the request half open: the server may end the stream when it is closed.
    let (_requests, mut responses) = stream.split();
    let mut lags = Latencies::new();
    let mut last = None;
    let mut created = 0;
    loop {
        let resp = tokio::select! {
            _ = stop.changed() => break,
            resp = responses.message() => resp,
        };
        let resp = resp
            .context("watch stream")?
            .ok_or_else(|| anyhow!("watch stream ended by the server"))?;
        let now = Instant::now();
        if resp.canceled() {
            bail!(
                "watch {} canceled: {}",
                resp.watch_id(),
                resp.cancel_reason()
            );
        }
        if resp.created() {
            created += 1;
            if created == watches {
                shared.created.fetch_add(watches, Ordering::Relaxed);
            }
        }
        let mut timed = 0;
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let sent = kv
                .value()
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| anyhow!("watch event without a timestamp"))?;
            if sent == 0 {
                shared.ready.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let received = now.duration_since(epoch).as_nanos() as u64;
            lags.record_nanos(received.saturating_sub(sent));
            timed += 1;
        }
        if timed > 0 {
            shared.delivered.fetch_add(timed, Ordering::Relaxed);
            last = Some(now);
        }
    }
    Ok((lags, last))
}

/// One client of a closed-loop workload: issues its next request when the last one finished.
trait Worker: Send + 'static {
    fn op(&mut self) -> impl Future<Output = Result<()>> + Send;
}

struct PutWorker {
    kv: KvClient,
    rng: StdRng,
    keys: usize,
    value: Vec<u8>,
}

impl Worker for PutWorker {
    async fn op(&mut self) -> Result<()> {
        let key = put_key(self.rng.random_range(0..self.keys));
        self.kv.put(key, self.value.clone(), None).await?;
        Ok(())
    }
}

struct GetWorker {
    kv: KvClient,
    rng: StdRng,
    keys: usize,
    serializable: bool,
}

impl Worker for GetWorker {
    async fn op(&mut self) -> Result<()> {
        let key = read_key(self.rng.random_range(0..self.keys));
        let options = self
            .serializable
            .then(|| GetOptions::new().with_serializable());
        let resp = self.kv.get(key, options).await?;
        ensure!(resp.kvs().len() == 1, "preloaded key not found");
        Ok(())
    }
}

struct GrantWorker {
    lease: LeaseClient,
}

impl Worker for GrantWorker {
    async fn op(&mut self) -> Result<()> {
        self.lease.grant(LEASE_TTL, None).await?;
        Ok(())
    }
}

struct KeepAliveWorker {
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

impl Worker for KeepAliveWorker {
    async fn op(&mut self) -> Result<()> {
        self.keeper.keep_alive().await?;
        let resp = self
            .stream
            .message()
            .await?
            .ok_or_else(|| anyhow!("keep-alive stream ended by the server"))?;
        ensure!(resp.ttl() > 0, "lease {} expired", resp.id());
        Ok(())
    }
}

struct LoopResult {
    /// Requests that finished, successfully, inside the measured window.
    ops: u64,
    window: Duration,
    latencies: Latencies,
}

impl LoopResult {
    /// Requests per second and p99 latency.
    fn figures(mut self) -> Vec<f64> {
        let rate = self.ops as f64 / self.window.as_secs_f64();
        vec![rate, self.latencies.quantile_ms(0.99)]
    }
}

/// Runs every worker in its own task for `warmup + duration`. Requests that finish inside the
/// last `duration` are counted and their latencies recorded. Errors are counted; a workload
/// with more than 1% failed requests fails.
async fn closed_loop<W: Worker>(
    workers: Vec<W>,
    warmup: Duration,
    duration: Duration,
) -> Result<LoopResult> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + duration;
    let tasks: Vec<JoinHandle<(Latencies, u64, Option<anyhow::Error>)>> = workers
        .into_iter()
        .map(|mut worker| {
            tokio::spawn(async move {
                let mut lat = Latencies::new();
                let mut errors = 0u64;
                let mut first_error = None;
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    let result = worker.op().await;
                    let done = Instant::now();
                    let measured = done >= measure_from && done <= until;
                    match result {
                        Ok(()) if measured => lat.record(done - sent),
                        Ok(()) => {}
                        Err(err) => {
                            if measured {
                                errors += 1;
                            }
                            first_error.get_or_insert(err);
                            // Do not spin on a server that fails fast.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (lat, errors, first_error)
            })
        })
        .collect();
    let mut latencies = Latencies::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let (lat, errs, err) = task.await.context("benchmark client panicked")?;
        latencies.merge(lat);
        errors += errs;
        if first_error.is_none() {
            first_error = err;
        }
    }
    let ops = latencies.len() as u64;
    if let Some(err) = first_error {
        if ops == 0 || errors * 100 > ops + errors {
            return Err(err.context(format!("{errors} requests failed, {ops} succeeded")));
        }
        if errors == 0 {
            eprintln!("    (requests failed during the warm-up, first: {err:#})");
        } else {
            eprintln!("    ({errors} requests failed, first: {err:#})");
        }
    }
    ensure!(ops > 0, "no request finished inside the measured window");
    Ok(LoopResult {
        ops,
        window: duration,
        latencies,
    })
}
