//! An etcd-compatible replicated key-value store: the etcd v3 gRPC API over an MVCC key
//! space, replicated with openraft and stored in RocksDB.

pub mod apply;
pub mod bootstrap;
pub mod codec;
pub mod config;
pub mod db;
pub mod error;
pub mod lease;
pub mod metrics;
pub mod mvcc;
pub mod node;
pub mod raft;
pub mod schema;
pub mod server;
pub mod waiting;
pub mod watch;
