//! Smoke checks of the private containerd that the agent's tests run on, without the agent: the
//! local images are imported and run, a pod sandbox gets an IP on the test network and serves a
//! container's port to the host, and dropping the harness leaves no container, mount, bridge or
//! iptables rule behind. Needs root, containerd, runc and the CNI plugins (scripts/setup.sh).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cluster_tests::containerd::cri::{PodSandboxConfig, PodSandboxMetadata, PortMapping};
use cluster_tests::{ports, Containerd, BUSYBOX_IMAGE, PAUSE_IMAGE};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ensure_ok(what: &str, out: &Output) -> Result<()> {
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn images_run_and_two_containerds_get_their_own_networks() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (a, b) = tokio::join!(Containerd::start(&dir_a), Containerd::start(&dir_b));
    let (a, b) = (a?, b?);
    assert_ne!(a.bridge(), b.bridge());
    assert_ne!(a.pod_cidr(), b.pod_cidr());
    assert_ne!(a.socket(), b.socket());

    let images = a.ctr(&["images", "ls", "-q"])?;
    ensure_ok("ctr images ls", &images)?;
    for image in [PAUSE_IMAGE, BUSYBOX_IMAGE] {
        assert!(
            stdout(&images).lines().any(|l| l == image),
            "{image} missing: {}",
            stdout(&images)
        );
    }

    let out = a.ctr(&["run", "--rm", BUSYBOX_IMAGE, "t1", "echo", "hello"])?;
    ensure_ok("ctr run echo", &out)?;
    assert_eq!(stdout(&out), "hello");

    // The applets the example manifests and probes use are all there.
    let script = "for a in sh sleep wget nc httpd cat echo ls mkdir hostname date touch rm; do \
                  command -v $a >/dev/null || echo missing $a; done; echo done";
    let out = b.ctr(&["run", "--rm", BUSYBOX_IMAGE, "t2", "sh", "-c", script])?;
    ensure_ok("ctr run sh", &out)?;
    assert_eq!(stdout(&out), "done");

    // The pause image's process stays up until SIGTERM and then exits 0.
    let out = a.ctr(&["run", "-d", PAUSE_IMAGE, "p1"])?;
    ensure_ok("ctr run pause", &out)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure_ok(
        "ctr tasks kill",
        &a.ctr(&["tasks", "kill", "-s", "SIGTERM", "p1"])?,
    )?;
    let exit = wait_task_stopped(&a, "p1").await?;
    assert_eq!(exit, "STOPPED");
    Ok(())
}

async fn wait_task_stopped(c: &Containerd, id: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = c.ctr(&["tasks", "ls"])?;
        let status = stdout(&out)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2).map(String::from))
            .unwrap_or_default();
        if status == "STOPPED" || Instant::now() > deadline {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sandbox(name: &str, logs: &Path, host_port: u16) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.join(name).display().to_string(),
        port_mappings: vec![PortMapping {
            protocol: 0,
            container_port: 8080,
            host_port: i32::from(host_port),
            host_ip: String::new(),
        }],
        labels: [("test".to_string(), "containerd".to_string())].into(),
        ..Default::default()
    }
}

/// The network namespace files the CRI plugin mounted under the state dir.
fn netns_files(dir: &Path) -> Vec<PathBuf> {
    let root = dir.join("state/io.containerd.grpc.v1.cri/netns");
    std::fs::read_dir(root)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn http_get(ip: Ipv4Addr, port: u16) -> Result<String> {
    let mut conn = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    conn.read_to_string(&mut body)?;
    Ok(body)
}

/// Pids of the containerd processes (daemon, shims) whose command line names `socket`.
fn processes_mentioning(socket: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().to_string();
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("containerd") && cmdline.contains(socket)).then_some(pid)
        })
        .collect()
}

fn iptables_rules_of(network: &str) -> Result<usize> {
    let mut n = 0;
    for table in ["nat", "filter"] {
        let out = Command::new("iptables-save").args(["-t", table]).output()?;
        let pattern = format!("name: \\\"{network}\\\"");
        n += String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&pattern))
            .count();
    }
    Ok(n)
}

