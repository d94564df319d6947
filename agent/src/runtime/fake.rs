//! An in-memory runtime for hollow nodes (as Kubernetes' kubemark) and tests: sandboxes and
//! containers are records, nothing runs. Behaviour that tests need is configurable:
//!
//! - `start_latency`: each RunPodSandbox and StartContainer takes this long;
//! - `fail_rate`: that fraction of StartContainer calls fails (an injected error);
//! - `images`: the images it has (none given: it has every image); PullImage always fails, as
//!   with no registry;
//! - what a container does is read from its command line: `sleep N` runs N seconds, `exit N`
//!   / `false` end with that code, a command line with neither runs for ever (as a server);
//!   `while`, `tail -f`, `httpd` and `sleep infinity` also run for ever.
//!
//! With a state file the records survive the agent's restart (written after each change),
//! so a restarted agent finds what it had started, as it would on containerd.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{api, Result, Runtime, RuntimeError};

/// How the fake runtime behaves.
#[derive(Debug, Clone, Default)]
pub struct FakeConfig {
    /// Time each sandbox run and container start takes.
    pub start_latency: Duration,
    /// Fraction (0..=1) of container starts that fail.
    pub fail_rate: f64,
    /// The images present; `None`: every image is present.
    pub images: Option<Vec<String>>,
    /// Where the records are kept across restarts; `None`: memory only.
    pub state_file: Option<PathBuf>,
    /// The pod CIDR sandbox IPs are taken from (`10.88.0.0/16` when empty).
    pub pod_cidr: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FakeContainer {
    status: api::ContainerStatus,
    sandbox_id: String,
    /// When it ends by itself (ns since the epoch), with `exit_code`.
    ends_at: Option<i64>,
    exit_code: i32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    next_id: u64,
    sandboxes: BTreeMap<String, api::PodSandboxStatus>,
    containers: BTreeMap<String, FakeContainer>,
    starts: u64,
    /// Set by UpdateRuntimeConfig; the configured CIDR until then.
    #[serde(default)]
    pod_cidr: String,
    /// The sandboxes by label (rebuilt on load).
    #[serde(skip)]
    sandbox_labels: LabelIndex,
    /// The containers by label (rebuilt on load).
    #[serde(skip)]
    container_labels: LabelIndex,
    /// When the next running container ends by itself (ns since the epoch); None: not known,
    /// [`FakeRuntime::refresh`] looks at every container.
    #[serde(skip)]
    next_end: Option<i64>,
    /// Counts the changes to the records (see [`Runtime::records_version`]).
    #[serde(skip)]
    version: u64,
}

impl State {
    fn index(&mut self) {
        self.sandbox_labels = LabelIndex::default();
        for (id, s) in &self.sandboxes {
            self.sandbox_labels.add(id, &s.labels);
        }
        self.container_labels = LabelIndex::default();
        for (id, c) in &self.containers {
            self.container_labels.add(id, &c.status.labels);
        }
        self.next_end = None;
    }

    fn insert_sandbox(&mut self, s: api::PodSandboxStatus) {
        self.sandbox_labels.add(&s.id, &s.labels);
        self.sandboxes.insert(s.id.clone(), s);
    }

    fn insert_container(&mut self, c: FakeContainer) {
        self.container_labels.add(&c.status.id, &c.status.labels);
        self.containers.insert(c.status.id.clone(), c);
    }

    fn remove_container(&mut self, id: &str) {
        if let Some(c) = self.containers.remove(id) {
            self.container_labels.remove(id, &c.status.labels);
        }
    }
}

/// The records (sandboxes or containers) that carry each label, by key and value. A list
/// selects by label (the agent asks for its node's records, or one pod's): with the index it
/// visits only the records selected instead of comparing every record's labels, which were
/// most of a hollow node's CPU. Records keep their labels for life, as in CRI.
#[derive(Debug, Default)]
struct LabelIndex {
    ids: HashMap<String, HashMap<String, BTreeSet<String>>>,
}

impl LabelIndex {
    fn add(&mut self, id: &str, labels: &HashMap<String, String>) {
        for (k, v) in labels {
            self.ids
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .insert(id.to_string());
        }
    }

