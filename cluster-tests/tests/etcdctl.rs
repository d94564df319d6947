//! The reference etcdctl 3.4 against a 3-member cluster.
//!
//! The flavor comes from `STORE_FLAVOR` (see the crate README): the same tests run against
//! our store (default) and against real etcd (`STORE_FLAVOR=etcd`), which is how the expected
//! outputs and error texts below were taken. Every test starts its own cluster.

mod common;

#[path = "etcdctl/kv.rs"]
mod kv;

#[path = "etcdctl/txn.rs"]
mod txn;

#[path = "etcdctl/watch.rs"]
mod watch;

#[path = "etcdctl/lease.rs"]
mod lease;

#[path = "etcdctl/members.rs"]
mod members;

#[path = "etcdctl/maintenance.rs"]
mod maintenance;

#[path = "etcdctl/tls.rs"]
mod tls;

#[path = "etcdctl/watch_api.rs"]
mod watch_api;

#[path = "etcdctl/forwarding.rs"]
mod forwarding;
