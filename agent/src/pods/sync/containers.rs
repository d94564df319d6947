//! The container part of a sync: init containers one at a time, app containers with their
//! restart policy and back-off, starts with their environment, mounts and postStart hook.

use super::*;

/// The container part of a sync, for a pod with a ready sandbox.
pub(super) struct Run<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) pod: &'a Pod,
    pub(super) sandbox_id: &'a str,
    pub(super) ip: &'a str,
    pub(super) volumes: &'a volumes::Volumes,
}

pub(super) fn earliest(wake: &mut Option<Duration>, d: Duration) {
    *wake = Some(wake.map_or(d, |w| w.min(d)));
}

impl Run<'_> {
    pub(super) async fn containers(
        &self,
        seen: &Seen,
        st: &mut WorkerState,
        wake: &mut Option<Duration>,
    ) -> Result<(), RuntimeError> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        for c in spec.init_containers.iter().flatten() {
            let list = status::instances(&seen.containers, &c.name);
            match list.first() {
                None => {
                    self.start(c, 0, st, wake).await?;
                    return Ok(());
                }
                Some(l) if is(l, api::ContainerState::ContainerExited) => {
                    if l.exit_code == 0 {
                        continue;
                    }
                    if policy != "Never" {
                        self.restart(c, l, st, wake).await?;
                    }
                    return Ok(());
                }
                Some(l) if is(l, api::ContainerState::ContainerCreated) => {
                    self.start_created(c, l, st).await;
                    return Ok(());
                }
                Some(_) => return Ok(()),
            }
        }
        for c in &spec.containers {
            let list = status::instances(&seen.containers, &c.name);
            match list.first() {
                None => self.start(c, 0, st, wake).await?,
                Some(l) if is(l, api::ContainerState::ContainerRunning) => {
                    let image = l.annotations.get(labels::SPEC_IMAGE);
                    let why = if image.is_some_and(|i| Some(i) != c.image.as_ref()) {
                        Some(format!(
                            "Container {} definition changed, will be restarted",
                            c.name
                        ))
                    } else {
                        st.probes.failed(&l.id).map(|kind| {
                            format!(
                                "Container {} failed {} probe, will be restarted",
                                c.name,
                                kind.title().to_lowercase()
                            )
                        })
                    };
                    if let Some(why) = why {
                        kill(
                            self.ctx,
                            Some(self.pod),
                            l,
                            grace_of(self.pod),
                            self.ip,
                            Some(why),
                        )
                        .await;
                        earliest(wake, Duration::from_millis(100));
                    }
                }
                Some(l) if is(l, api::ContainerState::ContainerExited) => {
                    if should_restart(&policy, l.exit_code) {
                        self.restart(c, l, st, wake).await?;
                    } else {
                        st.waiting.remove(&c.name);
                    }
                }
                Some(l) if is(l, api::ContainerState::ContainerCreated) => {
                    self.start_created(c, l, st).await
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Restarts an exited container unless its back-off is still running.
    async fn restart(
        &self,
        c: &Container,
        latest: &api::ContainerStatus,
        st: &mut WorkerState,
        wake: &mut Option<Duration>,
    ) -> Result<(), RuntimeError> {
        let (name, ns, uid) = sandbox::ids(self.pod);
        let key = format!("{uid}/{}", c.name);
        let finished = ts(latest.finished_at);
        let now = Timestamp::now();
        let remaining = {
            let b = self.ctx.backoff.lock().await;
            b.remaining(&key, finished, now).zip(b.delay(&key))
        };
        if let Some((left, delay)) = remaining {
            st.waiting.insert(
                c.name.clone(),
                (
                    "CrashLoopBackOff".into(),
                    format!(
                        "back-off {} restarting failed container={} pod={name}_{ns}({uid})",
                        go_duration(delay),
                        c.name
                    ),
                ),
            );
            self.ctx.events.emit(
                self.pod,
                Some(&c.name),
                Warning,
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {name}_{ns}({uid})",
                    c.name
                ),
            );
            earliest(wake, left + Duration::from_millis(50));
            return Ok(());
        }
        self.ctx.backoff.lock().await.next(&key, finished);
        self.start(c, labels::attempt(latest) + 1, st, wake).await
    }

    /// A container's start succeeded: no longer waiting, and the kubelet's `Started` event.
    fn started(&self, c: &Container, st: &mut WorkerState) {
        st.waiting.remove(&c.name);
        self.ctx.events.emit(
            self.pod,
            Some(&c.name),
            Normal,
            "Started",
            format!("Started container {}", c.name),
        );
    }

    /// Starts a container that was created but never started (the agent stopped in between).
    async fn start_created(&self, c: &Container, l: &api::ContainerStatus, st: &mut WorkerState) {
        match self.ctx.runtime.start_container(&l.id).await {
            Ok(()) => {
                self.started(c, st);
            }
            Err(e) => self.failed(c, "RunContainerError", e.to_string(), st),
        }
    }

    pub(super) fn failed(
        &self,
        c: &Container,
        reason: &str,
        message: String,
        st: &mut WorkerState,
    ) {
        self.ctx.events.emit(
            self.pod,
            Some(&c.name),
            Warning,
            "Failed",
            format!("Error: {message}"),
        );
        st.waiting.insert(c.name.clone(), (reason.into(), message));
    }

    /// Image, configuration, create, start: instance `attempt` of container `c`.
    async fn start(
        &self,
        c: &Container,
        attempt: u32,
        st: &mut WorkerState,
        wake: &mut Option<Duration>,
    ) -> Result<(), RuntimeError> {
        let Some(image_ref) = self.image(c, st, wake).await? else {
            return Ok(());
        };
        let env = match self.environment(c).await {
            Ok(e) => e,
            Err(msg) => {
                self.failed(c, "CreateContainerConfigError", msg, st);
                earliest(wake, Duration::from_secs(10));
                return Ok(());
            }
        };
        let mut mounts = match volumes::mounts(c, self.volumes) {
            Ok(m) => m,
            Err(e) => {
                self.failed(c, "CreateContainerConfigError", e.to_string(), st);
                earliest(wake, Duration::from_secs(10));
                return Ok(());
            }
        };
        let spec = self.pod.spec.clone().unwrap_or_default();
        if spec.host_network != Some(true)
            && !mounts.iter().any(|m| m.container_path == "/etc/hosts")
        {
            let (_, _, uid) = sandbox::ids(self.pod);
            let dir = volumes::pod_dir(&self.ctx.root_dir, &uid);
            let hosts = dir.join("etc-hosts");
            let text = sandbox::hosts_file(self.pod, self.ip, &self.ctx.sandbox_env.cluster_domain);
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&hosts, text))
            {
                self.failed(
                    c,
                    "CreateContainerConfigError",
                    format!("writing /etc/hosts: {e}"),
                    st,
                );
                return Ok(());
            }
            mounts.push(api::Mount {
                container_path: "/etc/hosts".into(),
                host_path: hosts.display().to_string(),
                ..Default::default()
            });
        }
        let config = match container::config(
            self.pod,
            c,
            container::Inputs {
                node: &self.ctx.node,
                attempt,
                image_ref: &image_ref,
                env: &env,
                mounts,
                allow_privileged: self.ctx.allow_privileged,
                node_memory: self.ctx.node_memory,
            },
        ) {
            Ok(cfg) => cfg,
            Err(e) => {
                self.failed(c, "CreateContainerConfigError", e.0, st);
                return Ok(());
            }
        };
        let sandbox_config = sandbox::config(self.pod, 0, &self.ctx.sandbox_env);
        let id = match self
            .ctx
            .runtime
            .create_container(self.sandbox_id, config, sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(e @ RuntimeError::Unavailable(_)) => return Err(e),
            Err(e) => {
                self.failed(c, "CreateContainerError", e.to_string(), st);
                earliest(wake, Duration::from_secs(10));
                return Ok(());
            }
        };
        self.ctx.events.emit(
            self.pod,
            Some(&c.name),
            Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        match self.ctx.runtime.start_container(&id).await {
            Ok(()) => {
                self.started(c, st);
                self.post_start(c, &id).await;
            }
            Err(e) => {
                // The instance stays (exited) so the restart policy and back-off apply.
                self.failed(c, "RunContainerError", e.to_string(), st);
                earliest(wake, Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// Runs the postStart handler; a failure kills the container (the restart policy follows).
    async fn post_start(&self, c: &Container, id: &str) {
        let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return;
        };
        let timeout = grace_of(self.pod).max(Duration::from_secs(2));
        if let Err(msg) = hooks::run(&self.ctx.runtime, id, self.ip, &ports(c), h, timeout).await {
            self.ctx.events.emit(
                self.pod,
                Some(&c.name),
                Warning,
                "FailedPostStartHook",
                format!("PostStartHook failed: {msg}"),
            );
            let _ = self
                .ctx
                .runtime
                .stop_container(id, Duration::from_secs(2))
                .await;
        }
    }

    /// The container's environment (ConfigMaps and Secrets fetched now).
    async fn environment(&self, c: &Container) -> Result<Vec<(String, String)>, String> {
        let (_, ns, _) = sandbox::ids(self.pod);
        let (cms, secrets) = env::referenced(c);
        let mut sources = env::Sources::default();
        let client = &self.ctx.client;
        for n in cms {
            match client.config_map(&ns, &n).await {
                Ok(Some(cm)) => {
                    sources.config_maps.insert(n, cm.data.unwrap_or_default());
                }
                Ok(None) => {}
                Err(e) => return Err(format!("getting configmap {n:?}: {e}")),
            }
        }
        for n in secrets {
            match client.secret(&ns, &n).await {
                Ok(Some(s)) => {
                    let data = objects::secret_data(&s)
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                        .collect();
                    sources.secrets.insert(n, data);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("getting secret {n:?}: {e}")),
            }
        }
        env::build(
            self.pod,
            c,
            &sources,
            &self.ctx.host_ip,
            self.ip,
            (self.ctx.node_cpus, self.ctx.node_memory),
        )
        .map_err(|e| e.0)
    }
}
