//! The in-tree plugins, one file each, and the registry mapping their names to factories.
//! The default profile lists them in kube-scheduler's order with its weights.

pub mod balanced_allocation;
pub mod image_locality;
pub mod least_allocated;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod selector_spread;
pub mod taint_toleration;

use std::sync::Arc;

use crate::framework::Plugin;

/// Builds a plugin.
pub type Factory = fn() -> Arc<dyn Plugin>;

/// Every plugin the scheduler knows, by name.
pub fn registry() -> Vec<(&'static str, Factory)> {
    vec![
        (node_unschedulable::NAME, || {
            Arc::new(node_unschedulable::NodeUnschedulable)
        }),
        (node_name::NAME, || Arc::new(node_name::NodeName)),
        (taint_toleration::NAME, || {
            Arc::new(taint_toleration::TaintToleration)
        }),
        (node_affinity::NAME, || {
            Arc::new(node_affinity::NodeAffinity)
        }),
        (node_ports::NAME, || Arc::new(node_ports::NodePorts)),
        (node_resources_fit::NAME, || {
            Arc::new(node_resources_fit::NodeResourcesFit)
        }),
        (least_allocated::NAME, || {
            Arc::new(least_allocated::LeastAllocated)
        }),
        (balanced_allocation::NAME, || {
            Arc::new(balanced_allocation::BalancedAllocation)
        }),
        (image_locality::NAME, || {
            Arc::new(image_locality::ImageLocality)
        }),
        (selector_spread::NAME, || {
            Arc::new(selector_spread::SelectorSpread)
        }),
    ]
}

/// The filters enabled by default, in the order they run.
pub const DEFAULT_FILTERS: &[&str] = &[
    node_unschedulable::NAME,
    node_name::NAME,
    taint_toleration::NAME,
    node_affinity::NAME,
    node_ports::NAME,
    node_resources_fit::NAME,
];

/// The scores enabled by default with their weights.
pub const DEFAULT_SCORES: &[(&str, i64)] = &[
    (taint_toleration::NAME, 3),
    (node_affinity::NAME, 2),
    (least_allocated::NAME, 1),
    (balanced_allocation::NAME, 1),
    (image_locality::NAME, 1),
    (selector_spread::NAME, 2),
];
