//! Server-side printing: the `meta.k8s.io/v1 Table` kubectl asks for with
//! `Accept: application/json;as=Table;...`, with the columns `kubectl get` shows for each kind
//! (priority 1 columns appear with `-o wide`).

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use crate::registry::Resource;

/// What each row carries as its `object` (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const fn col(
    name: &'static str,
    kind: &'static str,
    priority: u8,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority,
        description,
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace.",
};
const AGE: Column = col(
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

fn columns(kind: &str) -> Vec<Column> {
    match kind {
        "Pod" => vec![
            NAME,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting \
                traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been \
                restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            col(
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the \
                cluster. Empty if not yet allocated.",
            ),
            col(
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific \
                node.",
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set when this pod preempts \
                other pods on the node.",
            ),
            col(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be \
                evaluated for pod readiness.",
            ),
        ],
        "Node" => vec![
            NAME,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            AGE,
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from \
                cloud provider, if available.",
            ),
            col(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from \
                cloud provider, if available.",
            ),
            col(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. \
                Debian GNU/Linux 7 (wheezy)).",
            ),
            col(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname \
                -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            col(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node \
                through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        "Namespace" => vec![
            NAME,
            col("Status", "string", 0, "The status of the namespace"),
            AGE,
        ],
        "Service" => vec![
            NAME,
            col(
                "Type",
                "string",
                0,
                "type determines how the Service is exposed.",
            ),
            col(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service and is \
                usually assigned randomly.",
            ),
            col(
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes \
                in the cluster will also accept traffic for this service.",
            ),
            col(
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            col(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values \
                matching this selector.",
            ),
        ],
        "Endpoints" => vec![
            NAME,
            col("Endpoints", "string", 0, "Endpoints of the service"),
            AGE,
        ],
        "Event" => vec![
            col(
                "Last Seen",
                "string",
                0,
                "Time when this Event was last observed.",
            ),
            col(
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be \
                added in the future.",
            ),
            col(
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that \
                gives the reason for the transition into the object's current status.",
            ),
            col(
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            col(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this \
                operation.",
            ),
            col(
                "Subobject",
                "string",
                1,
                "The field of the object this event is about.",
            ),
            col("Source", "string", 1, "The component reporting this event."),
            col(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded.",
            ),
            col(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            col(
                "Name",
                "string",
                1,
                "Name must be unique within a namespace.",
            ),
        ],
        "ConfigMap" => vec![
            NAME,
            col(
                "Data",
                "string",
                0,
                "Number of keys in the config \
            map.",
            ),
            AGE,
        ],
        "Secret" => vec![
            NAME,
            col(
                "Type",
                "string",
                0,
                "The type of the \
            secret",
            ),
            col("Data", "string", 0, "Number of keys in the secret"),
            AGE,
        ],
        "ServiceAccount" => vec![
            NAME,
            col(
                "Secrets",
                "string",
                0,
                "Secrets is the list of secrets \
            allowed to be used by pods running using this ServiceAccount.",
            ),
            AGE,
        ],
        "Deployment" => vec![
            NAME,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this \
                deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least \
                minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            col(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            col(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            col(
                "Selector",
                "string",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods \
                are selected by this will be the ones affected by this deployment.",
            ),
        ],
        "ReplicaSet" => vec![
            NAME,
            col(
                "Desired",
                "string",
                0,
                "Replicas is the number of desired replicas.",
            ),
            col(
                "Current",
                "string",
                0,
                "Replicas is the most recently observed number of \
                replicas.",
            ),
            col(
                "Ready",
                "string",
                0,
                "The number of ready replicas for this replica set.",
            ),
            AGE,
            col(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            col(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            col(
                "Selector",
                "string",
                1,
                "Selector is a label query over pods that should match \
                the replica count.",
            ),
        ],
        "Lease" => vec![
            NAME,
            col("Holder", "string", 0, "The holder of the lease."),
            AGE,
        ],
        _ => vec![NAME, AGE],
    }
}

/// Builds the Table of `objects` (all of `resource`'s kind).
pub fn table(
    resource: &Resource,
    objects: &[Value],
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let cols = columns(resource.kind);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.kind, "format": c.format,
            "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Object => o.clone(),
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                }),
            };
            json!({"cells": cells(resource.kind, o, now), "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
        "columnDefinitions": defs, "rows": rows})
}

fn s<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(o: &'a Value, ptr: &str) -> &'a [Value] {
    o.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn none_if_empty(v: String) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v
    }
}

fn age(o: &Value, ptr: &str, now: Timestamp) -> String {
    match o
        .pointer(ptr)
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok())
    {
        Some(t) => human_duration((now.as_second() - t.as_second()).max(0)),
        None => "<unknown>".into(),
    }
}

/// Kubernetes' `duration.HumanDuration`: `5s`, `3m20s`, `2d3h`, `5y`.
pub fn human_duration(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 0 {
        "<invalid>".into()
    } else if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

fn cells(kind: &str, o: &Value, now: Timestamp) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let created = json!(age(o, "/metadata/creationTimestamp", now));
    match kind {
        "Pod" => pod_cells(o, now),
        "Node" => node_cells(o, now),
        "Namespace" => vec![name, json!(s(o, "/status/phase")), created],
        "Service" => service_cells(o, now),
        "Endpoints" => vec![name, json!(endpoints_summary(o)), created],
        "Event" => event_cells(o, now),
        "ConfigMap" => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + o.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name, json!(n), created]
        }
        "Secret" => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            vec![name, json!(s(o, "/type")), json!(n), created]
        }
        "ServiceAccount" => vec![name, json!(arr(o, "/secrets").len()), created],
        "Deployment" => {
            let mut c = vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(o, "/status/readyReplicas"),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                json!(i(o, "/status/updatedReplicas")),
                json!(i(o, "/status/availableReplicas")),
                created,
            ];
            c.extend(template_cells(o));
            c
        }
        "ReplicaSet" => {
            let mut c = vec![
                name,
                json!(o
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)),
                json!(i(o, "/status/replicas")),
                json!(i(o, "/status/readyReplicas")),
                created,
            ];
            c.extend(template_cells(o));
            c
        }
        "Lease" => vec![
            name,
            json!(none_if_empty(s(o, "/spec/holderIdentity").to_string())),
            created,
        ],
        _ => vec![name, created],
    }
}

