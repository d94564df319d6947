//! One client's connection to the store, as Jepsen's clients hold them: bound to one member,
//! and after an indeterminate operation a fresh process (new process number) connected to the
//! next member.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::{Client, ConnectOptions};

use super::Ctx;

/// Bound on one operation; past it the operation is indeterminate.
pub const OP_TIMEOUT: Duration = Duration::from_millis(1500);
/// Pause after an indeterminate operation before the next one.
const BACKOFF: Duration = Duration::from_millis(200);

/// A client's session with one member.
pub struct Session {
    /// Client number (0..clients).
    pub index: usize,
    /// Jepsen's process: `index`, then `index + clients` after the first indeterminate
    /// operation, and so on (a process has at most one operation in flight).
    pub process: usize,
    clients: usize,
    ctx: Ctx,
    next_endpoint: usize,
    client: Option<Client>,
    /// The URL of the member this session is bound to.
    pub endpoint: String,
}

impl Session {
    pub fn new(index: usize, ctx: &Ctx) -> Session {
        Session {
            index,
            process: index,
            clients: ctx.clients,
            ctx: ctx.clone(),
            next_endpoint: index,
            client: None,
            endpoint: String::new(),
        }
    }

    /// The connection, opened on first use.
    pub async fn client(&mut self) -> Result<Client> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let endpoints = self
            .ctx
            .endpoints
            .read()
            .map(|e| e.clone())
            .unwrap_or_default();
        let url = endpoints
            .get(self.next_endpoint % endpoints.len().max(1))
            .cloned()
            .context("no member to connect to")?;
        self.next_endpoint += 1;
        let client = connect(&url).await?;
        self.endpoint = url;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Runs `op` within [`OP_TIMEOUT`].
    pub async fn timed<T, F>(&self, op: F) -> Result<T>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        tokio::time::timeout(OP_TIMEOUT, op)
            .await
            .context("timed out")?
            .map_err(anyhow::Error::from)
    }

    /// After an indeterminate operation: a new process number, the next member, a short pause.
    pub async fn crashed(&mut self) {
        self.process += self.clients;
        self.client = None;
        tokio::time::sleep(BACKOFF).await;
    }

    /// After a failed connection (no operation sent): the next member, a short pause.
    pub async fn reconnect(&mut self) {
        self.client = None;
        tokio::time::sleep(BACKOFF).await;
    }

    /// Sleeps between two operations to keep the run's rate.
    pub async fn pace(&self) {
        let pace = self.ctx.pace();
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
}

/// Opens a connection to one member, bounded by [`OP_TIMEOUT`] per request.
pub async fn connect(url: &str) -> Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(OP_TIMEOUT)
        .with_timeout(OP_TIMEOUT)
        .with_keep_alive(Duration::from_secs(1), OP_TIMEOUT);
    tokio::time::timeout(OP_TIMEOUT, Client::connect([url], Some(options)))
        .await
        .with_context(|| format!("connecting to {url} timed out"))?
        .with_context(|| format!("connecting to {url}"))
}
