//! The scheduling framework: one small trait per extension point, the status every plugin
//! answers with, the per-cycle state plugins share, and the cluster events that can make a
//! rejected pod schedulable (they drive re-queueing).
//!
//! A plugin implements [`Plugin`] plus the extension points it takes part in, and says which
//! through the `as_*` methods. Every call gets the pod being scheduled ([`PodInfo`]) and a
//! node of the snapshot ([`NodeInfo`]); none does I/O.

use std::any::Any;

use crate::nodeinfo::{NodeInfo, PodInfo};

/// Score bounds after normalisation.
pub const MAX_NODE_SCORE: i64 = 100;

/// What a plugin concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The pod may go on.
    Success,
    /// The pod does not fit now; something changing in the cluster (or preemption) may help.
    Unschedulable,
    /// The pod does not fit and removing pods from the node would not help.
    UnschedulableAndUnresolvable,
    /// The plugin failed; the attempt is abandoned and retried after back-off.
    Error,
}

/// A plugin's answer: a code, the reasons users read (the "0/3 nodes are available" message is
/// built from them) and the plugin that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    pub plugin: &'static str,
}

impl Status {
    /// Success.
    pub fn success() -> Status {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// A status with `code` and reasons.
    pub fn new(code: Code, reasons: Vec<String>) -> Status {
        Status {
            code,
            reasons,
            plugin: "",
        }
    }

    /// Unschedulable for one reason.
    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status::new(Code::Unschedulable, vec![reason.into()])
    }

    /// UnschedulableAndUnresolvable for one reason.
    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, vec![reason.into()])
    }

    /// An internal error.
    pub fn error(message: impl Into<String>) -> Status {
        Status::new(Code::Error, vec![message.into()])
    }

    /// Whether the code is Success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the pod was rejected (either unschedulable code).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    /// The same status, attributed to `plugin`.
    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }
}

/// A change in the cluster that may make a pod rejected earlier fit now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterEvent {
    /// A node appeared.
    NodeAdded,
    /// A node's labels changed.
    NodeLabelsChanged,
    /// A node's taints changed.
    NodeTaintsChanged,
    /// A node's allocatable resources changed.
    NodeAllocatableChanged,
    /// A node was cordoned or uncordoned (`spec.unschedulable`).
    NodeSchedulableChanged,
    /// A node's image list changed.
    NodeImagesChanged,
    /// A pod bound to a node went away (deleted, or finished), freeing what it held.
    AssignedPodDeleted,
}

/// Data plugins compute once per cycle (PreFilter, PreScore) and read per node. A handful of
/// entries read for each of thousands of nodes: a short list beats hashing the key each time.
#[derive(Default)]
pub struct CycleState {
    values: Vec<(&'static str, Box<dyn Any + Send + Sync>)>,
}

impl CycleState {
    /// Stores `value` under `key` (by convention the plugin's name), replacing what was there.
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        match self.values.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = Box::new(value),
            None => self.values.push((key, Box::new(value))),
        }
    }

    /// The value stored under `key`, if it has type `T`.
    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.downcast_ref())
    }
}

/// What every plugin is: a name, the events that could make a pod it rejected schedulable,
/// and the extension points it implements.
pub trait Plugin: Send + Sync {
    /// The name used in the configuration file and in logs.
    fn name(&self) -> &'static str;
    /// Cluster events after which a pod this plugin rejected is worth retrying.
    fn events(&self) -> &'static [ClusterEvent] {
        &[]
    }
    /// This plugin as a PreFilter, if it is one.
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        None
    }
    /// This plugin as a Filter, if it is one.
    fn as_filter(&self) -> Option<&dyn Filter> {
        None
    }
    /// This plugin as a PreScore, if it is one.
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        None
    }
    /// This plugin as a Score, if it is one.
    fn as_score(&self) -> Option<&dyn Score> {
        None
    }
}

/// Runs once per cycle before filtering. A rejection rejects the pod on every node (its
/// reasons are the whole message); state written here is read by Filter.
pub trait PreFilter: Plugin {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[NodeInfo]) -> Status;
}

/// Says whether the pod may run on one node. Must not change anything; called for many nodes
/// in any order.
pub trait Filter: Plugin {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// Runs once per cycle after filtering with the feasible nodes and the whole snapshot;
/// state written here is read by Score.
pub trait PreScore: Plugin {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        feasible: &[&NodeInfo],
        all: &[NodeInfo],
    ) -> Status;
}

/// Ranks one feasible node. Raw scores of all feasible nodes then go through
/// [`Score::normalize`], which must leave each in `0..=MAX_NODE_SCORE`.
pub trait Score: Plugin {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status>;
    /// Maps raw scores to `0..=MAX_NODE_SCORE` (default: they already are).
    fn normalize(&self, _state: &CycleState, _scores: &mut [i64]) {}
}

/// Kubernetes' `DefaultNormalizeScore`: scales scores so the highest is `MAX_NODE_SCORE`
/// (with `reverse`, so the highest becomes 0); all-zero scores become 0 (or the maximum).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize() {
        let cases: Vec<(Vec<i64>, bool, Vec<i64>)> = vec![
            (vec![1, 2, 4], false, vec![25, 50, 100]),
            (vec![1, 2, 4], true, vec![75, 50, 0]),
            (vec![0, 0], false, vec![0, 0]),
            (vec![0, 0], true, vec![100, 100]),
            (vec![], false, vec![]),
        ];
        for (mut input, reverse, want) in cases {
            default_normalize(&mut input, reverse);
            assert_eq!(input, want);
        }
    }

    #[test]
    fn cycle_state_is_typed() {
        let mut s = CycleState::default();
        s.write("a", 5u32);
        assert_eq!(s.read::<u32>("a"), Some(&5));
        assert_eq!(s.read::<i64>("a"), None);
        assert_eq!(s.read::<u32>("b"), None);
    }
}
