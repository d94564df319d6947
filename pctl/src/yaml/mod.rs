//! YAML as kubectl reads and writes it (YAML 1.1, go-yaml v2), so that `pctl get -o yaml` output
//! and manifests mean the same to pctl, kubectl and other YAML 1.1 tools.

mod emit;
mod read;
mod resolve;

pub use emit::to_string;
pub use read::{documents, documents_noting, Boolean};
