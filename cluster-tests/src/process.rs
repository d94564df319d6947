//! Child processes with their output in a log file, and bounded ways to end them.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
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

/// How long a user command (kubectl, pctl, curl) run by a test may take before it is killed.
/// Above every `--timeout` the suites give kubectl (90 s at most), so only a hang reaches it.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// The end of a run of [`output_within`].
#[derive(Debug)]
pub struct Bounded {
    /// What the command printed (all of it, or what it had printed when it was killed) and
    /// how it ended.
    pub output: Output,
    /// Whether it was killed at the time limit.
    pub timed_out: bool,
}

/// Runs `cmd` with stdout and stderr captured and `stdin` fed to it from a thread (or, if
/// `None`, with the standard input the command was given), killing it (SIGKILL) if it has
/// not ended within `limit`. Stdin, stdout and stderr go through threads, so a full pipe
/// blocks neither side; a pipe a grandchild keeps open delays the answer by one second at
/// most after the command ends.
pub fn output_within(
    cmd: &mut Command,
    stdin: Option<Vec<u8>>,
    limit: Duration,
) -> std::io::Result<Bounded> {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The pipe closes when the thread is done, which ends the command's input.
        thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let stdout = read_to_end(child.stdout.take());
    let stderr = read_to_end(child.stderr.take());
    let (status, timed_out) = match wait_timeout(&mut child, limit) {
        Some(status) => (status, false),
        None => {
            let _ = child.kill();
            (child.wait()?, true)
        }
    };
    let gathered =
        |rx: mpsc::Receiver<Vec<u8>>| rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    Ok(Bounded {
        output: Output {
            status,
            stdout: gathered(stdout),
            stderr: gathered(stderr),
        },
        timed_out,
    })
}

/// Reads a pipe to its end on a thread, which sends what it read.
fn read_to_end<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = tx.send(bytes);
    });
    rx
}

/// [`output_within`] for a command a test expects to end: panics, naming the command and
/// showing what it printed, if it cannot be started or is still running after
/// [`COMMAND_LIMIT`].
#[track_caller]
pub fn output_or_panic(cmd: &mut Command, stdin: Option<Vec<u8>>) -> Output {
    let line = format!("{cmd:?}");
    let run =
        output_within(cmd, stdin, COMMAND_LIMIT).unwrap_or_else(|e| panic!("running {line}: {e}"));
    if run.timed_out {
        panic!(
            "{line} did not end within {COMMAND_LIMIT:?} and was killed\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&run.output.stdout),
            String::from_utf8_lossy(&run.output.stderr)
        );
    }
    run.output
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_gets_its_input_and_a_hung_one_is_killed_at_the_limit() {
        let run = output_within(
            Command::new("sh").args(["-c", "cat; echo done >&2"]),
            Some(b"twelve bytes".to_vec()),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(!run.timed_out && run.output.status.success());
        assert_eq!(
            (&run.output.stdout[..], &run.output.stderr[..]),
            (&b"twelve bytes"[..], &b"done\n"[..])
        );

        let started = Instant::now();
        let run = output_within(
            Command::new("sh")
                .args(["-c", "echo before; exec sleep 30"])
                .stdin(Stdio::null()),
            None,
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(run.timed_out && !run.output.status.success());
        assert_eq!(run.output.stdout, b"before\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
