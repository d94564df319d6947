//! Log rotation, as the kubelet's container log manager: every running container's current
//! log file that grew beyond the size limit is renamed to `<file>.<stamp>` and the runtime is
//! told to reopen its log (CRI ReopenContainerLog), which starts a new file at the same path.
//! At most `max_files` files are kept per container instance (the current one included); the
//! oldest rotated ones are removed. (The kubelet also compresses rotated files; the agent
//! keeps them plain.)

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::{
    pods::labels,
    runtime::{api, Runtime},
};

use super::{instance_log, pod_dir, rotated_files};

/// When logs are rotated.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_size: u64,
    pub max_files: u32,
}

/// Checks every running container of `node` each `period`, for as long as the agent runs.
pub async fn run(
    runtime: Arc<dyn Runtime>,
    node: String,
    log_root: PathBuf,
    limits: Limits,
    period: Duration,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let filter = api::ContainerFilter {
            state: Some(api::ContainerStateValue {
                state: api::ContainerState::ContainerRunning as i32,
            }),
            label_selector: labels::node_selector(&node),
            ..Default::default()
        };
        let containers = match runtime.list_containers(filter).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "listing containers for log rotation");
                continue;
            }
        };
        for c in containers {
            let Some(log) = log_of(&log_root, &c) else {
                continue;
            };
            if let Err(e) = rotate(runtime.as_ref(), &c.id, &log, limits).await {
                tracing::warn!(container = %c.id, log = %log.display(), error = %e,
                    "rotating the container log");
            }
        }
    }
}

/// The current log file of a container, from its labels.
fn log_of(log_root: &Path, c: &api::Container) -> Option<PathBuf> {
    let pod = labels::pod_of(&c.labels)?;
    let container = c.labels.get(labels::CONTAINER_NAME)?;
    let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
    Some(instance_log(
        &pod_dir(log_root, &pod.namespace, &pod.name, &pod.uid),
        container,
        attempt,
    ))
}

/// Why a rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("reopening the log: {0}")]
    Reopen(#[from] crate::runtime::RuntimeError),
}

/// Rotates `log` of container `id` if it is over the limit; returns whether it did.
pub async fn rotate(
    runtime: &dyn Runtime,
    id: &str,
    log: &Path,
    limits: Limits,
) -> Result<bool, RotateError> {
    let size = match std::fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if size < limits.max_size {
        return Ok(false);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut rotated = log.as_os_str().to_owned();
    rotated.push(format!(".{nanos:020}"));
    let rotated = PathBuf::from(rotated);
    std::fs::rename(log, &rotated)?;
    if let Err(e) = runtime.reopen_container_log(id).await {
        // The runtime still writes to the renamed file: give it its name back.
        std::fs::rename(&rotated, log)?;
        return Err(e.into());
    }
    let old = rotated_files(log);
    let keep = limits.max_files.saturating_sub(1) as usize;
    for f in old.iter().take(old.len().saturating_sub(keep)) {
        std::fs::remove_file(f)?;
    }
    tracing::debug!(container = %id, log = %log.display(), size, "rotated the container log");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::{FakeConfig, FakeRuntime};

    #[tokio::test]
    async fn rotates_over_the_limit_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let rt = FakeRuntime::new(FakeConfig::default());
        let limits = Limits {
            max_size: 10,
            max_files: 3,
        };
        // The fake runtime knows no such container: reopening fails and the file is kept.
        std::fs::write(&log, "0123456789ab").unwrap();
        assert!(rotate(&rt, "missing", &log, limits).await.is_err());
        assert!(log.exists());
        assert!(rotated_files(&log).is_empty());
        // Under the limit: nothing to do.
        std::fs::write(&log, "short").unwrap();
        assert!(!rotate(&rt, "missing", &log, limits).await.unwrap());
        // A running container: each rotation renames the file; two rotated files are kept.
        let sb = rt
            .run_pod_sandbox(api::PodSandboxConfig::default())
            .await
            .unwrap();
        let id = rt
            .create_container(&sb, api::ContainerConfig::default(), Default::default())
            .await
            .unwrap();
        rt.start_container(&id).await.unwrap();
        for i in 0..4 {
            std::fs::write(&log, format!("{i} is over the limit")).unwrap();
            assert!(rotate(&rt, &id, &log, limits).await.unwrap());
            assert!(!log.exists());
        }
        let kept = rotated_files(&log);
        assert_eq!(kept.len(), 2);
        assert_eq!(
            std::fs::read_to_string(&kept[1]).unwrap(),
            "3 is over the limit"
        );
        assert_eq!(
            std::fs::read_to_string(&kept[0]).unwrap(),
            "2 is over the limit"
        );
    }
}
