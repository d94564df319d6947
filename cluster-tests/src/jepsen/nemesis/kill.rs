//! kill -9 of a member's whole host (the leader half of the time), restarted with its data at
//! heal.

use anyhow::Result;
use futures::future::BoxFuture;
use rand::rngs::StdRng;

use super::{pick_target, Nemesis};
use crate::jepsen::hosts::StoreHosts;

#[derive(Default)]
pub(super) struct Kill {
    killed: Option<usize>,
}

impl Nemesis for Kill {
    fn inject<'a>(
        &'a mut self,
        hosts: &'a mut StoreHosts,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let (i, leader) = pick_target(hosts, rng).await;
            hosts.kill(i)?;
            self.killed = Some(i);
            let role = if leader { " (the leader)" } else { "" };
            Ok(format!("kill -9 {}{role}", hosts.name(i)))
        })
    }

    fn heal<'a>(&'a mut self, hosts: &'a mut StoreHosts) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            match self.killed.take() {
                Some(i) => {
                    hosts.restart(i)?;
                    Ok(format!("restarted {}", hosts.name(i)))
                }
                None => Ok("nothing to restart".to_owned()),
            }
        })
    }
}
