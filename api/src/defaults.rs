//! Defaulting as the Kubernetes apiserver does it on create and update (the values
//! `kubectl get -o yaml` shows that nobody wrote): pod spec defaults, container pull policy,
//! default tolerations, deployment strategy, service ports, namespace finalizers, ...

use serde_json::{json, Map, Value};

use crate::registry::Resource;

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Inserts `value` at `key` when absent (or null).
fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// Gets (creating) the object at `key`.
fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !m.get(key).is_some_and(Value::is_object) {
        m.insert(key.to_string(), json!({}));
    }
    m.get_mut(key)
        .and_then(Value::as_object_mut)
        .expect("just made an object")
}

/// Applies the defaults of `resource`'s kind to `object`.
pub fn apply(resource: &Resource, object: &mut Value) {
    let Some(o) = obj(object) else { return };
    match resource.kind {
        "Pod" => {
            pod_spec(child(o, "spec"));
            pod_admission(o);
        }
        "Deployment" => {
            let spec = child(o, "spec");
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = child(spec, "strategy");
            set_default(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                let ru = child(strategy, "rollingUpdate");
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
            template(spec);
        }
        "ReplicaSet" => {
            let spec = child(o, "spec");
            set_default(spec, "replicas", json!(1));
            template(spec);
        }
        "Service" => service(o),
        "Namespace" => {
            let name = o
                .get("metadata")
                .and_then(|m| m.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(n) = name.as_str().filter(|n| !n.is_empty()) {
                let labels = child(child(o, "metadata"), "labels");
                labels.insert("kubernetes.io/metadata.name".into(), json!(n));
            }
            set_default(child(o, "spec"), "finalizers", json!(["kubernetes"]));
            set_default(child(o, "status"), "phase", json!("Active"));
        }
        "Secret" => set_default(o, "type", json!("Opaque")),
        _ => {}
    }
}

fn template(spec: &mut Map<String, Value>) {
    let t = child(spec, "template");
    pod_spec(child(t, "spec"));
}

/// The image's pull policy default: Always for `:latest` or untagged images, else IfNotPresent.
pub fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn probe(p: &mut Value) {
    let Some(p) = p.as_object_mut() else { return };
    set_default(p, "timeoutSeconds", json!(1));
    set_default(p, "periodSeconds", json!(10));
    set_default(p, "successThreshold", json!(1));
    set_default(p, "failureThreshold", json!(3));
    if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(h, "scheme", json!("HTTP"));
        set_default(h, "path", json!("/"));
    }
}

fn container(c: &mut Value) {
    let Some(c) = c.as_object_mut() else { return };
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !image.is_empty() {
        set_default(c, "imagePullPolicy", json!(pull_policy(&image)));
    }
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(key) {
            probe(p);
        }
    }
    // Limits without requests: requests default to the limits.
    if let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) {
        if let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() {
            let requests = child(res, "requests");
            for (k, v) in limits {
                set_default(requests, &k, v);
            }
        }
    }
}

/// Defaults of a pod spec (pods and templates).
fn pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "enableServiceLinks", json!(true));
    for key in ["containers", "initContainers"] {
        if let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) {
            list.iter_mut().for_each(container);
        }
    }
}

/// What admission adds to pods (not templates): service account, priority, default
/// tolerations, phase and QoS class.
fn pod_admission(o: &mut Map<String, Value>) {
    let spec = child(o, "spec");
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .or_else(|| spec.get("serviceAccount").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(sa));
    spec.insert("serviceAccount".into(), json!(sa));
    set_default(spec, "priority", json!(0));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let tolerations = spec.entry("tolerations").or_insert(json!([]));
    if let Some(list) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let present = list.iter().any(|t| {
                let k = t.get("key").and_then(Value::as_str);
                let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
                (k == Some(key)
                    || (k.is_none() && t.get("operator").and_then(Value::as_str) == Some("Exists")))
                    && (effect.is_empty() || effect == "NoExecute")
            });
            if !present {
                list.push(
                    json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 300}),
                );
            }
        }
    }
    let qos = qos_class(spec);
    let status = child(o, "status");
    set_default(status, "phase", json!("Pending"));
    set_default(status, "qosClass", json!(qos));
}

/// Guaranteed when every container has equal cpu and memory requests and limits, BestEffort
/// when none has any, else Burstable.
pub fn qos_class(spec: &Map<String, Value>) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(r));
            let q = req.and_then(|q| q.get(r)).or(l);
            match (q, l) {
                (Some(q), Some(l)) if q == l => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn service(o: &mut Map<String, Value>) {
    let spec = child(o, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    let t = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if t != "ExternalName" {
        set_default(spec, "sessionAffinity", json!("None"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
    }
    if matches!(t.as_str(), "NodePort" | "LoadBalancer") {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
    set_default(o, "status", json!({"loadBalancer": {}}));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;

    #[test]
    fn pod_defaults() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox:1.36",
                "ports": [{"containerPort": 80}],
             "readinessProbe": {"httpGet": {"port": 80}}, "resources": {"limits": {"cpu": "1",
                 "memory": "1Gi"}}}]}});
        apply(find("", "v1", "pods").unwrap(), &mut pod);
        let s = &pod["spec"];
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(s["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(s["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["containers"][1]["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(s["containers"][1]["resources"]["requests"]["cpu"], "1");
        assert_eq!(s["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(s["tolerations"][0]["tolerationSeconds"], 300);
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "Burstable");
    }

    #[test]
    fn deployment_service_namespace_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "c",
            "image": "x:latest"}]}}}});
        apply(find("apps", "v1", "deployments").unwrap(), &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%",
                "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        assert!(d["spec"]["template"]["spec"].get("tolerations").is_none());
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply(find("", "v1", "services").unwrap(), &mut s);
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(s["spec"]["type"], "ClusterIP");
        let mut ns = json!({"metadata": {"name": "team"}});
        apply(find("", "v1", "namespaces").unwrap(), &mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
    }

    #[test]
    fn pull_policies() {
        assert_eq!(pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(pull_policy("localhost/busybox:1.36"), "IfNotPresent");
        assert_eq!(pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }
}
