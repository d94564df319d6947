//! `top nodes|pods`: resource usage from the metrics.k8s.io/v1beta1 API (NodeMetrics,
//! PodMetrics) through the apiserver, printed as kubectl's `top`. Usage comes only from that
//! API: when the cluster does not serve it, kubectl's "Metrics API not available".

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::{cmd::get::urlencode, output, resources, Global};

const GROUP: &str = "metrics.k8s.io";
const VERSION: &str = "v1beta1";
/// How long a pod may go without metrics before kubectl calls that an error (metricsCreationDelay).
const METRICS_CREATION_DELAY_SECS: i64 = 120;

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(subcommand)]
    pub what: TopCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// CPU and memory of nodes, against their allocatable resources.
    #[command(alias = "node", alias = "no")]
    Nodes(TopNodeArgs),
    /// CPU and memory of pods (or of their containers).
    #[command(alias = "pod", alias = "po")]
    Pods(TopPodArgs),
}

#[derive(Debug, Args)]
pub struct TopNodeArgs {
    /// One node's name (default: all).
    pub name: Option<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Print no header line.
    #[arg(long)]
    pub no_headers: bool,
}

#[derive(Debug, Args)]
pub struct TopPodArgs {
    /// One pod's name (default: all in the namespace).
    pub name: Option<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Pods of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// One line per container.
    #[arg(long)]
    pub containers: bool,
    /// Print no header line.
    #[arg(long)]
    pub no_headers: bool,
}

pub async fn top(g: &Global, a: TopArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    // kubectl's SupportedMetricsAPIVersionAvailable: the group and version in discovery.
    let groups = conn.client.list_api_groups().await?;
    let served = groups
        .groups
        .iter()
        .any(|grp| grp.name == GROUP && grp.versions.iter().any(|v| v.version == VERSION));
    if !served {
        bail!("error: Metrics API not available");
    }
    match a.what {
        TopCommand::Nodes(n) => nodes(&conn, n).await,
        TopCommand::Pods(p) => pods(&conn, p).await,
    }
}

fn with_selector(path: String, selector: Option<&str>) -> String {
    match selector {
        Some(l) => format!("{path}?labelSelector={}", urlencode(l)),
        None => path,
    }
}

/// The items of a list, or the one object fetched by name.
fn items(v: Value, by_name: bool) -> Vec<Value> {
    if by_name {
        vec![v]
    } else {
        v.get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

async fn nodes(conn: &resources::Conn, a: TopNodeArgs) -> Result<()> {
    let base = format!("/apis/{GROUP}/{VERSION}/nodes");
    let by_name = a.name.is_some();
    let path = |base: &str| match &a.name {
        Some(n) => format!("{base}/{n}"),
        None => with_selector(base.to_string(), a.selector.as_deref()),
    };
    let metrics = items(
        output::fetch_json(&conn.client, &path(&base)).await?,
        by_name,
    );
    if metrics.is_empty() {
        // kubectl's top node: no node has reported usage yet.
        bail!("error: metrics not available yet");
    }
    let nodes = items(
        output::fetch_json(&conn.client, &path("/api/v1/nodes")).await?,
        by_name,
    );
    let allocatable: BTreeMap<String, Value> = nodes
        .iter()
        .filter_map(|n| {
            Some((
                n.pointer("/metadata/name")?.as_str()?.to_string(),
                n.pointer("/status/allocatable")
                    .cloned()
                    .unwrap_or(Value::Null),
            ))
        })
        .collect();
    out!("{}", node_lines(&metrics, &allocatable, !a.no_headers)?);
    Ok(())
}

async fn pods(conn: &resources::Conn, a: TopPodArgs) -> Result<()> {
    let ns_part = if a.all_namespaces {
        String::new()
    } else {
        format!("/namespaces/{}", conn.namespace)
    };
    let by_name = a.name.is_some() && !a.all_namespaces;
    let path = |base: String| match (&a.name, by_name) {
        (Some(n), true) => format!("{base}/{n}"),
        _ => with_selector(base, a.selector.as_deref()),
    };
    let mut metrics = items(
        output::fetch_json(
            &conn.client,
            &path(format!("/apis/{GROUP}/{VERSION}{ns_part}/pods")),
        )
        .await?,
        by_name,
    );
    if let (Some(n), false) = (&a.name, by_name) {
        metrics.retain(|m| m.pointer("/metadata/name").and_then(Value::as_str) == Some(n));
    }
    if metrics.is_empty() {
        // kubectl's verifyEmptyMetrics: pods that exist but have no metrics are an error once
        // they are old enough to have them.
        let pods = items(
            output::fetch_json(&conn.client, &path(format!("/api/v1{ns_part}/pods"))).await?,
            by_name,
        );
        let now = k8s_openapi::jiff::Timestamp::now();
        for pod in &pods {
            let Ok(pod) = serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(pod.clone())
            else {
                continue;
            };
            let Some(created) = pod.metadata.creation_timestamp.as_ref() else {
                continue;
            };
            let age_nanos = now.as_nanosecond() - created.0.as_nanosecond();
            if age_nanos > i128::from(METRICS_CREATION_DELAY_SECS) * 1_000_000_000 {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("");
                let name = pod.metadata.name.as_deref().unwrap_or("");
                bail!(
                    "error: Metrics not available for pod {ns}/{name}, age: {}",
                    go_duration(age_nanos)
                );
            }
        }
        if !pods.is_empty() {
            bail!("error: metrics not available yet");
        }
        if a.all_namespaces {
            errln!("No resources found");
        } else {
            errln!("No resources found in {} namespace.", conn.namespace);
        }
        return Ok(());
    }
    out!(
        "{}",
        pod_lines(&metrics, a.all_namespaces, a.containers, !a.no_headers)?
    );
    Ok(())
}

/// Go's Duration.String() for a duration of a second or more (`2h3m4.5s`).
fn go_duration(nanos: i128) -> String {
    let (secs, frac) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:09}").trim_end_matches('0').to_string()
    };
    match (h, m) {
        (0, 0) => format!("{s}{frac}s"),
        (0, _) => format!("{m}m{s}{frac}s"),
        _ => format!("{h}h{m}m{s}{frac}s"),
    }
}

