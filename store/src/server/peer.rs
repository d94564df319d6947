//! The peer service: openraft's RPCs and the calls followers make to the leader.

use std::pin::Pin;
use std::sync::Arc;

use openraft::error::RaftError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest,
};
use proto::peerpb::peer_server::Peer;
use proto::peerpb::Payload;
use serde::{de::DeserializeOwned, Serialize};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::apply::Proposed;
use crate::codec;
use crate::error::StoreError;
use crate::node::{LeaseOp, MemberChange, Node};
use crate::raft::wire::{self, StreamKind};
use crate::raft::TypeConfig;

/// The peer service of a member.
pub struct PeerService {
    node: Arc<Node>,
}

impl PeerService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        PeerService { node }
    }
}

fn decode<T: DeserializeOwned>(r: Request<Payload>) -> Result<T, Status> {
    codec::decode(&r.into_inner().data).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn reply<T: Serialize>(v: &T) -> Result<Response<Payload>, Status> {
    let data = codec::encode(v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(Payload { data }))
}

/// The answers on a request stream.
type Answers = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send>>;

/// Answers each request message of `inbound` with `handle`, in order, one at a time: the
/// next request is read while the answers are polled, so there is no task per request.
fn answer_each<T, F, Fut>(inbound: Streaming<Payload>, node: Arc<Node>, handle: F) -> Answers
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Arc<Node>, T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Payload, Status>> + Send,
{
    let answers = futures::stream::unfold(
        (inbound, node, handle),
        |(mut inbound, node, handle)| async move {
            let msg = match inbound.message().await {
                Ok(Some(msg)) => msg,
                Ok(None) => return None,
                Err(status) => return Some((Err(status), (inbound, node, handle))),
            };
            let answer = match codec::decode::<T>(&msg.data) {
                Ok(req) => handle(node.clone(), req).await,
                Err(e) => Err(Status::invalid_argument(e.to_string())),
            };
            Some((answer, (inbound, node, handle)))
        },
    );
    Box::pin(answers)
}

/// Hands `rpc` to Raft and times it by kind.
async fn append_entries(
    node: &Node,
    rpc: AppendEntriesRequest<TypeConfig>,
) -> Result<AppendEntriesResponse<u64>, RaftError<u64>> {
    let started = std::time::Instant::now();
    let kind = if rpc.entries.is_empty() {
        "commit"
    } else {
        "entries"
    };
    let res = node.append_entries(rpc).await;
    node.metrics()
        .append_handling
        .with_label_values(&[kind])
        .observe(started.elapsed().as_secs_f64());
    res
}

/// A plain request stream (see [`crate::raft::wire`]) accepted by the peer listener:
/// answered in order on this connection's task until the sender closes it. A message that
/// does not decode ends the stream (the sender's call fails).
pub(super) async fn serve_wire(node: Arc<Node>, mut conn: tokio::net::TcpStream, kind: StreamKind) {
    let peer = conn.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let served = match kind {
        StreamKind::AppendEntries => answer_wire(&mut conn, |rpc| append_entries(&node, rpc)).await,
        StreamKind::Propose => answer_wire(&mut conn, |p| accept_forwarded(&node, p)).await,
    };
    if let Err(e) = served {
        tracing::debug!(%peer, ?kind, "request stream ended: {e}");
    }
}

async fn answer_wire<T, R, F, Fut>(
    conn: &mut tokio::net::TcpStream,
    handle: F,
) -> std::io::Result<()>
where
    T: DeserializeOwned,
    R: Serialize,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut magic = [0u8; wire::MAGIC_LEN];
    conn.read_exact(&mut magic).await?;
    conn.write_all(wire::ACCEPTED).await?;
    let mut buf = Vec::new();
    while wire::read_message(conn, &mut buf).await? {
        let req: T = codec::decode(&buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        let answer = handle(req).await;
        let data = codec::encode(&answer).map_err(std::io::Error::other)?;
        wire::write_message(conn, &data).await?;
    }
    Ok(())
}

/// Appends a follower's forwarded entry as leader and times it.
async fn accept_forwarded(node: &Node, proposed: Proposed) -> Result<u64, StoreError> {
    let started = std::time::Instant::now();
    let accepted = node.accept_forwarded(proposed).await;
    node.metrics()
        .forward_handling
        .observe(started.elapsed().as_secs_f64());
    accepted
}

#[tonic::async_trait]
impl Peer for PeerService {
    type AppendEntriesStream = Answers;
    type ProposeStream = Answers;

    /// A leader's AppendEntries stream on gRPC (a leader reaching this member on https, or
    /// one without the plain stream): each request message gets its answer, in order.
    async fn append_entries(
        &self,
        request: Request<Streaming<Payload>>,
    ) -> Result<Response<Answers>, Status> {
        let answers = answer_each(
            request.into_inner(),
            self.node.clone(),
            |node, rpc: AppendEntriesRequest<TypeConfig>| async move {
                let res = append_entries(&node, rpc).await;
                reply(&res).map(Response::into_inner)
            },
        );
        Ok(Response::new(answers))
    }

    /// A follower's forwarding stream: each message is a log entry of the follower's (a
    /// batch of commands it queued together, under its ticket), answered with the index at
    /// which this member, as leader, appended it; the follower's apply answers its clients.
    async fn propose(
        &self,
        request: Request<Streaming<Payload>>,
    ) -> Result<Response<Answers>, Status> {
        let answers = answer_each(
            request.into_inner(),
            self.node.clone(),
            |node, proposed: Proposed| async move {
                reply(&accept_forwarded(&node, proposed).await).map(Response::into_inner)
            },
        );
        Ok(Response::new(answers))
    }

    async fn vote(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: VoteRequest<u64> = decode(request)?;
        reply(&self.node.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Payload>,
    ) -> Result<Response<Payload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(request)?;
        reply(&self.node.raft().install_snapshot(rpc).await)
    }

    async fn read_index(&self, _request: Request<Payload>) -> Result<Response<Payload>, Status> {
        reply(&self.node.leader_read_index().await)
    }

    async fn lease_op(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let op: LeaseOp = decode(request)?;
        reply(&self.node.leader_lease_op(op))
    }

    async fn members(&self, _request: Request<Payload>) -> Result<Response<Payload>, Status> {
        reply(&self.node.members())
    }

    async fn member_change(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let change: MemberChange = decode(request)?;
        reply(&self.node.leader_member_change(change).await)
    }
}
