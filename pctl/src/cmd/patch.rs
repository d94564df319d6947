//! `patch`: a strategic (default), merge or JSON patch, given inline (`-p`, JSON or YAML) or
//! in a file (`--patch-file`); says `patched`, or `patched (no change)` when nothing changed.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::Value;

use crate::{output, resources, Global};

#[derive(Debug, Args)]
pub struct PatchArgs {
    /// TYPE NAME or TYPE/NAME.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// The patch, as JSON or YAML.
    #[arg(short = 'p', long)]
    pub patch: Option<String>,
    /// A file holding the patch.
    #[arg(long)]
    pub patch_file: Option<String>,
    /// strategic, merge or json.
    #[arg(long = "type", default_value = "strategic")]
    pub kind: String,
}

/// The patch body (JSON) from its JSON or YAML text.
pub fn patch_body(text: &str) -> Result<Value> {
    let mut docs = crate::yaml::documents(text)
        .map_err(|e| anyhow!("error: unable to parse {text:?}: {e}"))?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        _ => bail!("error: unable to parse {text:?}: a patch must be one document"),
    }
}

fn content_type(kind: &str) -> Result<&'static str> {
    Ok(match kind {
        "strategic" => "application/strategic-merge-patch+json",
        "merge" => "application/merge-patch+json",
        "json" => "application/json-patch+json",
        other => bail!("error: --type must be one of [json merge strategic], not \"{other}\""),
    })
}

pub async fn patch(g: &Global, a: PatchArgs) -> Result<()> {
    let ctype = content_type(&a.kind)?;
    let text = match (&a.patch, &a.patch_file) {
        (Some(p), None) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?,
        (Some(_), Some(_)) => bail!("error: --patch and --patch-file are mutually exclusive"),
        (None, None) => bail!(
            "error: must specify --patch or --patch-file containing the contents of the patch"
        ),
    };
    let body = serde_json::to_vec(&patch_body(&text)?)?;
    let conn = resources::connect(g).await?;
    for (r, name) in resources::targets(&a.args)? {
        let name = name.ok_or_else(|| {
            anyhow!("error: resource(s) were provided, but no name was specified")
        })?;
        let path = resources::path(r, Some(&conn.namespace), Some(&name));
        let before = output::fetch_json(&conn.client, &path).await?;
        let req = http::Request::patch(&path)
            .header("Content-Type", ctype)
            .body(body.clone())?;
        let after: Value = serde_json::from_str(&conn.client.request_text(req).await?)?;
        let rv = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
        let note = if rv(&before) == rv(&after) {
            " (no change)"
        } else {
            ""
        };
        outln!("{} patched{note}", resources::display_name(r, &name));
    }
    Ok(())
}
