//! The scheduler's Prometheus metrics: attempts by result, latencies, queue and cache sizes,
//! and whether this replica leads.

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// `scheduler_schedule_attempts_total{result="scheduled|unschedulable|error"}`.
    pub attempts: IntCounterVec,
    /// `scheduler_scheduling_algorithm_duration_seconds`: one cycle (filter + score).
    pub algorithm: Histogram,
    /// `scheduler_e2e_scheduling_duration_seconds{result}`: first queued → bound (or failed
    /// to bind).
    pub e2e: HistogramVec,
    /// `scheduler_pending_pods{queue="active|backoff|unschedulable"}`.
    pub pending: IntGaugeVec,
    /// `scheduler_cache_size{type="nodes|pods|assumed_pods"}`.
    pub cache: IntGaugeVec,
    /// `scheduler_bindings_total{result="ok|error"}`.
    pub bindings: IntCounterVec,
    /// `leader_election_master_status`: 1 while this replica schedules.
    pub leader: IntGauge,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let buckets = exponential_buckets(0.001, 2.0, 15)?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "scheduler_schedule_attempts_total",
                "Number of attempts to schedule pods, by the result.",
            ),
            &["result", "profile"],
        )?;
        let algorithm = Histogram::with_opts(
            HistogramOpts::new(
                "scheduler_scheduling_algorithm_duration_seconds",
                "Scheduling cycle (filter and score) latency in seconds.",
            )
            .buckets(exponential_buckets(0.00001, 2.0, 18)?),
        )?;
        let e2e = HistogramVec::new(
            HistogramOpts::new(
                "scheduler_e2e_scheduling_duration_seconds",
                "Latency from a pod's first entry in the queue to its binding, in seconds.",
            )
            .buckets(buckets),
            &["result", "profile"],
        )?;
        let pending = IntGaugeVec::new(
            Opts::new(
                "scheduler_pending_pods",
                "Number of pending pods, by the queue type.",
            ),
            &["queue"],
        )?;
        let cache = IntGaugeVec::new(
            Opts::new(
                "scheduler_cache_size",
                "Number of nodes, pods and assumed pods in the cache.",
            ),
            &["type"],
        )?;
        let bindings = IntCounterVec::new(
            Opts::new("scheduler_bindings_total", "Bindings sent, by the result."),
            &["result"],
        )?;
        let leader = IntGauge::with_opts(
            Opts::new(
                "leader_election_master_status",
                "Gauge of whether this replica is the leader (1) or not (0).",
            )
            .const_label("name", "scheduler"),
        )?;
        for c in [
            Box::new(attempts.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(algorithm.clone()),
            Box::new(e2e.clone()),
            Box::new(pending.clone()),
            Box::new(cache.clone()),
            Box::new(bindings.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(Metrics {
            registry,
            attempts,
            algorithm,
            e2e,
            pending,
            cache,
            bindings,
            leader,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}
