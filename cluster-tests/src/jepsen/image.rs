//! Container images built locally (no registry can be reached): `FROM scratch` with one binary,
//! the shared libraries `ldd` says it loads, and an empty `/tmp`.
//!
//! The tag is a hash of the binary's and libraries' paths, sizes and modification times, so a
//! second build with nothing changed is one `docker image inspect` (milliseconds), and a rebuilt
//! binary gets a new image.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::docker::{docker, LABEL};

/// Builds (or finds, if already built) the image `orchestrator-jepsen/NAME:HASH` holding
/// `binary` as `/bin/NAME` and its entrypoint. Returns the image reference.
pub fn ensure(name: &str, binary: &Path) -> Result<String> {
    if !binary.is_file() {
        bail!(
            "{} is not built (run `cargo build --workspace --bins` first)",
            binary.display()
        );
    }
    let libs = shared_libraries(binary)?;
    let mut hasher = DefaultHasher::new();
    for file in std::iter::once(binary).chain(libs.iter().map(PathBuf::as_path)) {
        let meta =
            std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
        file.hash(&mut hasher);
        meta.len().hash(&mut hasher);
        meta.modified().ok().hash(&mut hasher);
    }
    let tag = format!("orchestrator-jepsen/{name}:{:016x}", hasher.finish());
    if docker(&["image", "inspect", "-f", "{{.Id}}", &tag]).is_ok() {
        return Ok(tag);
    }
    eprintln!("==> building image {tag} ({} libraries)", libs.len());
    let context = tempfile::Builder::new()
        .prefix("jepsen-image-")
        .tempdir()
        .context("creating a build context directory")?;
    let rootfs = context.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    std::fs::create_dir_all(rootfs.join("tmp"))?;
    // Hard links where the filesystem allows (same device), copies otherwise.
    let place = |from: &Path, to: &Path| -> Result<()> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Resolve symlinks (the loader's path usually is one): the image holds real files.
        let from =
            std::fs::canonicalize(from).with_context(|| format!("resolving {}", from.display()))?;
        if std::fs::hard_link(&from, to).is_err() {
            std::fs::copy(&from, to)
                .with_context(|| format!("copying {} into the image", from.display()))?;
        }
        Ok(())
    };
    place(binary, &rootfs.join("bin").join(name))?;
    for lib in &libs {
        let inside = rootfs.join(lib.strip_prefix("/").unwrap_or(lib));
        place(lib, &inside)?;
    }
    let dockerfile =
        format!("FROM scratch\nCOPY rootfs/ /\nLABEL {LABEL}=1\nENTRYPOINT [\"/bin/{name}\"]\n");
    std::fs::write(context.path().join("Dockerfile"), dockerfile)?;
    let dir = context
        .path()
        .to_str()
        .context("build context path is not UTF-8")?;
    docker(&["build", "-q", "-t", &tag, dir]).with_context(|| format!("building {tag}"))?;
    Ok(tag)
}

/// The paths `ldd` resolves for `binary` (libraries and the dynamic loader), as the loader asks
/// for them.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary: ldd says "not a dynamic executable" and fails.
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            if line.contains("not found") {
                bail!("{}: shared library {line}", binary.display());
            }
            continue;
        };
        libs.push(PathBuf::from(path));
    }
    Ok(libs)
}
