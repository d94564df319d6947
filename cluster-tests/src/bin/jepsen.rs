//! `jepsen`: the fault-injection suite's runner (issue 13). Starts store members (ours or the
//! reference etcd 3.4) as containers on a private Docker network, runs a workload's clients
//! while nemeses inject faults, heals, checks the recorded history and writes a report folder
//! (summary.txt, history.jsonl, latency.png, throughput.png, logs.txt) under `--results`.
//!
//! `--flavor both` runs the same workload, faults and seed against ours, then etcd, and prints
//! the two verdicts side by side. `--matrix` runs every workload under each nemesis (and all
//! combined) against both flavors and writes the table to `--write-results`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cluster_tests::jepsen::{docker, nemesis, report::Report, runner, workload};
use cluster_tests::Flavor;

#[derive(Debug, Parser)]
#[command(
    name = "jepsen",
    about = "Run a workload against store members in containers while faults are injected, then check it."
)]
struct Args {
    /// register, append, watch, lock or lease.
    #[arg(long, env = "WORKLOAD", default_value = "register")]
    workload: String,
    /// Comma-separated nemeses (kill, pause, partition, member), `all` or `none`.
    #[arg(long, env = "NEMESIS", default_value = "kill")]
    nemesis: String,
    /// ours (our store), etcd (the reference etcd 3.4) or both.
    #[arg(long, env = "FLAVOR", default_value = "ours")]
    flavor: String,
    /// Store members (3 or 5).
    #[arg(long, env = "MEMBERS", default_value_t = 3)]
    members: usize,
    /// Seconds of load (faults are injected during it).
    #[arg(long = "time", env = "TIME", default_value_t = 30)]
    time: u64,
    /// Concurrent clients.
    #[arg(long, env = "CLIENTS", default_value_t = 10)]
    clients: usize,
    /// Operations per second over all clients (0: as fast as they go).
    #[arg(long, env = "RATE", default_value_t = 200.0)]
    rate: f64,
    /// Seed of the faults' schedule and of the operations.
    #[arg(long, env = "SEED", default_value_t = 1)]
    seed: u64,
    /// Folder the report folders go to.
    #[arg(long, env = "RESULTS", default_value = "results")]
    results: PathBuf,
    /// Every workload × every nemesis (one at a time, then all together) × both flavors.
    #[arg(long)]
    matrix: bool,
    /// With --matrix: the Markdown file the results table is written to.
    #[arg(long)]
    write_results: Option<PathBuf>,
}

fn flavors(s: &str) -> Result<Vec<Flavor>> {
    match s {
        "ours" | "store" => Ok(vec![Flavor::Ours]),
        "etcd" => Ok(vec![Flavor::Etcd]),
        "both" => Ok(vec![Flavor::Ours, Flavor::Etcd]),
        other => bail!("unknown flavor {other:?} (ours, etcd or both)"),
    }
}

fn config(
    args: &Args,
    workload: workload::Kind,
    nemeses: Vec<nemesis::Kind>,
    flavor: Flavor,
) -> runner::RunConfig {
    runner::RunConfig {
        workload,
        nemeses,
        flavor,
        members: args.members,
        duration: Duration::from_secs(args.time),
        clients: args.clients,
        rate: args.rate,
        seed: args.seed,
        results: args.results.clone(),
        timing: nemesis::Timing::default(),
        progress: true,
    }
}

async fn run_one(cfg: &runner::RunConfig) -> (runner::RunConfig, Result<Report>) {
    (cfg.clone(), runner::run(cfg).await)
}

fn row(cfg: &runner::RunConfig, report: &Result<Report>) -> String {
    let nemesis = nemesis::names(&cfg.nemeses, "+");
    let (verdict, faults, operations, checks) = match report {
        Ok(r) => (
            if r.valid { "valid" } else { "INVALID" }.to_owned(),
            r.faults_injected.to_string(),
            r.operations.clone(),
            r.checks.join("<br>"),
        ),
        Err(e) => (
            "ERROR".to_owned(),
            String::new(),
            format!("{e:#}"),
            String::new(),
        ),
    };
    format!(
        "| {} | {nemesis} | {} | {verdict} | {faults} | {operations} | {checks} |",
        cfg.workload,
        cfg.flavor.name()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !docker::available() {
        bail!("no Docker engine answers here (`docker version` failed): the suite needs one");
    }
    let mut runs = Vec::new();
    if args.matrix {
        for w in workload::Kind::ALL {
            let mut sets: Vec<Vec<nemesis::Kind>> =
                nemesis::Kind::ALL.iter().map(|k| vec![*k]).collect();
            sets.push(nemesis::Kind::ALL.to_vec());
            for set in sets {
                for f in [Flavor::Ours, Flavor::Etcd] {
                    runs.push(config(&args, w, set.clone(), f));
                }
            }
        }
    } else {
        let w: workload::Kind = args.workload.parse()?;
        let nemeses = nemesis::parse_kinds(&args.nemesis)?;
        for f in flavors(&args.flavor)? {
            runs.push(config(&args, w, nemeses.clone(), f));
        }
    }
    let mut rows = Vec::new();
    let mut ours_valid = true;
    for cfg in &runs {
        let (cfg, report) = run_one(cfg).await;
        if cfg.flavor == Flavor::Ours && !report.as_ref().is_ok_and(|r| r.valid) {
            ours_valid = false;
        }
        if let Err(e) = &report {
            eprintln!("==> {}: ERROR {e:#}", cfg.name());
        }
        rows.push(row(&cfg, &report));
    }
    let mut table = String::from(
        "| workload | nemesis | flavor | verdict | faults | operations | checks |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(r);
        table.push('\n');
    }
    println!("{table}");
    if let Some(path) = &args.write_results {
        let text = format!(
            "Command: `cargo run --bin jepsen -- --matrix --time {} --clients {} --rate {} --seed {} --members {}`\n\n{table}",
            args.time, args.clients, args.rate, args.seed, args.members
        );
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if !ours_valid {
        bail!("a run against our store was not valid (see the reports above)");
    }
    Ok(())
}
