//! Network partitions between members, chosen at random: majority/minority halves, the leader
//! isolated, a bridge (two halves sharing one member), or one-way loss (one half drops what the
//! other sends). Clients on the machine still reach every member. Healed by removing the rules.

use anyhow::Result;
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::Nemesis;
use crate::jepsen::hosts::StoreHosts;

pub(super) struct Partition;

fn names(hosts: &StoreHosts, group: &[usize]) -> String {
    let names: Vec<&str> = group.iter().map(|&i| hosts.name(i)).collect();
    format!("[{}]", names.join(" "))
}

impl Nemesis for Partition {
    fn inject<'a>(
        &'a mut self,
        hosts: &'a mut StoreHosts,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let mut members = hosts.active();
            members.shuffle(rng);
            let half = members.len() / 2;
            match rng.random_range(0..4) {
                0 => {
                    let (minority, majority) = members.split_at(half);
                    hosts.partition(&[minority.to_vec(), majority.to_vec()])?;
                    Ok(format!(
                        "partition majority/minority {} | {}",
                        names(hosts, majority),
                        names(hosts, minority)
                    ))
                }
                1 => {
                    let leader = hosts.leader().await.unwrap_or(members[0]);
                    let rest: Vec<usize> = members.into_iter().filter(|&m| m != leader).collect();
                    hosts.partition(&[vec![leader], rest.clone()])?;
                    Ok(format!(
                        "partition leader isolated [{}] | {}",
                        hosts.name(leader),
                        names(hosts, &rest)
                    ))
                }
                2 => {
                    // e.g. [a b c] and [c d e]: c talks to everybody.
                    let bridge = members[half];
                    let left = members[..=half].to_vec();
                    let right = members[half..].to_vec();
                    hosts.partition(&[left.clone(), right.clone()])?;
                    Ok(format!(
                        "partition bridge {} {} via {}",
                        names(hosts, &left),
                        names(hosts, &right),
                        hosts.name(bridge)
                    ))
                }
                _ => {
                    let (from, to) = members.split_at(half.max(1));
                    hosts.drop_one_way(from, to)?;
                    Ok(format!(
                        "one-way loss: {} drops what {} sends",
                        names(hosts, to),
                        names(hosts, from)
                    ))
                }
            }
        })
    }

    fn heal<'a>(&'a mut self, hosts: &'a mut StoreHosts) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            for i in hosts.active() {
                hosts.heal_network(i)?;
            }
            Ok("network healed".to_owned())
        })
    }
}
