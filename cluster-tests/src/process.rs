//! Child processes with their output in a log file, and bounded ways to end them.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How often a wait polls the child.
const POLL: Duration = Duration::from_millis(25);

/// Spawns `program args` with stdout and stderr appended to `log` (created if missing), after a
/// line that marks the start, so the log of a restarted member shows every run.
pub(crate) fn spawn_logged(program: &Path, args: &[String], log: &Path) -> Result<Child> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log file {}", log.display()))?;
    writeln!(
        file,
        "=== cluster-tests: {} {}",
        program.display(),
        args.join(" ")
    )
    .with_context(|| format!("writing log file {}", log.display()))?;
    let stderr = file
        .try_clone()
        .with_context(|| format!("duplicating log file {}", log.display()))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("spawning {}", program.display()))
}

/// Waits up to `timeout` for the child to exit.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            // An error here means the child can no longer be waited for: treat as gone.
            Ok(None) => return None,
            Err(_) => return None,
        }
    }
}

/// SIGKILL and reap.
pub(crate) fn kill(child: &mut Child) {
    // Fails only if the child was already reaped, which is what we want anyway.
    let _ = child.kill();
    let _ = wait_timeout(child, Duration::from_secs(5));
}

/// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status if the child ended by
/// itself within the grace period.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    // `kill(1)` keeps this crate free of unsafe code; if it cannot run we fall back to SIGKILL.
    let sent = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if sent {
        if let Some(status) = wait_timeout(child, grace) {
            return Some(status);
        }
    }
    kill(child);
    None
}

/// The last `lines` lines of a text file (at most the last 256 KiB are read).
pub(crate) fn tail(path: &Path, lines: usize) -> Result<String> {
    const MAX: u64 = 256 * 1024;
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("stat {}", path.display()))?
        .len();
    let start = len.saturating_sub(MAX);
    file.seek(SeekFrom::Start(start))
        .with_context(|| format!("seeking in {}", path.display()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    Ok(all[from..].join("\n"))
}

/// The resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time (user + system) process `pid` has used, in seconds (`/proc/PID/stat`).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // /proc counts in USER_HZ ticks, 1/100 s on Linux whatever the kernel's own HZ.
    Some(ticks / 100.0)
}
