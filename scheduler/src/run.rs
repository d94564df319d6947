//! The running scheduler: informers for pods and nodes feed the cache and the queue; the
//! scheduling loop (while this replica leads) takes one pod at a time, runs the cycle on the
//! cache's snapshot, assumes the pod on the chosen node and binds it in the background
//! ([`crate::bind`]); pods that fit nowhere get their condition and event.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{runtime::watcher, Api};
use rand::{rngs::StdRng, SeedableRng};
use tokio::sync::{watch, Semaphore};

use crate::{
    bind,
    cache::Cache,
    cycle::{self, CycleError, Framework},
    framework::ClusterEvent,
    metrics::Metrics,
    nodeinfo::{pod_key, PodInfo},
    queue::Queue,
};

/// How many bindings may be in flight at once.
const MAX_CONCURRENT_BINDS: usize = 256;

/// Settings of a scheduler.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pods whose `spec.schedulerName` is this are ours.
    pub scheduler_name: String,
    /// This replica's identity (events' reporting instance, the Lease holder).
    pub identity: String,
}

/// The scheduler's shared state.
pub struct Scheduler {
    pub client: kube::Client,
    pub framework: Framework,
    pub settings: Settings,
    pub metrics: Metrics,
    /// Scheduled and FailedScheduling events.
    pub events: client::events::Recorder,
    pub(crate) cache: Mutex<Cache>,
    pub(crate) queue: Queue,
    pods_synced: AtomicBool,
    nodes_synced: AtomicBool,
    binds: Arc<Semaphore>,
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl Scheduler {
    /// A scheduler with empty cache and queue.
    pub fn new(
        client: kube::Client,
        framework: Framework,
        settings: Settings,
        metrics: Metrics,
    ) -> Arc<Scheduler> {
        let interest: HashMap<&'static str, Vec<ClusterEvent>> = framework
            .plugins()
            .iter()
            .map(|p| (p.name(), p.events().to_vec()))
            .collect();
        let events = client::events::Recorder::start(
            client.clone(),
            client::events::Source {
                component: settings.scheduler_name.clone(),
                host: None,
                instance: settings.identity.clone(),
            },
        );
        Arc::new(Scheduler {
            client,
            framework,
            settings,
            metrics,
            events,
            cache: Mutex::new(Cache::default()),
            queue: Queue::new(interest),
            pods_synced: AtomicBool::new(false),
            nodes_synced: AtomicBool::new(false),
            binds: Arc::new(Semaphore::new(MAX_CONCURRENT_BINDS)),
        })
    }

    pub(crate) fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether both informers have listed once.
    pub fn synced(&self) -> bool {
        self.pods_synced.load(Ordering::Acquire) && self.nodes_synced.load(Ordering::Acquire)
    }

    /// Sets the queue and cache gauges (at scrape time).
    pub fn update_gauges(&self) {
        let s = self.queue.sizes();
        let m = &self.metrics;
        m.pending
            .with_label_values(&["active"])
            .set(s.active as i64);
        m.pending
            .with_label_values(&["backoff"])
            .set(s.backoff as i64);
        m.pending
            .with_label_values(&["unschedulable"])
            .set(s.unschedulable as i64);
        let cache = self.cache();
        let (pods, assumed) = cache.pod_counts();
        m.cache
            .with_label_values(&["nodes"])
            .set(cache.nodes().len() as i64);
        m.cache.with_label_values(&["pods"]).set(pods as i64);
        m.cache
            .with_label_values(&["assumed_pods"])
            .set(assumed as i64);
    }

    /// The two informers (pods, nodes); run both.
    pub fn informers(
        self: &Arc<Self>,
    ) -> (
        impl std::future::Future<Output = ()> + Send,
        impl std::future::Future<Output = ()> + Send,
    ) {
        let s = self.clone();
        let mut seen: Option<HashSet<String>> = None;
        let pods = client::handler::event_informer(
            Api::<Pod>::all(self.client.clone()),
            watcher::Config::default(),
            move |ev| s.on_pod_event(ev, &mut seen),
        );
        let s = self.clone();
        let mut seen: Option<HashSet<String>> = None;
        let nodes = client::handler::event_informer(
            Api::<Node>::all(self.client.clone()),
            watcher::Config::default(),
            move |ev| s.on_node_event(ev, &mut seen),
        );
        (pods, nodes)
    }

    fn on_pod_event(&self, ev: watcher::Event<Pod>, seen: &mut Option<HashSet<String>>) {
        match ev {
            watcher::Event::Init => *seen = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                seen.get_or_insert_with(HashSet::new).insert(pod_key(&pod));
                self.on_pod(pod);
            }
            watcher::Event::InitDone => {
                let keep = seen.take().unwrap_or_default();
                self.queue.retain(&keep);
                if self.cache().retain_pods(&keep) {
                    self.queue.on_event(ClusterEvent::AssignedPodDeleted);
                }
                self.pods_synced.store(true, Ordering::Release);
            }
            watcher::Event::Apply(pod) => self.on_pod(pod),
            watcher::Event::Delete(pod) => {
                let key = pod_key(&pod);
                self.queue.delete(&key);
                if self.cache().pod_gone(&key) {
                    self.queue.on_event(ClusterEvent::AssignedPodDeleted);
                }
            }
        }
    }

