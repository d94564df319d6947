//! Prometheus metrics with kube-apiserver's names: request counts and latency per verb and
//! resource, and open watches.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets of the latency histograms (kube-apiserver's, up to a minute).
const LATENCY_BUCKETS: [f64; 18] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
    60.0,
];

/// The apiserver's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub watchers: IntGaugeVec,
    pub watch_events: IntCounterVec,
    storage_objects: IntGaugeVec,
    cache_bytes: IntGaugeVec,
    cache_window_events: IntGaugeVec,
    cache_packed: IntGaugeVec,
    /// Each store call's time, by operation and resource (handed to the storage layer).
    pub storage_latency: HistogramVec,
    /// Watches closed because they fell too far behind.
    pub terminated_watchers: IntCounterVec,
    /// The caches' own counts of closed watches already added to `terminated_watchers`.
    cache_terminated: parking_lot::Mutex<std::collections::HashMap<&'static str, u64>>,
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
            .buckets(LATENCY_BUCKETS.to_vec()),
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
        let storage_objects = IntGaugeVec::new(
            Opts::new(
                "apiserver_storage_objects",
                "Number of stored objects at the time of last check split by kind.",
            ),
            &["resource"],
        )
        .expect("valid metric");
        let cache_bytes = IntGaugeVec::new(
            Opts::new(
                "apiserver_watch_cache_bytes",
                "Bytes the watch cache holds per resource: part=\"objects\" for the current \
                 objects (idle ones compressed), part=\"window\" for the events watches resume \
                 from, part=\"dictionary\" for the dictionary idle objects are compressed with.",
            ),
            &["resource", "part"],
        )
        .expect("valid metric");
        let cache_packed = IntGaugeVec::new(
            Opts::new(
                "apiserver_watch_cache_packed_objects",
                "Current objects the watch cache holds compressed (idle since the window \
                 dropped their last event) per resource.",
            ),
            &["resource"],
        )
        .expect("valid metric");
        let cache_window_events = IntGaugeVec::new(
            Opts::new(
                "apiserver_watch_cache_window_events",
                "Events the watch cache keeps per resource for watches that resume.",
            ),
            &["resource"],
        )
        .expect("valid metric");
        let storage_latency = HistogramVec::new(
            HistogramOpts::new(
                "etcd_request_duration_seconds",
                "Etcd request latency in seconds for each operation and object type.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation", "type"],
        )
        .expect("valid metric");
        let terminated_watchers = IntCounterVec::new(
            Opts::new(
                "apiserver_terminated_watchers_total",
                "Counter of watchers closed due to unresponsiveness broken by resource type.",
            ),
            &["resource"],
        )
        .expect("valid metric");
        for c in [
            Box::new(terminated_watchers.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(watchers.clone()),
            Box::new(watch_events.clone()),
            Box::new(storage_objects.clone()),
            Box::new(cache_bytes.clone()),
            Box::new(cache_window_events.clone()),
            Box::new(cache_packed.clone()),
            Box::new(storage_latency.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            latency,
            watchers,
            watch_events,
            storage_objects,
            cache_bytes,
            cache_window_events,
            cache_packed,
            storage_latency,
            terminated_watchers,
            cache_terminated: Default::default(),
        }
    }

    /// Sets the watch cache gauges from `caches` (called before each exposition).
    pub fn observe_caches(&self, caches: &crate::cache::Caches) {
        for cache in caches.all() {
            let resource = cache.resource.plural;
            let sizes = cache.sizes();
            // A cache that keeps no objects (events) does not know how many are stored.
            if cache.keeps_objects() {
                self.storage_objects
                    .with_label_values(&[resource])
                    .set(sizes.objects as i64);
                self.cache_bytes
                    .with_label_values(&[resource, "objects"])
                    .set(sizes.object_bytes as i64);
                self.cache_bytes
                    .with_label_values(&[resource, "dictionary"])
                    .set(sizes.dictionary_bytes as i64);
                self.cache_packed
                    .with_label_values(&[resource])
                    .set(sizes.packed_objects as i64);
            }
            self.cache_bytes
                .with_label_values(&[resource, "window"])
                .set(sizes.window_bytes as i64);
            self.cache_window_events
                .with_label_values(&[resource])
                .set(sizes.window_events as i64);
            // The cache counts the indexed watches it closed; the handlers count the others.
            let mut seen = self.cache_terminated.lock();
            let counted = seen.entry(resource).or_insert(0);
            if sizes.terminated_watchers > *counted {
                self.terminated_watchers
                    .with_label_values(&[resource])
                    .inc_by(sizes.terminated_watchers - *counted);
                *counted = sizes.terminated_watchers;
            }
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
