//! The pods' cgroup parents on the host (cgroupfs layout, cgroup v1 hierarchies or the v2
//! unified one): created before a sandbox runs, removed after it is gone.

use std::{io, path::PathBuf};

/// The hierarchies mounted on this machine: each cgroup (v1) or cgroup2 mount point.
fn hierarchies() -> Vec<PathBuf> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            let opts = f.next().unwrap_or("");
            // v1 "name=systemd" hierarchies carry no controller: leave them alone.
            let keep = kind == "cgroup2" || (kind == "cgroup" && !opts.contains("name="));
            keep.then(|| PathBuf::from(point))
        })
        .collect()
}

fn relative(parent: &str) -> &str {
    parent.trim_start_matches('/')
}

/// Creates `parent` (e.g. `/kubepods/pod<uid>`) in every hierarchy.
pub fn create(parent: &str) -> io::Result<()> {
    for h in hierarchies() {
        std::fs::create_dir_all(h.join(relative(parent)))?;
    }
    Ok(())
}

/// Removes `parent` from every hierarchy, deepest directories first; what is still busy stays.
pub fn remove(parent: &str) {
    for h in hierarchies() {
        let dir = h.join(relative(parent));
        remove_tree(&dir);
    }
}

fn remove_tree(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::debug!(dir = %dir.display(), error = %e, "cgroup not removed");
        }
    }
}