    fn on_pod(&self, pod: Pod) {
        let key = pod_key(&pod);
        if bound_node(&pod).is_some() {
            self.queue.delete(&key);
            if terminal(&pod) {
                if self.cache().pod_gone(&key) {
                    self.queue.on_event(ClusterEvent::AssignedPodDeleted);
                }
            } else {
                self.cache().pod_bound(&pod);
            }
            return;
        }
        let ours = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref())
            == Some(self.settings.scheduler_name.as_str());
        if !ours || terminal(&pod) || pod.metadata.deletion_timestamp.is_some() {
            self.queue.delete(&key);
            return;
        }
        if self.cache().is_assumed(&key) {
            // Being bound; the informer has not caught up yet.
            return;
        }
        // Fields the scheduler never reads need not stay in memory while the pod waits.
        let mut pod = pod;
        pod.metadata.managed_fields = None;
        self.queue.add(Arc::new(pod));
    }

    fn on_node_event(&self, ev: watcher::Event<Node>, seen: &mut Option<HashSet<String>>) {
        let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
        let events = match ev {
            watcher::Event::Init => {
                *seen = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(node) => {
                seen.get_or_insert_with(HashSet::new).insert(name(&node));
                self.cache().set_node(Arc::new(node))
            }
            watcher::Event::InitDone => {
                let keep = seen.take().unwrap_or_default();
                self.cache().retain_nodes(&keep);
                self.nodes_synced.store(true, Ordering::Release);
                Vec::new()
            }
            watcher::Event::Apply(node) => self.cache().set_node(Arc::new(node)),
            watcher::Event::Delete(node) => {
                self.cache().remove_node(&name(&node));
                Vec::new()
            }
        };
        for e in events {
            self.queue.on_event(e);
        }
    }

    /// Moves pods out of back-off as it expires; runs forever.
    pub async fn flush_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            self.queue.flush();
        }
    }

    /// The scheduling loop: schedules while `leading` says so; runs forever.
    pub async fn run(self: Arc<Self>, mut leading: watch::Receiver<bool>) {
        let mut rng = StdRng::from_os_rng();
        let mut next_start = 0usize;
        loop {
            while !*leading.borrow_and_update() {
                self.metrics.leader.set(0);
                if leading.changed().await.is_err() {
                    return;
                }
            }
            self.metrics.leader.set(1);
            let qp = tokio::select! {
                qp = self.queue.pop() => qp,
                _ = leading.changed() => continue,
            };
            let permit = match self.binds.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return,
            };
            let info = PodInfo::new(qp.pod.clone());
            let started = Instant::now();
            let result = {
                let mut cache = self.cache();
                let r =
                    cycle::schedule(&self.framework, &info, cache.nodes(), next_start, &mut rng);
                if let Ok(p) = &r {
                    cache.assume(info.summary.clone(), &p.node);
                }
                r
            };
            self.metrics
                .algorithm
                .observe(started.elapsed().as_secs_f64());
            let profile = self.settings.scheduler_name.as_str();
            match result {
                Ok(placement) => {
                    next_start = placement.next_start;
                    self.queue.done(&qp.key);
                    self.metrics
                        .attempts
                        .with_label_values(&["scheduled", profile])
                        .inc();
                    let s = self.clone();
                    tokio::spawn(async move {
                        bind::bind(&s, qp, &placement.node).await;
                        drop(permit);
                    });
                }
                Err(CycleError::Unschedulable(fit)) => {
                    self.metrics
                        .attempts
                        .with_label_values(&["unschedulable", profile])
                        .inc();
                    let message = fit.to_string();
                    tracing::debug!(pod = %qp.key, %message, "unschedulable");
                    self.queue.unschedulable(&qp.key, fit.plugins, qp.cycle);
                    let s = self.clone();
                    tokio::spawn(async move {
                        bind::record_unschedulable(&s, &qp.pod, &message).await;
                        drop(permit);
                    });
                }
                Err(CycleError::Plugin(status)) => {
                    self.metrics
                        .attempts
                        .with_label_values(&["error", profile])
                        .inc();
                    tracing::warn!(pod = %qp.key, plugin = status.plugin, reasons = ?status.reasons, "scheduling error");
                    self.queue.error(&qp.key);
                }
            }
        }
    }
}
