//! A run's report, in its own folder: `summary.txt` (operations by outcome, latency, the faults
//! with their windows, each checker's verdict and the anomalies with the operations involved),
//! `history.jsonl`, `latency.png`, `throughput.png` and the members' last log lines.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::history::Outcome;
use super::nemesis::{self, FaultWindow};
use super::plot;
use super::runner::RunConfig;
use super::workload::{Checked, Timing};

/// What [`write`] puts together.
pub struct Inputs<'a> {
    pub dir: &'a Path,
    pub cfg: &'a RunConfig,
    pub windows: &'a [FaultWindow],
    /// Why the clients could not run, if they could not.
    pub load: Option<&'a anyhow::Error>,
    /// Why the cluster did not recover after the faults, if it did not.
    pub recovered: Option<&'a anyhow::Error>,
    /// The checks, if the run got that far (`Err`: the final reads failed).
    pub checked: Option<Result<&'a Checked, &'a anyhow::Error>>,
    pub end: Duration,
    pub logs: &'a str,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    pub dir: PathBuf,
    /// Every must-hold checker passed (informational findings do not count).
    pub valid: bool,
    /// One line: the run's name and verdict.
    pub headline: String,
    /// Operations in flight while a fault was injected (invoked before a window's end and
    /// completed after its start): a fault that hit no traffic proves nothing.
    pub ops_during_faults: usize,
    /// Faults injected (windows whose injection did not fail).
    pub faults_injected: usize,
    /// One line: operations by outcome and latency.
    pub operations: String,
    /// One line per checker: `[must hold] register: valid`, with its anomaly counts.
    pub checks: Vec<String>,
    /// The whole `summary.txt`.
    pub summary: String,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn operations(timings: &[Timing]) -> String {
    let count = |o: Outcome| timings.iter().filter(|t| t.outcome == o).count();
    let mut ok: Vec<Duration> = timings
        .iter()
        .filter(|t| t.outcome == Outcome::Ok)
        .map(|t| t.complete.saturating_sub(t.invoke))
        .collect();
    ok.sort();
    format!(
        "{} operations: {} ok, {} fail, {} unknown; ok latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        timings.len(),
        count(Outcome::Ok),
        count(Outcome::Fail),
        count(Outcome::Unknown),
        percentile(&ok, 0.5).as_secs_f64() * 1000.0,
        percentile(&ok, 0.99).as_secs_f64() * 1000.0,
        ok.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    )
}

/// The command line that repeats this run.
pub fn command(cfg: &RunConfig) -> String {
    let nemesis = nemesis::names(&cfg.nemeses, ",");
    format!(
        "jepsen --workload {} --nemesis {nemesis} --flavor {} --members {} --time {} --clients {} --rate {} --seed {}",
        cfg.workload,
        cfg.flavor.name(),
        cfg.members,
        cfg.duration.as_secs(),
        cfg.clients,
        cfg.rate,
        cfg.seed
    )
}

/// Writes the report folder and returns the verdict.
pub fn write(inputs: Inputs<'_>) -> Result<Report> {
    let Inputs {
        dir,
        cfg,
        windows,
        load,
        recovered,
        checked,
        end,
        logs,
    } = inputs;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut s = String::new();
    let _ = writeln!(s, "run:      {}", cfg.name());
    let _ = writeln!(s, "command:  {}", command(cfg));
    let _ = writeln!(
        s,
        "hosts:    {} {} members, each its own container on a private network",
        cfg.members,
        cfg.flavor.name()
    );
    let mut valid = load.is_none() && recovered.is_none();
    let mut ops_during_faults = 0;
    let mut operations_line = String::new();
    let mut checks = Vec::new();
    if let Some(e) = load {
        let _ = writeln!(s, "\nERROR: the clients could not run: {e:#}");
    }
    if let Some(e) = recovered {
        let _ = writeln!(
            s,
            "\nERROR: the cluster did not recover after the faults: {e:#}"
        );
    }
    let _ = writeln!(s, "\nfaults ({}):", windows.len());
    for w in windows {
        let _ = writeln!(
            s,
            "  {:>6.1}s - {:>6.1}s  {:<9} {}; {}",
            w.start.as_secs_f64(),
            w.end.as_secs_f64(),
            w.kind.name(),
            w.what,
            w.healed
        );
    }
    match checked {
        None => {
            valid = false;
            let _ = writeln!(s, "\nchecks: not run");
        }
        Some(Err(e)) => {
            valid = false;
            let _ = writeln!(s, "\nchecks: the final reads failed: {e:#}");
        }
        Some(Ok(checked)) => {
            operations_line = operations(&checked.timings);
            let _ = writeln!(s, "\n{operations_line}");
            ops_during_faults = checked
                .timings
                .iter()
                .filter(|t| {
                    windows
                        .iter()
                        .any(|w| t.invoke < w.end && t.complete > w.start)
                })
                .count();
            let _ = writeln!(
                s,
                "{ops_during_faults} operations were in flight while a fault was injected"
            );
            let _ = writeln!(s, "\nchecks:");
            for verdict in &checked.results {
                let tag = if verdict.informational {
                    "informational"
                } else {
                    "must hold"
                };
                if !verdict.informational && !verdict.result.valid() {
                    valid = false;
                }
                let _ = writeln!(s, "[{tag}] {}", verdict.result);
                let counts: Vec<String> = verdict
                    .result
                    .counts()
                    .iter()
                    .map(|(k, n)| format!("{k:?}={n}"))
                    .collect();
                checks.push(format!(
                    "[{tag}] {}: {:?} {}",
                    verdict.result.checker,
                    verdict.result.verdict(),
                    counts.join(" ")
                ));
            }
            std::fs::write(dir.join("history.jsonl"), &checked.history_jsonl)?;
            let title = cfg.name();
            for (file, draw) in [
                ("latency.png", plot::latency as PlotFn),
                ("throughput.png", plot::throughput as PlotFn),
            ] {
                if let Err(e) = draw(&dir.join(file), &title, &checked.timings, windows, end) {
                    let _ = writeln!(s, "({file} not drawn: {e:#})");
                }
            }
        }
    }
    let headline = format!(
        "{}: {}",
        cfg.name(),
        if valid { "VALID" } else { "INVALID" }
    );
    let _ = writeln!(s, "\nresult: {}", if valid { "VALID" } else { "INVALID" });
    std::fs::write(dir.join("summary.txt"), &s)?;
    std::fs::write(dir.join("logs.txt"), logs)?;
    Ok(Report {
        dir: dir.to_path_buf(),
        valid,
        headline,
        ops_during_faults,
        faults_injected: windows.iter().filter(|w| w.injected).count(),
        operations: operations_line,
        checks,
        summary: s,
    })
}

type PlotFn = fn(&Path, &str, &[Timing], &[FaultWindow], Duration) -> Result<()>;
