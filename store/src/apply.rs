//! Commands carried by the Raft log and how the state machine applies them.
//!
//! Every member applies the same commands in the same order, so everything here is
//! deterministic: no clocks, no randomness. Checks that need only the request (sizes, empty
//! keys, duplicate keys) happen before proposing, in `server::validate`.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use proto::etcdserverpb::request_op::Request;
use proto::etcdserverpb::response_op::Response;
use proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    ResponseOp, TxnRequest, TxnResponse,
};
use proto::mvccpb::{Event, KeyValue};
use serde::{Deserialize, Serialize};

use crate::lease::{LeaseRecord, Lessor};
use crate::mvcc::{ApplyBatch, MvccError, WriteTxn};
use crate::schema::{lease_key, CF_LEASE};

/// The payload of a Raft log entry: commands proposed together, and the ticket under which
/// the member that proposed them waits for their results (see `waiting`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Proposed {
    /// The member that proposed them.
    pub proposer: u64,
    /// The proposer's ticket.
    pub ticket: u64,
    /// The commands, applied in order.
    pub cmds: Vec<Command>,
}

/// A state-machine command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Command {
    /// A protobuf-encoded `PutRequest`.
    Put(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    /// A protobuf-encoded `DeleteRangeRequest`.
    DeleteRange(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    /// A protobuf-encoded `TxnRequest`.
    Txn(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    /// Compact history up to a revision.
    Compact(i64),
    /// Create a lease (the ID is chosen before proposing).
    LeaseGrant { id: i64, ttl: i64 },
    /// Delete a lease and its keys (by a client, or by the leader on expiry).
    LeaseRevoke { id: i64 },
    /// Raise (`activate`) or clear an alarm for a member.
    Alarm {
        activate: bool,
        member_id: u64,
        alarm: i32,
    },
    /// A member publishes its name and client URLs.
    MemberAttrs { id: u64, attrs: MemberAttrs },
    /// Marks (`pending`) or unmarks a learner that was added as a voter and is to be promoted
    /// once it has caught up (see [`ClusterMeta::pending_voters`]).
    PendingVoter { id: u64, pending: bool },
}

impl Command {
    /// Approximate encoded size (for batching limits).
    pub fn size(&self) -> usize {
        match self {
            Command::Put(b) | Command::DeleteRange(b) | Command::Txn(b) => b.len() + 8,
            Command::MemberAttrs { attrs, .. } => {
                64 + attrs.name.len() + attrs.client_urls.iter().map(String::len).sum::<usize>()
            }
            _ => 32,
        }
    }
}

/// A member's attributes published through the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberAttrs {
    /// `--name`.
    pub name: String,
    /// `--advertise-client-urls`.
    pub client_urls: Vec<String>,
}

/// Cluster-level state kept beside the key space: alarms, members' attributes and the
/// voters that joined as learners.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterMeta {
    /// Raised alarms as (member ID, alarm type).
    pub alarms: Vec<(u64, i32)>,
    /// Attributes by member ID.
    pub members: BTreeMap<u64, MemberAttrs>,
    /// Members added as voters that Raft holds as learners until they have caught up: a
    /// voter added to a one-voter cluster (which etcd accepts) would otherwise make a joint
    /// configuration that cannot commit before the new member runs. Clients see them as voters;
    /// the leader promotes them (`Node::promote_pending_voters`). Last, so that the encoding
    /// of a state written before the field existed still decodes (see [`ClusterMeta::decode`]).
    pub pending_voters: BTreeSet<u64>,
}

/// [`ClusterMeta`] as it was encoded before `pending_voters`.
#[derive(Deserialize)]
struct ClusterMetaV1 {
    alarms: Vec<(u64, i32)>,
    members: BTreeMap<u64, MemberAttrs>,
}

impl ClusterMeta {
    /// Decodes stored cluster state, written by this version or by one before
    /// `pending_voters` (whose encoding ends where that field would start).
    pub fn decode(b: &[u8]) -> Result<ClusterMeta, crate::codec::CodecError> {
        crate::codec::decode_whole(b).or_else(|e| {
            let v1: ClusterMetaV1 = crate::codec::decode_whole(b).map_err(|_| e)?;
            Ok(ClusterMeta {
                alarms: v1.alarms,
                members: v1.members,
                pending_voters: BTreeSet::new(),
            })
        })
    }
}

/// Failures of applying a command; reported to the client that proposed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApplyError {
    /// From the key space (compacted, future revision).
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    /// A put names a lease that does not exist.
    #[error("lease not found")]
    LeaseNotFound,
    /// A grant names an ID already in use.
    #[error("lease already exists")]
    LeaseExists,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// A command that does not decode.
    #[error("malformed command: {0}")]
    Malformed(String),
}

/// The response of one applied command: the store revision after it and the encoded
/// response (without header) or the error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Applied {
    /// The store revision after the command.
    pub revision: i64,
    /// The Raft log index of the entry that carried the command (set by the state machine).
    pub index: u64,
    /// The protobuf-encoded response message, or why it failed.
    pub result: Result<Vec<u8>, ApplyError>,
}

