//! The node's heartbeat: a `coordination.k8s.io/v1` Lease named after the node in
//! `kube-node-lease`, owned by the Node, renewed every `--node-lease-renew-interval`.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::{
    api::{
        coordination::v1::{Lease, LeaseSpec},
        core::v1::Node,
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference},
};
use kube::{
    api::{ObjectMeta, PostParams},
    Api,
};

use super::NodeCtx;

/// The namespace of node leases.
pub const NAMESPACE: &str = "kube-node-lease";

/// Creates or renews the lease once. `latest` is the lease as this agent last wrote it: as
/// the kubelet does, a renewal replaces it without reading it first, and reads the lease
/// only when there is none (at start, and after a failed renewal, e.g. a conflict).
pub async fn renew(ctx: &NodeCtx, latest: &mut Option<Lease>) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    let now = MicroTime(Timestamp::now());
    let current = match latest.take() {
        Some(lease) => Some(lease),
        None => leases.get_opt(&ctx.name).await?,
    };
    match current {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(ctx.name.clone());
            spec.lease_duration_seconds = Some(ctx.flags.node_lease_duration_seconds);
            *latest = Some(
                leases
                    .replace(&ctx.name, &PostParams::default(), &lease)
                    .await?,
            );
        }
        None => {
            let owner = Api::<Node>::all(ctx.client.clone())
                .get_opt(&ctx.name)
                .await?
                .and_then(|n| n.metadata.uid)
                .map(|uid| OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: ctx.name.clone(),
                    uid,
                    ..Default::default()
                });
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(ctx.name.clone()),
                    namespace: Some(NAMESPACE.into()),
                    owner_references: owner.map(|o| vec![o]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(ctx.name.clone()),
                    lease_duration_seconds: Some(ctx.flags.node_lease_duration_seconds),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            *latest = Some(leases.create(&PostParams::default(), &lease).await?);
        }
    }
    Ok(())
}

/// Renews the lease for ever; a failed renewal is retried after a second.
pub async fn run(ctx: NodeCtx) {
    let mut latest = None;
    loop {
        let wait = match renew(&ctx, &mut latest).await {
            Ok(()) => ctx.flags.node_lease_renew_interval,
            Err(e) => {
                tracing::warn!(error = %e, "renewing the node lease");
                Duration::from_secs(1)
            }
        };
        tokio::time::sleep(wait).await;
    }
}
