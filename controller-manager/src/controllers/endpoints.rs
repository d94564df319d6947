//! The Endpoints controller: for each Service with a selector, an Endpoints object of the same
//! name listing the selected pods' IPs, ready ones under `addresses` and the others under
//! `notReadyAddresses` (each with its targetRef and nodeName), with the Service's ports
//! resolved (targetPort by number, or by the name of a container port).

use std::{collections::BTreeMap, sync::Arc};

use client::{
    controller::{self, Action, Key, Reconciler},
    workqueue::WorkQueue,
};
use futures::{future::BoxFuture, FutureExt};
use k8s_openapi::{
    api::core::v1::{
        EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Service,
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use kube::api::{Api, DeleteParams, PostParams};

use super::Ctx;
use crate::{pod_view::PodView, pods};

/// The `--controllers` name.
pub const NAME: &str = "endpoint";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (retried with back-off).
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct EndpointsController {
    ctx: Arc<Ctx>,
}

/// Registers the handlers; the future runs the workers.
pub fn setup(ctx: &Arc<Ctx>) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::<Key>::new();
    let q = queue.clone();
    ctx.services.on_change(move |c| q.add(Key::of(c.object())));
    let q = queue.clone();
    ctx.endpoints.on_change(move |c| q.add(Key::of(c.object())));
    let (q, c2) = (queue.clone(), ctx.clone());
    ctx.pods.on_change(move |c| {
        let pod = c.object();
        let ns = pod.namespace();
        for svc in c2.services.list_namespace(ns) {
            if let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) {
                if !sel.is_empty() && pods::has_labels(sel, &pod.labels) {
                    q.add(Key::of(svc.as_ref()));
                }
            }
        }
    });
    let r = Arc::new(EndpointsController { ctx: ctx.clone() });
    controller::run(
        NAME,
        r,
        queue,
        ctx.config.concurrent_endpoint_syncs,
        Some(ctx.metrics.clone()),
    )
    .boxed()
}

impl Reconciler for EndpointsController {
    type Error = Error;

    async fn reconcile(&self, key: &Key) -> Result<Action, Error> {
        let ns = key.namespace.clone().unwrap_or_default();
        let api: Api<Endpoints> = Api::namespaced(self.ctx.client.clone(), &ns);
        let current = self.ctx.endpoints.get(key);
        let Some(svc) = self.ctx.services.get(key) else {
            // The Service is gone: so are its Endpoints (unless someone else manages them).
            if current.is_some_and(|e| managed(&e)) {
                match api.delete(&key.name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(Action::Done);
        };
        let Some(selector) = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .filter(|s| !s.is_empty())
        else {
            // Without a selector the Endpoints are the user's.
            return Ok(Action::Done);
        };
        let selected: Vec<Arc<PodView>> = self
            .ctx
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| pods::has_labels(&selector, &p.labels))
            .collect();
        let refs: Vec<&PodView> = selected.iter().map(Arc::as_ref).collect();
        let subsets = build(&svc, &refs);
        let mut labels = svc.metadata.labels.clone().unwrap_or_default();
        labels.insert(SERVICE_NAME_LABEL.into(), key.name.clone());
        if let Some(cur) = &current {
            let same_labels = cur
                .metadata
                .labels
                .as_ref()
                .map(|l| l.get(SERVICE_NAME_LABEL))
                == Some(Some(&key.name));
            if cur.subsets.clone().unwrap_or_default() == subsets && same_labels {
                return Ok(Action::Done);
            }
        }
        let mut ep = Endpoints {
            metadata: ObjectMeta {
                name: Some(key.name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            subsets: (!subsets.is_empty()).then_some(subsets),
        };
        match current {
            Some(cur) => {
                ep.metadata.resource_version = cur.metadata.resource_version.clone();
                ep.metadata.annotations = cur.metadata.annotations.clone();
                api.replace(&key.name, &PostParams::default(), &ep).await?;
            }
            None => match api.create(&PostParams::default(), &ep).await {
                Ok(_) => {}
                // The cache lags: the next event brings it and we update then.
                Err(kube::Error::Api(e)) if e.code == 409 => return Ok(Action::Backoff),
                Err(e) => return Err(e.into()),
            },
        }
        Ok(Action::Done)
    }
}

/// Label Kubernetes puts on the Endpoints it manages.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

fn managed(ep: &Endpoints) -> bool {
    ep.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SERVICE_NAME_LABEL))
}

/// The container port a Service port targets on a pod (None: the pod lacks that named port).
fn resolve_port(target: Option<&IntOrString>, port: i32, pod: &PodView) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .named_ports
            .iter()
            .find(|(n, _)| **n == **name)
            .map(|(_, p)| *p),
        // (an IntOrString string that is a number is taken as a name, as Kubernetes does)
    }
}

