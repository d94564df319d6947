//! A private containerd for a test: its own config, root, state, socket, runc root and CNI
//! network (bridge `ctest-N`, subnet `10.89.N.0/24`), with the local images imported.
//!
//! The configuration comes from `scripts/lib/containerd.sh`, the same script `scripts/up.sh`
//! uses, and the images from `scripts/images.sh` (built once into a cache shared by the test
//! processes of the machine, imported into each containerd). The slot `N` is claimed with a lock
//! file, so test binaries running at the same time get distinct bridges and subnets; a slot
//! left behind by a killed test is cleaned before reuse. Dropping a [`Containerd`] removes every
//! container and sandbox it ran, their mounts, the CNI bridge and iptables rules, and stops it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let containerd = cluster_tests::Containerd::start(&dir.path().join("containerd")).await?;
//! let out = containerd.ctr(&["run", "--rm", "localhost/busybox:1.36", "t1", "echo", "hello"])?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");
//! drop(containerd); // before the temporary directory
//! # Ok(()) }
//! ```

pub mod cri;

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{debug_dir, workspace_root};
use cri::CriClient;

/// The CRI sandbox image, built and imported by `scripts/images.sh`.
pub const PAUSE_IMAGE: &str = "localhost/pause:3.9";
/// The application image (busybox-static and its applets), built by `scripts/images.sh`.
pub const BUSYBOX_IMAGE: &str = "localhost/busybox:1.36";
/// The containerd namespace the CRI plugin uses.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// Number of network slots (`10.89.0.0/24` to `10.89.255.0/24`).
const SLOTS: u16 = 256;
/// How long the CRI may take to report RuntimeReady and NetworkReady after the start.
const CRI_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One running private containerd; stopped and cleaned up when dropped.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    network: String,
    bridge: String,
    subnet: String,
    /// Holds the slot's lock for as long as this containerd exists.
    _slot: File,
    stopped: bool,
}

/// `scripts/lib/containerd.sh`.
pub fn containerd_script() -> PathBuf {
    workspace_root().join("scripts/lib/containerd.sh")
}

/// `scripts/images.sh`.
pub fn images_script() -> PathBuf {
    workspace_root().join("scripts/images.sh")
}

/// Where the image tars are cached: `$IMAGES_CACHE`, else `<target dir>/cluster-tests-images`.
fn images_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("IMAGES_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let debug = debug_dir();
    debug
        .parent()
        .unwrap_or(&debug)
        .join("cluster-tests-images")
}

impl Containerd {
    /// Starts a containerd keeping everything in `dir` (created if missing; its socket path must
    /// stay under ~100 bytes), imports the local images and waits until its CRI reports the
    /// runtime and the network ready. Needs root, containerd, runc and the CNI plugins
    /// (`scripts/setup.sh` installs them).
    pub async fn start(dir: &Path) -> Result<Containerd> {
        Containerd::start_with(dir, true).await
    }

