//! The etcd Lease service.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use proto::etcdserverpb::lease_server::Lease;
use proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::instrument;

use crate::apply::Command;
use crate::error::StoreError;
use crate::lease::MAX_LEASE_TTL;
use crate::node::{LeaseOp, LeaseOpResult, Node};

/// The Lease service of a member.
pub struct LeaseService {
    node: Arc<Node>,
}

impl LeaseService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        LeaseService { node }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    #[instrument(skip_all, fields(lease = request.get_ref().id))]
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let req = request.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(StoreError::LeaseTtlTooLarge.into());
        }
        let ttl = req.ttl.max(self.node.limits().min_lease_ttl);
        let id = if req.id != 0 {
            req.id
        } else {
            loop {
                let id = (rand::random::<u64>() >> 1) as i64;
                if id != 0 && !self.node.lessor().exists(id) {
                    break id;
                }
            }
        };
        self.node.check_quota(16).await?;
        let applied = self.node.propose(Command::LeaseGrant { id, ttl }).await?;
        applied.result.map_err(StoreError::from)?;
        Ok(Response::new(LeaseGrantResponse {
            header: Some(self.node.header(applied.revision)),
            id,
            ttl,
            error: String::new(),
        }))
    }

    #[instrument(skip_all, fields(lease = request.get_ref().id))]
    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let id = request.into_inner().id;
        let applied = self.node.propose(Command::LeaseRevoke { id }).await?;
        applied.result.map_err(StoreError::from)?;
        Ok(Response::new(LeaseRevokeResponse {
            header: Some(self.node.header(applied.revision)),
        }))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let node = self.node.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = inbound.message().await {
                let resp = match node.lease_op(LeaseOp::KeepAlive(req.id)).await {
                    Ok(LeaseOpResult::Renewed(ttl)) => Ok(LeaseKeepAliveResponse {
                        header: Some(node.header_now()),
                        id: req.id,
                        // etcd answers an unknown or expired lease with TTL 0.
                        ttl: ttl.unwrap_or(0),
                    }),
                    Ok(_) => Err(Status::internal("unexpected lease answer")),
                    Err(e) => Err(Status::from(e)),
                };
                let failed = resp.is_err();
                if tx.send(resp).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[instrument(skip_all, fields(lease = request.get_ref().id))]
    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let resp = match self.node.lease_op(LeaseOp::TimeToLive(req.id)).await? {
            LeaseOpResult::Ttl(Some(t)) => LeaseTimeToLiveResponse {
                header: Some(self.node.header_now()),
                id: req.id,
                ttl: t.remaining,
                granted_ttl: t.granted,
                keys: if req.keys { t.keys } else { Vec::new() },
            },
            // etcd reports an unknown lease as TTL -1, not as an error.
            _ => LeaseTimeToLiveResponse {
                header: Some(self.node.header_now()),
                id: req.id,
                ttl: -1,
                ..Default::default()
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.node.read_index().await?;
        let leases = self
            .node
            .lessor()
            .ids()
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.node.header_now()),
            leases,
        }))
    }
}
