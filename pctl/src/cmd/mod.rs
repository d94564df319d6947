//! One module per command group.

pub mod apply;
pub mod create;
pub mod delete;
pub mod describe;
pub mod get;
pub mod meta;
pub mod node;
pub mod pod;
pub mod rollout;
pub mod scale;
pub mod store;
pub mod top;