fn template_cells(o: &Value) -> Vec<Value> {
    let containers = arr(o, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    vec![
        json!(names.join(",")),
        json!(images.join(",")),
        json!(none_if_empty(selector_string(o.pointer("/spec/selector")))),
    ]
}

/// `app=web,tier in (a,b)` from a LabelSelector object.
fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        parts.extend(
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))),
        );
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let key = s(e, "/key");
        let vals: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op}"),
        });
    }
    parts.join(",")
}

fn pod_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let statuses = arr(o, "/status/containerStatuses");
    let total = arr(o, "/spec/containers").len();
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let mut restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    for c in statuses
        .iter()
        .chain(arr(o, "/status/initContainerStatuses"))
    {
        restarts += i(c, "/restartCount");
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Timestamp>().ok())
        {
            if last_restart.is_none_or(|l| t > l) {
                last_restart = Some(t);
            }
        }
    }
    let restarts_cell = match (restarts, last_restart) {
        (r, Some(t)) if r > 0 => format!(
            "{r} ({} ago)",
            human_duration((now.as_second() - t.as_second()).max(0))
        ),
        (r, _) => r.to_string(),
    };
    let ip = none_if_empty(s(o, "/status/podIP").to_string());
    let node = none_if_empty(s(o, "/spec/nodeName").to_string());
    let nominated = none_if_empty(s(o, "/status/nominatedNodeName").to_string());
    let gates = arr(o, "/spec/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(o, "/status/conditions");
        let ok = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .any(|c| c.get("type") == g.get("conditionType") && s(c, "/status") == "True")
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(pod_status(o)),
        json!(restarts_cell),
        json!(age(o, "/metadata/creationTimestamp", now)),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(gates_cell),
    ]
}

