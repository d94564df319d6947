//! The runtime on containerd: CRI's RuntimeService and ImageService over gRPC on the runtime's
//! Unix socket. The channel connects lazily and reconnects, so the agent survives a restart of
//! containerd (calls fail with [`RuntimeError::Unavailable`] meanwhile).
//!
//! The pod's cgroup parent is created before RunPodSandbox and removed after
//! RemovePodSandbox (containerd creates only the containers' own cgroups); it is kept in a
//! sandbox annotation so a restarted agent can still remove it.

use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use proto::cri::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use tonic::{
    transport::{Channel, Endpoint, Uri},
    Code, Request,
};

use super::{api, cgroups, Result, Runtime, RuntimeError};

/// Annotation of a sandbox holding the cgroup parent the agent created for it.
pub const CGROUP_PARENT_ANNOTATION: &str = "agent.io/cgroup-parent";

/// A CRI runtime reached over a Unix socket.
#[derive(Clone)]
pub struct CriRuntime {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    timeout: Duration,
}

impl From<tonic::Status> for RuntimeError {
    fn from(s: tonic::Status) -> Self {
        let msg = s.message().to_string();
        match s.code() {
            Code::NotFound => RuntimeError::NotFound(msg),
            Code::Unavailable => RuntimeError::Unavailable(msg),
            Code::DeadlineExceeded => RuntimeError::Timeout(msg),
            _ => RuntimeError::Failed(msg),
        }
    }
}

impl CriRuntime {
    /// A runtime at `endpoint` (`unix:///path` or a plain path). Calls time out after
    /// `timeout` (longer ones, as pulls and stops, get their own allowance on top).
    pub fn connect(endpoint: &str, timeout: Duration) -> Result<CriRuntime> {
        let path = endpoint
            .strip_prefix("unix://")
            .unwrap_or(endpoint)
            .to_string();
        let channel = Endpoint::try_from("http://[::1]:50051")
            .map_err(|e| RuntimeError::Failed(e.to_string()))?
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }));
        Ok(CriRuntime {
            runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(16 << 20),
            images: ImageServiceClient::new(channel),
            timeout,
        })
    }

    fn req<T>(&self, msg: T) -> Request<T> {
        self.req_for(msg, self.timeout)
    }

    fn req_for<T>(&self, msg: T, timeout: Duration) -> Request<T> {
        let mut r = Request::new(msg);
        r.set_timeout(timeout);
        r
    }
}

