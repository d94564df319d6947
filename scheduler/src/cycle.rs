//! The scheduling cycle as a pure function over a snapshot (the nodes with their pods): run
//! the PreFilters, filter nodes (starting where the previous cycle stopped, and stopping once
//! enough feasible nodes are found, as kube-scheduler's `percentageOfNodesToScore`), score the
//! feasible ones with the weighted, normalised Score plugins and pick the best, ties broken at
//! random. A pod that fits nowhere gets a [`FitError`] whose message is kube-scheduler's.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::Arc,
};

use rand::Rng;

use crate::{
    framework::{Code, CycleState, Plugin, Status, MAX_NODE_SCORE},
    nodeinfo::{NodeInfo, PodInfo},
};

/// Fewest nodes to look at before stopping early (kube-scheduler's `minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES: usize = 100;
/// Least percentage of nodes to look at (`minFeasibleNodesPercentageToFind`).
const MIN_FEASIBLE_PERCENTAGE: usize = 5;

/// The enabled plugins of a profile.
#[derive(Clone, Default)]
pub struct Framework {
    pub pre_filters: Vec<Arc<dyn Plugin>>,
    pub filters: Vec<Arc<dyn Plugin>>,
    pub pre_scores: Vec<Arc<dyn Plugin>>,
    /// Score plugins with their weights.
    pub scores: Vec<(Arc<dyn Plugin>, i64)>,
    /// Share of nodes to find feasible before scoring (0: adaptive, as kube-scheduler).
    pub percentage_of_nodes_to_score: u32,
}

impl Framework {
    /// Every distinct plugin, for event registration.
    pub fn plugins(&self) -> Vec<Arc<dyn Plugin>> {
        let mut out: Vec<Arc<dyn Plugin>> = Vec::new();
        let all = self
            .pre_filters
            .iter()
            .chain(&self.filters)
            .chain(&self.pre_scores)
            .chain(self.scores.iter().map(|(p, _)| p));
        for p in all {
            if !out.iter().any(|o| o.name() == p.name()) {
                out.push(p.clone());
            }
        }
        out
    }

    /// How many feasible nodes to find among `all` before scoring.
    pub fn feasible_nodes_to_find(&self, all: usize) -> usize {
        if all < MIN_FEASIBLE_NODES || self.percentage_of_nodes_to_score >= 100 {
            return all;
        }
        let pct = match self.percentage_of_nodes_to_score as usize {
            0 => (50usize.saturating_sub(all / 125)).max(MIN_FEASIBLE_PERCENTAGE),
            p => p,
        };
        (all * pct / 100).max(MIN_FEASIBLE_NODES)
    }
}

/// Where the pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    /// Nodes filtered.
    pub evaluated: usize,
    /// Of which feasible.
    pub feasible: usize,
    /// Where the next cycle should start filtering.
    pub next_start: usize,
}

/// Why the pod fits no node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    /// A PreFilter's rejection (then no per-node reasons).
    pub pre_filter_message: Option<String>,
    /// Each reason with how many nodes gave it.
    pub reasons: BTreeMap<String, usize>,
    /// The plugins that rejected the pod somewhere (for re-queueing).
    pub plugins: BTreeSet<&'static str>,
}

impl fmt::Display for FitError {
    /// kube-scheduler's message: `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had
    /// untolerated taint {dedicated: gpu}.` (counts and reasons sorted as strings).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_nodes)?;
        if let Some(m) = &self.pre_filter_message {
            return write!(f, " {m}.");
        }
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        parts.sort();
        if !parts.is_empty() {
            write!(f, " {}.", parts.join(", "))?;
        }
        Ok(())
    }
}

/// A cycle's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleError {
    /// No node fits.
    Unschedulable(FitError),
    /// A plugin failed.
    Plugin(Status),
}

/// Schedules `pod` onto one of `nodes`, filtering from index `start`.
pub fn schedule<R: Rng>(
    fw: &Framework,
    pod: &PodInfo,
    nodes: &[NodeInfo],
    start: usize,
    rng: &mut R,
) -> Result<Placement, CycleError> {
    let fit_error = |plugins, reasons, pre: Option<String>| {
        CycleError::Unschedulable(FitError {
            num_nodes: nodes.len(),
            pre_filter_message: pre,
            reasons,
            plugins,
        })
    };
    if nodes.is_empty() {
        return Err(fit_error(BTreeSet::new(), BTreeMap::new(), None));
    }
    let mut state = CycleState::default();
    for p in &fw.pre_filters {
        let Some(pf) = p.as_pre_filter() else {
            continue;
        };
        let s = pf.pre_filter(&mut state, pod, nodes);
        match s.code {
            Code::Success => {}
            Code::Error => return Err(CycleError::Plugin(s.with_plugin(p.name()))),
            _ => {
                return Err(fit_error(
                    BTreeSet::from([p.name()]),
                    BTreeMap::new(),
                    Some(s.reasons.join(", ")),
                ))
            }
        }
    }

    // Filter.
    let want = fw.feasible_nodes_to_find(nodes.len());
    let start = start % nodes.len();
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(nodes.len()));
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut rejectors = BTreeSet::new();
    let mut evaluated = 0;
    for i in 0..nodes.len() {
        let node = &nodes[(start + i) % nodes.len()];
        evaluated += 1;
        let mut ok = true;
        for p in &fw.filters {
            let Some(f) = p.as_filter() else { continue };
            let s = f.filter(&state, pod, node);
            match s.code {
                Code::Success => continue,
                Code::Error => return Err(CycleError::Plugin(s.with_plugin(p.name()))),
                _ => {
                    for r in s.reasons {
                        *reasons.entry(r).or_default() += 1;
                    }
                    rejectors.insert(p.name());
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            feasible.push(node);
            if feasible.len() >= want {
                break;
            }
        }
    }
    let next_start = (start + evaluated) % nodes.len();
    if feasible.is_empty() {
        return Err(fit_error(rejectors, reasons, None));
    }
    let placement = |node: &NodeInfo, feasible: usize| Placement {
        node: node.name.clone(),
        evaluated,
        feasible,
        next_start,
    };
    if feasible.len() == 1 {
        return Ok(placement(feasible[0], 1));
    }

    // Score.
    for p in &fw.pre_scores {
        let Some(ps) = p.as_pre_score() else { continue };
        let s = ps.pre_score(&mut state, pod, &feasible, nodes);
        if !s.is_success() {
            return Err(CycleError::Plugin(s.with_plugin(p.name())));
        }
    }
    let mut totals = vec![0i64; feasible.len()];
    let mut scores = vec![0i64; feasible.len()];
    for (p, weight) in &fw.scores {
        let Some(sc) = p.as_score() else { continue };
        for (slot, node) in scores.iter_mut().zip(&feasible) {
            *slot = sc
                .score(&state, pod, node)
                .map_err(|s| CycleError::Plugin(s.with_plugin(p.name())))?;
        }
        sc.normalize(&state, &mut scores);
        for (t, s) in totals.iter_mut().zip(&scores) {
            *t += (*s).clamp(0, MAX_NODE_SCORE) * *weight;
        }
    }
    Ok(placement(feasible[select(&totals, rng)], feasible.len()))
}

/// The index of the highest total; among equals, each is picked with the same probability.
pub fn select<R: Rng>(totals: &[i64], rng: &mut R) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, t) in totals.iter().enumerate() {
        if *t > totals[best] {
            best = i;
            ties = 1;
        } else if *t == totals[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
#[path = "cycle_tests.rs"]
mod tests;
