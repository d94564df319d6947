//! `store-bench`: the same workloads against a 3-member cluster of our store and a 3-member
//! etcd 3.4 on this machine, in one run, alternating the two over several rounds.
//!
//! Every round starts a fresh cluster of each system (one system at a time, so they never
//! compete for the cores), runs every workload on it and stops it. Even rounds run etcd first,
//! odd rounds ours first. Progress goes to stderr; the final table, in Markdown, to stdout.
//! BENCHMARKS.md at the repository root describes each workload.

mod stats;
mod workloads;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use cluster_tests::{Cluster, ClusterConfig, Flavor};

use stats::{Metric, Summary};
use workloads::{Bench, Layout, Workload};

/// How long a cluster may take to start and elect a leader.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause after stopping a cluster, so its exit does not overlap the next measurement.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Parser)]
#[command(
    name = "store-bench",
    about = "Runs the same workloads against our store and etcd 3.4 (3 members each, loopback) \
             and prints both and the ratio ours/etcd as a Markdown table."
)]
pub struct Args {
    /// Rounds; each starts a fresh cluster of each system. The report gives each figure's best
    /// round and its spread over all rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Measured seconds of each timed workload (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds each timed workload runs before it is measured.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Puts measured by the sequential-put workload (after a tenth as many unmeasured ones;
    /// stops early after 3 × --duration).
    #[arg(long, default_value_t = 2000)]
    pub ops: usize,
    /// Run one system only (for debugging).
    #[arg(long, value_enum)]
    pub only: Option<System>,
    /// Members per cluster.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Workloads to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "all",
        value_parser = ["all", "seq-put", "put", "range", "watch", "lease"]
    )]
    pub workloads: Vec<String>,
    /// Bytes per value in the put workloads (and the keys the range workloads read).
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Distinct keys the put workloads write, chosen at random.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Concurrent clients of each put-throughput line.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub put_clients: Vec<usize>,
    /// Client layouts of the put lines named by --layout-put-clients and of the watch line,
    /// comma-separated: `leader` (every connection to the leader), `follower` (every
    /// connection to one follower), `all` (every connection a client given all members, which
    /// spreads its requests over them). Each layout is a line of its own.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "leader,follower,all"
    )]
    pub layouts: Vec<Layout>,
    /// The put lines (by client count) that run once per --layouts; the others spread their
    /// connections over the members, connection i to member i mod n from the leader.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub layout_put_clients: Vec<usize>,
    /// At most this many gRPC connections per workload; clients share them round-robin.
    #[arg(long, default_value_t = 8)]
    pub conns: usize,
    /// Concurrent clients of the range workloads.
    #[arg(long, default_value_t = 16)]
    pub range_clients: usize,
    /// Keys written before the range workloads, which read them at random.
    #[arg(long, default_value_t = 1000)]
    pub range_keys: usize,
    /// Watchers of the watch fan-out workload.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// gRPC watch streams the watchers are spread over.
    #[arg(long, default_value_t = 20)]
    pub watch_streams: usize,
    /// gRPC connections the watch streams are spread over.
    #[arg(long, default_value_t = 4)]
    pub watch_conns: usize,
    /// Bytes per value the watch writer puts (the first 8 are its send time).
    #[arg(long, default_value_t = 64)]
    pub watch_value_size: usize,
    /// Concurrent clients of the lease workloads.
    #[arg(long, default_value_t = 16)]
    pub lease_clients: usize,
    /// After each line, save every member's /metrics (Prometheus text, cumulative since the
    /// cluster started) in this directory, as round-R-N-SYSTEM-LINE-mMEMBER[-leader].prom;
    /// `scripts/metrics-diff.py` prints the histograms of one line from two such files.
    #[arg(long)]
    pub metrics_dir: Option<std::path::PathBuf>,
}