/// What the state machine needs besides the key space to apply a command.
pub struct ApplyCtx<'a> {
    /// Leases.
    pub lessor: &'a Lessor,
    /// Alarms and members' attributes (written back by the caller when changed).
    pub meta: &'a mut ClusterMeta,
    /// Set when `meta` changed.
    pub meta_dirty: bool,
}

/// Applies one command; returns the response and the events it produced (at its revision).
pub fn apply(
    b: &mut ApplyBatch<'_>,
    ctx: &mut ApplyCtx<'_>,
    cmd: &Command,
) -> (Applied, Vec<Event>) {
    let mut events = Vec::new();
    let result = match cmd {
        Command::Put(bytes) => decode::<PutRequest>(bytes).and_then(|req| {
            let mut txn = b.txn();
            let r = check_put(&txn, ctx.lessor, &req).and_then(|_| put(&mut txn, ctx.lessor, &req));
            events = txn.end().1;
            r.map(|resp| resp.encode_to_vec())
        }),
        Command::DeleteRange(bytes) => decode::<DeleteRangeRequest>(bytes).and_then(|req| {
            let mut txn = b.txn();
            let r = delete(&mut txn, ctx.lessor, &req);
            events = txn.end().1;
            r.map(|resp| resp.encode_to_vec())
        }),
        Command::Txn(bytes) => decode::<TxnRequest>(bytes).and_then(|req| {
            let mut txn = b.txn();
            let r =
                check_txn(&txn, ctx.lessor, &req).and_then(|_| run_txn(&mut txn, ctx.lessor, &req));
            events = txn.end().1;
            r.map(|resp| resp.encode_to_vec())
        }),
        Command::Compact(rev) => b
            .compact(*rev)
            .map(|_| Vec::new())
            .map_err(ApplyError::from),
        Command::LeaseGrant { id, ttl } => {
            if ctx.lessor.exists(*id) {
                Err(ApplyError::LeaseExists)
            } else {
                match crate::codec::encode(&LeaseRecord { ttl: *ttl }) {
                    Ok(rec) => {
                        let cf = b.cf(CF_LEASE);
                        b.batch.put_cf(cf, lease_key(*id), rec);
                        ctx.lessor.grant(*id, *ttl);
                        Ok(Vec::new())
                    }
                    Err(e) => Err(ApplyError::Malformed(e.to_string())),
                }
            }
        }
        Command::LeaseRevoke { id } => match ctx.lessor.revoke(*id) {
            None => Err(ApplyError::LeaseNotFound),
            Some(keys) => {
                let cf = b.cf(CF_LEASE);
                b.batch.delete_cf(cf, lease_key(*id));
                let mut txn = b.txn();
                let mut r = Ok(Vec::new());
                for key in keys {
                    if let Err(e) = txn.delete_range(&key, &[]) {
                        r = Err(e.into());
                        break;
                    }
                }
                events = txn.end().1;
                r
            }
        },
        Command::Alarm {
            activate,
            member_id,
            alarm,
        } => {
            let entry = (*member_id, *alarm);
            if *activate {
                if !ctx.meta.alarms.contains(&entry) {
                    ctx.meta.alarms.push(entry);
                }
            } else {
                ctx.meta.alarms.retain(|a| *a != entry);
            }
            ctx.meta_dirty = true;
            Ok(Vec::new())
        }
        Command::MemberAttrs { id, attrs } => {
            ctx.meta.members.insert(*id, attrs.clone());
            ctx.meta_dirty = true;
            Ok(Vec::new())
        }
        Command::PendingVoter { id, pending } => {
            if *pending {
                ctx.meta.pending_voters.insert(*id);
            } else {
                ctx.meta.pending_voters.remove(id);
            }
            ctx.meta_dirty = true;
            Ok(Vec::new())
        }
    };
    (
        Applied {
            revision: b.st.current_rev,
            index: 0,
            result,
        },
        events,
    )
}

fn decode<M: Message + Default>(b: &[u8]) -> Result<M, ApplyError> {
    M::decode(b).map_err(|e| ApplyError::Malformed(e.to_string()))
}

/// etcd checks a put's lease and `ignore_*` preconditions before changing anything.
fn check_put(txn: &WriteTxn<'_, '_>, lessor: &Lessor, req: &PutRequest) -> Result<(), ApplyError> {
    if req.lease != 0 && !req.ignore_lease && !lessor.exists(req.lease) {
        return Err(ApplyError::LeaseNotFound);
    }
    if (req.ignore_value || req.ignore_lease) && txn.get(&req.key)?.is_none() {
        return Err(ApplyError::KeyNotFound);
    }
    Ok(())
}

fn put(
    txn: &mut WriteTxn<'_, '_>,
    lessor: &Lessor,
    req: &PutRequest,
) -> Result<PutResponse, ApplyError> {
    let prev = txn.get(&req.key)?;
    let value = match (&prev, req.ignore_value) {
        (Some(p), true) => p.value.clone(),
        (None, true) => return Err(ApplyError::KeyNotFound),
        _ => req.value.clone(),
    };
    let lease = match (&prev, req.ignore_lease) {
        (Some(p), true) => p.lease,
        (None, true) => return Err(ApplyError::KeyNotFound),
        _ => req.lease,
    };
    let prev = txn.put(&req.key, value, lease)?;
    if let Some(p) = &prev {
        if p.lease != 0 && p.lease != lease {
            lessor.detach(&req.key, p.lease);
        }
    }
    if lease != 0 {
        lessor.attach(&req.key, lease);
    }
    Ok(PutResponse {
        header: None,
        prev_kv: if req.prev_kv { prev } else { None },
    })
}

