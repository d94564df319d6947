//! Request checks made before proposing, with etcd's errors.

use std::collections::HashSet;

use proto::etcdserverpb::request_op::Request;
use proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

use crate::error::StoreError;
use crate::mvcc::index::in_range;

/// A Range request.
pub fn range(r: &RangeRequest) -> Result<(), StoreError> {
    if r.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

/// A Put request.
pub fn put(r: &PutRequest) -> Result<(), StoreError> {
    if r.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(StoreError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(StoreError::LeaseProvided);
    }
    Ok(())
}

/// A DeleteRange request.
pub fn delete(r: &DeleteRangeRequest) -> Result<(), StoreError> {
    if r.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

/// A Txn request: sizes, every operation, and no key written twice in one branch.
pub fn txn(r: &TxnRequest, max_ops: usize) -> Result<(), StoreError> {
    if r.compare.len() > max_ops || r.success.len() > max_ops || r.failure.len() > max_ops {
        return Err(StoreError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(StoreError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(x)) => range(x)?,
            Some(Request::RequestPut(x)) => put(x)?,
            Some(Request::RequestDeleteRange(x)) => delete(x)?,
            Some(Request::RequestTxn(x)) => txn(x, max_ops)?,
            None => {}
        }
    }
    intervals(&r.success)?;
    intervals(&r.failure)?;
    Ok(())
}

type Intervals = (Vec<(Vec<u8>, Vec<u8>)>, HashSet<Vec<u8>>);

/// The deleted intervals and put keys of one branch; a key put twice, or put and deleted,
/// is a duplicate.
fn intervals(ops: &[RequestOp]) -> Result<Intervals, StoreError> {
    let mut dels = Vec::new();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        match &op.request {
            Some(Request::RequestDeleteRange(d)) => dels.push((d.key.clone(), d.range_end.clone())),
            Some(Request::RequestPut(p)) if !puts.insert(p.key.clone()) => {
                return Err(StoreError::DuplicateKey);
            }
            Some(Request::RequestTxn(t)) => {
                let (sd, sp) = intervals(&t.success)?;
                let (fd, fp) = intervals(&t.failure)?;
                for k in sp.union(&fp) {
                    if puts.contains(k) {
                        return Err(StoreError::DuplicateKey);
                    }
                }
                puts.extend(sp.into_iter().chain(fp));
                dels.extend(sd.into_iter().chain(fd));
            }
            _ => {}
        }
    }
    for k in &puts {
        if dels.iter().any(|(s, e)| in_range(k, s, e)) {
            return Err(StoreError::DuplicateKey);
        }
    }
    Ok((dels, puts))
}

/// Whether a txn writes anything (else it is served as a read).
pub fn txn_writes(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .any(|op| match &op.request {
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => true,
            Some(Request::RequestTxn(t)) => txn_writes(t),
            _ => false,
        })
}

/// Whether every range in a read-only txn asked for serializable reads.
pub fn txn_serializable(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(x)) => x.serializable,
            Some(Request::RequestTxn(t)) => txn_serializable(t),
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::etcdserverpb::request_op::Request as R;

    fn put_op(k: &str) -> RequestOp {
        RequestOp {
            request: Some(R::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    fn del_op(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(R::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let t = TxnRequest {
            success: vec![put_op("a"), put_op("a")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 128), Err(StoreError::DuplicateKey));
        let t = TxnRequest {
            success: vec![put_op("b"), del_op("a", "c")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 128), Err(StoreError::DuplicateKey));
        let t = TxnRequest {
            success: vec![put_op("a")],
            failure: vec![put_op("a")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 128), Ok(()));
    }

    #[test]
    fn too_many_ops_and_empty_keys() {
        let t = TxnRequest {
            success: (0..3).map(|i| put_op(&i.to_string())).collect(),
            ..Default::default()
        };
        assert_eq!(txn(&t, 2), Err(StoreError::TooManyOps));
        let t = TxnRequest {
            success: vec![put_op("")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 2), Err(StoreError::EmptyKey));
    }
}