impl Args {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum System {
    Etcd,
    Ours,
}

impl System {
    fn flavor(self) -> Flavor {
        match self {
            System::Etcd => Flavor::Etcd,
            System::Ours => Flavor::Ours,
        }
    }

    fn name(self) -> &'static str {
        match self {
            System::Etcd => "etcd",
            System::Ours => "ours",
        }
    }
}

/// Every figure of every round, per system: `values[row][system][round]`.
struct Results {
    rows: Vec<(String, Metric)>,
    /// Rows of each workload, in order.
    widths: Vec<usize>,
    values: Vec<[Vec<Option<f64>>; 2]>,
}

impl Results {
    fn new(args: &Args, workloads: &[Workload]) -> Results {
        let rows: Vec<(String, Metric)> = workloads
            .iter()
            .flat_map(|w| w.metrics().iter().map(move |&m| (w.name(args), m)))
            .collect();
        let widths = workloads.iter().map(|w| w.metrics().len()).collect();
        let values = rows.iter().map(|_| [Vec::new(), Vec::new()]).collect();
        Results {
            rows,
            widths,
            values,
        }
    }

    /// Adds one round of `system`: per workload its figures, or `None` if it failed.
    fn add(&mut self, system: System, round: Vec<Option<Vec<f64>>>) {
        let mut row = 0;
        for (&width, figures) in self.widths.iter().zip(round) {
            for i in 0..width {
                let value = figures.as_ref().and_then(|f| f.get(i).copied());
                self.values[row + i][system as usize].push(value);
            }
            row += width;
        }
    }

    fn markdown(&self, systems: &[System]) -> String {
        let both = systems.len() == 2;
        let mut header = vec!["Workload".to_owned(), "Metric".to_owned()];
        for s in [System::Etcd, System::Ours] {
            if systems.contains(&s) {
                header.push(format!("{} best", s.name()));
                header.push(format!("{} min–max", s.name()));
            }
        }
        if both {
            header.push("ours/etcd".to_owned());
        }
        let mut lines = vec![
            format!("| {} |", header.join(" | ")),
            format!("|{}", "---|".repeat(header.len())),
        ];
        for ((workload, metric), values) in self.rows.iter().zip(&self.values) {
            let mut cells = vec![workload.clone(), metric.label().to_owned()];
            let mut best = [None, None];
            for s in [System::Etcd, System::Ours] {
                if !systems.contains(&s) {
                    continue;
                }
                match Summary::of(*metric, &values[s as usize]) {
                    Some(sum) => {
                        best[s as usize] = Some(sum.best);
                        cells.push(metric.format(sum.best));
                        let mut spread =
                            format!("{}–{}", metric.format(sum.min), metric.format(sum.max));
                        if sum.ok < sum.runs {
                            spread.push_str(&format!(" ({}/{} rounds ok)", sum.ok, sum.runs));
                        }
                        cells.push(spread);
                    }
                    None => {
                        cells.push("failed".to_owned());
                        cells.push("–".to_owned());
                    }
                }
            }
            if both {
                cells.push(match best {
                    [Some(etcd), Some(ours)] if etcd > 0.0 => format!("{:.2}", ours / etcd),
                    _ => "–".to_owned(),
                });
            }
            lines.push(format!("| {} |", cells.join(" | ")));
        }
        if both {
            lines.push(String::new());
            lines.push(self.geometric_means());
        }
        lines.join("\n")
    }

