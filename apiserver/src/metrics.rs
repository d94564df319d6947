//! Prometheus metrics with kube-apiserver's names: request counts and latency per verb and
//! resource, and open watches.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The apiserver's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub watchers: IntGaugeVec,
    pub watch_events: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "apiserver_request_total",
                "Counter of apiserver requests broken out by \
                verb, resource and HTTP response code.",
            ),
            &["verb", "resource", "code"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "apiserver_request_duration_seconds",
                "Response latency distribution in seconds for each verb and resource.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0,
                10.0, 30.0, 60.0,
            ]),
            &["verb", "resource"],
        )
        .expect("valid metric");
        let watchers = IntGaugeVec::new(
            Opts::new(
                "apiserver_registered_watchers",
                "Number of currently registered watchers for a given resource.",
            ),
            &["resource"],
        )
        .expect("valid metric");
        let watch_events = IntCounterVec::new(
            Opts::new(
                "apiserver_watch_events_total",
                "Number of events sent in watch clients.",
            ),
            &["resource"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(watchers.clone()),
            Box::new(watch_events.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            latency,
            watchers,
            watch_events,
        }
    }

    /// Counts one finished request. Watches are counted when they end, without latency.
    pub fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[verb, resource, &code.to_string()])
            .inc();
        if verb != "watch" {
            self.latency
                .with_label_values(&[verb, resource])
                .observe(elapsed.as_secs_f64());
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
