//! `scale --replicas=N` through the scale subresource.

use anyhow::{anyhow, Result};
use clap::Args;
use serde_json::json;

use crate::{resources, Global};

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// TYPE NAME or TYPE/NAME (deployments, replicasets).
    #[arg(required = true)]
    pub args: Vec<String>,
    /// The new desired number of replicas.
    #[arg(long, required = true)]
    pub replicas: i32,
}

pub async fn scale(g: &Global, a: ScaleArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    for (r, name) in resources::targets(&a.args)? {
        let name = name.ok_or_else(|| {
            anyhow!("error: resource(s) were provided, but no name was specified")
        })?;
        if !r.has_subresource("scale") {
            return Err(anyhow!(
                "error: no objects passed to scale: {} cannot be scaled",
                r.plural
            ));
        }
        let path = format!(
            "{}/scale",
            resources::path(r, Some(&conn.namespace), Some(&name))
        );
        let body = serde_json::to_vec(&json!({"spec": {"replicas": a.replicas}}))?;
        let req = http::Request::patch(path)
            .header("Content-Type", "application/merge-patch+json")
            .body(body)?;
        conn.client.request_text(req).await?;
        outln!("{} scaled", resources::display_name(r, &name));
    }
    Ok(())
}
