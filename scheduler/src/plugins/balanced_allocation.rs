//! NodeResourcesBalancedAllocation: prefers nodes whose CPU and memory would be used in equal
//! shares after placing the pod: `(1 - standard deviation of the shares) * 100`.

use crate::{
    framework::{CycleState, Plugin, Score, Status, MAX_NODE_SCORE},
    nodeinfo::{NodeInfo, PodInfo},
};

pub const NAME: &str = "NodeResourcesBalancedAllocation";

/// The score for `(requested, allocatable)` pairs; shares are capped at 1.
pub fn balanced(pairs: &[(i64, i64)]) -> i64 {
    let fractions: Vec<f64> = pairs
        .iter()
        .filter(|(_, alloc)| *alloc > 0)
        .map(|(req, alloc)| (*req as f64 / *alloc as f64).min(1.0))
        .collect();
    if fractions.is_empty() {
        return 0;
    }
    let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
    let var = fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / fractions.len() as f64;
    ((1.0 - var.sqrt()) * MAX_NODE_SCORE as f64) as i64
}

/// The plugin.
pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl Score for BalancedAllocation {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(balanced(&[
            (
                node.non_zero_requested.milli_cpu + pod.summary.non_zero.milli_cpu,
                node.allocatable.milli_cpu,
            ),
            (
                node.non_zero_requested.memory + pod.summary.non_zero.memory,
                node.allocatable.memory,
            ),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores() {
        let cases: Vec<(Vec<(i64, i64)>, i64)> = vec![
            (vec![(50, 100), (50, 100)], 100),
            (vec![(0, 100), (100, 100)], 50),
            (vec![(25, 100), (75, 100)], 75),
            (vec![(300, 100), (100, 100)], 100),
            (vec![(10, 0), (10, 0)], 0),
        ];
        for (pairs, want) in cases {
            assert_eq!(balanced(&pairs), want, "{pairs:?}");
        }
    }
}
