//! Faults on one member's whole host, the leader half of the time: kill -9 (restarted with its
//! data at heal) and pause (SIGSTOP of the container, resumed at heal). Both pick a target,
//! act on it and undo the act at heal; only the acts differ.

use anyhow::Result;
use futures::future::BoxFuture;
use rand::rngs::StdRng;

use super::{pick_target, Nemesis};
use crate::jepsen::hosts::StoreHosts;

type Act = fn(&mut StoreHosts, usize) -> Result<()>;

pub(super) struct HostFault {
    /// What the fault is called in the report: `kill -9`, `pause`.
    verb: &'static str,
    act: Act,
    /// What heal did: `restarted`, `resumed`.
    undo_verb: &'static str,
    undo: Act,
    target: Option<usize>,
}

impl HostFault {
    pub(super) fn kill() -> HostFault {
        HostFault {
            verb: "kill -9",
            act: StoreHosts::kill,
            undo_verb: "restarted",
            undo: StoreHosts::restart,
            target: None,
        }
    }

    pub(super) fn pause() -> HostFault {
        HostFault {
            verb: "pause",
            act: StoreHosts::pause,
            undo_verb: "resumed",
            undo: StoreHosts::resume,
            target: None,
        }
    }
}

impl Nemesis for HostFault {
    fn inject<'a>(
        &'a mut self,
        hosts: &'a mut StoreHosts,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let (i, leader) = pick_target(hosts, rng).await;
            (self.act)(hosts, i)?;
            self.target = Some(i);
            let role = if leader { " (the leader)" } else { "" };
            Ok(format!("{} {}{role}", self.verb, hosts.name(i)))
        })
    }

    fn heal<'a>(&'a mut self, hosts: &'a mut StoreHosts) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            match self.target.take() {
                Some(i) => {
                    (self.undo)(hosts, i)?;
                    Ok(format!("{} {}", self.undo_verb, hosts.name(i)))
                }
                None => Ok(format!("nothing {}", self.undo_verb)),
            }
        })
    }
}
