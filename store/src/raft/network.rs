//! Member-to-member calls: openraft's RPCs and the calls a follower makes to the leader.
//! Payloads are bincode; one lazily connected gRPC channel per peer URL. AppendEntries and
//! forwarded proposals go on request streams: plain TCP ones to peers on http (see
//! [`super::wire`]), gRPC ones to peers on https or without the plain stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use proto::peerpb::peer_client::PeerClient;
use proto::peerpb::Payload;
use serde::{de::DeserializeOwned, Serialize};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::wire::{self, OpenError, StreamKind};
use super::{LogDurability, Member, TypeConfig};
use crate::codec;
use crate::metrics::Metrics;

/// Largest peer message (snapshot chunks, log batches).
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;

/// Channels to peers by URL, shared by Raft replication and request forwarding.
#[derive(Clone)]
pub struct PeerClients {
    tls: Option<ClientTlsConfig>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Idle request streams (AppendEntries, Propose) by RPC and peer URL.
    idle_streams: Arc<Mutex<HashMap<(PeerRpc, String), Vec<RequestStream>>>>,
    /// Since when each peer (by member ID) has answered Raft RPCs without a failure.
    active: Arc<Mutex<HashMap<u64, std::time::Instant>>>,
    /// Peer URLs that refused the plain request streams (see [`wire`]): gRPC for them.
    refuse_wire: Arc<Mutex<std::collections::HashSet<String>>>,
}

/// The peer RPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRpc {
    /// openraft AppendEntries (on a stream).
    AppendEntries,
    /// openraft Vote.
    Vote,
    /// openraft InstallSnapshot (a chunk).
    InstallSnapshot,
    /// A client command for the leader.
    Propose,
    /// Leader's read index.
    ReadIndex,
    /// Leader-only lease operations.
    LeaseOp,
    /// Membership as known.
    Members,
    /// Membership change for the leader.
    MemberChange,
}

impl PeerClients {
    /// Peers reached with `tls` when URLs are https.
    pub fn new(tls: Option<ClientTlsConfig>) -> PeerClients {
        PeerClients {
            tls,
            channels: Arc::new(Mutex::new(HashMap::new())),
            idle_streams: Arc::new(Mutex::new(HashMap::new())),
            active: Arc::new(Mutex::new(HashMap::new())),
            refuse_wire: Arc::new(Mutex::new(std::collections::HashSet::new())),
        }
    }

    /// Records the outcome of an RPC to `id` (replication or probe): the first success after a
    /// failure starts its active period, a failure ends it (etcd's transport ActiveSince).
    pub fn mark(&self, id: u64, ok: bool) {
        let mut active = self.active.lock();
        if ok {
            active.entry(id).or_insert_with(std::time::Instant::now);
        } else {
            active.remove(&id);
        }
    }

    /// Since when `id` has been answering, or None when its last RPC failed (or none was made).
    pub fn active_since(&self, id: u64) -> Option<std::time::Instant> {
        self.active.lock().get(&id).copied()
    }

