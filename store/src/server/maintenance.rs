//! The etcd Maintenance service: status, alarms, defragmentation, hashes, backups.

use std::io::Seek;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use proto::etcdserverpb::alarm_request::AlarmAction;
use proto::etcdserverpb::maintenance_server::Maintenance;
use proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::apply::Command;
use crate::db::Db;
use crate::error::StoreError;
use crate::node::Node;
use crate::raft::snapshot;

/// The version this store reports: the etcd API level it implements.
pub const API_VERSION: &str = "3.4.0";

/// The Maintenance service of a member.
pub struct MaintenanceService {
    node: Arc<Node>,
}

impl MaintenanceService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        MaintenanceService { node }
    }

    fn alarms(&self) -> Vec<AlarmMember> {
        self.node
            .alarms()
            .iter()
            .map(|(m, a)| AlarmMember {
                member_id: *m,
                alarm: *a,
            })
            .collect()
    }

    fn kv_hash(&self, upto: i64) -> Result<(u32, i64), StoreError> {
        self.node
            .mvcc()
            .hash_kv(upto)
            .map_err(|e| StoreError::Internal(e.to_string()))
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    #[instrument(skip_all)]
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let req = request.into_inner();
        let action = AlarmAction::try_from(req.action).unwrap_or(AlarmAction::Get);
        let alarms = match action {
            AlarmAction::Get => self.alarms(),
            AlarmAction::Activate | AlarmAction::Deactivate => {
                if req.alarm == AlarmType::None as i32 {
                    return Err(Status::invalid_argument(
                        "etcdserver: alarm type NONE cannot be changed",
                    ));
                }
                let activate = action == AlarmAction::Activate;
                let before = self.alarms();
                let applied = self
                    .node
                    .propose(Command::Alarm {
                        activate,
                        member_id: req.member_id,
                        alarm: req.alarm,
                    })
                    .await?;
                applied.result.map_err(StoreError::from)?;
                let hit = AlarmMember {
                    member_id: req.member_id,
                    alarm: req.alarm,
                };
                if activate || before.contains(&hit) {
                    vec![hit]
                } else {
                    Vec::new()
                }
            }
        };
        Ok(Response::new(AlarmResponse {
            header: Some(self.node.header_now()),
            alarms,
        }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let m = self.node.raft().metrics().borrow().clone();
        let learner = self.node.is_learner();
        let errors = self
            .alarms()
            .iter()
            .map(|a| {
                let name = AlarmType::try_from(a.alarm)
                    .map(|t| t.as_str_name())
                    .unwrap_or("UNKNOWN");
                // etcd reports the alarm in protobuf text form, trailing space included.
                format!("memberID:{} alarm:{} ", a.member_id, name)
            })
            .collect();
        Ok(Response::new(StatusResponse {
            header: Some(self.node.header_now()),
            version: API_VERSION.into(),
            db_size: self.node.db_size() as i64,
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            errors,
            db_size_in_use: self.node.mvcc().bytes() as i64,
            is_learner: learner,
        }))
    }

    #[instrument(skip_all)]
    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let db = self.node.db().clone();
        tokio::task::spawn_blocking(move || db.defragment())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(Response::new(DefragmentResponse {
            header: Some(self.node.header_now()),
        }))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let (hash, _) = self.kv_hash(0)?;
        Ok(Response::new(HashResponse {
            header: Some(self.node.header_now()),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let rev = request.into_inner().revision;
        if rev > self.node.current_rev() {
            return Err(StoreError::FutureRev.into());
        }
        let (hash, compact_revision) = self.kv_hash(rev)?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.node.header_now()),
            hash,
            compact_revision,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    #[instrument(skip_all)]
    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let db = self.node.db().clone();
        let dir = self.node.snap_dir().to_path_buf();
        // The backup is written to an unnamed file first (its size goes in every response)
        // and streamed from there: a large key space is never held in memory.
        let (file, total) = tokio::task::spawn_blocking(move || write_backup(&db, &dir))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("writing the snapshot: {e}")))?;
        let header = self.node.header_now();
        const CHUNK: usize = 32 * 1024;
        let file = tokio::fs::File::from_std(file);
        let chunks =
            futures::stream::unfold((file, total), move |(mut file, remaining)| async move {
                if remaining == 0 {
                    return None;
                }
                let mut blob = vec![0u8; CHUNK.min(remaining as usize)];
                let left = remaining - blob.len() as u64;
                match file.read_exact(&mut blob).await {
                    Ok(_) => {
                        let chunk = SnapshotResponse {
                            header: Some(header),
                            remaining_bytes: left,
                            blob,
                        };
                        Some((Ok(chunk), (file, left)))
                    }
                    // After an error the stream ends.
                    Err(e) => Some((
                        Err(Status::internal(format!("reading the snapshot: {e}"))),
                        (file, 0),
                    )),
                }
            });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn move_leader(
        &self,
        _request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(StoreError::NotCapable.into())
    }
}

/// Writes a backup of the database (see `store_backup`) to an unnamed file in `dir`: the
/// file, at its start, and its length.
fn write_backup(db: &Db, dir: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let path = dir.join(format!("backup-{}.tmp", rand::random::<u64>()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Unlinked at once: the open file is all that is left, gone when the stream ends.
    std::fs::remove_file(&path)?;
    let mut sealer = store_backup::Sealer::new(std::io::BufWriter::new(&mut file));
    snapshot::write_to(db, &mut sealer).map_err(std::io::Error::other)?;
    sealer.finish()?.into_inner().map_err(|e| e.into_error())?;
    let total = file.seek(std::io::SeekFrom::End(0))?;
    file.seek(std::io::SeekFrom::Start(0))?;
    Ok((file, total))
}
