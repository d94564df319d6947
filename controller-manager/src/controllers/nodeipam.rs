//! Node IPAM (with --allocate-node-cidrs): each Node without `spec.podCIDR` gets the lowest
//! free subnet of --node-cidr-mask-size bits from --cluster-cidr (IPv4). A deleted Node's
//! subnet is free again, since the free ones are those no cached Node holds.

use std::{
    collections::HashSet,
    net::Ipv4Addr,
    sync::{Arc, Mutex},
};

use client::{
    controller::{self, Action, Key, Reconciler},
    workqueue::WorkQueue,
};
use futures::{future::BoxFuture, FutureExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::Ctx;

/// The `--controllers` name.
pub const NAME: &str = "nodeipam";

/// Why an allocation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (retried with back-off).
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Every subnet of the cluster CIDR is taken.
    #[error("no pod CIDR left in {0}")]
    Exhausted(String),
}

/// An IPv4 range cut into equal subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidrs {
    base: u32,
    prefix: u8,
    sub_prefix: u8,
}

impl Cidrs {
    /// `cluster` (e.g. `10.244.0.0/16`) cut into /`mask` subnets.
    pub fn new(cluster: &str, mask: u8) -> Result<Cidrs, String> {
        let (ip, len) = cluster
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR {cluster:?}"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR {cluster:?} (IPv4 only)"))?;
        let prefix: u8 = len
            .parse()
            .map_err(|_| format!("invalid CIDR {cluster:?}"))?;
        if prefix > 32 || mask > 32 || mask < prefix {
            return Err(format!("node CIDR mask /{mask} does not fit in {cluster}"));
        }
        if mask - prefix > 24 {
            return Err(format!("too many /{mask} subnets in {cluster}"));
        }
        let netmask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Cidrs {
            base: u32::from(ip) & netmask,
            prefix,
            sub_prefix: mask,
        })
    }

    /// How many subnets there are.
    pub fn count(&self) -> u32 {
        1 << (self.sub_prefix - self.prefix)
    }

    /// Subnet `i` as text.
    pub fn nth(&self, i: u32) -> String {
        let step = if self.sub_prefix == 32 {
            1
        } else {
            1u32 << (32 - self.sub_prefix)
        };
        format!(
            "{}/{}",
            Ipv4Addr::from(self.base + i * step),
            self.sub_prefix
        )
    }

    /// The lowest subnet not in `used`.
    pub fn first_free(&self, used: &HashSet<String>) -> Option<String> {
        (0..self.count())
            .map(|i| self.nth(i))
            .find(|c| !used.contains(c))
    }
}

struct Ipam {
    ctx: Arc<Ctx>,
    cidrs: Cidrs,
    /// Given out but maybe not yet in the cache: (node, cidr).
    pending: Mutex<Vec<(String, String)>>,
}

/// Registers the handlers; the future runs the worker (none without --allocate-node-cidrs).
pub fn setup(ctx: &Arc<Ctx>) -> BoxFuture<'static, ()> {
    let cidrs = match (&ctx.config.cluster_cidr, ctx.config.allocate_node_cidrs) {
        (Some(c), true) => Cidrs::new(c, ctx.config.node_cidr_mask_size),
        _ => {
            tracing::info!("node IPAM off (needs --allocate-node-cidrs and --cluster-cidr)");
            return futures::future::ready(()).boxed();
        }
    };
    let cidrs = match cidrs {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "node IPAM off: bad --cluster-cidr");
            return futures::future::ready(()).boxed();
        }
    };
    let queue = WorkQueue::<Key>::new();
    let q = queue.clone();
    ctx.nodes.on_change(move |c| q.add(Key::of(c.object())));
    let r = Arc::new(Ipam {
        ctx: ctx.clone(),
        cidrs,
        pending: Mutex::default(),
    });
    // One worker: allocations must not race each other.
    controller::run(NAME, r, queue, 1, Some(ctx.metrics.clone())).boxed()
}

impl Reconciler for Ipam {
    type Error = Error;

    async fn reconcile(&self, key: &Key) -> Result<Action, Error> {
        let nodes = self.ctx.nodes.list();
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Pending allocations the cache now shows (or whose node is gone) are settled.
        pending.retain(|(n, _)| {
            nodes.iter().any(|x| {
                x.metadata.name.as_deref() == Some(n)
                    && x.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_none()
            })
        });
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = pending.clone();
        let Some(node) = self.ctx.nodes.get(key) else {
            return Ok(Action::Done);
        };
        if node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_ref())
            .is_some_and(|c| !c.is_empty())
        {
            return Ok(Action::Done);
        }
        if let Some((_, c)) = pending.iter().find(|(n, _)| *n == key.name) {
            tracing::debug!(node = %key.name, cidr = %c, "allocation pending");
            return Ok(Action::Done);
        }
        let mut used: HashSet<String> = nodes
            .iter()
            .filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
            .collect();
        used.extend(pending.iter().map(|(_, c)| c.clone()));
        let cidr = self
            .cidrs
            .first_free(&used)
            .ok_or_else(|| Error::Exhausted(self.cidrs.nth(0)))?;
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        let body = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
        match api
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                tracing::info!(node = %key.name, cidr = %cidr, "allocated pod CIDR");
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((key.name.clone(), cidr));
                Ok(Action::Done)
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::Done),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_cut_in_order_and_reused() {
        let c = Cidrs::new("10.244.0.0/16", 24).unwrap();
        assert_eq!(c.count(), 256);
        assert_eq!(c.nth(0), "10.244.0.0/24");
        assert_eq!(c.nth(255), "10.244.255.0/24");
        let mut used = HashSet::new();
        assert_eq!(c.first_free(&used).unwrap(), "10.244.0.0/24");
        used.insert("10.244.0.0/24".to_string());
        used.insert("10.244.2.0/24".to_string());
        assert_eq!(c.first_free(&used).unwrap(), "10.244.1.0/24");
        let small = Cidrs::new("10.0.0.0/23", 24).unwrap();
        let full: HashSet<String> = ["10.0.0.0/24".to_string(), "10.0.1.0/24".to_string()].into();
        assert_eq!(small.first_free(&full), None);
        assert!(Cidrs::new("10.0.0.0/24", 16).is_err());
        assert!(Cidrs::new("fd00::/64", 80).is_err());
        assert_eq!(Cidrs::new("10.1.2.3/16", 24).unwrap().nth(1), "10.1.1.0/24");
    }
}