    fn remove(&mut self, id: &str, labels: &HashMap<String, String>) {
        for (k, v) in labels {
            let Some(values) = self.ids.get_mut(k) else {
                continue;
            };
            if let Some(set) = values.get_mut(v) {
                set.remove(id);
                if set.is_empty() {
                    values.remove(v);
                }
            }
            if values.is_empty() {
                self.ids.remove(k);
            }
        }
    }

    /// The IDs of the records that carry every label of `selector`, in ID order, out of
    /// `total` records; None when that is every record (an empty selector, or labels that
    /// every record carries, as a node's own): then the caller scans, which costs less than
    /// looking each record up by ID.
    fn select(&self, selector: &HashMap<String, String>, total: usize) -> Option<Vec<&str>> {
        let mut sets = Vec::with_capacity(selector.len());
        for (k, v) in selector {
            match self.ids.get(k).and_then(|values| values.get(v)) {
                // A record carries one value per key: a set of `total` IDs is every record.
                Some(set) if set.len() == total => {}
                Some(set) => sets.push(set),
                None => return Some(Vec::new()),
            }
        }
        sets.sort_by_key(|s| s.len());
        let (first, rest) = sets.split_first()?;
        Some(
            first
                .iter()
                .filter(|id| rest.iter().all(|s| s.contains(*id)))
                .map(String::as_str)
                .collect(),
        )
    }
}

/// The in-memory runtime.
pub struct FakeRuntime {
    config: FakeConfig,
    state: Mutex<State>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// What a container's command line does: run for the given time (for ever: None), then
/// exit with the code.
pub fn simulate(command: &[String], args: &[String]) -> (Option<Duration>, i32) {
    let script: Vec<String> = command.iter().chain(args).cloned().collect();
    let text = script.join(" ");
    let forever = ["while ", "tail -f", "httpd", "sleep infinity", "nc -l"];
    if script.is_empty() || forever.iter().any(|f| text.contains(f)) {
        return (None, 0);
    }
    let tokens: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|')
        .filter(|t| !t.is_empty())
        .collect();
    let (mut secs, mut code, mut finite) = (0.0f64, 0, false);
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i] {
            "sleep" => {
                if let Some(n) = tokens.get(i + 1).and_then(|n| n.parse::<f64>().ok()) {
                    secs += n.max(0.0);
                    finite = true;
                    i += 1;
                }
            }
            "exit" => {
                code = tokens.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(0);
                finite = true;
                break;
            }
            "false" => {
                code = 1;
                finite = true;
                break;
            }
            "true" | "echo" => finite = true,
            _ => {}
        }
        i += 1;
    }
    if finite {
        (Some(Duration::from_secs_f64(secs)), code)
    } else {
        (None, 0)
    }
}

impl FakeRuntime {
    /// True when `c`, which carries the selector's labels, is one of the containers `filter`
    /// selects.
    fn selected(c: &FakeContainer, filter: &api::ContainerFilter) -> bool {
        (filter.id.is_empty() || c.status.id == filter.id)
            && (filter.pod_sandbox_id.is_empty() || c.sandbox_id == filter.pod_sandbox_id)
            && filter
                .state
                .as_ref()
                .is_none_or(|f| f.state == c.status.state)
    }

    /// `f` of each container `filter` selects, in ID order, its state brought up to date
    /// first.
    fn each_selected<T>(
        &self,
        filter: &api::ContainerFilter,
        f: impl Fn(&FakeContainer) -> T,
    ) -> Result<Vec<T>> {
        let mut state = self.lock()?;
        Self::refresh(&mut state);
        let state = &*state;
        let keep = |c: &&FakeContainer| Self::selected(c, filter);
        let total = state.containers.len();
        Ok(
            match state.container_labels.select(&filter.label_selector, total) {
                Some(ids) => ids
                    .into_iter()
                    .filter_map(|id| state.containers.get(id))
                    .filter(keep)
                    .map(f)
                    .collect(),
                None => state.containers.values().filter(keep).map(f).collect(),
            },
        )
    }

