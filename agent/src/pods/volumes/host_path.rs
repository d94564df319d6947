//! `hostPath`: a path of the node itself, checked against the volume's `type` (Directory,
//! File, Socket, CharDevice, BlockDevice) or created by it (DirectoryOrCreate as 0755,
//! FileOrCreate as an empty 0644 file), with the kubelet's messages.

use std::{
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Volume;

use super::{Mounted, SetUp, VolumeError, VolumeType};

/// The `hostPath` volume type.
pub struct HostPath;

#[async_trait]
impl VolumeType for HostPath {
    fn handles(&self, v: &Volume) -> bool {
        v.host_path.is_some()
    }

    async fn set_up(&self, _: &SetUp<'_>, v: &Volume) -> Result<Mounted, VolumeError> {
        let source = v.host_path.clone().unwrap_or_default();
        let path = PathBuf::from(&source.path);
        check(&path, source.type_.as_deref().unwrap_or(""))?;
        Ok(Mounted {
            path,
            read_only: false,
        })
    }
}

/// Checks (or creates) `path` as hostPath type `kind` asks.
pub fn check(path: &Path, kind: &str) -> Result<(), VolumeError> {
    let not_a = |what| VolumeError::HostPathType {
        path: path.to_path_buf(),
        what,
    };
    let io = |what, source| VolumeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path);
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(not_a("directory")),
            Err(_) => {
                std::fs::create_dir_all(path).map_err(|e| io("mkdir", e))?;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
                Ok(())
            }
        },
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(not_a("directory")),
        },
        "FileOrCreate" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(not_a("file")),
            Err(_) => {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| io("open", e))?;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
                Ok(())
            }
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => Err(not_a("file")),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => Err(not_a("socket")),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => Err(not_a("character device")),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => Err(not_a("block device")),
        },
        other => Err(VolumeError::Invalid(format!(
            "hostPath type {other:?} is not known"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_checked_and_created() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("file");
        std::fs::write(&file, "x").unwrap();
        check(&file, "File").unwrap();
        assert!(matches!(
            check(&file, "Directory"),
            Err(VolumeError::HostPathType {
                what: "directory",
                ..
            })
        ));
        let made = d.path().join("a/b");
        check(&made, "DirectoryOrCreate").unwrap();
        assert!(made.is_dir());
        let f = d.path().join("new-file");
        check(&f, "FileOrCreate").unwrap();
        assert!(f.is_file());
        // Under a regular file nothing can be created: the error says why.
        let under = file.join("sub");
        let e = check(&under, "DirectoryOrCreate").unwrap_err();
        assert!(matches!(e, VolumeError::Io { what: "mkdir", .. }), "{e}");
        assert!(e
            .to_string()
            .starts_with(&format!("mkdir {}: ", under.display())));
        assert!(matches!(
            check(&file, "Weird"),
            Err(VolumeError::Invalid(_))
        ));
    }
}