/// The STATUS column: kubectl's summary of phase, init progress and container states.
pub fn pod_status(o: &Value) -> String {
    let mut reason = s(o, "/status/phase").to_string();
    if let Some(r) = o.pointer("/status/reason").and_then(Value::as_str) {
        reason = r.to_string();
    }
    let init_specs = arr(o, "/spec/initContainers").len();
    let mut initializing = false;
    for (n, c) in arr(o, "/status/initContainerStatuses").iter().enumerate() {
        let restartable = arr(o, "/spec/initContainers")
            .get(n)
            .is_some_and(|spec| s(spec, "/restartPolicy") == "Always");
        if let Some(t) = c.pointer("/state/terminated") {
            if i(t, "/exitCode") == 0 {
                continue;
            }
            reason = match (t.get("reason").and_then(Value::as_str), i(t, "/signal")) {
                (Some(r), _) if !r.is_empty() => format!("Init:{r}"),
                (_, sig) if sig != 0 => format!("Init:Signal:{sig}"),
                _ => format!("Init:ExitCode:{}", i(t, "/exitCode")),
            };
            initializing = true;
        } else if restartable && c.get("started").and_then(Value::as_bool) == Some(true) {
            continue;
        } else if let Some(r) = c
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
            initializing = true;
        } else {
            reason = format!("Init:{n}/{init_specs}");
            initializing = true;
        }
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in arr(o, "/status/containerStatuses").iter().rev() {
            if let Some(r) = c
                .pointer("/state/waiting/reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                reason = r.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = match (t.get("reason").and_then(Value::as_str), i(t, "/signal")) {
                    (Some(r), _) if !r.is_empty() => r.to_string(),
                    (_, sig) if sig != 0 => format!("Signal:{sig}"),
                    _ => format!("ExitCode:{}", i(t, "/exitCode")),
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = if arr(o, "/status/conditions")
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
            {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if s(o, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

fn node_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    match arr(o, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Ready")
    {
        Some(c) if s(c, "/status") == "True" => status.push("Ready".into()),
        Some(c) if s(c, "/status") == "False" => status.push("NotReady".into()),
        _ => status.push("Unknown".into()),
    }
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| {
                    if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                        Some(r.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().map(str::to_string)
                    } else {
                        None
                    }
                })
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let addr = |t: &str| {
        none_if_empty(
            arr(o, "/status/addresses")
                .iter()
                .filter(|a| s(a, "/type") == t)
                .map(|a| s(a, "/address"))
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(status.join(",")),
        json!(none_if_empty(roles.join(","))),
        json!(age(o, "/metadata/creationTimestamp", now)),
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(none_if_empty(s(o, "/status/nodeInfo/osImage").to_string())
            .replace("<none>", "<unknown>")),
        json!(
            none_if_empty(s(o, "/status/nodeInfo/kernelVersion").to_string())
                .replace("<none>", "<unknown>")
        ),
        json!(
            none_if_empty(s(o, "/status/nodeInfo/containerRuntimeVersion").to_string())
                .replace("<none>", "<unknown>")
        ),
    ]
}

fn service_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let svc_type = o
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let cluster_ip = none_if_empty(s(o, "/spec/clusterIP").to_string());
    let mut external: Vec<String> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let ingress: Vec<String> = arr(o, "/status/loadBalancer/ingress")
        .iter()
        .map(|x| {
            if !s(x, "/ip").is_empty() {
                s(x, "/ip").to_string()
            } else {
                s(x, "/hostname").to_string()
            }
        })
        .collect();
    let external_cell = match svc_type {
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            external.extend(ingress);
            if external.is_empty() {
                "<pending>".into()
            } else {
                external.join(",")
            }
        }
        _ => none_if_empty(external.join(",")),
    };
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) if np > 0 => format!("{}:{np}/{proto}", i(p, "/port")),
                _ => format!("{}/{proto}", i(p, "/port")),
            }
        })
        .collect();
    let selector = o
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            let mut v: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            v.sort();
            v.join(",")
        })
        .unwrap_or_default();
    vec![
        json!(s(o, "/metadata/name")),
        json!(svc_type),
        json!(cluster_ip),
        json!(external_cell),
        json!(none_if_empty(ports.join(","))),
        json!(age(o, "/metadata/creationTimestamp", now)),
        json!(none_if_empty(selector)),
    ]
}

fn endpoints_summary(o: &Value) -> String {
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for subset in arr(o, "/subsets") {
        let ports = arr(subset, "/ports");
        for a in arr(subset, "/addresses") {
            let ip = s(a, "/ip");
            if ports.is_empty() {
                count += 1;
                if list.len() < 3 {
                    list.push(ip.to_string());
                }
            }
            for p in ports {
                count += 1;
                if list.len() < 3 {
                    list.push(format!("{ip}:{}", i(p, "/port")));
                }
            }
        }
    }
    if list.is_empty() {
        return "<none>".into();
    }
    let mut out = list.join(",");
    if count > list.len() {
        out.push_str(&format!(" + {} more...", count - list.len()));
    }
    out
}