#[async_trait]
impl Runtime for CriRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        let req = self.req(api::VersionRequest {
            version: "v1".into(),
        });
        Ok(self.runtime.clone().version(req).await?.into_inner())
    }

    async fn status(&self) -> Result<api::RuntimeStatus> {
        let req = self.req(api::StatusRequest { verbose: false });
        let resp = self.runtime.clone().status(req).await?.into_inner();
        Ok(resp.status.unwrap_or_default())
    }

    async fn update_runtime_config(&self, pod_cidr: &str) -> Result<()> {
        let req = self.req(api::UpdateRuntimeConfigRequest {
            runtime_config: Some(api::RuntimeConfig {
                network_config: Some(api::NetworkConfig {
                    pod_cidr: pod_cidr.to_string(),
                }),
            }),
        });
        self.runtime.clone().update_runtime_config(req).await?;
        Ok(())
    }

    async fn run_pod_sandbox(&self, mut config: api::PodSandboxConfig) -> Result<String> {
        if let Some(parent) = config
            .linux
            .as_ref()
            .map(|l| l.cgroup_parent.clone())
            .filter(|p| !p.is_empty())
        {
            cgroups::create(&parent).map_err(|e| {
                RuntimeError::Failed(format!("creating the pod cgroup {parent}: {e}"))
            })?;
            config
                .annotations
                .insert(CGROUP_PARENT_ANNOTATION.into(), parent);
        }
        // Sandbox creation includes network setup (CNI): allow more time.
        let req = self.req_for(
            api::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            },
            self.timeout * 4,
        );
        Ok(self
            .runtime
            .clone()
            .run_pod_sandbox(req)
            .await?
            .into_inner()
            .pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = self.req_for(
            api::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            },
            self.timeout * 4,
        );
        self.runtime.clone().stop_pod_sandbox(req).await?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let parent = match self.pod_sandbox_status(id).await {
            Ok(s) => s.annotations.get(CGROUP_PARENT_ANNOTATION).cloned(),
            Err(RuntimeError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let req = self.req_for(
            api::RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            },
            self.timeout * 4,
        );
        self.runtime.clone().remove_pod_sandbox(req).await?;
        if let Some(parent) = parent {
            cgroups::remove(&parent);
        }
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        let req = self.req(api::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        });
        self.runtime
            .clone()
            .pod_sandbox_status(req)
            .await?
            .into_inner()
            .status
            .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {id}")))
    }

    async fn list_pod_sandbox(
        &self,
        filter: api::PodSandboxFilter,
    ) -> Result<Vec<api::PodSandbox>> {
        let req = self.req(api::ListPodSandboxRequest {
            filter: Some(filter),
        });
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox(req)
            .await?
            .into_inner()
            .items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let req = self.req_for(
            api::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            },
            self.timeout * 2,
        );
        Ok(self
            .runtime
            .clone()
            .create_container(req)
            .await?
            .into_inner()
            .container_id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let req = self.req_for(
            api::StartContainerRequest {
                container_id: id.into(),
            },
            self.timeout * 2,
        );
        self.runtime.clone().start_container(req).await?;
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()> {
        let req = self.req_for(
            api::StopContainerRequest {
                container_id: id.into(),
                timeout: timeout.as_secs() as i64,
            },
            timeout + self.timeout * 2,
        );
        match self.runtime.clone().stop_container(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(s.into()),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let req = self.req(api::RemoveContainerRequest {
            container_id: id.into(),
        });
        match self.runtime.clone().remove_container(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(s.into()),
        }
    }

    async fn list_containers(&self, filter: api::ContainerFilter) -> Result<Vec<api::Container>> {
        let req = self.req(api::ListContainersRequest {
            filter: Some(filter),
        });
        Ok(self
            .runtime
            .clone()
            .list_containers(req)
            .await?
            .into_inner()
            .containers)
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        let req = self.req(api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        });
        self.runtime
            .clone()
            .container_status(req)
            .await?
            .into_inner()
            .status
            .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse> {
        let req = self.req_for(
            api::ExecSyncRequest {
                container_id: id.into(),
                cmd,
                timeout: timeout.as_secs().max(1) as i64,
            },
            timeout + self.timeout,
        );
        Ok(self.runtime.clone().exec_sync(req).await?.into_inner())
    }

    async fn exec(&self, request: api::ExecRequest) -> Result<String> {
        let req = self.req(request);
        Ok(self.runtime.clone().exec(req).await?.into_inner().url)
    }

    async fn reopen_container_log(&self, id: &str) -> Result<()> {
        let req = self.req(api::ReopenContainerLogRequest {
            container_id: id.into(),
        });
        self.runtime.clone().reopen_container_log(req).await?;
        Ok(())
    }

    async fn list_container_stats(
        &self,
        filter: api::ContainerStatsFilter,
    ) -> Result<Vec<api::ContainerStats>> {
        let req = self.req(api::ListContainerStatsRequest {
            filter: Some(filter),
        });
        Ok(self
            .runtime
            .clone()
            .list_container_stats(req)
            .await?
            .into_inner()
            .stats)
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        let req = self.req(api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        });
        Ok(self
            .images
            .clone()
            .image_status(req)
            .await?
            .into_inner()
            .image)
    }

    async fn pull_image(&self, image: &str) -> Result<String> {
        let req = self.req_for(
            api::PullImageRequest {
                image: Some(api::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Duration::from_secs(300),
        );
        Ok(self
            .images
            .clone()
            .pull_image(req)
            .await?
            .into_inner()
            .image_ref)
    }
}
