//! `describe`: an object's details and its events, as kubectl prints them. Each kind with
//! sections of its own has a [`Describer`] in a file here; the others get [`generic`]'s.

mod containers;
mod deployment;
mod events;
mod generic;
mod namespace;
mod node;
pub mod pod;
mod service;
pub mod text;
mod usage;

use anyhow::Result;
use clap::Args;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::{output, resources, Global};
use text::Text;

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// TYPE [NAME_PREFIX...] or TYPE/NAME.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Label selector: describe every object of TYPE that matches.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Describe across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Show the events (`--show-events=false` to leave them out).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub show_events: bool,
}

/// How one kind is described.
pub trait Describer: Sync {
    /// REST paths of other objects the description needs (fetched as JSON; null if missing).
    fn related(&self, _obj: &Value) -> Vec<String> {
        Vec::new()
    }

    /// Whether the description ends with the object's events.
    fn events(&self) -> bool {
        true
    }

    /// Writes the description of `obj` (the events are added after it).
    fn write(&self, w: &mut Text, obj: &Value, related: &[Value], now: Timestamp);
}

fn describer(kind: &str) -> &'static dyn Describer {
    match kind {
        "Pod" => &pod::Pod,
        "Deployment" => &deployment::Deployment,
        "Service" => &service::Service,
        "Node" => &node::Node,
        "Namespace" => &namespace::Namespace,
        _ => &generic::Generic,
    }
}

/// `path` as JSON, or null when it does not exist (or may not be read).
async fn fetch_optional(conn: &resources::Conn, path: &str) -> Result<Value> {
    match output::fetch_json(&conn.client, path).await {
        Ok(v) => Ok(v),
        Err(e) => match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) if matches!(s.code, 403 | 404) => Ok(Value::Null),
            _ => Err(e),
        },
    }
}

/// An object to describe, and whether it was found by its name's prefix (kubectl ends each of
/// those descriptions with an empty line).
type Found = (&'static api::registry::Resource, Value, bool);

/// The objects to describe: by name (or, as kubectl, by name prefix when no object has that
/// exact name), by selector, or all of a type.
async fn objects(conn: &resources::Conn, a: &DescribeArgs, ns: Option<&str>) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for (r, name) in resources::targets(&a.args)? {
        let list_path = |sel: Option<&str>| {
            let p = resources::path(r, ns, None);
            match sel {
                Some(l) => format!("{p}?labelSelector={}", super::get::urlencode(l)),
                None => p,
            }
        };
        match name {
            Some(n) => {
                let path = resources::path(r, ns.or(Some(conn.namespace.as_str())), Some(&n));
                match fetch_optional(conn, &path).await? {
                    Value::Null => {
                        let list = output::fetch_json(&conn.client, &list_path(None)).await?;
                        let matches: Vec<Value> = text::arr(list.get("items"))
                            .iter()
                            .filter(|o| text::s(o, "/metadata/name").starts_with(&n))
                            .cloned()
                            .collect();
                        if matches.is_empty() {
                            // The server's NotFound, in kubectl's words.
                            output::fetch_json(&conn.client, &path).await?;
                        }
                        out.extend(matches.into_iter().map(|o| (r, o, true)));
                    }
                    o => out.push((r, o, false)),
                }
            }
            None => {
                let list =
                    output::fetch_json(&conn.client, &list_path(a.selector.as_deref())).await?;
                out.extend(
                    text::arr(list.get("items"))
                        .iter()
                        .cloned()
                        .map(|o| (r, o, false)),
                );
            }
        }
    }
    Ok(out)
}

pub async fn describe(g: &Global, a: DescribeArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    let ns = if a.all_namespaces {
        None
    } else {
        Some(conn.namespace.as_str())
    };
    let found = objects(&conn, &a, ns).await?;
    if found.is_empty() {
        match ns {
            Some(n) => errln!("No resources found in {n} namespace."),
            None => errln!("No resources found"),
        }
    }
    let now = Timestamp::now();
    for (i, (r, obj, by_prefix)) in found.iter().enumerate() {
        let d = describer(r.kind);
        let mut related = Vec::new();
        for p in d.related(obj) {
            related.push(fetch_optional(&conn, &p).await?);
        }
        let mut w = Text::default();
        d.write(&mut w, obj, &related, now);
        if a.show_events && d.events() {
            let path = events::path(
                text::s(obj, "/metadata/namespace"),
                text::s(obj, "/metadata/name"),
                text::s(obj, "/metadata/uid"),
            );
            events::write(&mut w, &fetch_optional(&conn, &path).await?, now);
        }
        if *by_prefix {
            outln!("{}", w.finish());
            continue;
        }
        if i > 0 {
            out!("\n\n");
        }
        out!("{}", w.finish());
    }
    Ok(())
}
