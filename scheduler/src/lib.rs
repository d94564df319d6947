//! The scheduler: watches pending pods with our scheduler name, places each on a node chosen
//! by filter and score plugins, and binds it through the `pods/binding` subresource.
//!
//! Pure parts: [`framework`] (extension-point traits, statuses, cluster events), [`plugins`]
//! (one file per plugin, a registry), [`cycle`] (one scheduling decision over a snapshot),
//! [`queue`] (active, back-off and unschedulable pods), [`cache`] (nodes with their bound and
//! assumed pods). I/O lives in [`run`] (informers, binding, status and events) and [`http`].

pub mod bind;
pub mod cache;
pub mod config;
pub mod cycle;
pub mod framework;
pub mod http;
pub mod labels;
pub mod metrics;
pub mod nodeinfo;
pub mod plugins;
pub mod queue;
pub mod resources;
pub mod run;