#[tokio::test]
async fn pod_sandbox_gets_an_ip_and_everything_is_cleaned_up() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let c = Containerd::start(&tmp.path().join("containerd")).await?;
    let logs = tmp.path().join("logs");
    let mut cri = c.cri().await?;

    // A sandbox removed through CRI takes its network with it.
    let gone = cri
        .run_pod_sandbox(sandbox("gone", &logs, ports::allocate()?))
        .await?;
    let (rules_with_two, kept) = {
        let kept = cri
            .run_pod_sandbox(sandbox("kept", &logs, ports::allocate()?))
            .await?;
        let status = cri.pod_sandbox_status(&kept).await?;
        assert_eq!(status.state, 0, "sandbox not ready: {status:?}");
        let ip: Ipv4Addr = status
            .network
            .as_ref()
            .context("no network status")?
            .ip
            .parse()?;
        let prefix = c.pod_cidr().trim_end_matches("0/24");
        assert!(
            ip.to_string().starts_with(prefix),
            "{ip} is not in {}",
            c.pod_cidr()
        );

        // A container joined to the sandbox's network namespace is reachable at the pod IP.
        let netns = netns_files(c.dir());
        ensure!(
            netns.len() == 2,
            "expected two network namespaces, found {netns:?}"
        );
        let mut ours = None;
        for ns in &netns {
            let out = Command::new("nsenter")
                .arg(format!("--net={}", ns.display()))
                .args(["ip", "-4", "-o", "addr", "show", "eth0"])
                .output()?;
            if stdout(&out).contains(&format!("{ip}/")) {
                ours = Some(ns.clone());
            }
        }
        let ns = ours.context("no network namespace holds the pod IP")?;
        let web = "mkdir -p /www && echo hello from the pod > /www/index.html && \
                   exec httpd -f -p 8080 -h /www";
        let with_ns = format!("network:{}", ns.display());
        let out = c.ctr(&[
            "run",
            "-d",
            "--with-ns",
            &with_ns,
            BUSYBOX_IMAGE,
            "web",
            "sh",
            "-c",
            web,
        ])?;
        ensure_ok("ctr run httpd", &out)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let body = loop {
            match http_get(ip, 8080) {
                Ok(body) => break body,
                Err(e) if Instant::now() > deadline => bail!("GET http://{ip}:8080/: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        assert!(body.contains("hello from the pod"), "{body}");
        (iptables_rules_of(c.network())?, kept)
    };
    assert!(
        rules_with_two > 0,
        "CNI made no iptables rules for {}",
        c.network()
    );
    cri.stop_pod_sandbox(&gone).await?;
    cri.remove_pod_sandbox(&gone).await?;
    let rules_with_one = iptables_rules_of(c.network())?;
    assert!(
        rules_with_one < rules_with_two,
        "{rules_with_one} >= {rules_with_two}"
    );
    assert_eq!(netns_files(c.dir()).len(), 1);

    // Dropping the harness with a sandbox and a container still running cleans up everything.
    let (dir, network, bridge, socket) = (
        c.dir().to_path_buf(),
        c.network().to_string(),
        c.bridge().to_string(),
        c.socket(),
    );
    drop(cri);
    drop(c);
    assert_eq!(
        iptables_rules_of(&network)?,
        0,
        "iptables rules of {network} left behind"
    );
    let link = Command::new("ip")
        .args(["link", "show", &bridge])
        .output()?;
    assert!(!link.status.success(), "bridge {bridge} left behind");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    let prefix = format!("{}/", dir.display());
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&prefix)).collect();
    assert!(left.is_empty(), "mounts left behind: {left:#?}");
    assert!(!socket.exists(), "socket left behind");
    let cached: Vec<String> = std::fs::read_dir("/var/lib/cni/results")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    let cached: Vec<&String> = cached.iter().filter(|f| f.contains(&kept)).collect();
    assert!(
        cached.is_empty(),
        "CNI results cached for {kept} left behind: {cached:?}"
    );
    let left = processes_mentioning(&socket.display().to_string());
    assert!(
        left.is_empty(),
        "processes of the stopped containerd left behind: {left:?}"
    );
    Ok(())
}
