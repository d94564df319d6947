//! Nemeses: the faults the suite injects, one file each behind the [`Nemesis`] trait, and the
//! [`Schedule`] that injects them at random (from the seed) and heals between them.
//!
//! A clock nemesis is not offered: containers share the machine's kernel clock, so a jump in
//! one member's clock would be a jump of the machine's (and needs CAP_SYS_TIME). Lease safety
//! is tested under pauses instead, which is how a lease holder sees a stalled clock.

mod host;
mod member;
mod partition;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Result};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use serde::Serialize;

use super::hosts::StoreHosts;

/// One kind of fault.
pub trait Nemesis: Send {
    /// Injects one fault (choosing its target with `rng`) and says what it did. The fault
    /// lasts until [`Nemesis::heal`].
    fn inject<'a>(
        &'a mut self,
        hosts: &'a mut StoreHosts,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<String>>;

    /// Undoes what [`Nemesis::inject`] did (restart, resume, reconnect, re-add).
    fn heal<'a>(&'a mut self, hosts: &'a mut StoreHosts) -> BoxFuture<'a, Result<String>>;
}

/// The nemeses a run can combine (`NEMESIS=kill,partition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    /// kill -9 of the leader or of a random member, restarted at heal.
    Kill,
    /// SIGSTOP of the leader's or a random member's whole host, resumed at heal.
    Pause,
    /// Network partitions: majority/minority, leader isolated, bridge, one-way loss.
    Partition,
    /// A member removed from the cluster under load and a fresh one added.
    Member,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Kill, Kind::Pause, Kind::Partition, Kind::Member];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::Member => "member",
        }
    }

    fn build(self) -> Box<dyn Nemesis> {
        match self {
            Kind::Kill => Box::new(host::HostFault::kill()),
            Kind::Pause => Box::new(host::HostFault::pause()),
            Kind::Partition => Box::new(partition::Partition),
            Kind::Member => Box::new(member::Member::default()),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Kind> {
        match Kind::ALL.iter().find(|k| k.name() == s) {
            Some(k) => Ok(*k),
            None => bail!(
                "unknown nemesis {s:?} (known: {}, or none)",
                Kind::ALL.map(Kind::name).join(", ")
            ),
        }
    }
}

/// The kinds' names joined by `sep` (`kill+pause`), or `none`.
pub fn names(kinds: &[Kind], sep: &str) -> String {
    if kinds.is_empty() {
        return "none".to_owned();
    }
    kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(sep)
}

/// Parses `none`, `all` or a comma-separated list of nemesis names.
pub fn parse_kinds(s: &str) -> Result<Vec<Kind>> {
    match s.trim() {
        "" | "none" => Ok(Vec::new()),
        "all" => Ok(Kind::ALL.to_vec()),
        list => {
            let mut kinds = list
                .split(',')
                .map(|k| k.trim().parse())
                .collect::<Result<Vec<Kind>>>()?;
            kinds.sort();
            kinds.dedup();
            Ok(kinds)
        }
    }
}

/// One injected fault and how long it lasted, from the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct FaultWindow {
    pub kind: Kind,
    pub what: String,
    /// False when the injection itself failed (`what` says why).
    pub injected: bool,
    pub start: Duration,
    pub end: Duration,
    /// What healing did, or why it failed.
    pub healed: String,
}

/// When faults are injected: a quiet gap, then a fault held for a while, then heal.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub gap: (Duration, Duration),
    pub hold: (Duration, Duration),
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            gap: (Duration::from_secs(2), Duration::from_secs(4)),
            hold: (Duration::from_secs(3), Duration::from_secs(6)),
        }
    }
}

/// The set of nemeses of a run, built from their kinds.
pub struct Schedule {
    nemeses: Vec<(Kind, Box<dyn Nemesis>)>,
    pub timing: Timing,
}

impl Schedule {
    pub fn new(kinds: &[Kind], timing: Timing) -> Schedule {
        Schedule {
            nemeses: kinds.iter().map(|k| (*k, k.build())).collect(),
            timing,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nemeses.is_empty()
    }

    /// How many nemeses the schedule chooses from.
    pub fn len(&self) -> usize {
        self.nemeses.len()
    }

    /// Injects nemesis number `which` and returns its description.
    pub async fn inject(
        &mut self,
        which: usize,
        hosts: &mut StoreHosts,
        rng: &mut StdRng,
    ) -> (Kind, Result<String>) {
        let (kind, nemesis) = &mut self.nemeses[which];
        (*kind, nemesis.inject(hosts, rng).await)
    }

    /// Heals nemesis number `which`.
    pub async fn heal(&mut self, which: usize, hosts: &mut StoreHosts) -> Result<String> {
        self.nemeses[which].1.heal(hosts).await
    }
}

/// Picks the leader with probability 1/2 (if one is known), else a random active member.
/// Returns the member and whether it is the leader (however it was chosen), so the report
/// says which faults hit the leader.
pub(super) async fn pick_target(hosts: &mut StoreHosts, rng: &mut StdRng) -> (usize, bool) {
    use rand::Rng;
    let leader = hosts.leader().await;
    let on_purpose = rng.random_bool(0.5);
    let active = hosts.active();
    let random = active[rng.random_range(0..active.len())];
    let target = match leader {
        Some(leader) if on_purpose => leader,
        _ => random,
    };
    (target, Some(target) == leader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_lists_parse_and_unknown_names_are_refused_by_name() {
        assert_eq!(parse_kinds("none").unwrap(), Vec::<Kind>::new());
        assert_eq!(parse_kinds("all").unwrap(), Kind::ALL.to_vec());
        assert_eq!(
            parse_kinds("partition,kill,kill").unwrap(),
            vec![Kind::Kill, Kind::Partition]
        );
        let err = parse_kinds("kill,clock").unwrap_err().to_string();
        assert!(err.contains("\"clock\""), "{err}");
        assert_eq!(names(&[Kind::Kill, Kind::Pause], "+"), "kill+pause");
        assert_eq!(names(&[], ","), "none");
    }
}
