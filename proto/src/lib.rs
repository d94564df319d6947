//! Generated protocol buffer code: the etcd v3 API (wire-compatible with etcd) and the
//! store's member-to-member protocol.

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