    /// The geometric mean of ours/etcd over the rate lines and of etcd/ours over the latency
    /// lines (best rounds; above 1 favours ours in both), over the lines both systems ran.
    fn geometric_means(&self) -> String {
        let mut rates = Vec::new();
        let mut latencies = Vec::new();
        for ((_, metric), values) in self.rows.iter().zip(&self.values) {
            let best = |s: System| Summary::of(*metric, &values[s as usize]).map(|x| x.best);
            let (Some(etcd), Some(ours)) = (best(System::Etcd), best(System::Ours)) else {
                continue;
            };
            if etcd <= 0.0 || ours <= 0.0 {
                continue;
            }
            if metric.higher_is_better() {
                rates.push(ours / etcd);
            } else {
                latencies.push(etcd / ours);
            }
        }
        format!(
            "Geometric mean of ours/etcd over the {} rate lines (↑): {}; of etcd/ours over the \
             {} latency lines (↓): {} (above 1 favours ours in both).",
            rates.len(),
            geometric_mean(&rates).map_or("–".to_owned(), |g| format!("{g:.2}")),
            latencies.len(),
            geometric_mean(&latencies).map_or("–".to_owned(), |g| format!("{g:.2}")),
        )
    }
}

/// The geometric mean of positive ratios; None without any.
fn geometric_mean(ratios: &[f64]) -> Option<f64> {
    if ratios.is_empty() {
        return None;
    }
    let logs: f64 = ratios.iter().map(|r| r.ln()).sum();
    Some((logs / ratios.len() as f64).exp())
}

/// Starts a cluster of `system`, runs every workload on it and stops it. A workload that fails
/// or overruns its time limit gives `None`; so do all of them if the cluster does not start.
async fn run_system(
    args: &Args,
    system: System,
    workloads: &[Workload],
    tag: &str,
) -> Vec<Option<Vec<f64>>> {
    let failed = || workloads.iter().map(|_| None).collect();
    eprintln!("{tag}: starting a {}-member cluster", args.members);
    let mut config = ClusterConfig::new(args.members);
    config.flavor = system.flavor();
    let started = Instant::now();
    let cluster = match tokio::time::timeout(START_TIMEOUT, Cluster::start(config)).await {
        Ok(Ok(cluster)) => cluster,
        Ok(Err(err)) => {
            eprintln!("{tag}: cluster did not start: {err:#}");
            return failed();
        }
        Err(_) => {
            eprintln!("{tag}: cluster did not start within {START_TIMEOUT:?}");
            return failed();
        }
    };
    let leader = match cluster.leader().await {
        Ok(leader) => leader,
        Err(err) => {
            eprintln!("{tag}: no leader: {err:#}");
            return failed();
        }
    };
    eprintln!(
        "{tag}: up in {:.1} s, leader is member {leader}",
        started.elapsed().as_secs_f64()
    );
    let n = cluster.len();
    let urls = (0..n)
        .map(|k| cluster.client_url((leader + k) % n))
        .collect();
    let bench = Bench::new(args, urls);

    let mut out = Vec::with_capacity(workloads.len());
    for workload in workloads {
        let name = workload.name(args);
        let started = Instant::now();
        let limit = workload.time_limit(args);
        let result = match tokio::time::timeout(limit, workload.run(&bench)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("did not finish within {limit:?}")),
        };
        match result {
            Ok(figures) => {
                if let Some(dir) = &args.metrics_dir {
                    if let Err(err) = save_metrics(dir, &cluster, leader, tag, &name).await {
                        eprintln!("{tag}: {name}: metrics not saved: {err:#}");
                    }
                }
                let shown: Vec<String> = workload
                    .metrics()
                    .iter()
                    .zip(&figures)
                    .map(|(m, &v)| format!("{} {}", m.format(v), m.label()))
                    .collect();
                eprintln!(
                    "{tag}: {name}: {} ({:.1} s)",
                    shown.join(", "),
                    started.elapsed().as_secs_f64()
                );
                out.push(Some(figures));
            }
            Err(err) => {
                eprintln!("{tag}: {name}: FAILED: {err:#}");
                out.push(None);
            }
        }
    }
    drop(bench);
    drop(cluster);
    tokio::time::sleep(SETTLE).await;
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let systems = match args.only {
        Some(system) => vec![system],
        None => vec![System::Etcd, System::Ours],
    };
    for system in &systems {
        let binary = system.flavor().binary();
        if !binary.exists() {
            bail!(
                "{} binary {} not found{}",
                system.name(),
                binary.display(),
                if *system == System::Ours {
                    " (build it with `cargo build -p store`, or set STORE_BIN)"
                } else {
                    ""
                }
            );
        }
    }
    let workloads = Workload::selected(&args);
    let mut results = Results::new(&args, &workloads);
    let expected = estimate(&args, &workloads).as_secs_f64() * (args.rounds * systems.len()) as f64;
    eprintln!(
        "store-bench: {} round(s) of {} workload(s) on {}; expect roughly {}",
        args.rounds,
        workloads.len(),
        systems
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" and "),
        if expected >= 120.0 {
            format!("{:.0} min", expected / 60.0)
        } else {
            format!("{expected:.0} s")
        }
    );
    let run_started = Instant::now();
    for round in 0..args.rounds {
        let mut order = systems.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for system in order {
            let tag = format!("[round {}/{}] {}", round + 1, args.rounds, system.name());
            let figures = run_system(&args, system, &workloads, &tag).await;
            results.add(system, figures);
        }
    }
    let elapsed = run_started.elapsed().as_secs_f64();
    eprintln!("done in {:.0} s", elapsed);

    println!("{}", report_header(&args, &systems, elapsed));
    println!();
    println!("{}", results.markdown(&systems));
    Ok(())
}

