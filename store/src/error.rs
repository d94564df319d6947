//! Client-visible errors with etcd's exact texts and gRPC codes (etcdctl prints these).

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

use crate::apply::ApplyError;
use crate::mvcc::MvccError;

/// An error returned to an etcd client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum StoreError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: member ID already exist")]
    MemberExist,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: not capable")]
    NotCapable,
    #[error("etcdserver: {0}")]
    Internal(String),
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
}

impl StoreError {
    /// The gRPC code etcd uses for this error.
    pub fn code(&self) -> Code {
        use StoreError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | MemberBadUrls | RequestTooLarge => Code::InvalidArgument,
            Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            NoSpace => Code::ResourceExhausted,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            LeaseExist
            | MemberExist
            | PeerUrlExist
            | MemberNotEnoughStarted
            | MemberNotLearner
            | LearnerNotReady => Code::FailedPrecondition,
            NoLeader | Stopped | Timeout | Unhealthy => Code::Unavailable,
            NotCapable => Code::Unimplemented,
            Internal(_) => Code::Unknown,
        }
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl From<MvccError> for StoreError {
    fn from(e: MvccError) -> Self {
        match e {
            MvccError::Compacted => StoreError::Compacted,
            MvccError::FutureRev => StoreError::FutureRev,
            MvccError::Storage(s) => StoreError::Internal(s),
        }
    }
}

impl From<ApplyError> for StoreError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Mvcc(m) => m.into(),
            ApplyError::LeaseNotFound => StoreError::LeaseNotFound,
            ApplyError::LeaseExists => StoreError::LeaseExist,
            ApplyError::KeyNotFound => StoreError::KeyNotFound,
            ApplyError::Malformed(s) => StoreError::Internal(s),
        }
    }
}
