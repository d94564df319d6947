//! Resource arithmetic as Kubernetes does it: a pod's effective requests are
//! `max(sum of app containers (plus sidecars), largest init container) + overhead`, a node's
//! allocatable comes from `status.allocatable`, and scoring counts a container that requests
//! nothing as 100m CPU and 200 MiB of memory.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Container, Node, PodSpec},
    apimachinery::pkg::api::resource::Quantity,
};

/// CPU counted for scoring when a container requests none (kube-scheduler's
/// `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory counted for scoring when a container requests none (`DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// The resources the scheduler accounts: CPU in millicores, memory and ephemeral storage in
/// bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
}

impl Resources {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
    }

    /// Subtracts `o` from `self`.
    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
    }

    /// Raises each resource of `self` to at least `o`'s.
    pub fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
    }

    /// Reads cpu, memory and ephemeral-storage from a resource list (malformed quantities
    /// count as zero: the apiserver validates them).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        Resources {
            milli_cpu: list.get("cpu").map(milli).unwrap_or(0),
            memory: list.get("memory").map(value).unwrap_or(0),
            ephemeral_storage: list.get("ephemeral-storage").map(value).unwrap_or(0),
        }
    }
}

/// A quantity in thousandths, rounded up (ignoring floating-point noise: `0.7` is 700).
pub fn milli(q: &Quantity) -> i64 {
    api::quantity::parse(&q.0)
        .map(|v| {
            (v.value() * 1000.0 - 1e-6)
                .ceil()
                .clamp(0.0, i64::MAX as f64) as i64
        })
        .unwrap_or(0)
}

/// A quantity in base units, rounded up.
pub fn value(q: &Quantity) -> i64 {
    api::quantity::parse(&q.0)
        .map(|v| v.value().ceil().clamp(0.0, i64::MAX as f64) as i64)
        .unwrap_or(0)
}

/// One container's requests (falling back to its limits, as API defaulting does); with
/// `non_zero`, CPU and memory that are not requested count as the scoring defaults.
fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let res = c.resources.as_ref();
    let pick = |name: &str| -> Option<&Quantity> {
        res.and_then(|r| r.requests.as_ref().and_then(|m| m.get(name)))
            .or_else(|| res.and_then(|r| r.limits.as_ref().and_then(|m| m.get(name))))
    };
    let mut r = Resources {
        milli_cpu: pick("cpu").map(milli).unwrap_or(0),
        memory: pick("memory").map(value).unwrap_or(0),
        ephemeral_storage: pick("ephemeral-storage").map(value).unwrap_or(0),
    };
    if non_zero {
        if pick("cpu").is_none() {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if pick("memory").is_none() {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// The pod's effective requests, as Kubernetes' `PodRequests`: app containers and restartable
/// (sidecar) init containers add up; each ordinary init container runs alone beside the
/// sidecars started before it; the pod needs the larger of the two, plus its overhead.
pub fn pod_requests(spec: &PodSpec, non_zero: bool) -> Resources {
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        let effective = if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            sidecars
        } else {
            let mut t = r;
            t.add(&sidecars);
            t
        };
        init_max.max_with(&effective);
    }
    reqs.max_with(&init_max);
    if let Some(overhead) = &spec.overhead {
        reqs.add(&Resources::from_list(overhead));
    }
    reqs
}

/// A node's allocatable resources (capacity when allocatable is absent) and how many pods it
/// takes (0 when it says nothing, as Kubernetes).
pub fn node_allocatable(node: &Node) -> (Resources, i64) {
    let status = node.status.as_ref();
    let list = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    match list {
        Some(l) => (
            Resources::from_list(l),
            l.get("pods").map(value).unwrap_or(0),
        ),
        None => (Resources::default(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn c(name: &str, cpu: Option<&str>, mem: Option<&str>) -> serde_json::Value {
        let mut req = serde_json::Map::new();
        if let Some(cpu) = cpu {
            req.insert("cpu".into(), json!(cpu));
        }
        if let Some(mem) = mem {
            req.insert("memory".into(), json!(mem));
        }
        json!({"name": name, "image": "i", "resources": {"requests": req}})
    }

    #[test]
    fn effective_requests() {
        let sidecar = {
            let mut s = c("s", Some("200m"), Some("100Mi"));
            s["restartPolicy"] = json!("Always");
            s
        };
        let cases: Vec<(&str, serde_json::Value, (i64, i64))> = vec![
            (
                "app containers add up",
                json!({"containers": [c("a", Some("100m"), Some("1Mi")), c("b", Some("250m"), None)]}),
                (350, 1 << 20),
            ),
            (
                "a bigger init container wins per resource",
                json!({"initContainers": [c("i", Some("2"), Some("1Ki"))],
                       "containers": [c("a", Some("100m"), Some("1Mi"))]}),
                (2000, 1 << 20),
            ),
            (
                "init containers do not add up",
                json!({"initContainers": [c("i1", Some("500m"), None), c("i2", Some("700m"), None)],
                       "containers": [c("a", Some("100m"), None)]}),
                (700, 0),
            ),
            (
                "overhead is added",
                json!({"containers": [c("a", Some("1"), Some("1Gi"))],
                       "overhead": {"cpu": "250m", "memory": "120Mi"}}),
                (1250, (1 << 30) + 120 * (1 << 20)),
            ),
            (
                "sidecars run beside later init containers and the app",
                json!({"initContainers": [sidecar, c("i", Some("1"), None)],
                       "containers": [c("a", Some("100m"), Some("1Mi"))]}),
                (1200, 101 << 20),
            ),
            (
                "limits stand in for missing requests",
                json!({"containers": [{"name": "a", "image": "i",
                        "resources": {"limits": {"cpu": "300m", "memory": "64Mi"}}}]}),
                (300, 64 << 20),
            ),
        ];
        for (name, s, (cpu, mem)) in cases {
            let r = pod_requests(&spec(s), false);
            assert_eq!((r.milli_cpu, r.memory), (cpu, mem), "{name}");
        }
    }

    #[test]
    fn non_zero_requests_for_scoring() {
        let s = spec(json!({"containers": [c("a", None, None), c("b", Some("1"), None)]}));
        let r = pod_requests(&s, true);
        assert_eq!(r.milli_cpu, 1100);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert_eq!(pod_requests(&s, false).memory, 0);
    }

    #[test]
    fn node_allocatable_falls_back_to_capacity() {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
        .unwrap();
        let (r, pods) = node_allocatable(&n);
        assert_eq!((r.milli_cpu, r.memory, pods), (4000, 8 << 30, 110));
    }
}
