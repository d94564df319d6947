//! Cluster harness: starts members of our store (or real etcd) as processes on loopback.
