//! A pod's volumes on this node and their mounts into containers. Each volume type is a
//! [`VolumeType`] in its own file: `emptyDir` (a directory, or a tmpfs for `medium: Memory`),
//! `hostPath` (type checks and the `...OrCreate` creations), `configMap` and `secret` (keys as
//! files), `downwardAPI` (the pod's own fields) and `projected` (several of those in one
//! directory). The API-data types are written with the kubelet's [`atomic_writer`] and mounted
//! read-only; [`Refresh`] re-reads them once per sync period so running containers see
//! updates in place. `volumeMounts` honour `readOnly` and `subPath`.

pub mod atomic_writer;
pub mod config_map;
pub mod downward_api;
pub mod empty_dir;
pub mod host_path;
pub mod projected;
pub mod secret;

use std::{
    collections::{BTreeMap, HashMap},
    path::{Component, Path, PathBuf},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use super::{env::EnvError, objects::Objects};
use crate::runtime::api;
use atomic_writer::{FileData, Payload, WriteError};

/// Why a volume could not be set up (the text after `MountVolume.SetUp failed for volume "X" :`).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A ConfigMap the volume needs does not exist, and the volume is not optional.
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    /// A Secret the volume needs does not exist, and the volume is not optional.
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    /// An item names a key the ConfigMap lacks (and the volume is not optional).
    #[error("configmap references non-existent config key: {0}")]
    MissingConfigMapKey(String),
    /// An item names a key the Secret lacks (and the volume is not optional).
    #[error("references non-existent secret key: {0}")]
    MissingSecretKey(String),
    /// Reading a ConfigMap or Secret from the apiserver failed (other than not found).
    #[error("getting {kind} \"{name}\": {source}")]
    Fetch {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    /// A downwardAPI item could not be resolved.
    #[error("downwardAPI item {path:?}: {source}")]
    DownwardApi { path: String, source: EnvError },
    /// Writing the volume's files failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A hostPath exists but is not of the type the volume asks for.
    #[error("hostPath type check failed: {} is not a {what}", path.display())]
    HostPathType { path: PathBuf, what: &'static str },
    /// A file system call failed (`what` names it as Go's errors do: `mkdir`, `mount`...).
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A field of the volume or mount has a value this agent cannot use.
    #[error("{0}")]
    Invalid(String),
    /// A volume type (or projection) this agent does not implement (`note`: why, if known).
    #[error("{what} is not supported by this agent{note}")]
    Unsupported { what: String, note: &'static str },
}

/// A volume that could not be set up: the FailedMount event's message.
#[derive(Debug, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {error}")]
pub struct Failed {
    pub volume: String,
    pub error: VolumeError,
}

/// A set-up volume: where it is on the host, and whether containers get it read-only whatever
/// their mount says (the kubelet mounts API data read-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    pub path: PathBuf,
    pub read_only: bool,
}

/// The pod's volumes by name.
pub type Volumes = HashMap<String, Mounted>;

/// What setting up a pod's volumes needs.
pub struct SetUp<'a> {
    pub pod: &'a Pod,
    /// The agent's root directory (pod directories live under it).
    pub root: &'a Path,
    /// Where ConfigMaps and Secrets are read.
    pub objects: &'a dyn Objects,
    /// The node's cpus and memory bytes (a resourceFieldRef's limit when none is set).
    pub node: (u64, u64),
}

impl SetUp<'_> {
    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The directory of volume `name` of type directory `kind` in the pod's directory.
    pub fn dir(&self, kind: &str, name: &str) -> PathBuf {
        let uid = self.pod.metadata.uid.as_deref().unwrap_or_default();
        pod_dir(self.root, uid)
            .join("volumes")
            .join(kind)
            .join(name)
    }
}

/// One volume type.
#[async_trait]
pub trait VolumeType: Send + Sync {
    /// Whether `v` is of this type (its source field is set).
    fn handles(&self, v: &Volume) -> bool;

    /// Makes `v` ready on this node and says where it is. Called again on each refresh: it
    /// must bring the content up to date and leave an unchanged volume alone.
    async fn set_up(&self, s: &SetUp<'_>, v: &Volume) -> Result<Mounted, VolumeError>;
}

/// The volume types this agent implements.
const TYPES: &[&dyn VolumeType] = &[
    &empty_dir::EmptyDir,
    &host_path::HostPath,
    &config_map::ConfigMapVolume,
    &secret::SecretVolume,
    &downward_api::DownwardApi,
    &projected::Projected,
];

/// The name of a volume's source field (`nfs`, `persistentVolumeClaim`...), for messages.
fn source_name(v: &Volume) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| {
            j.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "a volume without a source".into())
}

