//! One run: start the hosts, run the workload's clients while the nemeses inject faults on a
//! schedule drawn from the seed, heal, wait for recovery, check, and write the report.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::apihosts::ApiHosts;
use super::hosts::StoreHosts;
use super::nemesis::{self, FaultWindow, Schedule, Timing};
use super::report::{self, Report};
use super::workload::{self, Ctx, Progress};
use crate::Flavor;

/// Everything a run depends on; the same config and seed give the same schedule of faults and
/// the same operations (though not the same timing).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub workload: workload::Kind,
    pub nemeses: Vec<nemesis::Kind>,
    pub flavor: Flavor,
    pub members: usize,
    pub duration: Duration,
    pub clients: usize,
    /// Operations per second over all clients (0: unlimited).
    pub rate: f64,
    pub seed: u64,
    /// The run's report goes to a new folder under this one.
    pub results: PathBuf,
    pub timing: Timing,
    /// Print a progress line every few seconds.
    pub progress: bool,
}

impl RunConfig {
    /// A short name: `register-kill-store-seed42`.
    pub fn name(&self) -> String {
        let nemesis = nemesis::names(&self.nemeses, "+");
        format!(
            "{}-{nemesis}-{}-seed{}",
            self.workload,
            self.flavor.name(),
            self.seed
        )
    }
}

/// Distinguishes the networks of runs made at the same time by one process (parallel tests).
static RUNS: AtomicU32 = AtomicU32::new(0);

/// Runs one workload against one flavor and writes its report.
pub async fn run(cfg: &RunConfig) -> Result<Report> {
    let run_no = RUNS.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}-{}", std::process::id(), run_no);
    let say = |line: String| {
        if cfg.progress {
            eprintln!("{line}");
        }
    };
    say(format!(
        "==> {}: starting {} {} members",
        cfg.name(),
        cfg.members,
        cfg.flavor.name()
    ));
    let hint = u8::try_from((std::process::id() + run_no * 7) % 250).unwrap_or(1);
    let mut hosts = StoreHosts::start(cfg.flavor, cfg.members, &id, hint).await?;
    let progress = Arc::new(Progress::default());
    let workload = cfg.workload.build(progress.clone());
    let api = match workload.apiservers() {
        0 => None,
        n => {
            say(format!("==> starting {n} apiservers"));
            Some(Arc::new(ApiHosts::start(&hosts, n).await?))
        }
    };
    let start = Instant::now();
    let ctx = Ctx {
        endpoints: hosts.endpoints(),
        clients: cfg.clients,
        rate: cfg.rate,
        start,
        until: start + cfg.duration,
        seed: cfg.seed,
        progress: progress.clone(),
        api: api.clone(),
    };
    let mut schedule = Schedule::new(&cfg.nemeses, cfg.timing);
    say(format!(
        "==> running {} clients for {:?} with nemesis {}",
        cfg.clients,
        cfg.duration,
        nemesis::names(&cfg.nemeses, ",")
    ));

    let ticker = cfg.progress.then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let (ok, fail, unknown) = progress.read();
                eprintln!(
                    "    t={:>4.0}s  ok {ok:>7}  fail {fail:>6}  unknown {unknown:>6}",
                    start.elapsed().as_secs_f64()
                );
            }
        })
    });
    let (load, windows) = tokio::join!(
        workload.run(&ctx),
        faults(&mut schedule, &mut hosts, &ctx, cfg)
    );
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    let end = start.elapsed();
    say(format!(
        "==> healing and waiting for the cluster to recover ({} faults)",
        windows.len()
    ));
    let recovered = async {
        hosts.heal_all()?;
        hosts.wait_healthy(Duration::from_secs(60)).await
    }
    .await;
    let checked = match (&load, &recovered) {
        (Ok(()), Ok(())) => {
            say("==> checking the history".to_owned());
            Some(workload.check(&ctx).await)
        }
        _ => None,
    };
    let dir = cfg
        .results
        .join(format!("{}-{}", chrono_like_now(), cfg.name()));
    let report = report::write(report::Inputs {
        dir: &dir,
        cfg,
        windows: &windows,
        load: load.as_ref().err(),
        recovered: recovered.as_ref().err(),
        checked: checked.as_ref().map(|c| c.as_ref()),
        end,
        logs: &format!(
            "{}{}",
            hosts.logs(200),
            api.as_ref().map_or(String::new(), |a| a.logs(100))
        ),
    })
    .with_context(|| format!("writing the report to {}", dir.display()))?;
    say(format!("==> {} ({})", report.headline, dir.display()));
    Ok(report)
}

/// The nemesis loop: gap, inject, hold, heal, until the load ends.
async fn faults(
    schedule: &mut Schedule,
    hosts: &mut StoreHosts,
    ctx: &Ctx,
    cfg: &RunConfig,
) -> Vec<FaultWindow> {
    let mut windows = Vec::new();
    if schedule.is_empty() {
        return windows;
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let between = |rng: &mut StdRng, (lo, hi): (Duration, Duration)| {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(rng.random_range(0..=span))
    };
    loop {
        let gap = between(&mut rng, schedule.timing.gap);
        let hold = between(&mut rng, schedule.timing.hold);
        // Leave the end of the run quiet, so the last fault is healed under load.
        if ctx.now() + gap + hold + Duration::from_secs(1) >= cfg.duration {
            break;
        }
        tokio::time::sleep(gap).await;
        let which = rng.random_range(0..schedule.len());
        let started = ctx.now();
        let (kind, injected) = schedule.inject(which, hosts, &mut rng).await;
        let ok = injected.is_ok();
        let what = match injected {
            Ok(what) => what,
            Err(e) => format!("failed to inject: {e:#}"),
        };
        if cfg.progress {
            eprintln!("    t={:>4.0}s  fault: {what}", started.as_secs_f64());
        }
        tokio::time::sleep(hold).await;
        let healed = match schedule.heal(which, hosts).await {
            Ok(healed) => healed,
            Err(e) => format!("failed to heal: {e:#}"),
        };
        let end = ctx.now();
        if cfg.progress {
            eprintln!("    t={:>4.0}s  heal: {healed}", end.as_secs_f64());
        }
        windows.push(FaultWindow {
            kind,
            what,
            injected: ok,
            start: started,
            end,
            healed,
        });
    }
    windows
}

/// `YYYYmmdd-HHMMSS` in UTC, for folder names (no date crate needed for this).
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