fn event_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let last = [
        "/lastTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .find(|p| {
        o.pointer(p)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    })
    .map(|p| age(o, p, now))
    .unwrap_or_else(|| "<unknown>".into());
    let first = [
        "/firstTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .find(|p| {
        o.pointer(p)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    })
    .map(|p| age(o, p, now))
    .unwrap_or_else(|| "<unknown>".into());
    let object = format!(
        "{}/{}",
        s(o, "/involvedObject/kind").to_ascii_lowercase(),
        s(o, "/involvedObject/name")
    );
    let source = match (s(o, "/source/component"), s(o, "/source/host")) {
        ("", _) => s(o, "/reportingComponent").to_string(),
        (c, "") => c.to_string(),
        (c, h) => format!("{c}, {h}"),
    };
    vec![
        json!(last),
        json!(s(o, "/type")),
        json!(s(o, "/reason")),
        json!(object),
        json!(s(o, "/message").trim()),
        json!(s(o, "/involvedObject/fieldPath")),
        json!(source),
        json!(first),
        json!(o.get("count").and_then(Value::as_i64).unwrap_or(1)),
        json!(s(o, "/metadata/name")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    #[test]
    fn human_durations() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (50 * 3600, "2d2h"),
            (9 * 86400, "9d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn pod_statuses() {
        let cases = [
            (json!({"status": {"phase": "Pending"}}), "Pending"),
            (
                json!({"status": {"phase": "Running", "containerStatuses": [{"ready": true,
                    "state": {"running": {}}}]}}),
                "Running",
            ),
            (
                json!({"status": {"phase": "Running", "containerStatuses": [
                    {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
                "CrashLoopBackOff",
            ),
            (
                json!({"spec": {"initContainers": [{}, {}]}, "status": {"phase": "Pending",
                    "initContainerStatuses": [{"state": {"terminated": {"exitCode": 0}}},
                    {"state": {"running": {}}}]}}),
                "Init:1/2",
            ),
            (
                json!({"status": {"phase": "Succeeded",
                    "containerStatuses": [{"state": {"terminated": {"exitCode": 0,
                    "reason": "Completed"}}}]}}),
                "Completed",
            ),
            (
                json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}}),
                "Terminating",
            ),
        ];
        for (pod, want) in cases {
            assert_eq!(pod_status(&pod), want, "{pod}");
        }
    }

    #[test]
    fn pod_row_and_wide_columns() {
        let pods = crate::registry::find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:05:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5",
                "containerStatuses": [{"ready": true, "restartCount": 2, "state": {"running": {}},
                "lastState": {"terminated": {"finishedAt": "2026-01-01T00:08:00Z"}}},
                {"ready": false, "state": {"running": {}}}]}});
        let t = table(pods, &[pod], IncludeObject::Metadata, now());
        assert_eq!(t["columnDefinitions"][5]["name"], "IP");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "1/2",
                "Running",
                "2 (2m ago)",
                "5m",
                "10.0.0.5",
                "n1",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn service_ports_and_node_status() {
        let svcs = crate::registry::find("", "v1", "services").unwrap();
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort",
            "clusterIP": "10.96.0.9", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
            "selector": {"app": "web"}}});
        let t = table(svcs, &[svc], IncludeObject::None, now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "s",
                "NodePort",
                "10.96.0.9",
                "<none>",
                "80:30080/TCP",
                "<unknown>",
                "app=web"
            ])
        );
        let nodes = crate::registry::find("", "v1", "nodes").unwrap();
        let node = json!({"metadata": {"name": "n",
            "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0"}}});
        let t = table(nodes, &[node], IncludeObject::None, now());
        assert_eq!(t["rows"][0]["cells"][1], "Ready,SchedulingDisabled");
        assert_eq!(t["rows"][0]["cells"][2], "control-plane");
    }

    #[test]
    fn deployment_readiness() {
        let d = crate::registry::find("apps", "v1", "deployments").unwrap();
        let dep = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table(d, &[dep], IncludeObject::None, now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "2/3", 3, 2, "<unknown>", "web", "busybox", "app=web"])
        );
    }
}
