//! The Kubernetes API as our components see it, without I/O: which resources exist
//! ([`registry`]), how an object is normalized to its exact JSON shape, defaulted
//! ([`defaults`]) and validated ([`validation`]), how selectors match ([`selectors`]), how
//! patches apply ([`patch`]), how the OpenAPI documents look ([`openapi`]), how objects print as
//! kubectl's tables ([`table`]) and how errors look on the wire ([`status`]).
//!
//! Objects travel as `serde_json::Value` already normalized through their `k8s-openapi` type
//! (see [`registry::normalize`]), so every function here sees the same shape a client sees.

pub mod defaults;
pub mod duration;
pub mod openapi;
pub mod patch;
pub mod quantity;
pub mod registry;
pub mod selectors;
pub mod status;
pub mod table;
pub mod validation;

pub use k8s_openapi;
