//! SIGSTOP of a member's whole host (the leader half of the time), resumed at heal.

use anyhow::Result;
use futures::future::BoxFuture;
use rand::rngs::StdRng;

use super::{pick_target, Nemesis};
use crate::jepsen::hosts::StoreHosts;

#[derive(Default)]
pub(super) struct Pause {
    paused: Option<usize>,
}

impl Nemesis for Pause {
    fn inject<'a>(
        &'a mut self,
        hosts: &'a mut StoreHosts,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let (i, leader) = pick_target(hosts, rng).await;
            hosts.pause(i)?;
            self.paused = Some(i);
            let role = if leader { " (the leader)" } else { "" };
            Ok(format!("pause {}{role}", hosts.name(i)))
        })
    }

    fn heal<'a>(&'a mut self, hosts: &'a mut StoreHosts) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            match self.paused.take() {
                Some(i) => {
                    hosts.resume(i)?;
                    Ok(format!("resumed {}", hosts.name(i)))
                }
                None => Ok("nothing to resume".to_owned()),
            }
        })
    }
}