fn delete(
    txn: &mut WriteTxn<'_, '_>,
    lessor: &Lessor,
    req: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, ApplyError> {
    let deleted = txn.delete_range(&req.key, &req.range_end)?;
    for kv in &deleted {
        if kv.lease != 0 {
            lessor.detach(&kv.key, kv.lease);
        }
    }
    Ok(DeleteRangeResponse {
        header: None,
        deleted: deleted.len() as i64,
        prev_kvs: if req.prev_kv { deleted } else { Vec::new() },
    })
}

/// Evaluates the compares of a transaction against its current view.
fn compares_hold(txn: &WriteTxn<'_, '_>, compares: &[Compare]) -> Result<bool, ApplyError> {
    for c in compares {
        if !compare_holds(txn, c)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn compare_holds(txn: &WriteTxn<'_, '_>, c: &Compare) -> Result<bool, ApplyError> {
    let kvs = if c.range_end.is_empty() {
        txn.get(&c.key)?.into_iter().collect::<Vec<_>>()
    } else {
        let req = RangeRequest {
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            ..Default::default()
        };
        txn.range(&req)?.kvs
    };
    let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
    if kvs.is_empty() {
        if target == CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_kv(c, target, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, target, kv)))
}

fn compare_kv(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => {
            kv.value.as_slice().cmp(v.as_slice())
        }
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => kv.version.cmp(v),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => kv.create_revision.cmp(v),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
        // A compare without its operand compares with the zero value, as etcd's does.
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[]),
        (CompareTarget::Version, _) => kv.version.cmp(&0),
        (CompareTarget::Create, _) => kv.create_revision.cmp(&0),
        (CompareTarget::Mod, _) => kv.mod_revision.cmp(&0),
        (CompareTarget::Lease, _) => kv.lease.cmp(&0),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
        CompareResult::NotEqual => ord != Ordering::Equal,
    }
}

/// Checks the puts of the branch a transaction will take, before it changes anything.
fn check_txn(txn: &WriteTxn<'_, '_>, lessor: &Lessor, req: &TxnRequest) -> Result<(), ApplyError> {
    let ops = if compares_hold(txn, &req.compare)? {
        &req.success
    } else {
        &req.failure
    };
    for op in ops {
        match &op.request {
            Some(Request::RequestPut(p)) => check_put(txn, lessor, p)?,
            Some(Request::RequestTxn(t)) => check_txn(txn, lessor, t)?,
            Some(Request::RequestRange(r)) => {
                // A read of a compacted or future revision fails the whole transaction.
                txn.range(&RangeRequest {
                    count_only: true,
                    ..r.clone()
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn run_txn(
    txn: &mut WriteTxn<'_, '_>,
    lessor: &Lessor,
    req: &TxnRequest,
) -> Result<TxnResponse, ApplyError> {
    let succeeded = compares_hold(txn, &req.compare)?;
    let ops = if succeeded {
        &req.success
    } else {
        &req.failure
    };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Response::ResponseRange(txn.range(r)?),
            Some(Request::RequestPut(p)) => Response::ResponsePut(put(txn, lessor, p)?),
            Some(Request::RequestDeleteRange(d)) => {
                Response::ResponseDeleteRange(delete(txn, lessor, d)?)
            }
            Some(Request::RequestTxn(t)) => Response::ResponseTxn(run_txn(txn, lessor, t)?),
            None => continue,
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored state of a member written before `pending_voters` existed still loads, and
    /// the new encoding round-trips.
    #[test]
    fn cluster_meta_decodes_old_and_new_encodings() {
        #[derive(Serialize)]
        struct Old {
            alarms: Vec<(u64, i32)>,
            members: BTreeMap<u64, MemberAttrs>,
        }
        let attrs = MemberAttrs {
            name: "m1".into(),
            client_urls: vec!["http://127.0.0.1:2379".into()],
        };
        let old = Old {
            alarms: vec![(1, 1)],
            members: BTreeMap::from([(1, attrs.clone())]),
        };
        let bytes = crate::codec::encode(&old).expect("encode");
        let meta = ClusterMeta::decode(&bytes).expect("old encoding decodes");
        assert_eq!(meta.alarms, vec![(1, 1)]);
        assert_eq!(meta.members.get(&1), Some(&attrs));
        assert!(meta.pending_voters.is_empty());

        let new = ClusterMeta {
            pending_voters: BTreeSet::from([7, 9]),
            ..meta
        };
        let bytes = crate::codec::encode(&new).expect("encode");
        assert_eq!(ClusterMeta::decode(&bytes).expect("decodes"), new);
        assert!(ClusterMeta::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
