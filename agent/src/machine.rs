//! What the agent reads about its machine: CPUs, memory, disk, kernel, OS, ids and address;
//! and the pressure signals behind the node conditions. Parsing is pure and tested; reading
//! the files is at the edge.

use std::{net::IpAddr, path::Path};

/// The machine as registered in `Node.status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineInfo {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
}

/// A `/proc/meminfo` value in bytes (`MemTotal:  16316412 kB`).
pub fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let mut f = rest.split_whitespace();
        let n: u64 = f.next()?.parse().ok()?;
        Some(match f.next() {
            Some("kB") => n * 1024,
            _ => n,
        })
    })
}

/// `PRETTY_NAME` from `/etc/os-release`.
pub fn os_pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        l.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim_matches('"').to_string())
    })
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Total and available bytes of the filesystem holding `dir`.
pub fn disk_bytes(dir: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some((
        st.f_blocks.saturating_mul(st.f_frsize),
        st.f_bavail.saturating_mul(st.f_frsize),
    ))
}

/// Reads the machine's description; `root_dir` is where pods' data goes (ephemeral storage).
pub fn read_machine(root_dir: &Path) -> MachineInfo {
    let meminfo = read("/proc/meminfo");
    MachineInfo {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1),
        memory_bytes: meminfo_bytes(&meminfo, "MemTotal").unwrap_or(0),
        ephemeral_storage_bytes: disk_bytes(root_dir).map(|d| d.0).unwrap_or(0),
        kernel_version: read("/proc/sys/kernel/osrelease"),
        os_image: os_pretty_name(&read("/etc/os-release")).unwrap_or_else(|| "Linux".into()),
        machine_id: read("/etc/machine-id"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
    }
}

/// Pressure signals: available memory, disk and process ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pids: bool,
}

/// The kubelet's default hard eviction thresholds: memory.available < 100Mi,
/// nodefs.available < 10%, and (as its PID pressure) fewer than 10% of pid_max free.
pub fn pressure(
    mem_available: Option<u64>,
    disk: Option<(u64, u64)>,
    pids: Option<(u64, u64)>,
) -> Pressure {
    Pressure {
        memory: mem_available.is_some_and(|a| a < 100 * 1024 * 1024),
        disk: disk.is_some_and(|(total, avail)| total > 0 && avail * 10 < total),
        pids: pids.is_some_and(|(used, max)| max > 0 && (max - used.min(max)) * 10 < max),
    }
}

/// Where a node's pressure signals come from.
#[derive(Debug, Clone)]
pub enum PressureSource {
    /// This machine: available memory, the disk of the root dir and the process table, read
    /// at each status update.
    Host(std::path::PathBuf),
    /// A hollow node (many in one process, as kubemark's): no pressure, nothing read.
    Hollow,
}

impl PressureSource {
    /// The signals now.
    pub fn read(&self) -> Pressure {
        match self {
            PressureSource::Host(root_dir) => read_pressure(root_dir),
            PressureSource::Hollow => Pressure {
                memory: false,
                disk: false,
                pids: false,
            },
        }
    }
}

/// Reads the pressure signals now.
pub fn read_pressure(root_dir: &Path) -> Pressure {
    let meminfo = read("/proc/meminfo");
    let pid_max: Option<u64> = read("/proc/sys/kernel/pid_max").parse().ok();
    let procs = std::fs::read_dir("/proc").ok().map(|d| {
        d.flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count() as u64
    });
    pressure(
        meminfo_bytes(&meminfo, "MemAvailable"),
        disk_bytes(root_dir),
        procs.zip(pid_max),
    )
}

/// The address of the interface of the default route (found without sending anything: a UDP
/// socket's connect only picks the route), else 127.0.0.1.
pub fn default_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("192.0.2.1:9")?;
        Ok(s.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo_and_os_release() {
        let m = "MemTotal:       16316412 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(meminfo_bytes(m, "MemTotal"), Some(16316412 * 1024));
        assert_eq!(meminfo_bytes(m, "MemAvailable"), Some(2048 * 1024));
        assert_eq!(meminfo_bytes(m, "Mem"), None);
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_pretty_name(os).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn pressure_thresholds() {
        let none = pressure(Some(1 << 30), Some((100, 50)), Some((100, 32768)));
        assert_eq!(
            none,
            Pressure {
                memory: false,
                disk: false,
                pids: false
            }
        );
        let all = pressure(Some(50 << 20), Some((100, 5)), Some((32000, 32768)));
        assert_eq!(
            all,
            Pressure {
                memory: true,
                disk: true,
                pids: true
            }
        );
        assert!(!pressure(None, None, None).memory);
    }
}