/// Quantity.MilliValue(): thousandths, rounded up (a float error below 1e-6 is not a step).
fn milli(q: &str) -> Result<i128> {
    let v = api::quantity::parse(q)
        .map_err(|_| anyhow!("error: invalid quantity {q:?} in the metrics"))?
        .value()
        * 1000.0;
    let r = v.round();
    Ok(if (v - r).abs() < 1e-6 {
        r as i128
    } else {
        v.ceil() as i128
    })
}

/// kubectl's printSingleResourceUsage: cpu as millicores, memory as whole MiB.
fn usage_text(resource: &str, milli_value: i128) -> String {
    match resource {
        "cpu" => format!("{milli_value}m"),
        // Value() rounds up to whole units, then integer MiB.
        "memory" => format!("{}Mi", (milli_value + 999).div_euclid(1000) / (1024 * 1024)),
        _ => format!("{}", (milli_value + 999).div_euclid(1000)),
    }
}

/// Usage as a share of what is available, truncated to a whole percent as kubectl does.
fn percent(used_milli: i128, available_milli: i128) -> String {
    if available_milli == 0 {
        // Go's float division by zero gives +Inf (or NaN), which int64() makes the minimum.
        return format!("{}%", i64::MIN);
    }
    format!(
        "{}%",
        (used_milli as f64 / available_milli as f64 * 100.0) as i64
    )
}

fn usage_of(usage: Option<&Value>, resource: &str) -> Result<i128> {
    match usage.and_then(|u| u.get(resource)).and_then(Value::as_str) {
        Some(q) => milli(q),
        None => Ok(0),
    }
}

const MEASURED: [&str; 2] = ["cpu", "memory"];

/// The lines of `top nodes`: every node with metrics, against its allocatable resources; nodes
/// without metrics follow with `<unknown>`, as kubectl prints them.
pub fn node_lines(
    metrics: &[Value],
    allocatable: &BTreeMap<String, Value>,
    header: bool,
) -> Result<String> {
    let mut rows = Vec::new();
    if header {
        rows.push(
            ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
                .map(String::from)
                .to_vec(),
        );
    }
    let mut seen = Vec::new();
    for m in metrics {
        let name = m
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut row = vec![name.clone()];
        for res in MEASURED {
            let used = usage_of(m.get("usage"), res)?;
            row.push(usage_text(res, used));
            if let Some(avail) = allocatable
                .get(&name)
                .and_then(|a| a.get(res))
                .and_then(Value::as_str)
            {
                row.push(percent(used, milli(avail)?));
            }
        }
        seen.push(name);
        rows.push(row);
    }
    for name in allocatable.keys().filter(|n| !seen.contains(n)) {
        rows.push(vec![
            name.clone(),
            "<unknown>".into(),
            "<unknown>".into(),
            "<unknown>".into(),
            "<unknown>".into(),
        ]);
    }
    Ok(tab_lines(&rows))
}