    fn channel(&self, url: &str) -> Result<Channel, tonic::transport::Error> {
        if let Some(c) = self.channels.lock().get(url) {
            return Ok(c.clone());
        }
        let mut ep = Endpoint::from_shared(url.to_string())?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5));
        if let (Some(tls), true) = (&self.tls, url.starts_with("https")) {
            ep = ep.tls_config(tls.clone())?;
        }
        let ch = ep.connect_lazy();
        self.channels.lock().insert(url.to_string(), ch.clone());
        Ok(ch)
    }

    /// A client of the peer at `url`, on its shared channel, sized for peer messages.
    fn client(&self, url: &str) -> Result<PeerClient<Channel>, PeerCallError> {
        let ch = self
            .channel(url)
            .map_err(|e| PeerCallError::Unreachable(e.to_string()))?;
        Ok(PeerClient::new(ch)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    /// Sends `req` to the peer at `url` and decodes its reply; the outer error is transport
    /// (peer unreachable, timeout), the reply itself may carry the peer's own error.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        url: &str,
        rpc: PeerRpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerCallError> {
        if let PeerRpc::AppendEntries | PeerRpc::Propose = rpc {
            return self.stream_call(url, rpc, req, timeout).await;
        }
        let data = codec::encode(req).map_err(|e| PeerCallError::Codec(e.to_string()))?;
        let mut client = self.client(url)?;
        let payload = Payload { data };
        let fut = async {
            match rpc {
                // Sent on streams by `stream_call` above.
                PeerRpc::AppendEntries | PeerRpc::Propose => {
                    Err(tonic::Status::internal("sent on a stream"))
                }
                PeerRpc::Vote => client.vote(payload).await,
                PeerRpc::InstallSnapshot => client.install_snapshot(payload).await,
                PeerRpc::ReadIndex => client.read_index(payload).await,
                PeerRpc::LeaseOp => client.lease_op(payload).await,
                PeerRpc::Members => client.members(payload).await,
                PeerRpc::MemberChange => client.member_change(payload).await,
            }
        };
        let resp = match tokio::time::timeout(timeout, fut).await {
            Err(_) => return Err(PeerCallError::Timeout),
            Ok(Err(status)) => return Err(PeerCallError::from_status(status)),
            Ok(Ok(r)) => r.into_inner(),
        };
        codec::decode(&resp.data).map_err(|e| PeerCallError::Codec(e.to_string()))
    }
}

/// An open request stream to a peer (AppendEntries or Propose): each request gets its
/// answer, in order.
enum RequestStream {
    /// A gRPC stream: requests go in on `tx`, answers come back on `answers`.
    Grpc {
        tx: tokio::sync::mpsc::Sender<Payload>,
        answers: tonic::Streaming<Payload>,
    },
    /// A plain TCP stream of length-prefixed messages (see [`wire`]).
    Wire(tokio::net::TcpStream),
}

/// Why an exchange on a request stream failed.
enum StreamFailure {
    /// The stream was closed before the request went out: the peer never saw it.
    NotSent,
    /// The stream ended or broke after the request went out: the peer may have seen it.
    Lost(String),
    /// The peer answered with an error of its own.
    Status(tonic::Status),
}

impl RequestStream {
    async fn exchange(&mut self, data: &[u8]) -> Result<Vec<u8>, StreamFailure> {
        match self {
            RequestStream::Grpc { tx, answers } => {
                tx.send(Payload {
                    data: data.to_vec(),
                })
                .await
                .map_err(|_| StreamFailure::NotSent)?;
                match answers.message().await {
                    Ok(Some(answer)) => Ok(answer.data),
                    Ok(None) => Err(StreamFailure::Lost("stream ended".into())),
                    Err(status) if status.code() == tonic::Code::InvalidArgument => {
                        Err(StreamFailure::Status(status))
                    }
                    Err(status) => Err(StreamFailure::Lost(status.message().to_string())),
                }
            }
            RequestStream::Wire(conn) => {
                // An idle stream the peer closed (it restarted) has nothing in flight: the
                // request has not gone out.
                if !wire::is_open(conn) {
                    return Err(StreamFailure::NotSent);
                }
                let mut answer = Vec::new();
                match wire::write_message(conn, data).await {
                    Ok(()) => {}
                    Err(e) => return Err(StreamFailure::Lost(e.to_string())),
                }
                match wire::read_message(conn, &mut answer).await {
                    Ok(true) => Ok(answer),
                    Ok(false) => Err(StreamFailure::Lost("stream ended".into())),
                    Err(e) => Err(StreamFailure::Lost(e.to_string())),
                }
            }
        }
    }
}

impl PeerClients {
    /// Opens a request stream of `rpc` to the peer at `url`: a plain one on http, unless the
    /// peer refused it once; else gRPC.
    async fn open_stream(&self, url: &str, rpc: PeerRpc) -> Result<RequestStream, PeerCallError> {
        let kind = match rpc {
            PeerRpc::AppendEntries => Some(StreamKind::AppendEntries),
            PeerRpc::Propose => Some(StreamKind::Propose),
            _ => None,
        };
        let plain = url
            .strip_prefix("http://")
            .map(|rest| rest.split('/').next().unwrap_or(rest))
            .filter(|_| !self.refuse_wire.lock().contains(url));
        if let (Some(kind), Some(addr)) = (kind, plain) {
            match wire::open(addr, kind, CONNECT_TIMEOUT).await {
                Ok(conn) => return Ok(RequestStream::Wire(conn)),
                Err(OpenError::Unreachable(m)) => return Err(PeerCallError::Unreachable(m)),
                Err(OpenError::Refused) => {
                    tracing::info!(%url, "peer has no plain request streams; using gRPC");
                    self.refuse_wire.lock().insert(url.to_string());
                }
            }
        }
        let mut client = self.client(url)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
        let opened = match rpc {
            PeerRpc::AppendEntries => client.append_entries(requests).await,
            PeerRpc::Propose => client.propose(requests).await,
            other => return Err(PeerCallError::Status(format!("{other:?} is not a stream"))),
        };
        let answers = opened.map_err(PeerCallError::from_status)?.into_inner();
        Ok(RequestStream::Grpc { tx, answers })
    }

    /// Sends `req` on a request stream of `rpc` to the peer at `url` and decodes its answer.
    /// An idle stream is reused; one found closed (the peer restarted) is replaced once. A
    /// request that went out without an answer is sent again only for AppendEntries, which
    /// is idempotent; for a forwarded proposal it is [`PeerCallError::Lost`].
    async fn stream_call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        url: &str,
        rpc: PeerRpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerCallError> {
        /// Idle streams kept per RPC and peer (as many as calls run at once).
        const MAX_IDLE: usize = 8;
        let data = codec::encode(req).map_err(|e| PeerCallError::Codec(e.to_string()))?;
        let key = (rpc, url.to_string());
        let exchange = async {
            let reused = self.idle_streams.lock().get_mut(&key).and_then(Vec::pop);
            let (mut stream, mut fresh) = match reused {
                Some(stream) => (stream, false),
                None => (self.open_stream(url, rpc).await?, true),
            };
            loop {
                match stream.exchange(&data).await {
                    Ok(answer) => return Ok((stream, answer)),
                    Err(StreamFailure::NotSent) if !fresh => {}
                    Err(StreamFailure::Lost(_)) if !fresh && rpc == PeerRpc::AppendEntries => {}
                    Err(StreamFailure::NotSent) => {
                        return Err(PeerCallError::Unreachable("stream closed".into()))
                    }
                    Err(StreamFailure::Lost(m)) => return Err(PeerCallError::Lost(m)),
                    Err(StreamFailure::Status(status)) => {
                        return Err(PeerCallError::Status(status.message().to_string()))
                    }
                }
                stream = self.open_stream(url, rpc).await?;
                fresh = true;
            }
        };
        // A stream whose answer is late is dropped with the future: its next answer would
        // be this one's.
        let (stream, answer) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return Err(PeerCallError::Timeout),
            Ok(r) => r?,
        };
        {
            let mut idle = self.idle_streams.lock();
            let streams = idle.entry(key).or_default();
            if streams.len() < MAX_IDLE {
                streams.push(stream);
            }
        }
        codec::decode(&answer).map_err(|e| PeerCallError::Codec(e.to_string()))
    }
}

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Failure to get an answer from a peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerCallError {
    /// Connection refused or lost.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// No answer in time.
    #[error("peer did not answer in time")]
    Timeout,
    /// A request went out and its stream broke before the answer: the peer may have seen it.
    #[error("peer connection lost before the answer: {0}")]
    Lost(String),
    /// The peer answered with a gRPC error.
    #[error("peer error: {0}")]
    Status(String),
    /// The reply did not decode.
    #[error("peer reply: {0}")]
    Codec(String),
}

