//! Container logs: the CRI log files the runtime writes for each container instance
//! (`<pod log directory>/<container>/<attempt>.log`, one `<time> <stream> <F|P> <text>` line
//! per write), read back for `kubectl logs` ([`read`]: tail, since, limit, timestamps, follow
//! across rotations), and rotated by the agent at a size limit ([`rotate`]).

pub mod format;
pub mod read;
pub mod rotate;

use std::path::{Path, PathBuf};

/// The directory of a pod's container logs, under the agent's log root.
pub fn pod_dir(log_root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    log_root.join(format!("{namespace}_{name}_{uid}"))
}

/// The log file of one container instance.
pub fn instance_log(pod_dir: &Path, container: &str, attempt: u32) -> PathBuf {
    pod_dir.join(container).join(format!("{attempt}.log"))
}

/// The rotated files of `log` (`<log>.<stamp>`), oldest first.
pub fn rotated_files(log: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix) && n.len() > prefix.len())
        })
        .map(|e| e.path())
        .collect();
    // The stamps are fixed-width, so names sort by age.
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_sort_oldest_first_and_skip_others() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        for n in [
            "0.log",
            "0.log.00000000000000000002",
            "0.log.00000000000000000001",
            "1.log",
        ] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let names: Vec<String> = rotated_files(&log)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["0.log.00000000000000000001", "0.log.00000000000000000002"]
        );
    }
}
