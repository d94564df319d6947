//! The etcd Cluster service: membership through Raft joint consensus.

use std::sync::Arc;

use proto::etcdserverpb::cluster_server::Cluster;
use proto::etcdserverpb::{
    Member as PbMember, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::node::{MemberChange, Node};

/// The Cluster service of a member.
pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        ClusterService { node }
    }

    fn list(&self) -> Vec<PbMember> {
        let attrs = self.node.member_attrs();
        self.node
            .members_for_clients()
            .members
            .into_iter()
            .map(|(id, m, learner)| {
                let a = attrs.get(&id);
                PbMember {
                    id,
                    name: a
                        .map(|a| a.name.clone())
                        .filter(|n| !n.is_empty())
                        .unwrap_or(m.name),
                    peer_ur_ls: m.peer_urls,
                    client_ur_ls: a.map(|a| a.client_urls.clone()).unwrap_or_default(),
                    is_learner: learner,
                }
            })
            .collect()
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    #[instrument(skip_all)]
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let req = request.into_inner();
        let added = self
            .node
            .member_change(MemberChange::Add {
                peer_urls: req.peer_ur_ls,
                learner: req.is_learner,
            })
            .await?;
        let member = added.map(|(id, m)| PbMember {
            id,
            name: String::new(),
            peer_ur_ls: m.peer_urls,
            client_ur_ls: Vec::new(),
            is_learner: req.is_learner,
        });
        self.node.read_index().await?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.node.header_now()),
            member,
            members: self.list(),
        }))
    }

    #[instrument(skip_all, fields(member = request.get_ref().id))]
    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let id = request.into_inner().id;
        self.node.member_change(MemberChange::Remove { id }).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.node.header_now()),
            members: self.list(),
        }))
    }

    #[instrument(skip_all, fields(member = request.get_ref().id))]
    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let req = request.into_inner();
        self.node
            .member_change(MemberChange::Update {
                id: req.id,
                peer_urls: req.peer_ur_ls,
            })
            .await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.node.header_now()),
            members: self.list(),
        }))
    }

    async fn member_list(
        &self,
        _request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            header: Some(self.node.header_now()),
            members: self.list(),
        }))
    }

    #[instrument(skip_all, fields(member = request.get_ref().id))]
    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let id = request.into_inner().id;
        self.node
            .member_change(MemberChange::Promote { id })
            .await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.node.header_now()),
            members: self.list(),
        }))
    }
}