    /// [`Containerd::start`]; without `static_network`, its CNI network has no config until
    /// the agent hands it a pod CIDR (CRI UpdateRuntimeConfig: containerd writes the config
    /// from its template), so NetworkReady is false until then.
    pub async fn start_with(dir: &Path, static_network: bool) -> Result<Containerd> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let (n, slot) = claim_slot(&dir)?;
        let containerd = Containerd {
            network: format!("ctest-{n}"),
            bridge: format!("ctest-{n}"),
            subnet: format!("10.89.{n}.0/24"),
            dir,
            _slot: slot,
            stopped: false,
        };
        let d = containerd.dir.display().to_string();
        let mut configure = vec![
            "configure",
            &d,
            &containerd.network,
            &containerd.bridge,
            &containerd.subnet,
        ];
        if !static_network {
            configure.push("--template-only");
        }
        containerd.script(&containerd_script(), &configure).await?;
        // Whatever a killed test left on this slot's network (bridge, iptables rules) goes first.
        containerd
            .script(&containerd_script(), &["stop", &d])
            .await?;
        containerd.script(&containerd_script(), &configure).await?;
        containerd
            .script(&containerd_script(), &["start", &d])
            .await?;
        let cache = images_cache().display().to_string();
        let sock = containerd.socket().display().to_string();
        let import = ["import", "--address", &sock, "--cache", &cache];
        containerd.script(&images_script(), &import).await?;
        containerd.wait_cri_ready(static_network).await?;
        Ok(containerd)
    }

    /// The directory holding its config, state, socket and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its Unix socket (CRI and containerd's own API).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The CRI endpoint as the agent's flag takes it: `unix:///.../containerd.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The pods' subnet on this containerd's CNI network (for the agent's pod CIDR).
    pub fn pod_cidr(&self) -> &str {
        &self.subnet
    }

    /// The CNI network's name.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The CNI bridge's name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// containerd's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// The last `lines` lines of containerd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::process::tail(&self.log(), lines).unwrap_or_else(|e| format!("(no log: {e:#})"))
    }

    /// A CRI client connected to it.
    pub async fn cri(&self) -> Result<CriClient> {
        CriClient::connect(&self.socket()).await
    }

    /// Runs `ctr -a SOCKET -n k8s.io ARGS...` and returns its output (blocking).
    pub fn ctr(&self, args: &[&str]) -> Result<Output> {
        Command::new("ctr")
            .arg("-a")
            .arg(self.socket())
            .args(["-n", CRI_NAMESPACE])
            .args(args)
            .output()
            .context("running ctr")
    }

    /// Kills the containerd daemon with SIGKILL (its shims, and so the containers, keep
    /// running) and starts it again on the same state; returns once its CRI answers.
    pub async fn restart_daemon(&self) -> Result<()> {
        let pid_file = self.dir.join("containerd.pid");
        let pid: i32 = fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?
            .trim()
            .parse()
            .context("containerd.pid")?;
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -9 {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}/status")).exists() {
            // A killed child of an exited parent is reaped by init; until then it is a zombie.
            let state = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if state
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
            {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "containerd {pid} did not die");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let d = self.dir.display().to_string();
        self.script(&containerd_script(), &["start", &d]).await?;
        self.wait_cri_ready(true).await
    }

    /// Removes every container and sandbox it runs (with their mounts and network) and stops it.
    /// The directory keeps the logs and the image store. Dropping does the same.
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let d = self.dir.display().to_string();
        run_logged(&containerd_script(), &["stop", &d], &self.harness_log())
    }

    fn harness_log(&self) -> PathBuf {
        self.dir.join("harness.log")
    }

    /// Runs a script off the async runtime, its output appended to `harness.log`.
    async fn script(&self, script: &Path, args: &[&str]) -> Result<()> {
        let script = script.to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let log = self.harness_log();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_logged(&script, &args, &log)
        })
        .await
        .context("script task panicked")?
    }

    async fn wait_cri_ready(&self, network: bool) -> Result<()> {
        let deadline = Instant::now() + CRI_READY_TIMEOUT;
        let mut last = String::from("not connected");
        while Instant::now() < deadline {
            match self.cri_ready(network).await {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "containerd's CRI at {} was not ready within {CRI_READY_TIMEOUT:?}: {last}\n{}",
            self.socket().display(),
            self.log_tail(20)
        )
    }

    async fn cri_ready(&self, network: bool) -> Result<()> {
        let mut cri = self.cri().await?;
        let version = cri.version().await?;
        if version.runtime_api_version != "v1" {
            bail!("CRI answered API version {:?}", version.runtime_api_version);
        }
        let status = cri.status().await?.status.unwrap_or_default();
        let wanted: &[&str] = if network {
            &["RuntimeReady", "NetworkReady"]
        } else {
            &["RuntimeReady"]
        };
        for wanted in wanted {
            match status.conditions.iter().find(|c| c.r#type == *wanted) {
                Some(c) if c.status => {}
                Some(c) => bail!("{wanted} is false: {} {}", c.reason, c.message),
                None => bail!("the CRI status has no {wanted} condition"),
            }
        }
        Ok(())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "cluster-tests: stopping containerd in {}: {e:#}",
                self.dir.display()
            );
        }
    }
}

/// Runs `bash SCRIPT ARGS...`, appending its output to `log`; fails with the output's tail.
fn run_logged(script: &Path, args: &[&str], log: &Path) -> Result<()> {
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let text = format!(
        "=== {} {}\n{}{}",
        script.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", log.display()))?;
    if !out.status.success() {
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        bail!(
            "{} {} failed ({}):\n{tail}",
            script.display(),
            args.join(" "),
            out.status
        );
    }
    Ok(())
}

/// Claims a free network slot with a lock file held for the process's lifetime of the returned
/// file. A slot whose previous holder died is cleaned first (its containerd stopped, containers
/// and network removed).
fn claim_slot(dir: &Path) -> Result<(u16, File)> {
    let slots = std::env::temp_dir().join("cluster-tests-containerd");
    fs::create_dir_all(&slots).with_context(|| format!("creating {}", slots.display()))?;
    for n in 0..SLOTS {
        let path = slots.join(format!("slot-{n}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
        let previous = fs::read_to_string(&path).unwrap_or_default();
        let previous = Path::new(previous.trim());
        if !previous.as_os_str().is_empty()
            && previous != dir
            && previous.join("network.env").exists()
        {
            let d = previous.display().to_string();
            let log = dir.join("harness.log");
            run_logged(&containerd_script(), &["stop", &d], &log)
                .with_context(|| format!("cleaning up after the slot's previous user in {d}"))?;
        }
        file.set_len(0)
            .and_then(|()| file.write_all(dir.display().to_string().as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?;
        return Ok((n, file));
    }
    bail!("all {SLOTS} containerd network slots are in use")
}
