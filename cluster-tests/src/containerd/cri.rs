//! A CRI v1 client for the harness and the benchmarks, on the workspace's own CRI proto
//! (`proto::cri`, what the agent speaks): is the runtime up, can it run a pod sandbox on its
//! CNI network, and the bare create/start calls that the node benchmark times as the floor
//! under the agent's pod start-up.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use proto::cri::*;
use proto::cri::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};

/// A CRI connection over containerd's Unix socket.
#[derive(Debug, Clone)]
pub struct CriClient {
    /// The runtime service, for calls this type has no shortcut for.
    pub runtime: RuntimeServiceClient<Channel>,
    /// The image service.
    pub images: ImageServiceClient<Channel>,
}

impl CriClient {
    /// Connects to the CRI server listening on the Unix socket `socket`.
    pub async fn connect(socket: &Path) -> Result<CriClient> {
        let path: PathBuf = socket.to_path_buf();
        // The URI is required by the endpoint but unused: the connector dials the socket.
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { UnixStream::connect(path).await.map(TokioIo::new) }
            }))
            .await
            .with_context(|| format!("connecting to CRI at {}", socket.display()))?;
        Ok(CriClient {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// `RuntimeService/Version`.
    pub async fn version(&mut self) -> Result<VersionResponse, tonic::Status> {
        let req = VersionRequest {
            version: "v1".into(),
        };
        Ok(self.runtime.version(req).await?.into_inner())
    }

    /// `RuntimeService/Status`.
    pub async fn status(&mut self) -> Result<StatusResponse, tonic::Status> {
        let req = StatusRequest { verbose: false };
        Ok(self.runtime.status(req).await?.into_inner())
    }

    /// `RuntimeService/RunPodSandbox`; returns the sandbox id.
    pub async fn run_pod_sandbox(
        &mut self,
        config: PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        let req = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        Ok(self
            .runtime
            .run_pod_sandbox(req)
            .await?
            .into_inner()
            .pod_sandbox_id)
    }

    /// `RuntimeService/PodSandboxStatus`.
    pub async fn pod_sandbox_status(
        &mut self,
        id: &str,
    ) -> Result<PodSandboxStatus, tonic::Status> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            ..Default::default()
        };
        self.runtime
            .pod_sandbox_status(req)
            .await?
            .into_inner()
            .status
            .ok_or_else(|| tonic::Status::internal("PodSandboxStatus answered without a status"))
    }

    /// `RuntimeService/StopPodSandbox` (tears down the pod's network).
    pub async fn stop_pod_sandbox(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.runtime.stop_pod_sandbox(req).await?;
        Ok(())
    }

    /// `RuntimeService/RemovePodSandbox`.
    pub async fn remove_pod_sandbox(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.runtime.remove_pod_sandbox(req).await?;
        Ok(())
    }

    /// `RuntimeService/CreateContainer` in a sandbox; returns the container id.
    pub async fn create_container(
        &mut self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        Ok(self
            .runtime
            .create_container(req)
            .await?
            .into_inner()
            .container_id)
    }

    /// `RuntimeService/StartContainer`.
    pub async fn start_container(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = StartContainerRequest {
            container_id: id.into(),
        };
        self.runtime.start_container(req).await?;
        Ok(())
    }
}