/// Saves the /metrics of every member of `cluster` in `dir` (see `--metrics-dir`).
async fn save_metrics(
    dir: &Path,
    cluster: &Cluster,
    leader: usize,
    tag: &str,
    line: &str,
) -> Result<()> {
    // Words joined by single dashes: `round-1-1-ours-put-1-client-via-the-leader`.
    let slug = |s: &str| {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    };
    std::fs::create_dir_all(dir)?;
    for i in 0..cluster.len() {
        let (code, body) =
            cluster_tests::http::get(&format!("{}/metrics", cluster.metrics_url(i))).await?;
        if code != 200 {
            bail!("member {i}: /metrics answered {code}");
        }
        let role = if i == leader { "-leader" } else { "" };
        let file = dir.join(format!("{}-{}-m{i}{role}.prom", slug(tag), slug(line)));
        std::fs::write(&file, body)?;
    }
    Ok(())
}

/// Rough time one system takes for one round: start, workloads, stop.
fn estimate(args: &Args, workloads: &[Workload]) -> Duration {
    let timed = args.warmup() + args.duration();
    let per_workload: Duration = workloads
        .iter()
        .map(|w| match w {
            // About 1.5 ms per put on an idle machine.
            Workload::SeqPut => Duration::from_secs_f64(args.ops as f64 * 1.1 * 1.5e-3),
            Workload::Watch { .. } => args.duration(),
            _ => timed,
        })
        .sum();
    per_workload + Duration::from_secs(5) + SETTLE
}

/// What a reader needs to judge the table: when, how, on what.
fn report_header(args: &Args, systems: &[System], elapsed: f64) -> String {
    let command = std::env::args()
        .enumerate()
        .map(|(i, a)| if i == 0 { "store-bench".to_owned() } else { a })
        .collect::<Vec<_>>()
        .join(" ");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut lines = vec![
        format!("### store-bench, {}", utc_now()),
        String::new(),
        format!("- command: `{command}` ({elapsed:.0} s)"),
        format!(
            "- rounds: {}, each on fresh {}-member clusters on 127.0.0.1, {}; \
             timed workloads: {} s warm-up + {} s measured",
            args.rounds,
            args.members,
            if systems.len() == 2 {
                "etcd first in rounds 1, 3, …, ours first in rounds 2, 4, …"
            } else {
                "one system only"
            },
            args.warmup,
            args.duration
        ),
        format!("- machine: {cores} cores, clients in the same process as this benchmark"),
    ];
    if systems.contains(&System::Etcd) {
        lines.push(format!("- etcd: {}", etcd_version()));
    }
    if systems.contains(&System::Ours) {
        lines.push(format!(
            "- ours: {} (work tree at {})",
            Flavor::Ours.binary().display(),
            git_revision(&cluster_tests::workspace_root())
        ));
    }
    let mut legend = "- best = best round (highest rate, lowest latency), min–max = spread over \
                      the rounds; ↑ higher is better, ↓ lower is better"
        .to_owned();
    if systems.len() == 2 {
        legend.push_str("; ratio = ours best / etcd best");
    }
    lines.push(legend);
    lines.join("\n")
}