impl PeerCallError {
    /// A call's failed status: Unavailable means the peer was not reached; any other status
    /// is the peer's answer.
    fn from_status(status: tonic::Status) -> PeerCallError {
        if status.code() == tonic::Code::Unavailable {
            PeerCallError::Unreachable(status.message().to_string())
        } else {
            PeerCallError::Status(status.message().to_string())
        }
    }
}

/// openraft's network factory.
pub struct Network {
    peers: PeerClients,
    metrics: Arc<Metrics>,
    durability: LogDurability,
}

impl Network {
    /// A network over `peers` for the member whose log is `durability`.
    pub fn new(peers: PeerClients, metrics: Arc<Metrics>, durability: LogDurability) -> Network {
        Network {
            peers,
            metrics,
            durability,
        }
    }
}

/// A connection to one peer for Raft replication.
pub struct Conn {
    target: u64,
    url: String,
    peers: PeerClients,
    metrics: Arc<Metrics>,
    durability: LogDurability,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Conn;

    async fn new_client(&mut self, target: u64, node: &Member) -> Conn {
        Conn {
            target,
            url: node.peer_urls.first().cloned().unwrap_or_default(),
            peers: self.peers.clone(),
            metrics: self.metrics.clone(),
            durability: self.durability.clone(),
        }
    }
}