/// The directory of a pod's data on this node.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// Sets up every volume of the pod (stopping at the first that fails).
pub async fn prepare(s: &SetUp<'_>) -> Result<Volumes, Failed> {
    let mut out = Volumes::new();
    for v in s.pod.spec.iter().flat_map(|sp| sp.volumes.iter().flatten()) {
        let fail = |error| Failed {
            volume: v.name.clone(),
            error,
        };
        let Some(t) = TYPES.iter().find(|t| t.handles(v)) else {
            let what = format!("volume type {}", source_name(v));
            return Err(fail(VolumeError::Unsupported { what, note: "" }));
        };
        let m = t.set_up(s, v).await.map_err(fail)?;
        out.insert(v.name.clone(), m);
    }
    Ok(out)
}

/// A permission from the API (`mode`, `defaultMode`: decimal in JSON), else `default`.
pub fn mode(m: Option<i32>, default: u32) -> u32 {
    m.map_or(default, |m| m as u32 & 0o777)
}

/// The files of a ConfigMap's or Secret's keys: every key, or the listed `items` (a missing
/// key is `missing(key)` unless `optional`).
pub fn key_payload(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
    missing: fn(String) -> VolumeError,
) -> Result<Payload, VolumeError> {
    let file = |data: &Vec<u8>, mode| FileData {
        data: data.clone(),
        mode,
    };
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(k.clone(), file(v, default_mode));
            }
        }
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(it.path.clone(), file(v, mode(it.mode, default_mode)));
                    }
                    None if optional => {}
                    None => return Err(missing(it.key.clone())),
                }
            }
        }
    }
    Ok(out)
}

/// When the pod's volumes are set up again. The API-data volumes follow their objects: the
/// worker re-reads them once per sync period (as the kubelet does), and at once when the
/// pod's labels or annotations change (the downward API shows them). After a failure nothing
/// is tried again before a back-off doubling from 1 s to 30 s has passed, however often the
/// pod is synced meanwhile.
#[derive(Default)]
pub struct Refresh {
    done_at: Option<Instant>,
    meta: Option<(
        Option<BTreeMap<String, String>>,
        Option<BTreeMap<String, String>>,
    )>,
    volumes: Option<Volumes>,
    failures: u32,
    failed_at: Option<Instant>,
}

/// A refresh's result: the volumes to mount (the last good ones if this refresh failed after
/// an earlier success, so running containers go on), and the failure to report.
pub struct Refreshed {
    pub volumes: Option<Volumes>,
    pub failed: Option<Failed>,
    /// After a failure: when to try again.
    pub retry: Option<Duration>,
}

impl Refresh {
    fn backoff(&self) -> Duration {
        Duration::from_secs(1 << self.failures.saturating_sub(1).min(5))
            .min(Duration::from_secs(30))
    }

    /// What is left of the back-off after the last failure (None: none is running).
    fn backing_off(&self) -> Option<Duration> {
        let at = self.failed_at?;
        Some(self.backoff().saturating_sub(at.elapsed())).filter(|d| !d.is_zero())
    }

    /// Sets the volumes up if they are due (`period`: the sync period).
    pub async fn refresh(&mut self, s: &SetUp<'_>, period: Duration) -> Refreshed {
        let meta = (
            s.pod.metadata.labels.clone(),
            s.pod.metadata.annotations.clone(),
        );
        let fresh = self.volumes.is_some()
            && self.done_at.is_some_and(|t| t.elapsed() < period)
            && self.meta.as_ref() == Some(&meta);
        let mut failed = None;
        let mut retry = self.backing_off();
        if !fresh && retry.is_none() {
            match prepare(s).await {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.failures = 0;
                    self.failed_at = None;
                    self.done_at = Some(Instant::now());
                    self.meta = Some(meta);
                }
                Err(e) => {
                    self.failures = self.failures.saturating_add(1);
                    self.failed_at = Some(Instant::now());
                    retry = Some(self.backoff());
                    failed = Some(e);
                }
            }
        }
        Refreshed {
            volumes: self.volumes.clone(),
            failed,
            retry,
        }
    }
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
pub fn mounts(c: &Container, volumes: &Volumes) -> Result<Vec<api::Mount>, VolumeError> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(vol) = volumes.get(&m.name) else {
            return Err(VolumeError::Invalid(format!(
                "volume {:?} is not set up",
                m.name
            )));
        };
        let mut host = vol.path.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let p = Path::new(sub);
            if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(VolumeError::Invalid(format!(
                    "subPath {sub:?} must be a relative path without '..'"
                )));
            }
            host = vol.path.join(p);
            // API data is the writer's alone: a subPath in it must exist.
            if !host.exists() {
                if vol.read_only {
                    return Err(VolumeError::Invalid(format!(
                        "subPath {sub:?} does not exist in volume {:?}",
                        m.name
                    )));
                }
                std::fs::create_dir_all(&host).map_err(|source| VolumeError::Io {
                    what: "mkdir",
                    path: host.clone(),
                    source,
                })?;
            }
        }
        out.push(api::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: m.read_only == Some(true) || vol.read_only,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
