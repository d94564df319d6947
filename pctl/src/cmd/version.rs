//! `version`: pctl's version and the server's (`--client` for pctl's only, `-o yaml|json`).

use anyhow::{anyhow, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::{output, resources, Global};

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print pctl's version only (no server is asked).
    #[arg(long)]
    pub client: bool,
    /// yaml or json.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// pctl's version as kubectl's `version.Info`.
fn client_info() -> Value {
    let v = env!("CARGO_PKG_VERSION");
    let mut parts = v.split('.');
    json!({
        "major": parts.next().unwrap_or("0"),
        "minor": parts.next().unwrap_or("0"),
        "gitVersion": format!("v{v}"),
        "platform": format!("{}/{}", std::env::consts::OS, go_arch(std::env::consts::ARCH)),
    })
}

/// Go's name for an architecture (`amd64` where Rust says `x86_64`).
fn go_arch(a: &str) -> &str {
    match a {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

pub async fn version(g: &Global, a: VersionArgs) -> Result<()> {
    if let Some(f) = a
        .output
        .as_deref()
        .filter(|f| !matches!(*f, "yaml" | "json"))
    {
        return Err(anyhow!(
            "error: --output must be 'yaml' or 'json' (got {f:?})"
        ));
    }
    let mut doc = json!({"clientVersion": client_info()});
    let server = if a.client {
        None
    } else {
        let conn = resources::connect(g).await?;
        Some(output::fetch_json(&conn.client, "/version").await)
    };
    match a.output.as_deref() {
        None => {
            outln!(
                "Client Version: {}",
                doc["clientVersion"]["gitVersion"].as_str().unwrap_or("")
            );
            if let Some(s) = server {
                let s = s?;
                outln!("Server Version: {}", s["gitVersion"].as_str().unwrap_or(""));
            }
        }
        Some(f) => {
            let failed = match server {
                Some(Ok(s)) => {
                    doc["serverVersion"] = s;
                    None
                }
                Some(Err(e)) => Some(e),
                None => None,
            };
            if f == "json" {
                outln!("{}", output::json(&doc)?);
            } else {
                out!("{}", output::yaml(&doc)?);
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    Ok(())
}
