//! `logs` and `exec`: a pod's container log and a command in a container, through the
//! apiserver's pods/log and pods/exec (which the agent of the pod's node serves).

use anyhow::{anyhow, bail, Result};
use clap::Args;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use std::io::IsTerminal;

use futures::SinkExt;
use kube::api::{Api, AttachParams, LogParams, TerminalSize};
use tokio::{
    io::AsyncWriteExt,
    signal::unix::{signal, SignalKind},
};

use crate::{resources, Global};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The pod: NAME or pod/NAME.
    pub pod: String,
    /// The container (default: the pod's only one, or its kubectl.kubernetes.io/default-container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The previous instance of the container, if it restarted.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub tail: i64,
    /// Prefix each line with its timestamp.
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The pod: NAME or pod/NAME.
    pub pod: String,
    /// The container (default: the pod's only one, or its kubectl.kubernetes.io/default-container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `NAME` or `pod/NAME` (`po/NAME`, `pods/NAME`).
fn pod_name(arg: &str) -> Result<String> {
    match arg.split_once('/') {
        Some((t, n)) if resources::resolve(t)?.kind == "Pod" => Ok(n.to_string()),
        Some((t, _)) => bail!("error: cannot use {t} here: name a pod"),
        None => Ok(arg.to_string()),
    }
}

/// The container to use when none is named: kubectl's defaulting (the default-container
/// annotation, else the first container, with a note on stderr when there are several).
async fn default_container(
    api: &Api<Pod>,
    name: &str,
    named: Option<String>,
) -> Result<Option<String>> {
    if named.is_some() {
        return Ok(named);
    }
    let pod = api.get(name).await?;
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubectl.kubernetes.io/default-container"))
        .cloned();
    if annotated.is_some() {
        return Ok(annotated);
    }
    let names: Vec<String> = pod
        .spec
        .map(|s| s.containers.into_iter().map(|c| c.name).collect())
        .unwrap_or_default();
    if names.len() > 1 {
        errln!(
            "Defaulted container {:?} out of: {}",
            names[0],
            names.join(", ")
        );
    }
    Ok(names.into_iter().next())
}

