//! ReplicaSets: metadata.generation counts changes of the spec (1 on create, one more for each
//! update
//! that changes it), which the controller reports back as status.observedGeneration.

use serde_json::Value;

use super::{bump_generation, start_generation, Strategy};

/// The strategy of `replicasets`.
pub struct ReplicaSet;

impl Strategy for ReplicaSet {
    fn prepare_for_create(&self, obj: &mut Value) {
        start_generation(obj);
    }

    fn finish_update(&self, sub: Option<&str>, new: &mut Value, old: &Value) {
        bump_generation(sub, new, old);
    }
}
