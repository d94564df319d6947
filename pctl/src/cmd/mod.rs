//! One module per command group.

pub mod api_resources;
pub mod apply;
pub mod cluster_info;
pub mod create;
pub mod create_data;
pub mod delete;
pub mod describe;
pub mod diff;
pub mod edit;
pub mod explain;
pub mod get;
pub mod meta;
pub mod node;
pub mod patch;
pub mod pod;
pub mod printers;
pub mod rollout;
pub mod scale;
pub mod set;
pub mod store;
pub mod top;
pub mod version;
pub mod wait;
