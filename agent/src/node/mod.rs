//! The agent's Node: registration ([`registration`]), the heartbeat Lease ([`lease`]), the
//! node status with its conditions ([`status`]) and the pod CIDR handed to the runtime
//! ([`pod_cidr`]).

pub mod lease;
pub mod pod_cidr;
pub mod registration;
pub mod status;

use std::{net::IpAddr, sync::Arc};

use crate::{
    config::Flags,
    machine::{MachineInfo, PressureSource},
    runtime::Runtime,
};

/// What the node loops share.
#[derive(Clone)]
pub struct NodeCtx {
    pub client: kube::Client,
    pub name: String,
    pub ip: IpAddr,
    pub flags: Arc<Flags>,
    pub machine: MachineInfo,
    pub pressure: PressureSource,
    pub runtime: Arc<dyn Runtime>,
}

/// Kubernetes' name for this machine's architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