impl Conn {
    async fn rpc<Req, Resp, E>(
        &self,
        rpc: PeerRpc,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<u64, Member, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let reply: Result<Resp, E> = match self.peers.call(&self.url, rpc, req, ttl).await {
            Ok(r) => r,
            Err(PeerCallError::Unreachable(m)) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &std::io::Error::other(m),
                )))
            }
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// A leader may count its own entries committed before they are on its disk (see
    /// LogDurability): followers learn a commit index only as far as the leader's log is on
    /// disk, so that no member applies an entry a quorum does not hold durably. A heartbeat
    /// waits for the leader's sync under way (its only news may be the commit index); an
    /// append does not wait, and carries the furthest of its own log ids that is on disk.
    async fn commit_on_disk(
        &self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        wait: Duration,
    ) -> AppendEntriesRequest<TypeConfig> {
        let Some(commit) = rpc.leader_commit else {
            return rpc;
        };
        if commit.index <= self.durability.synced() {
            return rpc;
        }
        if rpc.entries.is_empty() && self.durability.wait(commit.index, wait).await {
            return rpc;
        }
        let synced = self.durability.synced();
        // These are ids of the leader's log below its commit index, so committed; a lower
        // commit index than before is ignored by the follower.
        rpc.leader_commit = rpc
            .entries
            .iter()
            .map(|e| e.log_id)
            .chain(rpc.prev_log_id)
            .filter(|l| l.index <= synced)
            .max_by_key(|l| l.index);
        rpc
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        let rpc = self.commit_on_disk(rpc, option.soft_ttl()).await;
        let kind = match rpc.entries.last() {
            Some(last) => {
                if let Some(at) = self.durability.appended_at(last.log_id.index) {
                    self.metrics.send_lag.observe(at.elapsed().as_secs_f64());
                }
                "entries"
            }
            None => "commit",
        };
        let started = std::time::Instant::now();
        let res = self
            .rpc(PeerRpc::AppendEntries, &rpc, option.hard_ttl())
            .await;
        let took = started.elapsed().as_secs_f64();
        self.metrics.peer_rtt.observe(took);
        self.metrics
            .append_rtt
            .with_label_values(&[kind])
            .observe(took);
        self.peers.mark(
            self.target,
            !matches!(
                res,
                Err(RPCError::Unreachable(_) | RPCError::Network(_) | RPCError::Timeout(_))
            ),
        );
        res
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, Member, RaftError<u64, InstallSnapshotError>>,
    > {
        self.rpc(PeerRpc::InstallSnapshot, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.rpc(PeerRpc::Vote, &rpc, option.hard_ttl()).await
    }
}
