//! Processes of the control plane's other components (scheduler, controller-manager, agent, ...)
//! started from this workspace's binaries with a log file each, and ended when dropped.
//!
//! ```no_run
//! # fn demo(api: &cluster_tests::ApiCluster) -> anyhow::Result<()> {
//! use cluster_tests::{Component, Identity};
//! let kubeconfig = api.kubeconfig(Identity::Admin);
//! let scheduler = Component::start(
//!     "scheduler",
//!     &["--kubeconfig".into(), kubeconfig.display().to_string()],
//!     api.dir(),
//! )?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::process;

/// One running component process; SIGTERM then SIGKILL when dropped.
#[derive(Debug)]
pub struct Component {
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// `<target dir>/debug/NAME`, or `$<NAME>_BIN` (upper case, `-` as `_`) when set.
pub fn component_binary(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(bin) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    crate::debug_dir().join(name)
}

impl Component {
    /// Starts the binary `name` with `args`, its output appended to `<log_dir>/<name>.log`
    /// (or `<name>-2.log`, ... when that is taken by another instance).
    pub fn start(name: &str, args: &[String], log_dir: &Path) -> Result<Component> {
        let binary = component_binary(name);
        if !binary.is_file() {
            bail!(
                "{name} binary not found at {} (build it with `cargo build -p {name}`)",
                binary.display()
            );
        }
        let mut log = log_dir.join(format!("{name}.log"));
        let mut n = 2;
        while log.exists() {
            log = log_dir.join(format!("{name}-{n}.log"));
            n += 1;
        }
        let child = process::spawn_logged(&binary, args, &log)?;
        Ok(Component {
            binary,
            args: args.to_vec(),
            log,
            child: Some(child),
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        process::tail(&self.log, lines).unwrap_or_else(|e| format!("(no log: {e:#})"))
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill(&mut child);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            process::terminate(&mut child, grace);
        }
    }

    /// Starts it again with the same arguments (after [`Component::kill`] or
    /// [`Component::stop`]); the log goes on in the same file.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.child = Some(process::spawn_logged(&self.binary, &self.args, &self.log)?);
        Ok(())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
