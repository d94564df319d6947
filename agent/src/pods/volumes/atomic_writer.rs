//! Writes a set of files into a volume directory the way the kubelet's AtomicWriter does, so
//! that a running container sees either the old or the new set, never a mix:
//!
//! ```text
//! <dir>/..2026_12_06_11_50_42.1234567   the files of this version
//! <dir>/..data -> ..2026_12_06_11_50_42.1234567
//! <dir>/key    -> ..data/key            one link per top-level name
//! ```
//!
//! An update writes a new timestamped directory, swaps `..data` to it with one rename, fixes
//! the top-level links and removes the old version. Writing the same files again changes
//! nothing.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    os::unix::fs::{symlink, PermissionsExt},
    path::{Component, Path, PathBuf},
};

use k8s_openapi::jiff::Timestamp;

/// The link to the current version.
const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// One file's content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileData {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path → file.
pub type Payload = BTreeMap<String, FileData>;

/// Why a payload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A path that would leave the directory or clash with the writer's own names.
    #[error("invalid path {0:?}: must be relative, without '..' and not start with '..'")]
    InvalidPath(String),
    /// A file system call failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn validate(path: &str) -> Result<(), WriteError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.starts_with("..")
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(WriteError::InvalidPath(path.to_string()))
    }
}

/// The first component of a payload path (the name linked at the top level).
fn top(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// The files under `dir`, relative to it.
fn read_tree(dir: &Path) -> io::Result<Payload> {
    let mut out = Payload::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(rel);
            } else {
                out.insert(
                    rel.display().to_string(),
                    FileData {
                        data: std::fs::read(dir.join(&rel))?,
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// Writes `payload` into `dir` (made if missing). Returns whether anything changed.
pub fn write(dir: &Path, payload: &Payload) -> Result<bool, WriteError> {
    for p in payload.keys() {
        validate(p)?;
    }
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let data_link = dir.join(DATA);
    let old = std::fs::read_link(&data_link).ok();
    let old_files = match &old {
        Some(o) => read_tree(&dir.join(o)).unwrap_or_default(),
        None => Payload::new(),
    };
    let links_ok = payload
        .keys()
        .all(|p| std::fs::symlink_metadata(dir.join(top(p))).is_ok());
    if old.is_some() && old_files == *payload && links_ok {
        return Ok(false);
    }

    // The new version, complete before anyone can see it.
    let stamp = Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S").to_string();
    let name = format!("..{stamp}.{}", rand::random::<u32>());
    let version = dir.join(&name);
    std::fs::create_dir(&version).map_err(io_err("creating", &version))?;
    let _ = std::fs::set_permissions(&version, std::fs::Permissions::from_mode(0o755));
    for (rel, f) in payload {
        let path = version.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        std::fs::write(&path, &f.data).map_err(io_err("writing", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))
            .map_err(io_err("setting the mode of", &path))?;
    }

    // One rename makes it current.
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    symlink(&name, &tmp).map_err(io_err("linking", &tmp))?;
    std::fs::rename(&tmp, &data_link).map_err(io_err("renaming", &tmp))?;

    // The top-level links: new names linked, names no longer written removed.
    let new_tops: BTreeSet<&str> = payload.keys().map(|p| top(p)).collect();
    for t in &new_tops {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(t), &link).map_err(io_err("linking", &link))?;
        }
    }
    for t in old_files.keys().map(|p| top(p)) {
        if !new_tops.contains(t) {
            let link = dir.join(t);
            if std::fs::read_link(&link).is_ok() {
                std::fs::remove_file(&link).map_err(io_err("removing", &link))?;
            }
        }
    }
    if let Some(o) = old {
        let old_dir = dir.join(o);
        if let Err(e) = std::fs::remove_dir_all(&old_dir) {
            tracing::warn!(dir = %old_dir.display(), error = %e, "removing an old volume version");
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str, mode: u32) -> FileData {
        FileData {
            data: s.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn writes_updates_and_removes_atomically() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vol");
        let mut p = Payload::new();
        p.insert("a".into(), file("one", 0o644));
        p.insert("sub/b".into(), file("two", 0o400));
        assert!(write(&dir, &p).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "two");
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        let first = std::fs::read_link(dir.join(DATA)).unwrap();
        assert!(first.to_str().unwrap().starts_with("..20"), "{first:?}");
        let mode = std::fs::metadata(dir.join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);

        // The same files: nothing happens.
        assert!(!write(&dir, &p).unwrap());
        assert_eq!(std::fs::read_link(dir.join(DATA)).unwrap(), first);

        // An update: a new version, the old one gone, a removed key's link gone.
        p.insert("a".into(), file("uno", 0o644));
        p.remove("sub/b");
        p.insert("c".into(), file("three", 0o644));
        assert!(write(&dir, &p).unwrap());
        let second = std::fs::read_link(dir.join(DATA)).unwrap();
        assert_ne!(first, second);
        assert!(!dir.join(&first).exists());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "uno");
        assert_eq!(std::fs::read_to_string(dir.join("c")).unwrap(), "three");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());

        // A mode change alone is an update too.
        p.insert("c".into(), file("three", 0o600));
        assert!(write(&dir, &p).unwrap());
    }

    #[test]
    fn refuses_paths_leaving_the_directory() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/x", "..data", "a/../../b", ""] {
            let mut p = Payload::new();
            p.insert(bad.into(), file("x", 0o644));
            assert!(
                matches!(write(d.path(), &p), Err(WriteError::InvalidPath(_))),
                "{bad}"
            );
        }
    }
}
