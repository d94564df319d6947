//! The Docker engine, driven through its command-line client: networks, containers, and the
//! faults the engine can inject (kill, pause), plus iptables inside a container's network
//! namespace (entered from the host with `nsenter`, so the images need no iptables of their own).

use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

/// Label put on every network and container the suite creates, so a leftover of a crashed run
/// can be found and removed (`docker ps -a --filter label=orchestrator-jepsen`).
pub const LABEL: &str = "orchestrator-jepsen";

/// Whether a Docker engine answers here (the smoke tests are skipped when it does not).
pub fn available() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `docker ARGS` and returns its trimmed standard output; fails with its standard error.
pub fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running docker {}", args.join(" ")))?;
    ok_stdout(out, &format!("docker {}", args.join(" ")))
}

fn ok_stdout(out: Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A private bridge network with a /24 subnet, removed on drop.
pub struct Network {
    pub name: String,
    /// The first three octets, e.g. `10.213.7`.
    pub prefix: String,
}

impl Network {
    /// Creates `name` on the first free subnet `10.213.N.0/24`, N from `hint` on.
    pub fn create(name: &str, hint: u8) -> Result<Network> {
        let _ = docker(&["network", "rm", name]);
        let mut last = None;
        for i in 0..64u16 {
            let n = (u16::from(hint) + i) % 250 + 1;
            let prefix = format!("10.213.{n}");
            let subnet = format!("{prefix}.0/24");
            let label = format!("{LABEL}=1");
            match docker(&[
                "network", "create", "--driver", "bridge", "--subnet", &subnet, "--label", &label,
                name,
            ]) {
                Ok(_) => {
                    return Ok(Network {
                        name: name.to_owned(),
                        prefix,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no subnet tried")))
            .context("creating the test network (every 10.213.N.0/24 tried is taken)")
    }

    /// The address of host number `host` (2..=254) on this network.
    pub fn ip(&self, host: u8) -> String {
        format!("{}.{host}", self.prefix)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.name]);
    }
}

/// One container the suite started (removed, with its writable layer, on drop).
pub struct Container {
    pub name: String,
    pub ip: String,
}

/// What [`Container::run`] starts.
pub struct RunSpec<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub network: &'a Network,
    pub ip: &'a str,
    /// `(host path, container path)` mounted read-only.
    pub mounts: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl Container {
    /// `docker run -d` of the spec (a leftover container of the same name is removed first).
    pub fn run(spec: RunSpec<'_>) -> Result<Container> {
        let _ = docker(&["rm", "-f", spec.name]);
        let label = format!("{LABEL}=1");
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            spec.name,
            "--hostname",
            spec.name,
            "--label",
            &label,
            "--network",
            &spec.network.name,
            "--ip",
            spec.ip,
            "--log-driver",
            "json-file",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for (host, inside) in &spec.mounts {
            args.push("-v".into());
            args.push(format!("{host}:{inside}:ro"));
        }
        args.push(spec.image.to_owned());
        args.extend(spec.args.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&refs).with_context(|| format!("starting container {}", spec.name))?;
        Ok(Container {
            name: spec.name.to_owned(),
            ip: spec.ip.to_owned(),
        })
    }

    /// SIGKILL of every process in the container.
    pub fn kill(&self) -> Result<()> {
        docker(&["kill", "-s", "KILL", &self.name]).map(drop)
    }

    /// Starts the (stopped) container again, with its data.
    pub fn start(&self) -> Result<()> {
        docker(&["start", &self.name]).map(drop)
    }

    /// SIGSTOP of the whole container (the cgroup freezer).
    pub fn pause(&self) -> Result<()> {
        docker(&["pause", &self.name]).map(drop)
    }

    pub fn unpause(&self) -> Result<()> {
        docker(&["unpause", &self.name]).map(drop)
    }

    /// Whether the container's main process runs (paused counts as running).
    pub fn is_running(&self) -> bool {
        docker(&["inspect", "-f", "{{.State.Running}}", &self.name]).is_ok_and(|s| s == "true")
    }

    /// The last `lines` lines of the container's output.
    pub fn logs(&self, lines: usize) -> String {
        let out = Command::new("docker")
            .args(["logs", "--tail", &lines.to_string(), &self.name])
            .output();
        match out {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("(docker logs {}: {e})", self.name),
        }
    }

    /// Runs `iptables ARGS` in the container's network namespace.
    pub fn iptables(&self, args: &[&str]) -> Result<()> {
        let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &self.name])?;
        if pid == "0" {
            bail!("container {} is not running", self.name);
        }
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-n", "iptables", "-w"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running nsenter iptables")?;
        ok_stdout(
            out,
            &format!("iptables {} in {}", args.join(" "), self.name),
        )
        .map(drop)
    }

    /// Drops every packet coming from `peer` (one way: replies to it still leave).
    pub fn drop_from(&self, peer: &str) -> Result<()> {
        self.iptables(&["-A", "INPUT", "-s", peer, "-j", "DROP"])
    }

    /// Removes every rule [`Container::drop_from`] added.
    pub fn heal(&self) -> Result<()> {
        self.iptables(&["-F", "INPUT"])
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}
