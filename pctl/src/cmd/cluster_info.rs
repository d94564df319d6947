//! `cluster-info`: where the control plane answers, in kubectl's words (and colours on a
//! terminal).

use std::io::IsTerminal;

use anyhow::Result;

use crate::{resources, Global};

/// kubectl's colours: green for the name, yellow for the address.
const GREEN: &str = "\x1b[0;32m";
const YELLOW: &str = "\x1b[0;33m";
const RESET: &str = "\x1b[0m";

pub async fn cluster_info(g: &Global) -> Result<()> {
    let conn = resources::connect(g).await?;
    // Fails as kubectl does when the server cannot be reached.
    crate::output::fetch_json(&conn.client, "/version").await?;
    let url = conn.url.trim_end_matches('/');
    if std::io::stdout().is_terminal() {
        outln!("{GREEN}Kubernetes control plane{RESET} is running at {YELLOW}{url}{RESET}");
    } else {
        outln!("Kubernetes control plane is running at {url}");
    }
    outln!();
    outln!("To further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.");
    Ok(())
}
