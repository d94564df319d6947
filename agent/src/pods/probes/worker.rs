//! One probe task: waits for the initial delay (counted from the container's start), then
//! probes every period; a startup probe ends once it succeeds, and liveness and readiness wait
//! for it. Results are kept after enough equal outcomes in a row ([`Tally`]); a kept failure
//! of a liveness or startup probe ends the task (the container is killed, and its next
//! instance gets new tasks).

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;

use super::{Handler, Kind, Outcome, Results, Target, Timing};
use crate::pods::events::{Kind::Warning, Recorder};

/// Counts equal outcomes in a row, as the kubelet's probe worker.
#[derive(Debug, Default)]
pub struct Tally {
    last: Option<bool>,
    run: u32,
}

impl Tally {
    /// Records one outcome; returns the result to keep once it reached its threshold.
    pub fn record(
        &mut self,
        ok: bool,
        success_threshold: u32,
        failure_threshold: u32,
    ) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            success_threshold
        } else {
            failure_threshold
        };
        (self.run >= threshold).then_some(ok)
    }
}

/// Everything one probe task needs.
pub struct Job {
    pub kind: Kind,
    pub container: String,
    pub has_startup: bool,
    pub timing: Timing,
    pub handler: Result<Box<dyn Handler>, String>,
    /// When the container started (CRI nanoseconds since the epoch).
    pub started_at: i64,
    pub target: Target,
    pub pod: Arc<Pod>,
    pub events: Recorder,
    pub results: Results,
    pub notify: Arc<Notify>,
}

impl Job {
    fn key(&self) -> (String, Kind) {
        (self.target.container_id.clone(), self.kind)
    }

    fn get(&self, kind: Kind) -> Option<bool> {
        let key = (self.target.container_id.clone(), kind);
        match self.results.lock() {
            Ok(m) => m.get(&key).copied(),
            Err(poisoned) => poisoned.into_inner().get(&key).copied(),
        }
    }

    /// Keeps a result; wakes the pod's worker when it changed.
    fn set(&self, ok: bool) {
        let previous = match self.results.lock() {
            Ok(mut m) => m.insert(self.key(), ok),
            Err(poisoned) => poisoned.into_inner().insert(self.key(), ok),
        };
        if previous != Some(ok) {
            tracing::debug!(container = %self.container, kind = ?self.kind, ok, "probe result changed");
            self.notify.notify_one();
        }
    }
}

/// Time left until the container has run for `delay`.
fn delay_left(started_at_ns: i64, delay: Duration) -> Duration {
    let started = UNIX_EPOCH + Duration::from_nanos(started_at_ns.max(0) as u64);
    let ready_at = started + delay;
    ready_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// Runs the task until its container is killed or its pod's worker drops it.
pub async fn run(job: Job) {
    let handler = match &job.handler {
        Ok(h) => h,
        Err(msg) => {
            job.events.emit(
                &job.pod,
                Some(&job.container),
                Warning,
                "Unhealthy",
                format!("{} probe errored: {msg}", job.kind.title()),
            );
            return;
        }
    };
    tokio::time::sleep(delay_left(job.started_at, job.timing.initial_delay)).await;
    let mut tally = Tally::default();
    loop {
        let waiting_for_startup =
            job.kind != Kind::Startup && job.has_startup && job.get(Kind::Startup) != Some(true);
        if !waiting_for_startup {
            let outcome = handler.check(&job.target, job.timing.timeout).await;
            let ok = outcome == Outcome::Success;
            if let Outcome::Failure(output) = &outcome {
                job.events.emit(
                    &job.pod,
                    Some(&job.container),
                    Warning,
                    "Unhealthy",
                    format!("{} probe failed: {output}", job.kind.title()),
                );
            }
            let kept = tally.record(
                ok,
                job.timing.success_threshold,
                job.timing.failure_threshold,
            );
            if let Some(result) = kept {
                job.set(result);
                match (job.kind, result) {
                    // The container will be killed; its next instance is probed anew.
                    (Kind::Liveness | Kind::Startup, false) => return,
                    // A startup probe is done once it succeeds.
                    (Kind::Startup, true) => return,
                    _ => {}
                }
            }
        }
        tokio::time::sleep(job.timing.period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let mut t = Tally::default();
        // failureThreshold 3: two failures keep nothing, the third is kept.
        assert_eq!(t.record(false, 1, 3), None);
        assert_eq!(t.record(false, 1, 3), None);
        assert_eq!(t.record(false, 1, 3), Some(false));
        assert_eq!(t.record(false, 1, 3), Some(false));
        // successThreshold 2: a success resets the run.
        assert_eq!(t.record(true, 2, 3), None);
        assert_eq!(t.record(true, 2, 3), Some(true));
        assert_eq!(t.record(false, 2, 3), None);
        assert_eq!(t.record(true, 2, 3), None);
        let mut first = Tally::default();
        assert_eq!(first.record(true, 1, 3), Some(true));
    }

    #[test]
    fn initial_delay_counts_from_the_start() {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert_eq!(
            delay_left(now_ns - 20_000_000_000, Duration::from_secs(5)),
            Duration::ZERO
        );
        let left = delay_left(now_ns, Duration::from_secs(5));
        assert!(left > Duration::from_secs(4) && left <= Duration::from_secs(5));
    }
}
