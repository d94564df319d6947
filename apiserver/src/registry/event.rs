//! Events: a PUT on an absent Event creates it, as Kubernetes allows (event recorders update
//! an Event's count whether or not it is still stored), and the store drops an Event
//! `--event-ttl` after its last write.

use std::time::Duration;

use super::Strategy;
use crate::config::Config;

/// The strategy of `events`.
pub struct Event;

impl Strategy for Event {
    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn time_to_live(&self, config: &Config) -> Option<Duration> {
        Some(config.event_ttl).filter(|ttl| !ttl.is_zero())
    }
}
