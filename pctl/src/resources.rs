//! Connecting to the apiserver and naming resources as kubectl users do (`po`, `deploy`,
//! `pods/web`, `deployment.apps`), through the shared resource registry.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use api::registry::{self, Resource};
use kube::{
    api::{Api, DynamicObject},
    config::Kubeconfig,
    discovery::ApiResource,
};

use crate::Global;

/// A connected client, the namespace commands act in, and the server's address.
pub struct Conn {
    pub client: kube::Client,
    pub namespace: String,
    pub url: String,
}

/// The kubeconfig kubectl would use: `--kubeconfig`, else the files `KUBECONFIG` lists
/// (merged, missing ones skipped), else `~/.kube/config`.
fn kubeconfig(g: &Global) -> Result<Kubeconfig> {
    if let Some(p) = &g.kubeconfig {
        return Ok(Kubeconfig::read_from(p)?);
    }
    match kubeconfig_env() {
        Some(paths) if !paths.is_empty() => {
            let mut merged = Kubeconfig::default();
            for p in paths {
                merged = merged.merge(Kubeconfig::read_from(&p)?)?;
            }
            Ok(merged)
        }
        _ => Ok(Kubeconfig::read()?),
    }
}

pub async fn connect(g: &Global) -> Result<Conn> {
    let options = kube::config::KubeConfigOptions {
        context: g.context.clone(),
        ..Default::default()
    };
    let config = async {
        let kc = kubeconfig(g)?;
        anyhow::Ok(kube::Config::from_custom_kubeconfig(kc, &options).await?)
    }
    .await
    .context("connecting to the cluster")?;
    let namespace = g
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let url = config.cluster_url.to_string();
    Ok(Conn {
        client: kube::Client::try_from(config)?,
        namespace,
        url,
    })
}

/// The files `KUBECONFIG` lists that exist: kubectl skips the missing ones. None when it
/// is unset or empty.
fn kubeconfig_env() -> Option<Vec<PathBuf>> {
    let list = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty())?;
    Some(existing(std::env::split_paths(&list)))
}

fn existing(paths: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !p.as_os_str().is_empty() && p.is_file() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The resource a user names, or kubectl's error.
pub fn resolve(name: &str) -> Result<&'static Resource> {
    registry::find_by_user_name(name)
        .ok_or_else(|| anyhow!("error: the server doesn't have a resource type \"{name}\""))
}

/// The resource of a manifest's apiVersion and kind, or kubectl's error.
pub fn resolve_kind(api_version: &str, kind: &str) -> Result<&'static Resource> {
    registry::find_kind(api_version, kind).ok_or_else(|| {
        anyhow!(
            "resource mapping not found for kind \"{kind}\" in version \"{api_version}\": \
                 no matches for kind \"{kind}\" in version \"{api_version}\""
        )
    })
}

pub fn api_resource(r: &Resource) -> ApiResource {
    ApiResource {
        group: r.group.to_string(),
        version: r.version.to_string(),
        api_version: r.api_version(),
        kind: r.kind.to_string(),
        plural: r.plural.to_string(),
    }
}

/// A dynamic API for `r` in `namespace` (ignored for cluster-scoped resources; None: all).
pub fn dynamic(conn: &Conn, r: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
    let ar = api_resource(r);
    match (r.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(conn.client.clone(), ns, &ar),
        _ => Api::all_with(conn.client.clone(), &ar),
    }
}

/// `pod/web`, `deployment.apps/web`: how kubectl names an object in its messages.
pub fn display_name(r: &Resource, name: &str) -> String {
    if r.group.is_empty() {
        format!("{}/{name}", r.singular)
    } else {
        format!("{}.{}/{name}", r.singular, r.group)
    }
}

/// Splits `TYPE NAME...` or `TYPE/NAME...` arguments into (resource, names).
pub fn targets(args: &[String]) -> Result<Vec<(&'static Resource, Option<String>)>> {
    let mut out = Vec::new();
    let Some(first) = args.first() else {
        return Err(anyhow!("error: you must specify the type of resource"));
    };
    if first.contains('/') {
        for a in args {
            let (t, n) = a.split_once('/').ok_or_else(|| {
                anyhow!(
                    "error: there is no need to specify a resource type as a separate argument \
                     when passing arguments in resource/name form"
                )
            })?;
            out.push((resolve(t)?, Some(n.to_string())));
        }
        return Ok(out);
    }
    let mut types = Vec::new();
    for t in first.split(',') {
        if t == "all" {
            // The "all" category, in discovery order, as kubectl expands it.
            types.extend(
                registry::RESOURCES
                    .iter()
                    .filter(|r| r.categories.contains(&"all")),
            );
        } else {
            types.push(resolve(t)?);
        }
    }
    if args.len() == 1 {
        return Ok(types.into_iter().map(|r| (r, None)).collect());
    }
    for r in types {
        for n in &args[1..] {
            out.push((r, Some(n.clone())));
        }
    }
    Ok(out)
}

/// The REST path of a collection (namespace None: all namespaces) or of one object.
pub fn path(r: &Resource, namespace: Option<&str>, name: Option<&str>) -> String {
    let root = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let mut p = match (r.namespaced, namespace) {
        (true, Some(ns)) => format!("{root}/namespaces/{ns}/{}", r.plural),
        _ => format!("{root}/{}", r.plural),
    };
    if let Some(n) = name {
        p.push('/');
        p.push_str(n);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_forms() {
        let t = targets(&["po".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].0.plural, "pods");
        let t = targets(&["deploy/web".into()]).unwrap();
        assert_eq!(
            (t[0].0.kind, t[0].1.as_deref()),
            ("Deployment", Some("web"))
        );
        assert!(targets(&["widgets".into()]).is_err());
        let all: Vec<&str> = targets(&["all".into()])
            .unwrap()
            .iter()
            .map(|(r, _)| r.plural)
            .collect();
        assert_eq!(all, ["pods", "services", "deployments", "replicasets"]);
        assert_eq!(display_name(t[0].0, "web"), "deployment.apps/web");
    }

    #[test]
    fn missing_kubeconfig_files_are_skipped() {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let paths = std::env::split_paths("/nonexistent/kubeconfig::").chain([here.clone()]);
        assert_eq!(existing(paths), vec![here]);
    }
}
