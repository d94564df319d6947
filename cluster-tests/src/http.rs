//! A plain-HTTP GET for tests (metrics endpoints, pods' web servers): HTTP/1.0 over a TCP
//! connection, so that nothing between the test and the server interprets the answer.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs `http://HOST:PORT/PATH` (within 5 s); the status code and the body.
pub async fn get(url: &str) -> Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: not an http:// URL"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(host).await?;
        let req = format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        anyhow::Ok(String::from_utf8_lossy(&out).into_owned())
    };
    let out = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("GET {url}: timed out"))?
        .with_context(|| format!("GET {url}"))?;
    let Some((head, body)) = out.split_once("\r\n\r\n") else {
        bail!("GET {url}: malformed answer {out:?}");
    };
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("GET {url}: malformed status line in {head:?}"))?;
    Ok((code, body.to_string()))
}