pub async fn logs(g: &Global, a: LogsArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let name = pod_name(&a.pod)?;
    let params = LogParams {
        container: default_container(&api, &name, a.container.clone()).await?,
        follow: a.follow,
        previous: a.previous,
        tail_lines: (a.tail >= 0).then_some(a.tail),
        timestamps: a.timestamps,
        ..LogParams::default()
    };
    let mut lines = api.log_stream(&name, &params).await?.lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next().await {
        let line = line?;
        out.write_all(line.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
    Ok(())
}

/// kubectl's warning when -t is asked for but stdin is not a terminal (then no TTY is used).
pub const NO_TTY_WARNING: &str =
    "Unable to use a TTY - input is not a terminal or the right kind of file";

/// The local terminal in raw mode for an exec session with a TTY, as kubectl's term.TTY.Safe:
/// restored when dropped (every return, error or panic) and before exiting on a signal.
struct RawTerminal;

impl RawTerminal {
    fn enable() -> Result<RawTerminal> {
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| anyhow!("error: unable to put the terminal in raw mode: {e}"))?;
        Ok(RawTerminal)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// The local terminal's size, as kubectl's resize messages carry it.
fn terminal_size() -> Option<TerminalSize> {
    crossterm::terminal::size()
        .ok()
        .map(|(width, height)| TerminalSize { width, height })
}

/// Sends the terminal size now and again on every SIGWINCH that changes it (kubectl's
/// MonitorSize); the exec protocol carries it on the resize channel (4).
fn monitor_size(
    mut tx: futures::channel::mpsc::Sender<TerminalSize>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut winch = signal(SignalKind::window_change())?;
    Ok(tokio::spawn(async move {
        let mut last = terminal_size();
        if let Some(size) = last.as_ref() {
            if tx
                .send(TerminalSize {
                    width: size.width,
                    height: size.height,
                })
                .await
                .is_err()
            {
                return;
            }
        }
        while winch.recv().await.is_some() {
            let Some(size) = terminal_size() else {
                continue;
            };
            if last
                .as_ref()
                .is_some_and(|l| l.width == size.width && l.height == size.height)
            {
                continue;
            }
            last = Some(TerminalSize {
                width: size.width,
                height: size.height,
            });
            if tx.send(size).await.is_err() {
                return;
            }
        }
    }))
}

/// While the terminal is raw, a terminating signal restores it before pctl exits (status 1, as
/// kubectl's interrupt handler). Ctrl-C itself is no signal then: it goes to the command.
fn restore_on_signals() -> Result<tokio::task::JoinHandle<()>> {
    let mut signals = Vec::new();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::quit(),
    ] {
        signals.push(signal(kind)?);
    }
    Ok(tokio::spawn(async move {
        let waits = signals.iter_mut().map(|s| Box::pin(s.recv()));
        futures::future::select_all(waits).await;
        let _ = crossterm::terminal::disable_raw_mode();
        std::process::exit(1);
    }))
}

/// Runs the command; returns its exit code, which `pctl exec` exits with (as kubectl).
pub async fn exec(g: &Global, a: ExecArgs) -> Result<i32> {
    // kubectl's SetupTTY: a TTY only with -i and -t and a terminal on stdin.
    let tty = a.stdin && a.tty && {
        let terminal = std::io::stdin().is_terminal();
        if !terminal {
            errln!("{NO_TTY_WARNING}");
        }
        terminal
    };
    let conn = resources::connect(g).await?;
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let name = pod_name(&a.pod)?;
    // With a TTY, stderr comes on the one terminal stream.
    let mut params = AttachParams::default()
        .stdin(a.stdin)
        .stdout(true)
        .stderr(!tty)
        .tty(tty);
    if let Some(c) = default_container(&api, &name, a.container.clone()).await? {
        params = params.container(c);
    }
    let mut process = api.exec(&name, a.command.clone(), &params).await?;
    let status = process
        .take_status()
        .ok_or_else(|| anyhow!("error: the exec stream has no status channel"))?;
    let mut session: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let raw = if tty {
        let raw = RawTerminal::enable()?;
        session.push(restore_on_signals()?);
        if let Some(tx) = process.terminal_size() {
            session.push(monitor_size(tx)?);
        }
        Some(raw)
    } else {
        None
    };
    let stdin = a.stdin.then(|| process.stdin()).flatten().map(|mut w| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut w).await;
            let _ = w.shutdown().await;
        })
    });
    let copy_out = process.stdout().map(|mut r| {
        tokio::spawn(async move { tokio::io::copy(&mut r, &mut tokio::io::stdout()).await })
    });
    let copy_err = process.stderr().map(|mut r| {
        tokio::spawn(async move { tokio::io::copy(&mut r, &mut tokio::io::stderr()).await })
    });
    let status = status.await;
    for task in [copy_out, copy_err].into_iter().flatten() {
        let _ = task.await;
    }
    if let Some(t) = stdin {
        t.abort();
    }
    for t in session {
        t.abort();
    }
    drop(raw);
    let _ = process.join().await;
    let Some(status) = status else { return Ok(0) };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse::<i32>().ok());
    match code {
        Some(code) => {
            errln!("command terminated with exit code {code}");
            Ok(code)
        }
        None => Err(anyhow!("error: {}", status.message.unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What goes on the resize channel after its channel byte: kubectl's TerminalSize JSON.
    #[test]
    fn resize_messages_are_kubectls_json() {
        let text = serde_json::to_string(&TerminalSize {
            width: 120,
            height: 50,
        })
        .unwrap();
        assert_eq!(text, r#"{"Width":120,"Height":50}"#);
    }

    #[test]
    fn pod_names() {
        assert_eq!(pod_name("web").unwrap(), "web");
        assert_eq!(pod_name("po/web").unwrap(), "web");
        assert!(pod_name("deploy/web").is_err());
    }
}