fn etcd_version() -> String {
    Command::new(Flavor::Etcd.binary())
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            // First line: "etcd Version: 3.4.23".
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(|line| match line.split_once("Version:") {
                    Some((_, version)) => format!("etcd {}", version.trim()),
                    None => line.to_owned(),
                })
        })
        .unwrap_or_else(|| "version unknown".to_owned())
}

fn git_revision(repo: &Path) -> String {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| format!("git {}", String::from_utf8_lossy(&out.stdout).trim()))
        .unwrap_or_else(|| "unknown revision".to_owned())
}

/// Current UTC date and time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    let rest = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (days counted in 400-year eras
/// from 0000-03-01, so leap days fall at the end of each year).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn layouts_make_lines_of_their_own() {
        let args = Args::parse_from(["store-bench", "--workloads", "put,watch"]);
        let names: Vec<String> = Workload::selected(&args)
            .iter()
            .map(|w| w.name(&args))
            .collect();
        assert_eq!(
            names,
            [
                "put, 1 client, via the leader",
                "put, 1 client, via a follower",
                "put, 1 client, via all members",
                "put, 16 clients, via the leader",
                "put, 16 clients, via a follower",
                "put, 16 clients, via all members",
                "put, 256 clients",
                "watch fan-out, 1 writer, 1000 watchers, via the leader",
                "watch fan-out, 1 writer, 1000 watchers, via a follower",
                "watch fan-out, 1 writer, 1000 watchers, via all members",
            ]
        );
        let urls: Vec<String> = ["l", "f1", "f2"].iter().map(|s| s.to_string()).collect();
        assert_eq!(Layout::Leader.endpoints(&urls, 5).unwrap(), ["l"]);
        assert_eq!(Layout::Follower.endpoints(&urls, 5).unwrap(), ["f1"]);
        assert_eq!(Layout::All.endpoints(&urls, 1).unwrap(), ["f1", "f2", "l"]);
        assert_eq!(Layout::Spread.endpoints(&urls, 5).unwrap(), ["f2"]);
        assert!(Layout::Follower.endpoints(&urls[..1], 0).is_err());
    }

    #[test]
    fn geometric_mean_of_ratios() {
        assert!(geometric_mean(&[]).is_none());
        let g = geometric_mean(&[2.0, 0.5, 1.0]).unwrap();
        assert!((g - 1.0).abs() < 1e-12);
    }

    #[test]
    fn rows_follow_workloads() {
        let args = Args::parse_from(["store-bench", "--put-clients", "1,16", "--layouts", "all"]);
        let workloads = Workload::selected(&args);
        let mut results = Results::new(&args, &workloads);
        let round: Vec<Option<Vec<f64>>> = workloads
            .iter()
            .map(|w| Some(vec![1.0; w.metrics().len()]))
            .collect();
        results.add(System::Etcd, round);
        results.add(System::Ours, workloads.iter().map(|_| None).collect());
        assert!(results
            .values
            .iter()
            .all(|v| v[0] == [Some(1.0)] && v[1] == [None]));
        let table = results.markdown(&[System::Etcd, System::Ours]);
        // Header, rule, one line per row, a blank line and the geometric means.
        assert_eq!(table.lines().count(), 2 + results.rows.len() + 2);
        let row = "| put, 16 clients, via all members | ops/s ↑ | 1.0 | 1.0–1.0 | failed | – | – |";
        assert!(table.contains(row), "{table}");
    }
}
