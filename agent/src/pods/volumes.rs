//! A pod's volumes on this node and their mounts into containers: `emptyDir` (a directory in
//! the pod's directory, or a tmpfs for `medium: Memory` with its `sizeLimit`) and `hostPath`
//! (with its type checks and the `...OrCreate` creations). `volumeMounts` honour `readOnly`
//! and `subPath`. Other volume types are refused with a FailedMount event: the pod then waits
//! in ContainerCreating, saying which type this agent does not support.

use std::{
    collections::HashMap,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Component, Path, PathBuf},
};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use crate::runtime::api;

/// Why a volume could not be set up (the FailedMount message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VolumeError(pub String);

/// The directory of a pod's data on this node.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

fn kind(v: &Volume) -> &'static str {
    if v.config_map.is_some() {
        "configMap"
    } else if v.secret.is_some() {
        "secret"
    } else if v.downward_api.is_some() {
        "downwardAPI"
    } else if v.projected.is_some() {
        "projected"
    } else if v.persistent_volume_claim.is_some() {
        "persistentVolumeClaim"
    } else if v.nfs.is_some() {
        "nfs"
    } else {
        "this"
    }
}

fn host_path_check(path: &Path, kind: &str) -> Result<(), VolumeError> {
    let err = |what: &str| {
        VolumeError(format!(
            "hostPath type check failed: {} is not a {what}",
            path.display()
        ))
    };
    let meta = std::fs::metadata(path);
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !path.exists() {
                std::fs::create_dir_all(path).map_err(|e| {
                    VolumeError(format!(
                        "hostPath {}: creating the directory: {e}",
                        path.display()
                    ))
                })?;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
            }
            meta.ok().map_or(Ok(()), |m| {
                if m.is_dir() {
                    Ok(())
                } else {
                    Err(err("directory"))
                }
            })
        }
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(err("directory")),
        },
        "FileOrCreate" => {
            if !path.exists() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        VolumeError(format!(
                            "hostPath {}: creating the file: {e}",
                            path.display()
                        ))
                    })?;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
                return Ok(());
            }
            match meta {
                Ok(m) if m.is_file() => Ok(()),
                _ => Err(err("file")),
            }
        }
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => Err(err("file")),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => Err(err("socket")),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => Err(err("character device")),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => Err(err("block device")),
        },
        other => Err(VolumeError(format!("hostPath type {other:?} is not known"))),
    }
}

/// Sets up the pod's volumes; returns each volume's host path.
pub fn prepare(pod: &Pod, root: &Path) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = if let Some(e) = &v.empty_dir {
            let dir = pod_dir(root, &uid).join("volumes/empty-dir").join(&v.name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| VolumeError(format!("emptyDir {}: {e}", v.name)))?;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
            if e.medium.as_deref() == Some("Memory") {
                mount_tmpfs(&dir, e.size_limit.as_ref().map(|q| q.0.as_str()))?;
            }
            dir
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            host_path_check(&p, h.type_.as_deref().unwrap_or(""))?;
            p
        } else {
            return Err(VolumeError(format!(
                "volume {:?}: {} volume type is not supported by this agent",
                v.name,
                kind(v)
            )));
        };
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

fn mount_tmpfs(dir: &Path, size: Option<&str>) -> Result<(), VolumeError> {
    let already = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&dir.display().to_string()));
    if already {
        return Ok(());
    }
    let data = match size.map(::api::quantity::parse) {
        Some(Ok(q)) => format!("size={}", q.value() as u64),
        Some(Err(e)) => return Err(VolumeError(format!("emptyDir sizeLimit: {e}"))),
        None => String::new(),
    };
    let data = std::ffi::CString::new(data)
        .map_err(|_| VolumeError("emptyDir sizeLimit: invalid".into()))?;
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| VolumeError(format!("mounting a tmpfs on {}: {e}", dir.display())))
}

/// Unmounts the pod's memory volumes and removes its directory.
pub fn cleanup(root: &Path, uid: &str) {
    let dir = pod_dir(root, uid);
    let prefix = dir.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for point in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        if point.starts_with(&prefix) {
            let _ = rustix::mount::unmount(point, rustix::mount::UnmountFlags::DETACH);
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "removing the pod directory");
        }
    }
}

/// A container's mounts of the pod's volumes.
pub fn mounts(
    c: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> Result<Vec<api::Mount>, VolumeError> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(base) = volumes.get(&m.name) else {
            return Err(VolumeError(format!("volume {:?} is not set up", m.name)));
        };
        let mut host = base.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let p = Path::new(sub);
            if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(VolumeError(format!(
                    "subPath {sub:?} must be a relative path without '..'"
                )));
            }
            host = base.join(p);
            if !host.exists() {
                std::fs::create_dir_all(&host)
                    .map_err(|e| VolumeError(format!("subPath {sub:?}: {e}")))?;
            }
        }
        out.push(api::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: m.read_only == Some(true),
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, PodSpec, VolumeMount,
    };
    use kube::api::ObjectMeta;

    fn pod(volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(volumes),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn empty_dir_host_path_and_sub_path() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("made");
        let p = pod(vec![
            Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
            Volume {
                name: "h".into(),
                host_path: Some(HostPathVolumeSource {
                    path: host.display().to_string(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                ..Default::default()
            },
        ]);
        let v = prepare(&p, root.path()).unwrap();
        assert!(v["scratch"].is_dir());
        assert!(host.is_dir());
        let c = Container {
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "scratch".into(),
                    mount_path: "/data".into(),
                    sub_path: Some("sub".into()),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount {
                    name: "h".into(),
                    mount_path: "/host".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let m = mounts(&c, &v).unwrap();
        assert!(m[0].host_path.ends_with("empty-dir/scratch/sub") && m[0].readonly);
        assert!(v["scratch"].join("sub").is_dir());
        assert_eq!(m[1].container_path, "/host");
        cleanup(root.path(), "u1");
        assert!(!pod_dir(root.path(), "u1").exists());
    }

    #[test]
    fn refusals() {
        let root = tempfile::tempdir().unwrap();
        let missing = pod(vec![Volume {
            name: "h".into(),
            host_path: Some(HostPathVolumeSource {
                path: root.path().join("nope").display().to_string(),
                type_: Some("Directory".into()),
            }),
            ..Default::default()
        }]);
        assert!(prepare(&missing, root.path())
            .unwrap_err()
            .0
            .contains("is not a directory"));
        let cm = pod(vec![Volume {
            name: "cfg".into(),
            config_map: Some(ConfigMapVolumeSource::default()),
            ..Default::default()
        }]);
        assert_eq!(
            prepare(&cm, root.path()).unwrap_err().0,
            "volume \"cfg\": configMap volume type is not supported by this agent"
        );
    }
}
