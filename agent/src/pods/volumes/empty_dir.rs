//! `emptyDir`: a directory in the pod's directory, or a tmpfs for `medium: Memory` (its size
//! the `sizeLimit`). It lives as long as the pod on this node.

use std::{os::unix::fs::PermissionsExt, path::Path};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Volume;

use super::{Mounted, SetUp, VolumeError, VolumeType};

/// The type's directory in the pod's volumes.
pub const DIR: &str = "empty-dir";

/// The `emptyDir` volume type.
pub struct EmptyDir;

#[async_trait]
impl VolumeType for EmptyDir {
    fn handles(&self, v: &Volume) -> bool {
        v.empty_dir.is_some()
    }

    async fn set_up(&self, s: &SetUp<'_>, v: &Volume) -> Result<Mounted, VolumeError> {
        let dir = s.dir(DIR, &v.name);
        make_dir(&dir, 0o777)?;
        let source = v.empty_dir.as_ref();
        if source.and_then(|e| e.medium.as_deref()) == Some("Memory") {
            let size = source.and_then(|e| e.size_limit.as_ref());
            mount_tmpfs(&dir, size.map(|q| q.0.as_str()))?;
        }
        Ok(Mounted {
            path: dir,
            read_only: false,
        })
    }
}

/// Creates `dir` (and its parents) with permission bits `mode`.
pub fn make_dir(dir: &Path, mode: u32) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(|source| VolumeError::Io {
        what: "mkdir",
        path: dir.to_path_buf(),
        source,
    })?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
    Ok(())
}

/// Mounts a tmpfs on `dir` (of at most `size`, a quantity) unless one is there already.
pub fn mount_tmpfs(dir: &Path, size: Option<&str>) -> Result<(), VolumeError> {
    let already = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&dir.display().to_string()));
    if already {
        return Ok(());
    }
    let data = match size.map(::api::quantity::parse) {
        Some(Ok(q)) => format!("size={}", q.value() as u64),
        Some(Err(e)) => return Err(VolumeError::Invalid(format!("emptyDir sizeLimit: {e}"))),
        None => String::new(),
    };
    let data = std::ffi::CString::new(data)
        .map_err(|_| VolumeError::Invalid("emptyDir sizeLimit: invalid".into()))?;
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| VolumeError::Io {
        what: "mount tmpfs on",
        path: dir.to_path_buf(),
        source: e.into(),
    })
}