/// The subsets for a Service and its selected pods: pods with an IP, grouped by their
/// resolved ports; terminated and deleted pods left out.
pub fn build(svc: &Service, selected: &[&PodView]) -> Vec<EndpointSubset> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut groups: BTreeMap<
        Vec<(Option<String>, i32, String)>,
        (Vec<EndpointAddress>, Vec<EndpointAddress>),
    > = BTreeMap::new();
    for pod in selected {
        let Some(ip) = pod.pod_ip.as_deref().map(str::to_string) else {
            continue;
        };
        if pod.deleting() || pods::is_terminated(pod) {
            continue;
        }
        let mut resolved = Vec::new();
        for p in &ports {
            if let Some(n) = resolve_port(p.target_port.as_ref(), p.port, pod) {
                resolved.push((
                    p.name.clone(),
                    n,
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ));
            }
        }
        if resolved.is_empty() && !ports.is_empty() {
            continue;
        }
        let addr = EndpointAddress {
            ip,
            hostname: None,
            node_name: pod.node_name.as_deref().map(str::to_string),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(pod.namespace().to_string()),
                name: Some(pod.name().to_string()),
                uid: Some(pod.uid.to_string()),
                ..Default::default()
            }),
        };
        let g = groups.entry(resolved).or_default();
        if pods::is_ready(pod) || publish_not_ready {
            g.0.push(addr);
        } else {
            g.1.push(addr);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name,
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: Option<&str>, ready: bool, port_name: &str, port: i32) -> PodView {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
        .unwrap()
    }

    #[test]
    fn ready_and_not_ready_addresses_with_named_ports() {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]}}))
        .unwrap();
        let a = pod("a", Some("10.0.0.2"), true, "web", 8080);
        let b = pod("b", Some("10.0.0.1"), false, "web", 8080);
        let c = pod("c", None, true, "web", 8080);
        let d = pod("d", Some("10.0.0.4"), true, "web", 9090);
        let e = pod("e", Some("10.0.0.5"), true, "other", 1);
        let subsets = build(&svc, &[&a, &b, &c, &d, &e]);
        assert_eq!(subsets.len(), 2);
        let s8080 = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].port == 8080)
            .unwrap();
        let ready: Vec<&str> = s8080
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        let not_ready: Vec<&str> = s8080
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!((ready, not_ready), (vec!["10.0.0.2"], vec!["10.0.0.1"]));
        let addr = &s8080.addresses.as_ref().unwrap()[0];
        assert_eq!(addr.node_name.as_deref(), Some("n1"));
        assert_eq!(addr.target_ref.as_ref().unwrap().name.as_deref(), Some("a"));
        assert_eq!(
            s8080.ports.as_ref().unwrap()[0].name.as_deref(),
            Some("http")
        );
    }

    #[test]
    fn numeric_target_ports() {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
        .unwrap();
        let a = pod("a", Some("10.0.0.2"), true, "x", 1);
        let subsets = build(&svc, &[&a]);
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 8080);
    }
}
