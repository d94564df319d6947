//! `set image`: new images for containers of pods and of the pod templates of workloads
//! (`NAME=IMAGE`, `*=IMAGE` for all), as a JSON patch of exactly those fields.

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::{output, resources, Global};

#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(subcommand)]
    pub what: SetCmd,
}

#[derive(Debug, Subcommand)]
pub enum SetCmd {
    /// Update the images of containers: TYPE NAME CONTAINER=IMAGE... (or TYPE/NAME ...).
    Image {
        #[arg(required = true)]
        args: Vec<String>,
        /// Every object of TYPE that matches this label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Every object of TYPE in the namespace.
        #[arg(long)]
        all: bool,
    },
}

/// Where a kind keeps its containers.
fn spec_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        _ => "/spec/template/spec",
    }
}

/// The JSON patch that sets `images` (container name or `*` → image) in `obj`, or an error
/// naming a container that does not exist.
pub fn image_patch(obj: &Value, kind: &str, images: &[(String, String)]) -> Result<Vec<Value>> {
    let base = spec_pointer(kind);
    let mut ops = Vec::new();
    for (container, image) in images {
        let mut found = false;
        for field in ["initContainers", "containers"] {
            let list = obj
                .pointer(&format!("{base}/{field}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (i, c) in list.iter().enumerate() {
                if container == "*" || c["name"] == json!(container) {
                    found = true;
                    if c["image"] != json!(image) {
                        ops.push(
                            json!({"op": "replace", "path": format!("{base}/{field}/{i}/image"),
                            "value": image}),
                        );
                    }
                }
            }
        }
        if !found {
            bail!("error: unable to find container named \"{container}\"");
        }
    }
    Ok(ops)
}

pub async fn set(g: &Global, a: SetArgs) -> Result<()> {
    let SetCmd::Image {
        args,
        selector,
        all,
    } = a.what;
    let split = args
        .iter()
        .position(|x| x.contains('='))
        .unwrap_or(args.len());
    let (what, changes) = args.split_at(split);
    if changes.is_empty() {
        bail!("error: at least one image update is required");
    }
    let images: Vec<(String, String)> = changes
        .iter()
        .map(|c| {
            c.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("error: {c} is not a container=image pair"))
        })
        .collect::<Result<_>>()?;
    let conn = resources::connect(g).await?;
    let mut objects = Vec::new();
    for (r, name) in resources::targets(what)? {
        match name {
            Some(n) => {
                let path = resources::path(r, Some(&conn.namespace), Some(&n));
                objects.push((r, output::fetch_json(&conn.client, &path).await?));
            }
            None if selector.is_some() || all => {
                let mut path = resources::path(r, Some(&conn.namespace), None);
                if let Some(l) = &selector {
                    path = format!("{path}?labelSelector={}", super::get::urlencode(l));
                }
                let list = output::fetch_json(&conn.client, &path).await?;
                for o in list["items"].as_array().into_iter().flatten() {
                    objects.push((r, o.clone()));
                }
            }
            None => bail!("error: resource(s) were provided, but no name was specified"),
        }
    }
    for (r, obj) in objects {
        let ops = image_patch(&obj, r.kind, &images)?;
        // kubectl prints nothing for an object whose images were already these.
        if ops.is_empty() {
            continue;
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let path = resources::path(r, Some(&conn.namespace), Some(&name));
        let req = http::Request::patch(&path)
            .header("Content-Type", "application/json-patch+json")
            .body(serde_json::to_vec(&ops)?)?;
        conn.client.request_text(req).await?;
        outln!("{} image updated", resources::display_name(r, &name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_patches() {
        let d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "a"}, {"name": "side", "image": "b"}]}}}});
        let ops = image_patch(&d, "Deployment", &[("side".into(), "c".into())]).unwrap();
        assert_eq!(
            ops,
            vec![
                json!({"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "c"})
            ]
        );
        assert_eq!(
            image_patch(&d, "Deployment", &[("*".into(), "a".into())])
                .unwrap()
                .len(),
            1
        );
        assert!(image_patch(&d, "Deployment", &[("x".into(), "c".into())]).is_err());
        let p = json!({"spec": {"containers": [{"name": "c", "image": "a"}]}});
        assert_eq!(
            image_patch(&p, "Pod", &[("c".into(), "a".into())]).unwrap(),
            Vec::<Value>::new()
        );
    }
}
