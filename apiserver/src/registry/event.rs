//! Events: a PUT on an absent Event creates it, as Kubernetes allows (event recorders update
//! an Event's count whether or not it is still stored).

use super::Strategy;

/// The strategy of `events`.
pub struct Event;

impl Strategy for Event {
    fn allow_create_on_update(&self) -> bool {
        true
    }
}
