//! A minimal CRI v1 client for the harness's own checks: is the runtime up, and can it run a pod
//! sandbox on its CNI network.
//!
//! The messages are a hand-written subset of `k8s.io/cri-api` `pkg/apis/runtime/v1/api.proto`
//! (package `runtime.v1`) with the same field numbers, so they are wire-compatible; fields not
//! listed here are skipped by the decoder. The node agent has the full proto; this subset only
//! keeps the harness independent of it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// `runtime.v1.VersionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionRequest {
    /// The CRI API version of the caller.
    #[prost(string, tag = "1")]
    pub version: String,
}

/// `runtime.v1.VersionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionResponse {
    /// Version of the kubelet runtime API.
    #[prost(string, tag = "1")]
    pub version: String,
    /// Name of the container runtime ("containerd").
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    /// Version of the container runtime.
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    /// API version of the container runtime ("v1").
    #[prost(string, tag = "4")]
    pub runtime_api_version: String,
}

/// `runtime.v1.StatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {
    /// Ask for extra information.
    #[prost(bool, tag = "1")]
    pub verbose: bool,
}

/// `runtime.v1.StatusResponse` (without the verbose info map).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    /// The runtime's conditions.
    #[prost(message, optional, tag = "1")]
    pub status: Option<RuntimeStatus>,
}

/// `runtime.v1.RuntimeStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuntimeStatus {
    /// RuntimeReady and NetworkReady.
    #[prost(message, repeated, tag = "1")]
    pub conditions: Vec<RuntimeCondition>,
}

/// `runtime.v1.RuntimeCondition`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuntimeCondition {
    /// "RuntimeReady" or "NetworkReady".
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// Whether the condition holds.
    #[prost(bool, tag = "2")]
    pub status: bool,
    /// Machine-readable reason when it does not.
    #[prost(string, tag = "3")]
    pub reason: String,
    /// Human-readable message when it does not.
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `runtime.v1.PodSandboxMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    /// Pod name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Pod UID.
    #[prost(string, tag = "2")]
    pub uid: String,
    /// Pod namespace.
    #[prost(string, tag = "3")]
    pub namespace: String,
    /// Attempt number of creating the sandbox.
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

/// `runtime.v1.PortMapping`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PortMapping {
    /// 0 TCP, 1 UDP, 2 SCTP.
    #[prost(int32, tag = "1")]
    pub protocol: i32,
    /// Port inside the pod's network namespace.
    #[prost(int32, tag = "2")]
    pub container_port: i32,
    /// Port on the host.
    #[prost(int32, tag = "3")]
    pub host_port: i32,
    /// Host address to bind (empty: all).
    #[prost(string, tag = "4")]
    pub host_ip: String,
}

/// `runtime.v1.PodSandboxConfig` (the fields the harness uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxConfig {
    /// Names the sandbox.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<PodSandboxMetadata>,
    /// The pod's hostname.
    #[prost(string, tag = "2")]
    pub hostname: String,
    /// Where the containers' logs go.
    #[prost(string, tag = "3")]
    pub log_directory: String,
    /// hostPort mappings (CNI portmap).
    #[prost(message, repeated, tag = "5")]
    pub port_mappings: Vec<PortMapping>,
    /// Labels, returned by listings.
    #[prost(map = "string, string", tag = "6")]
    pub labels: HashMap<String, String>,
}

/// `runtime.v1.RunPodSandboxRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxRequest {
    /// What to run.
    #[prost(message, optional, tag = "1")]
    pub config: Option<PodSandboxConfig>,
    /// Runtime handler (empty: the default, runc).
    #[prost(string, tag = "2")]
    pub runtime_handler: String,
}

/// `runtime.v1.RunPodSandboxResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxResponse {
    /// The new sandbox's id.
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

/// `runtime.v1.PodSandboxStatusRequest`, also the shape of Stop/RemovePodSandboxRequest
/// (`pod_sandbox_id` is field 1 in all three).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxIdRequest {
    /// The sandbox.
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

/// `runtime.v1.PodSandboxStatusResponse` (without the verbose info).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusResponse {
    /// The sandbox's status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<PodSandboxStatus>,
}

/// `runtime.v1.PodSandboxStatus` (the fields the harness uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatus {
    /// Sandbox id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// 0 SANDBOX_READY, 1 SANDBOX_NOTREADY.
    #[prost(int32, tag = "3")]
    pub state: i32,
    /// The pod's network.
    #[prost(message, optional, tag = "5")]
    pub network: Option<PodSandboxNetworkStatus>,
}

/// `runtime.v1.PodSandboxNetworkStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxNetworkStatus {
    /// The pod's IP address.
    #[prost(string, tag = "1")]
    pub ip: String,
}

/// An empty response (StopPodSandboxResponse, RemovePodSandboxResponse).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// A CRI connection over containerd's Unix socket.
#[derive(Debug, Clone)]
pub struct CriClient {
    grpc: tonic::client::Grpc<Channel>,
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
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    async fn call<Q, R>(&mut self, method: &'static str, req: Q) -> Result<R, tonic::Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("CRI connection: {e}")))?;
        let codec = tonic_prost::ProstCodec::<Q, R>::default();
        let path = PathAndQuery::from_static(method);
        let resp = self
            .grpc
            .unary(tonic::Request::new(req), path, codec)
            .await?;
        Ok(resp.into_inner())
    }

    /// `RuntimeService/Version`.
    pub async fn version(&mut self) -> Result<VersionResponse, tonic::Status> {
        let req = VersionRequest {
            version: "v1".into(),
        };
        self.call("/runtime.v1.RuntimeService/Version", req).await
    }

    /// `RuntimeService/Status`.
    pub async fn status(&mut self) -> Result<StatusResponse, tonic::Status> {
        let req = StatusRequest { verbose: false };
        self.call("/runtime.v1.RuntimeService/Status", req).await
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
        let resp: RunPodSandboxResponse = self
            .call("/runtime.v1.RuntimeService/RunPodSandbox", req)
            .await?;
        Ok(resp.pod_sandbox_id)
    }

    /// `RuntimeService/PodSandboxStatus`.
    pub async fn pod_sandbox_status(
        &mut self,
        id: &str,
    ) -> Result<PodSandboxStatus, tonic::Status> {
        let req = PodSandboxIdRequest {
            pod_sandbox_id: id.into(),
        };
        let resp: PodSandboxStatusResponse = self
            .call("/runtime.v1.RuntimeService/PodSandboxStatus", req)
            .await?;
        resp.status
            .ok_or_else(|| tonic::Status::internal("PodSandboxStatus answered without a status"))
    }

    /// `RuntimeService/StopPodSandbox` (tears down the pod's network).
    pub async fn stop_pod_sandbox(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = PodSandboxIdRequest {
            pod_sandbox_id: id.into(),
        };
        let _: Empty = self
            .call("/runtime.v1.RuntimeService/StopPodSandbox", req)
            .await?;
        Ok(())
    }

    /// `RuntimeService/RemovePodSandbox`.
    pub async fn remove_pod_sandbox(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = PodSandboxIdRequest {
            pod_sandbox_id: id.into(),
        };
        let _: Empty = self
            .call("/runtime.v1.RuntimeService/RemovePodSandbox", req)
            .await?;
        Ok(())
    }
}