    /// A fake runtime; its records are loaded from the state file when there is one.
    pub fn new(config: FakeConfig) -> FakeRuntime {
        let mut state: State = config
            .state_file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        state.index();
        FakeRuntime {
            config,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| RuntimeError::Failed("fake runtime state poisoned".into()))
    }

    /// Ends the containers whose time has come.
    fn refresh(state: &mut State) {
        let now = now_ns();
        if state.next_end.is_some_and(|t| now < t) {
            return;
        }
        let mut next = i64::MAX;
        let mut ended = false;
        for c in state.containers.values_mut() {
            if c.status.state == api::ContainerState::ContainerRunning as i32 {
                if let Some(end) = c.ends_at.filter(|e| *e > now) {
                    next = next.min(end);
                } else if let Some(end) = c.ends_at {
                    c.status.state = api::ContainerState::ContainerExited as i32;
                    c.status.finished_at = end;
                    c.status.exit_code = c.exit_code;
                    c.status.reason = if c.exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .into();
                    ended = true;
                }
            }
        }
        state.next_end = Some(next);
        if ended {
            state.version += 1;
        }
    }

    /// Marks a change of the records and writes them to the state file, if there is one.
    fn save(&self, state: &mut State) {
        state.version += 1;
        let Some(file) = &self.config.state_file else {
            return;
        };
        let tmp = file.with_extension("tmp");
        let written = serde_json::to_vec(state)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|_| std::fs::rename(&tmp, file));
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "saving the fake runtime state");
        }
    }

    fn new_id(state: &mut State) -> String {
        state.next_id += 1;
        format!("{:064x}", state.next_id)
    }

    fn pod_ip(&self, state: &State, n: u64) -> String {
        let cidr = if !state.pod_cidr.is_empty() {
            &state.pod_cidr
        } else if !self.config.pod_cidr.is_empty() {
            &self.config.pod_cidr
        } else {
            "10.88.0.0/16"
        };
        let (base, len) = cidr.split_once('/').unwrap_or((cidr, "24"));
        let base: std::net::Ipv4Addr = base
            .parse()
            .unwrap_or(std::net::Ipv4Addr::new(10, 88, 0, 0));
        let len: u32 = len.parse().unwrap_or(24).clamp(8, 30);
        let hosts = (1u64 << (32 - len)) - 2;
        let ip = u32::from(base) + 1 + (n % hosts) as u32;
        std::net::Ipv4Addr::from(ip).to_string()
    }

    fn sleep_latency(&self) -> impl std::future::Future<Output = ()> {
        tokio::time::sleep(self.config.start_latency)
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        Ok(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn status(&self) -> Result<api::RuntimeStatus> {
        let ready = |t: &str| api::RuntimeCondition {
            r#type: t.into(),
            status: true,
            ..Default::default()
        };
        Ok(api::RuntimeStatus {
            conditions: vec![ready("RuntimeReady"), ready("NetworkReady")],
        })
    }

    async fn update_runtime_config(&self, pod_cidr: &str) -> Result<()> {
        let mut state = self.lock()?;
        state.pod_cidr = pod_cidr.to_string();
        self.save(&mut state);
        Ok(())
    }

    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String> {
        self.sleep_latency().await;
        let mut state = self.lock()?;
        let id = Self::new_id(&mut state);
        let ip = self.pod_ip(&state, state.next_id);
        state.insert_sandbox(api::PodSandboxStatus {
            id: id.clone(),
            metadata: config.metadata,
            state: api::PodSandboxState::SandboxReady as i32,
            created_at: now_ns(),
            network: Some(api::PodSandboxNetworkStatus {
                ip,
                additional_ips: Vec::new(),
            }),
            labels: config.labels,
            annotations: config.annotations,
            runtime_handler: String::new(),
        });
        self.save(&mut state);
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let mut state = self.lock()?;
        Self::refresh(&mut state);
        if let Some(s) = state.sandboxes.get_mut(id) {
            s.state = api::PodSandboxState::SandboxNotready as i32;
        }
        let now = now_ns();
        for c in state.containers.values_mut().filter(|c| c.sandbox_id == id) {
            if c.status.state == api::ContainerState::ContainerRunning as i32 {
                c.status.state = api::ContainerState::ContainerExited as i32;
                c.status.finished_at = now;
                c.status.exit_code = 137;
                c.status.reason = "Error".into();
            }
        }
        self.save(&mut state);
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let mut state = self.lock()?;
        if let Some(s) = state.sandboxes.remove(id) {
            state.sandbox_labels.remove(id, &s.labels);
        }
        let gone: Vec<String> = state
            .containers
            .iter()
            .filter(|(_, c)| c.sandbox_id == id)
            .map(|(cid, _)| cid.clone())
            .collect();
        for cid in gone {
            state.remove_container(&cid);
        }
        self.save(&mut state);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        let state = self.lock()?;
        state
            .sandboxes
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {id}")))
    }

    async fn list_pod_sandbox(
        &self,
        filter: api::PodSandboxFilter,
    ) -> Result<Vec<api::PodSandbox>> {
        let state = self.lock()?;
        let selected: Box<dyn Iterator<Item = &api::PodSandboxStatus>> = match state
            .sandbox_labels
            .select(&filter.label_selector, state.sandboxes.len())
        {
            Some(ids) => Box::new(ids.into_iter().filter_map(|id| state.sandboxes.get(id))),
            None => Box::new(state.sandboxes.values()),
        };
        Ok(selected
            .filter(|s| filter.id.is_empty() || s.id == filter.id)
            .filter(|s| filter.state.as_ref().is_none_or(|f| f.state == s.state))
            .map(|s| api::PodSandbox {
                id: s.id.clone(),
                metadata: s.metadata.clone(),
                state: s.state,
                created_at: s.created_at,
                labels: s.labels.clone(),
                annotations: s.annotations.clone(),
                runtime_handler: String::new(),
            })
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        _sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let mut state = self.lock()?;
        if !state.sandboxes.contains_key(sandbox_id) {
            return Err(RuntimeError::NotFound(format!("sandbox {sandbox_id}")));
        }
        let (runs_for, exit_code) = simulate(&config.command, &config.args);
        let id = Self::new_id(&mut state);
        let image = config.image.clone().unwrap_or_default();
        state.insert_container(FakeContainer {
            status: api::ContainerStatus {
                id: id.clone(),
                metadata: config.metadata,
                state: api::ContainerState::ContainerCreated as i32,
                created_at: now_ns(),
                image_ref: format!("fake://{}", image.image),
                image_id: format!("fake://{}", image.image),
                image: Some(image),
                labels: config.labels,
                annotations: config.annotations,
                log_path: config.log_path,
                ..Default::default()
            },
            sandbox_id: sandbox_id.into(),
            ends_at: runs_for.map(|d| d.as_nanos() as i64),
            exit_code,
        });
        self.save(&mut state);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.sleep_latency().await;
        let mut state = self.lock()?;
        state.starts += 1;
        let fail = self.config.fail_rate > 0.0 && rand::random::<f64>() < self.config.fail_rate;
        let Some(c) = state.containers.get_mut(id) else {
            return Err(RuntimeError::NotFound(format!("container {id}")));
        };
        let now = now_ns();
        if fail {
            c.status.state = api::ContainerState::ContainerExited as i32;
            c.status.started_at = now;
            c.status.finished_at = now;
            c.status.exit_code = 128;
            c.status.reason = "StartError".into();
            c.status.message = "injected start failure (fake runtime)".into();
            let msg = c.status.message.clone();
            self.save(&mut state);
            return Err(RuntimeError::Failed(msg));
        }
        c.status.state = api::ContainerState::ContainerRunning as i32;
        c.status.started_at = now;
        // ends_at held the run time until the start.
        c.ends_at = c.ends_at.map(|d| now + d);
        if let Some(end) = c.ends_at {
            state.next_end = state.next_end.map(|t| t.min(end));
        }
        self.save(&mut state);
        Ok(())
    }

    async fn stop_container(&self, id: &str, _timeout: Duration) -> Result<()> {
        let mut state = self.lock()?;
        Self::refresh(&mut state);
        if let Some(c) = state.containers.get_mut(id) {
            if c.status.state != api::ContainerState::ContainerExited as i32 {
                c.status.state = api::ContainerState::ContainerExited as i32;
                c.status.finished_at = now_ns();
                // Ended by SIGTERM, as a process without a handler.
                c.status.exit_code = 143;
                c.status.reason = "Error".into();
            }
        }
        self.save(&mut state);
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let mut state = self.lock()?;
        state.remove_container(id);
        self.save(&mut state);
        Ok(())
    }

    async fn list_containers(&self, filter: api::ContainerFilter) -> Result<Vec<api::Container>> {
        self.each_selected(&filter, |c| api::Container {
            id: c.status.id.clone(),
            pod_sandbox_id: c.sandbox_id.clone(),
            metadata: c.status.metadata.clone(),
            image: c.status.image.clone(),
            image_ref: c.status.image_ref.clone(),
            state: c.status.state,
            created_at: c.status.created_at,
            labels: c.status.labels.clone(),
            annotations: c.status.annotations.clone(),
            image_id: c.status.image_id.clone(),
        })
    }

    async fn container_states(
        &self,
        filter: api::ContainerFilter,
        key: &str,
    ) -> Result<Vec<super::ContainerState>> {
        self.each_selected(&filter, |c| super::ContainerState {
            id: c.status.id.clone(),
            state: c.status.state,
            label: c.status.labels.get(key).cloned().unwrap_or_default(),
        })
    }

    async fn records_version(&self) -> Option<u64> {
        let mut state = self.lock().ok()?;
        Self::refresh(&mut state);
        Some(state.version)
    }

    fn writes_container_logs(&self) -> bool {
        false
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        let mut state = self.lock()?;
        Self::refresh(&mut state);
        state
            .containers
            .get(id)
            .map(|c| c.status.clone())
            .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))
    }

    async fn exec_sync(
        &self,
        id: &str,
        _cmd: Vec<String>,
        _timeout: Duration,
    ) -> Result<api::ExecSyncResponse> {
        let running =
            self.container_status(id).await?.state == api::ContainerState::ContainerRunning as i32;
        if !running {
            return Err(RuntimeError::Failed(format!(
                "container {id} is not running"
            )));
        }
        Ok(api::ExecSyncResponse::default())
    }

    async fn exec(&self, request: api::ExecRequest) -> Result<String> {
        // Nothing runs in the fake runtime: there is no process to attach streams to.
        self.container_status(&request.container_id).await?;
        Err(RuntimeError::Failed(
            "the fake runtime cannot stream an exec: nothing runs in its containers".into(),
        ))
    }

    async fn reopen_container_log(&self, id: &str) -> Result<()> {
        // The fake writes no log files: reopening is only checked for a running container.
        let running =
            self.container_status(id).await?.state == api::ContainerState::ContainerRunning as i32;
        if running {
            Ok(())
        } else {
            Err(RuntimeError::Failed(format!(
                "container {id} is not running"
            )))
        }
    }

    async fn list_container_stats(
        &self,
        filter: api::ContainerStatsFilter,
    ) -> Result<Vec<api::ContainerStats>> {
        let list = self
            .list_containers(api::ContainerFilter {
                id: filter.id,
                pod_sandbox_id: filter.pod_sandbox_id,
                label_selector: filter.label_selector,
                state: None,
            })
            .await?;
        Ok(list
            .into_iter()
            .map(|c| api::ContainerStats {
                attributes: Some(api::ContainerAttributes {
                    id: c.id,
                    metadata: c.metadata,
                    labels: c.labels,
                    annotations: c.annotations,
                }),
                ..Default::default()
            })
            .collect())
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        let present = match &self.config.images {
            None => true,
            Some(list) => list.iter().any(|i| i == image),
        };
        Ok(present.then(|| api::Image {
            id: format!("fake://{image}"),
            repo_tags: vec![image.to_string()],
            size: 1,
            ..Default::default()
        }))
    }

    async fn pull_image(&self, image: &str) -> Result<String> {
        Err(RuntimeError::Failed(format!(
            "failed to pull and unpack image \"{image}\": no registry is reachable (fake runtime)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_lines_simulate_their_programs() {
        assert_eq!(simulate(&[], &[]), (None, 0));
        assert_eq!(
            simulate(&s(&["sleep", "3600"]), &[]),
            (Some(Duration::from_secs(3600)), 0)
        );
        assert_eq!(
            simulate(&s(&["sh", "-c", "echo failing; exit 1"]), &[]),
            (Some(Duration::ZERO), 1)
        );
        assert_eq!(
            simulate(&s(&["sh", "-c"]), &s(&["sleep 2 && exit 3"])),
            (Some(Duration::from_secs(2)), 3)
        );
        assert_eq!(simulate(&s(&["httpd", "-f", "-p", "80"]), &[]), (None, 0));
        assert_eq!(
            simulate(&s(&["sh", "-c", "while true; do sleep 1; done"]), &[]),
            (None, 0)
        );
    }

    /// A sandbox and, in it, a created container running `command`: their IDs.
    async fn sandbox_with(rt: &FakeRuntime, command: &[&str]) -> (String, String) {
        let sb = rt
            .run_pod_sandbox(api::PodSandboxConfig::default())
            .await
            .unwrap();
        let c = rt
            .create_container(
                &sb,
                api::ContainerConfig {
                    command: s(command),
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        (sb, c)
    }

    #[tokio::test]
    async fn the_version_moves_with_every_change_and_not_with_reads() {
        let rt = FakeRuntime::new(FakeConfig::default());
        let v0 = rt.records_version().await.unwrap();
        let (_, short) = sandbox_with(&rt, &["sleep", "0.2"]).await;
        let v1 = rt.records_version().await.unwrap();
        assert!(v1 > v0);
        rt.start_container(&short).await.unwrap();
        let v2 = rt.records_version().await.unwrap();
        assert!(v2 > v1);
        rt.list_containers(Default::default()).await.unwrap();
        rt.container_status(&short).await.unwrap();
        assert_eq!(
            rt.records_version().await.unwrap(),
            v2,
            "reads change nothing"
        );
        // Ending by itself is a change too, seen by the next look at the version.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let v3 = rt.records_version().await.unwrap();
        assert!(v3 > v2);
        assert_eq!(
            rt.container_status(&short).await.unwrap().state,
            api::ContainerState::ContainerExited as i32
        );
        assert_eq!(rt.records_version().await.unwrap(), v3);
        rt.remove_container(&short).await.unwrap();
        assert!(rt.records_version().await.unwrap() > v3);
    }

    #[tokio::test]
    async fn containers_end_by_themselves_and_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = FakeConfig {
            state_file: Some(dir.path().join("state.json")),
            ..Default::default()
        };
        let rt = FakeRuntime::new(config.clone());
        let (sb, short) = sandbox_with(&rt, &["sh", "-c", "exit 2"]).await;
        let long = rt
            .create_container(&sb, api::ContainerConfig::default(), Default::default())
            .await
            .unwrap();
        rt.start_container(&short).await.unwrap();
        rt.start_container(&long).await.unwrap();
        let st = rt.container_status(&short).await.unwrap();
        assert_eq!(st.state, api::ContainerState::ContainerExited as i32);
        assert_eq!(st.exit_code, 2);
        drop(rt);
        let again = FakeRuntime::new(config);
        let st = again.container_status(&long).await.unwrap();
        assert_eq!(st.state, api::ContainerState::ContainerRunning as i32);
        assert!(again
            .pod_sandbox_status(&sb)
            .await
            .unwrap()
            .network
            .unwrap()
            .ip
            .starts_with("10.88."));
    }

    /// Lists select by label through the index: every label of the selector must match, an
    /// empty selector takes everything, and removed records are gone from it; containers
    /// still end on time when the next end is known in advance.
    #[tokio::test]
    async fn lists_select_by_every_label_and_forget_removed_records() {
        let rt = FakeRuntime::new(FakeConfig::default());
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut sandboxes = Vec::new();
        for pod in ["p1", "p2"] {
            let config = api::PodSandboxConfig {
                labels: labels(&[("node", "n1"), ("uid", pod)]),
                ..Default::default()
            };
            sandboxes.push(rt.run_pod_sandbox(config).await.unwrap());
        }
        let mut ids = Vec::new();
        for (sb, pod, command) in [
            (&sandboxes[0], "p1", "sleep 0.2"),
            (&sandboxes[0], "p1", "sleep infinity"),
            (&sandboxes[1], "p2", "sleep infinity"),
        ] {
            let config = api::ContainerConfig {
                command: s(&["sh", "-c", command]),
                labels: labels(&[("node", "n1"), ("uid", pod)]),
                ..Default::default()
            };
            let id = rt
                .create_container(sb, config, Default::default())
                .await
                .unwrap();
            rt.start_container(&id).await.unwrap();
            ids.push(id);
        }
        let containers = |sel: &[(&str, &str)]| {
            let filter = api::ContainerFilter {
                label_selector: labels(sel),
                ..Default::default()
            };
            let rt = &rt;
            async move {
                let list = rt.list_containers(filter).await.unwrap();
                list.into_iter().map(|c| c.id).collect::<Vec<_>>()
            }
        };
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(containers(&[]).await, sorted);
        assert_eq!(containers(&[("node", "n1")]).await, sorted);
        assert_eq!(
            containers(&[("node", "n1"), ("uid", "p1")]).await,
            vec![ids[0].clone(), ids[1].clone()]
        );
        assert_eq!(
            containers(&[("node", "n2"), ("uid", "p1")]).await,
            Vec::<String>::new()
        );
        assert_eq!(containers(&[("zone", "a")]).await, Vec::<String>::new());
        let sandboxes_of = |uid: &str| {
            let filter = api::PodSandboxFilter {
                label_selector: labels(&[("uid", uid)]),
                ..Default::default()
            };
            let rt = &rt;
            async move {
                let list = rt.list_pod_sandbox(filter).await.unwrap();
                list.into_iter().map(|s| s.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(sandboxes_of("p2").await, vec![sandboxes[1].clone()]);

        let running = api::ContainerFilter {
            state: Some(api::ContainerStateValue {
                state: api::ContainerState::ContainerRunning as i32,
            }),
            ..Default::default()
        };
        assert_eq!(rt.list_containers(running.clone()).await.unwrap().len(), 3);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let still: Vec<String> = rt
            .list_containers(running)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert!(!still.contains(&ids[0]), "the 0.2 s container ended");
        assert_eq!(still.len(), 2);

        rt.remove_pod_sandbox(&sandboxes[0]).await.unwrap();
        assert_eq!(containers(&[("uid", "p1")]).await, Vec::<String>::new());
        assert_eq!(sandboxes_of("p1").await, Vec::<String>::new());
        assert_eq!(containers(&[]).await, vec![ids[2].clone()]);
        rt.remove_container(&ids[2]).await.unwrap();
        assert_eq!(containers(&[("node", "n1")]).await, Vec::<String>::new());
        assert!(rt.lock().unwrap().container_labels.ids.is_empty());
    }

    #[tokio::test]
    async fn container_states_match_the_full_listing() {
        let rt = FakeRuntime::new(FakeConfig::default());
        let sb = rt
            .run_pod_sandbox(api::PodSandboxConfig::default())
            .await
            .unwrap();
        let labelled = |uid: &str| api::ContainerConfig {
            labels: [("uid".to_string(), uid.to_string())].into(),
            ..Default::default()
        };
        let a = rt
            .create_container(&sb, labelled("p1"), Default::default())
            .await
            .unwrap();
        rt.create_container(&sb, labelled("p2"), Default::default())
            .await
            .unwrap();
        rt.start_container(&a).await.unwrap();
        let filter = api::ContainerFilter {
            label_selector: [("uid".to_string(), "p1".to_string())].into(),
            ..Default::default()
        };
        let full: Vec<super::super::ContainerState> = rt
            .list_containers(filter.clone())
            .await
            .unwrap()
            .into_iter()
            .map(|c| super::super::ContainerState {
                label: c.labels["uid"].clone(),
                id: c.id,
                state: c.state,
            })
            .collect();
        let states = rt.container_states(filter, "uid").await.unwrap();
        assert_eq!(states, full);
        assert_eq!(states.len(), 1);
        assert_eq!(
            states[0].state,
            api::ContainerState::ContainerRunning as i32
        );
        let all = rt
            .container_states(api::ContainerFilter::default(), "uid")
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
    }
}
