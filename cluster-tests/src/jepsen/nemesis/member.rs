//! Membership change under load: a member (the leader half of the time) is removed from the
//! cluster and its host destroyed; at heal a fresh member with an empty data directory is added,
//! so the cluster returns to its size.

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use rand::rngs::StdRng;

use super::{pick_target, Nemesis};
use crate::jepsen::hosts::StoreHosts;

#[derive(Default)]
pub(super) struct Member {
    removed: bool,
}

impl Nemesis for Member {
    fn inject<'a>(
        &'a mut self,
        hosts: &'a mut StoreHosts,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let (i, leader) = pick_target(hosts, rng).await;
            let name = hosts.name(i).to_owned();
            // A member added by the last heal may still be catching up, and the store (as
            // etcd) refuses a removal that would leave too few members in sync: retry a while.
            let mut attempt = 0;
            while let Err(e) = hosts.remove_member(i).await {
                attempt += 1;
                if attempt == 20 {
                    return Err(e);
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            self.removed = true;
            let role = if leader { " (the leader)" } else { "" };
            Ok(format!("member remove {name}{role}"))
        })
    }

    fn heal<'a>(&'a mut self, hosts: &'a mut StoreHosts) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            if !std::mem::take(&mut self.removed) {
                return Ok("nothing to add".to_owned());
            }
            // The cluster may still be electing after the removal: retry for a while.
            let mut last = None;
            for _ in 0..20 {
                match hosts.add_member().await {
                    Ok(i) => return Ok(format!("member add {}", hosts.name(i))),
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt"))).context("member add")
        })
    }
}
