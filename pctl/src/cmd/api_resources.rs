//! `api-resources` and `api-versions`: what the server's discovery documents list.

use anyhow::{anyhow, Result};
use clap::Args;
use serde_json::Value;

use crate::{output, resources, Global};

#[derive(Debug, Args)]
pub struct ApiResourcesArgs {
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Only the resources of this API group ("" for the core group).
    #[arg(long)]
    pub api_group: Option<String>,
    /// Only the resources that support all these verbs.
    #[arg(long, value_delimiter = ',')]
    pub verbs: Vec<String>,
    /// wide (with verbs and categories) or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Leave out the header line.
    #[arg(long)]
    pub no_headers: bool,
    /// Sort by name or kind (default: by group).
    #[arg(long)]
    pub sort_by: Option<String>,
}

/// One resource of a discovery document, with its group and version.
struct Entry {
    group: String,
    group_version: String,
    r: Value,
}

/// The group versions the server serves: every version, or the preferred one of each group.
async fn group_versions(
    conn: &resources::Conn,
    preferred_only: bool,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let core = output::fetch_json(&conn.client, "/api").await?;
    for v in core["versions"].as_array().into_iter().flatten() {
        out.push((String::new(), v.as_str().unwrap_or("").to_string()));
    }
    let groups = output::fetch_json(&conn.client, "/apis").await?;
    for g in groups["groups"].as_array().into_iter().flatten() {
        let name = g["name"].as_str().unwrap_or("").to_string();
        if preferred_only {
            let gv = g
                .pointer("/preferredVersion/groupVersion")
                .and_then(Value::as_str);
            out.extend(gv.map(|gv| (name.clone(), gv.to_string())));
        } else {
            for v in g["versions"].as_array().into_iter().flatten() {
                let gv = v["groupVersion"].as_str().unwrap_or("").to_string();
                out.push((name.clone(), gv));
            }
        }
    }
    Ok(out)
}

pub async fn api_versions(g: &Global) -> Result<()> {
    let conn = resources::connect(g).await?;
    let mut list: Vec<String> = group_versions(&conn, false)
        .await?
        .into_iter()
        .map(|(_, gv)| gv)
        .collect();
    list.sort();
    for gv in list {
        outln!("{gv}");
    }
    Ok(())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

pub async fn api_resources(g: &Global, a: ApiResourcesArgs) -> Result<()> {
    let fmt = a.output.as_deref().unwrap_or("");
    if !matches!(fmt, "" | "wide" | "name") {
        return Err(anyhow!("error: --output {fmt} is not available"));
    }
    if let Some(s) = a
        .sort_by
        .as_deref()
        .filter(|s| !matches!(*s, "name" | "kind"))
    {
        return Err(anyhow!(
            "error: --sort-by accepts only name or kind, got {s}"
        ));
    }
    let conn = resources::connect(g).await?;
    let mut entries = Vec::new();
    for (group, gv) in group_versions(&conn, true).await? {
        if a.api_group.as_ref().is_some_and(|want| *want != group) {
            continue;
        }
        let path = if group.is_empty() {
            format!("/api/{gv}")
        } else {
            format!("/apis/{gv}")
        };
        let list = output::fetch_json(&conn.client, &path).await?;
        for r in list["resources"].as_array().into_iter().flatten() {
            let name = r["name"].as_str().unwrap_or("");
            if name.contains('/') {
                continue;
            }
            if a.namespaced
                .is_some_and(|n| r["namespaced"].as_bool() != Some(n))
            {
                continue;
            }
            let verbs = strings(&r["verbs"]);
            if !a.verbs.iter().all(|v| verbs.contains(v)) {
                continue;
            }
            entries.push(Entry {
                group: group.clone(),
                group_version: gv.clone(),
                r: r.clone(),
            });
        }
    }
    let key = |e: &Entry| match a.sort_by.as_deref() {
        Some("name") => e.r["name"].as_str().unwrap_or("").to_string(),
        Some("kind") => e.r["kind"].as_str().unwrap_or("").to_string(),
        // By group, then (as the server's discovery lists them) by name.
        _ => format!("{}/{}", e.group, e.r["name"].as_str().unwrap_or("")),
    };
    entries.sort_by_key(key);
    if fmt == "name" {
        for e in &entries {
            let name = e.r["name"].as_str().unwrap_or("");
            if e.group.is_empty() {
                outln!("{name}");
            } else {
                outln!("{name}.{}", e.group);
            }
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    if !a.no_headers {
        let mut h: Vec<String> = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
            .map(String::from)
            .to_vec();
        if fmt == "wide" {
            h.extend(["VERBS".into(), "CATEGORIES".into()]);
        }
        rows.push(h);
    }
    for e in &entries {
        let mut row = vec![
            e.r["name"].as_str().unwrap_or("").to_string(),
            strings(&e.r["shortNames"]).join(","),
            e.group_version.clone(),
            e.r["namespaced"].as_bool().unwrap_or(false).to_string(),
            e.r["kind"].as_str().unwrap_or("").to_string(),
        ];
        if fmt == "wide" {
            let mut verbs = strings(&e.r["verbs"]);
            verbs.sort();
            row.push(verbs.join(","));
            row.push(strings(&e.r["categories"]).join(","));
        }
        rows.push(row);
    }
    // kubectl's tabwriter pads every cell but the last, so an empty CATEGORIES leaves spaces.
    let text: String = rows.iter().map(|r| r.join("\t") + "\n").collect();
    out!("{}", super::describe::text::tabwrite(&text, 3));
    Ok(())
}
