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
use crate::node::{LeaseOp, MemberChange, Node};
use crate::raft::{wire, TypeConfig};

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

/// A leader's plain AppendEntries stream (see [`crate::raft::wire`]), accepted by the peer
/// listener: answered in order on this connection's task until the leader closes it. A
/// message that does not decode ends the stream (the leader's call fails and it reconnects).
pub(super) async fn serve_wire_appends(node: Arc<Node>, mut conn: tokio::net::TcpStream) {
    let peer = conn.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    if let Err(e) = wire_appends(&node, &mut conn).await {
        tracing::debug!(%peer, "AppendEntries stream ended: {e}");
    }
}

async fn wire_appends(node: &Node, conn: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut magic = [0u8; wire::MAGIC.len()];
    conn.read_exact(&mut magic).await?;
    conn.write_all(wire::ACCEPTED).await?;
    let mut buf = Vec::new();
    while wire::read_message(conn, &mut buf).await? {
        let rpc: AppendEntriesRequest<TypeConfig> = codec::decode(&buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        let res = append_entries(node, rpc).await;
        let data = codec::encode(&res).map_err(std::io::Error::other)?;
        wire::write_message(conn, &data).await?;
    }
    Ok(())
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
                let started = std::time::Instant::now();
                let accepted = node.accept_forwarded(proposed).await;
                node.metrics()
                    .forward_handling
                    .observe(started.elapsed().as_secs_f64());
                reply(&accepted).map(Response::into_inner)
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