/// The lines of `top pods`: one per pod (its containers summed), or per container.
pub fn pod_lines(
    metrics: &[Value],
    namespace_column: bool,
    containers: bool,
    header: bool,
) -> Result<String> {
    let mut rows = Vec::new();
    if header {
        let mut h: Vec<String> = Vec::new();
        if namespace_column {
            h.push("NAMESPACE".into());
        }
        if containers {
            h.push("POD".into());
        }
        h.extend(["NAME", "CPU(cores)", "MEMORY(bytes)"].map(String::from));
        rows.push(h);
    }
    for m in metrics {
        let ns = m
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let pod = m
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let list = m
            .get("containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut lines: Vec<(Vec<String>, Vec<i128>)> = Vec::new();
        if containers {
            for c in &list {
                let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                let usage = MEASURED
                    .iter()
                    .map(|r| usage_of(c.get("usage"), r))
                    .collect::<Result<Vec<_>>>()?;
                lines.push((vec![pod.to_string(), name.to_string()], usage));
            }
        } else {
            let mut sum = vec![0i128; MEASURED.len()];
            for c in &list {
                for (i, r) in MEASURED.iter().enumerate() {
                    sum[i] += usage_of(c.get("usage"), r)?;
                }
            }
            lines.push((vec![pod.to_string()], sum));
        }
        for (names, usage) in lines {
            let mut row = Vec::new();
            if namespace_column {
                row.push(ns.to_string());
            }
            row.extend(names);
            row.extend(MEASURED.iter().zip(usage).map(|(r, u)| usage_text(r, u)));
            rows.push(row);
        }
    }
    Ok(tab_lines(&rows))
}

/// Go's tabwriter as kubectl's top uses it (minwidth 6, padding 3): every cell ends with a
/// tab, so every one, the last included, is padded to its column's width.
fn tab_lines(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(6)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            out.push_str(&" ".repeat(widths[i] - c.chars().count()));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_print_as_kubectl() {
        assert_eq!(usage_text("cpu", milli("250m").unwrap()), "250m");
        assert_eq!(usage_text("cpu", milli("100m").unwrap()), "100m");
        assert_eq!(usage_text("cpu", milli("2").unwrap()), "2000m");
        // Nanocores (what metrics-server reports) round up to the next millicore.
        assert_eq!(usage_text("cpu", milli("12345678n").unwrap()), "13m");
        assert_eq!(usage_text("memory", milli("128Mi").unwrap()), "128Mi");
        assert_eq!(usage_text("memory", milli("131072Ki").unwrap()), "128Mi");
        assert_eq!(usage_text("memory", milli("134217727").unwrap()), "127Mi");
        assert_eq!(usage_text("memory", milli("1Gi").unwrap()), "1024Mi");
        assert!(milli("lots").is_err());
        assert_eq!(percent(250, 2000), "12%");
        assert_eq!(
            percent(milli("128Mi").unwrap(), milli("1Gi").unwrap()),
            "12%"
        );
        assert_eq!(percent(1999, 2000), "99%");
    }

    #[test]
    fn node_lines_use_allocatable() {
        let metrics =
            vec![json!({"metadata": {"name": "n1"}, "usage": {"cpu": "250m", "memory": "128Mi"}})];
        let mut alloc = BTreeMap::new();
        alloc.insert(
            "n1".to_string(),
            json!({"cpu": "2", "memory": "1Gi", "pods": "110"}),
        );
        alloc.insert("n2".to_string(), json!({"cpu": "4"}));
        let out = node_lines(&metrics, &alloc, true).unwrap();
        assert_eq!(
            out,
            "NAME   CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)   \n\
             n1     250m         12%         128Mi           12%         \n\
             n2     <unknown>    <unknown>   <unknown>       <unknown>   \n"
        );
        assert!(!node_lines(&metrics, &alloc, false)
            .unwrap()
            .contains("NAME"));
    }

    #[test]
    fn pod_lines_sum_containers_or_list_them() {
        let metrics = vec![
            json!({"metadata": {"name": "web", "namespace": "default"}, "containers": [
                {"name": "app", "usage": {"cpu": "200m", "memory": "100Mi"}},
                {"name": "sidecar", "usage": {"cpu": "50m", "memory": "28Mi"}},
            ]}),
        ];
        assert_eq!(
            pod_lines(&metrics, false, false, true).unwrap(),
            "NAME   CPU(cores)   MEMORY(bytes)   \nweb    250m         128Mi           \n"
        );
        assert_eq!(
            pod_lines(&metrics, true, true, true).unwrap(),
            "NAMESPACE   POD   NAME      CPU(cores)   MEMORY(bytes)   \n\
             default     web   app       200m         100Mi           \n\
             default     web   sidecar   50m          28Mi            \n"
        );
    }

    #[test]
    fn ages_print_as_go_durations() {
        assert_eq!(go_duration(125_500_000_000), "2m5.5s");
        assert_eq!(go_duration(7_384_000_000_000), "2h3m4s");
        assert_eq!(go_duration(3_000_000_001), "3.000000001s");
    }
}
