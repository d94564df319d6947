//! Raft plumbing: openraft's type configuration, the RocksDB log store, the state machine
//! (the MVCC key space) with its snapshots, and the gRPC network between members.

mod log_store;
pub mod network;
pub mod snapshot;
mod state_machine;
pub mod wire;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use log_store::{LogDurability, LogStore};
pub use state_machine::{StateMachine, StoreState};

use crate::apply::Proposed;

/// A member as Raft membership records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `--name` (empty until an added member starts and publishes it).
    pub name: String,
    /// Where the member listens for peers.
    pub peer_urls: Vec<String>,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_urls.join(","))
    }
}

openraft::declare_raft_types!(
    /// The store's Raft types: a log entry carries a batch of commands (concurrent proposals
    /// share one entry). The state machine hands their results to the waiting proposers
    /// itself (`waiting`), so Raft's own response is empty.
    pub TypeConfig:
        D = Proposed,
        R = (),
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

/// A snapshot's data as Raft reads and writes it: a file, so a snapshot of a large key space
/// is streamed instead of held in memory.
pub type SnapshotData = tokio::fs::File;

/// The Raft handle of a member.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id of this configuration.
pub type LogId = openraft::LogId<u64>;
/// Membership as stored.
pub type StoredMembership = openraft::StoredMembership<u64, Member>;
/// Storage errors of this configuration.
pub type StorageError = openraft::StorageError<u64>;
