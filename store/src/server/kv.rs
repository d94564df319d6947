//! The etcd KV service: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;

use prost::Message;
use proto::etcdserverpb::kv_server::Kv;
use proto::etcdserverpb::response_op::Response as Op;
use proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::validate;
use crate::apply::Command;
use crate::error::StoreError;
use crate::node::Node;

/// The KV service of a member.
pub struct KvService {
    node: Arc<Node>,
}

impl KvService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        KvService { node }
    }

    fn check_size(&self, len: usize) -> Result<(), StoreError> {
        if len > self.node.limits().max_request_bytes {
            return Err(StoreError::RequestTooLarge);
        }
        Ok(())
    }

    async fn write<M: Message + Default>(
        &self,
        cmd: Command,
        quota_cost: Option<usize>,
    ) -> Result<(i64, M), StoreError> {
        if let Some(cost) = quota_cost {
            self.node.check_quota(cost).await?;
        }
        let applied = self.node.propose(cmd).await?;
        let bytes = applied.result.map_err(StoreError::from)?;
        let msg = M::decode(bytes.as_slice()).map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok((applied.revision, msg))
    }

    /// A read-only transaction, executed on this member's state without a log entry.
    fn local_txn(&self, req: &TxnRequest) -> Result<(i64, TxnResponse), StoreError> {
        let applied = self
            .node
            .apply_read_only(&Command::Txn(req.encode_to_vec()));
        let bytes = applied.result.map_err(StoreError::from)?;
        let resp = TxnResponse::decode(bytes.as_slice())
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok((applied.revision, resp))
    }
}

/// Fills the headers of a transaction's nested responses, as etcd does.
fn fill_headers(resp: &mut TxnResponse, rev: i64) {
    for op in &mut resp.responses {
        let h = Some(ResponseHeader {
            revision: rev,
            ..Default::default()
        });
        match &mut op.response {
            Some(Op::ResponseRange(r)) => r.header = h,
            Some(Op::ResponsePut(r)) => r.header = h,
            Some(Op::ResponseDeleteRange(r)) => r.header = h,
            Some(Op::ResponseTxn(t)) => {
                t.header = h;
                fill_headers(t, rev)
            }
            None => {}
        }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    #[instrument(skip_all, fields(key = %String::from_utf8_lossy(&request.get_ref().key)))]
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let req = request.into_inner();
        validate::range(&req)?;
        if !req.serializable {
            self.node.read_index().await?;
        }
        let mut resp = self.node.mvcc().range(&req).map_err(StoreError::from)?;
        resp.header = Some(self.node.header_now());
        Ok(Response::new(resp))
    }

    #[instrument(skip_all, fields(key = %String::from_utf8_lossy(&request.get_ref().key)))]
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = request.into_inner();
        validate::put(&req)?;
        let bytes = req.encode_to_vec();
        self.check_size(bytes.len())?;
        let cost = bytes.len();
        let (rev, mut resp): (i64, PutResponse) =
            self.write(Command::Put(bytes), Some(cost)).await?;
        resp.header = Some(self.node.header(rev));
        Ok(Response::new(resp))
    }

    #[instrument(skip_all, fields(key = %String::from_utf8_lossy(&request.get_ref().key)))]
    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        validate::delete(&req)?;
        let bytes = req.encode_to_vec();
        self.check_size(bytes.len())?;
        let (rev, mut resp): (i64, DeleteRangeResponse) =
            self.write(Command::DeleteRange(bytes), None).await?;
        resp.header = Some(self.node.header(rev));
        Ok(Response::new(resp))
    }

    #[instrument(skip_all)]
    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = request.into_inner();
        validate::txn(&req, self.node.limits().max_txn_ops)?;
        let bytes = req.encode_to_vec();
        self.check_size(bytes.len())?;
        let (rev, mut resp) = if validate::txn_writes(&req) {
            let cost = bytes.len();
            self.write::<TxnResponse>(Command::Txn(bytes), Some(cost))
                .await?
        } else {
            if !validate::txn_serializable(&req) {
                self.node.read_index().await?;
            }
            self.local_txn(&req)?
        };
        fill_headers(&mut resp, rev);
        resp.header = Some(self.node.header(rev));
        Ok(Response::new(resp))
    }

    #[instrument(skip_all, fields(revision = request.get_ref().revision))]
    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let req = request.into_inner();
        let applied = self.node.propose(Command::Compact(req.revision)).await?;
        applied.result.map_err(StoreError::from)?;
        if req.physical {
            // Applied here, so scheduled here: wait until this member's database no longer
            // holds the compacted records (the client's deadline bounds the wait).
            let mvcc = self.node.mvcc();
            let number = mvcc.compactions_scheduled();
            while !mvcc.compacted_through(number) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        Ok(Response::new(CompactionResponse {
            header: Some(self.node.header(applied.revision)),
        }))
    }
}
