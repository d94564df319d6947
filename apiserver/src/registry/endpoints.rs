//! Endpoints: a PUT on absent Endpoints creates them, as Kubernetes allows (controllers write
//! Endpoints with update whether or not they exist yet).

use super::Strategy;

/// The strategy of `endpoints`.
pub struct Endpoints;

impl Strategy for Endpoints {
    fn allow_create_on_update(&self) -> bool {
        true
    }
}
