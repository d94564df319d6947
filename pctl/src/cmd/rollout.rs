//! `rollout restart`: a new template annotation makes the deployment roll its pods.

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::{resources, Global};

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub what: RolloutCmd,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCmd {
    /// Restart a deployment's pods (a rolling update with the same spec).
    Restart {
        /// TYPE/NAME or TYPE NAME.
        #[arg(required = true)]
        args: Vec<String>,
    },
}

pub async fn rollout(g: &Global, a: RolloutArgs) -> Result<()> {
    let conn = resources::connect(g).await?;
    match a.what {
        RolloutCmd::Restart { args } => {
            for (r, name) in resources::targets(&args)? {
                let name = name.ok_or_else(|| anyhow!("error: resource(s) were provided, but no name was specified"))?;
                if r.kind != "Deployment" {
                    return Err(anyhow!("error: restarting is not supported for {}", r.plural));
                }
                let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
                resources::dynamic(&conn, r, Some(&conn.namespace)).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                println!("{} restarted", resources::display_name(r, &name));
            }
            Ok(())
        }
    }
}
