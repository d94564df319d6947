//! Generated protocol buffer code: the etcd v3 API (wire-compatible with etcd), the
//! store's member-to-member protocol and the subset of the Container Runtime Interface that
//! the node agent uses (wire-compatible with containerd's CRI plugin), and gRPC's health checking
//! protocol for the agent's `grpc` probes.

#![allow(clippy::all, missing_docs)]

/// etcd's key-value records (`mvccpb`).
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's v3 gRPC services (`etcdserverpb`).
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// The store's peer protocol (`peerpb`).
pub mod peerpb {
    tonic::include_proto!("peerpb");
}

/// gRPC's health checking protocol (`grpc.health.v1`), what `grpc` probes call.
pub mod health {
    tonic::include_proto!("grpc.health.v1");
}

/// The Container Runtime Interface v1 (`runtime.v1`), the part the agent uses.
pub mod cri {
    tonic::include_proto!("runtime.v1");
}
