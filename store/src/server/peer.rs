//! The peer service: openraft's RPCs and the calls followers make to the leader.

use std::pin::Pin;
use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use proto::peerpb::peer_server::Peer;
use proto::peerpb::Payload;
use serde::{de::DeserializeOwned, Serialize};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::apply::Command;
use crate::codec;
use crate::node::{LeaseOp, MemberChange, Node};
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

/// The answers of an AppendEntries stream.
type AppendAnswers = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send>>;

#[tonic::async_trait]
impl Peer for PeerService {
    type AppendEntriesStream = AppendAnswers;

    /// A leader's AppendEntries stream: each request message gets its answer, in order, until
    /// the leader closes the stream. The stream is read while its answers are polled, so a
    /// request is handled on the task that sends its answer.
    async fn append_entries(&self, request: Request<Streaming<Payload>>) -> Result<Response<AppendAnswers>, Status> {
        let inbound = request.into_inner();
        let answers = futures::stream::unfold((self.node.clone(), inbound), |(node, mut inbound)| async move {
            let msg = match inbound.message().await {
                Ok(Some(msg)) => msg,
                Ok(None) => return None,
                Err(status) => return Some((Err(status), (node, inbound))),
            };
            let answer = match codec::decode::<AppendEntriesRequest<TypeConfig>>(&msg.data) {
                Ok(rpc) => {
                    let started = std::time::Instant::now();
                    let res = node.raft.append_entries(rpc).await;
                    node.metrics.append_handling.observe(started.elapsed().as_secs_f64());
                    reply(&res).map(Response::into_inner)
                }
                Err(e) => Err(Status::invalid_argument(e.to_string())),
            };
            Some((answer, (node, inbound)))
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn vote(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: VoteRequest<u64> = decode(request)?;
        reply(&self.node.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(request)?;
        reply(&self.node.raft.install_snapshot(rpc).await)
    }

    async fn propose(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        // A follower's batch: queued together, so they share log entries; one result each.
        let cmds: Vec<Command> = decode(request)?;
        let results = futures::future::join_all(cmds.into_iter().map(|cmd| self.node.propose_as_leader(cmd))).await;
        reply(&results)
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
