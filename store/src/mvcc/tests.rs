//! Key-space behaviour through the applier, on a real RocksDB in a temp dir.

use std::sync::Arc;

use prost::Message;
use proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use proto::etcdserverpb::request_op::Request;
use proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    TxnResponse,
};

use super::*;
use crate::apply::{apply, ApplyCtx, ApplyError, ClusterMeta, Command};
use crate::lease::Lessor;

struct Env {
    _dir: tempfile::TempDir,
    db: Arc<Db>,
    mvcc: Mvcc,
    lessor: Lessor,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut e = env_at(&dir.path().join("d"));
    e._dir = dir;
    e
}

/// An environment on the database at `path` (to open again after it is dropped).
fn env_at(path: &std::path::Path) -> Env {
    let db = Db::open(path).expect("open");
    let mvcc = Mvcc::open(db.clone()).expect("mvcc");
    Env {
        _dir: tempfile::tempdir().expect("dir"),
        db,
        mvcc,
        lessor: Lessor::default(),
    }
}

impl Env {
    fn run(&self, cmd: Command) -> Result<Vec<u8>, ApplyError> {
        let mut meta = ClusterMeta::default();
        let mut batch = ApplyBatch::begin(&self.mvcc);
        let mut ctx = ApplyCtx {
            lessor: &self.lessor,
            meta: &mut meta,
            meta_dirty: false,
        };
        let (applied, _) = apply(&mut batch, &mut ctx, &cmd);
        batch.commit().expect("commit");
        applied.result
    }

    fn put(&self, k: &str, v: &str) {
        let req = PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        };
        self.run(Command::Put(req.encode_to_vec())).expect("put");
    }

    fn del(&self, k: &str, end: &str) {
        let req = DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            ..Default::default()
        };
        self.run(Command::DeleteRange(req.encode_to_vec()))
            .expect("delete");
    }

    fn range(&self, req: RangeRequest) -> Result<RangeResponse, MvccError> {
        self.mvcc.range(&req)
    }

    fn keys(&self, req: RangeRequest) -> Vec<String> {
        self.range(req)
            .expect("range")
            .kvs
            .into_iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }
}

fn prefix(p: &str) -> RangeRequest {
    let mut end = p.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    RangeRequest {
        key: p.into(),
        range_end: end,
        ..Default::default()
    }
}

#[test]
fn revisions_versions_and_history() {
    let e = env();
    e.put("a", "1");
    e.put("b", "1");
    e.put("a", "2");
    let kv = e.mvcc.get(b"a").expect("get").expect("present");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 4, 2));
    assert_eq!(e.mvcc.current_rev(), 4);
    let old = e
        .range(RangeRequest {
            key: "a".into(),
            revision: 2,
            ..Default::default()
        })
        .expect("range");
    assert_eq!(old.kvs[0].value, b"1");
    e.del("a", "");
    assert!(e.mvcc.get(b"a").expect("get").is_none());
    let kv = {
        e.put("a", "3");
        e.mvcc.get(b"a").expect("get").expect("present")
    };
    assert_eq!(
        (kv.create_revision, kv.version),
        (6, 1),
        "a new generation starts after a delete"
    );
    assert_eq!(
        e.range(RangeRequest {
            key: "a".into(),
            revision: 9,
            ..Default::default()
        }),
        Err(MvccError::FutureRev)
    );
    let h = e.mvcc.history(1, 6, 100, true).expect("history");
    assert_eq!(
        h.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
    let del = &h[3].1[0];
    assert_eq!(del.r#type, proto::mvccpb::event::EventType::Delete as i32);
    assert_eq!(
        del.prev_kv.as_ref().map(|p| p.value.clone()),
        Some(b"2".to_vec())
    );
}

#[test]
fn ranges_limit_count_sort() {
    let e = env();
    for (k, v) in [("k1", "c"), ("k2", "a"), ("k3", "b"), ("x", "z")] {
        e.put(k, v);
    }
    assert_eq!(e.keys(prefix("k")), vec!["k1", "k2", "k3"]);
    let r = e
        .range(RangeRequest {
            limit: 2,
            ..prefix("k")
        })
        .expect("range");
    assert_eq!((r.kvs.len(), r.more, r.count), (2, true, 3));
    let r = e
        .range(RangeRequest {
            count_only: true,
            ..prefix("k")
        })
        .expect("range");
    assert_eq!((r.kvs.len(), r.count), (0, 3));
    let sorted = e.keys(RangeRequest {
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Value as i32,
        ..prefix("k")
    });
    assert_eq!(sorted, vec!["k2", "k3", "k1"]);
    let desc = e.keys(RangeRequest {
        sort_order: SortOrder::Descend as i32,
        limit: 1,
        ..prefix("k")
    });
    assert_eq!(desc, vec!["k3"]);
    let all = e.keys(RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    });
    assert_eq!(all.len(), 4);
    let r = e
        .range(RangeRequest {
            keys_only: true,
            ..prefix("x")
        })
        .expect("range");
    assert!(r.kvs[0].value.is_empty());
    e.del("k", "l");
    assert!(e.keys(prefix("k")).is_empty());
}

#[test]
fn compaction_drops_history_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let e = env_at(dir.path());
        e.put("a", "1");
        e.put("a", "2");
        e.put("b", "1");
        e.del("b", "");
        e.put("c", "1");
        let before = e.mvcc.bytes();
        assert!(before > 0, "retained records are counted");
        e.run(Command::Compact(5)).expect("compact");
        e.mvcc.settle_compaction();
        assert!(
            e.mvcc.bytes() < before,
            "compaction releases the dropped records' bytes"
        );
        assert_eq!(
            e.run(Command::Compact(4)),
            Err(ApplyError::Mvcc(MvccError::Compacted))
        );
        assert_eq!(
            e.range(RangeRequest {
                key: "a".into(),
                revision: 4,
                ..Default::default()
            }),
            Err(MvccError::Compacted)
        );
        assert_eq!(
            e.keys(RangeRequest {
                key: "a".into(),
                revision: 5,
                ..Default::default()
            }),
            vec!["a"]
        );
        assert_eq!(e.mvcc.history(3, 6, 10, false), Err(MvccError::Compacted));
        let _ = &e.db;
    }
    let db = Db::open(dir.path()).expect("reopen");
    let mvcc = Mvcc::open(db).expect("mvcc");
    assert_eq!((mvcc.current_rev(), mvcc.compact_rev()), (6, 5));
    assert!(mvcc.bytes() > 0, "the size is recounted at start");
    assert_eq!(
        mvcc.get(b"a").expect("get").map(|kv| kv.value),
        Some(b"2".to_vec())
    );
    assert!(mvcc.get(b"b").expect("get").is_none());
}

/// The revisions of the records in the `kv` column family.
fn stored_revs(db: &Db) -> Vec<i64> {
    db.raw()
        .iterator_cf(db.cf(CF_KV), rocksdb::IteratorMode::Start)
        .map(|item| {
            Rev::from_key(&item.expect("read").0)
                .expect("revision key")
                .main
        })
        .collect()
}

#[test]
fn compacted_records_are_deleted_after_the_applier_moves_on() {
    let e = env();
    for i in 0..2500 {
        e.put("a", &i.to_string());
    }
    e.put("b", "1");
    let before = e.mvcc.bytes();
    e.run(Command::Compact(2501)).expect("compact");
    // Readers see the compaction at once, whatever is still in RocksDB.
    assert_eq!(
        e.mvcc.history(2500, 2502, 10, false),
        Err(MvccError::Compacted)
    );
    assert_eq!(
        e.mvcc.get(b"a").expect("get").map(|kv| kv.value),
        Some(b"2499".to_vec())
    );
    assert_eq!(e.mvcc.compactions_scheduled(), 1);
    e.mvcc.settle_compaction();
    assert!(e.mvcc.compacted_through(1));
    assert_eq!(e.mvcc.compaction_pending(), 0);
    assert_eq!(
        stored_revs(&e.db),
        vec![2501, 2502],
        "only the visible records stay"
    );
    assert_eq!(e.mvcc.compaction_deleted(), 2499);
    assert!(
        e.mvcc.bytes() < before / 100,
        "the deleted records' bytes are released"
    );
}

#[test]
fn history_and_hash_skip_a_compacted_record_not_deleted_yet() {
    let e = env();
    e.put("b", "1"); // 2
    e.del("b", ""); // 3
    e.put("c", "1"); // 4
    e.run(Command::Compact(3)).expect("compact");
    e.mvcc.settle_compaction();
    assert_eq!(stored_revs(&e.db), vec![4]);
    // As if the deleting thread had not reached b's tombstone yet.
    let tombstone = Record {
        tombstone: true,
        kv: KeyValue {
            key: b"b".to_vec(),
            mod_revision: 3,
            ..Default::default()
        },
    };
    let at = Rev { main: 3, sub: 0 };
    let (hash, compact) = e.mvcc.hash_kv(0).expect("hash");
    e.db.raw()
        .put_cf(e.db.cf(CF_KV), at.to_key(), tombstone.encode())
        .expect("put");
    assert!(!e.mvcc.retains(b"b", at));
    assert_eq!(
        e.mvcc.hash_kv(0).expect("hash"),
        (hash, compact),
        "members hash alike whatever their deletions reached"
    );
    let h = e.mvcc.history(3, 4, 10, false).expect("history");
    assert_eq!(h.iter().map(|(r, _)| *r).collect::<Vec<_>>(), vec![4]);
}

#[test]
fn records_a_compaction_left_are_deleted_at_the_next_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let e = env_at(dir.path());
        e.put("a", "1"); // 2
        e.put("a", "2"); // 3
        e.put("b", "1"); // 4
        e.del("b", ""); // 5

        // A compaction at 5 whose deletions never ran: only its revision was written.
        e.db.raw()
            .put_cf(e.db.cf(CF_META), META_COMPACT_REV, 5i64.to_be_bytes())
            .expect("put");
    }
    let db = Db::open(dir.path()).expect("reopen");
    let mvcc = Mvcc::open(db.clone()).expect("mvcc");
    assert_eq!(stored_revs(&db), vec![3], "only a's visible record stays");
    assert_eq!(mvcc.history(4, 5, 10, false), Err(MvccError::Compacted));
    let h = mvcc.history(5, 6, 10, false).expect("history");
    assert!(
        h.is_empty(),
        "b's deletion at the compaction point is gone: {h:?}"
    );
    let visible = Record::decode(
        &db.raw()
            .get_cf(db.cf(CF_KV), Rev { main: 3, sub: 0 }.to_key())
            .expect("get")
            .expect("kept"),
    )
    .expect("record");
    assert_eq!(mvcc.bytes(), (16 + visible.encode().len()) as u64);
}

fn cmp(key: &str, target: CompareTarget, result: CompareResult, u: TargetUnion) -> Compare {
    Compare {
        key: key.into(),
        target: target as i32,
        result: result as i32,
        target_union: Some(u),
        range_end: vec![],
    }
}

fn put_op(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })),
    }
}

#[test]
fn txn_compare_and_swap() {
    let e = env();
    e.put("lock", "free");
    let txn = |want: &str| TxnRequest {
        compare: vec![cmp(
            "lock",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(want.into()),
        )],
        success: vec![put_op("lock", "held"), put_op("owner", "me")],
        failure: vec![RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: "lock".into(),
                ..Default::default()
            })),
        }],
    };
    let out = TxnResponse::decode(
        e.run(Command::Txn(txn("free").encode_to_vec()))
            .expect("txn")
            .as_slice(),
    )
    .expect("decode");
    assert!(out.succeeded);
    assert_eq!(
        e.mvcc.current_rev(),
        3,
        "one revision for the whole transaction"
    );
    let out = TxnResponse::decode(
        e.run(Command::Txn(txn("free").encode_to_vec()))
            .expect("txn")
            .as_slice(),
    )
    .expect("decode");
    assert!(!out.succeeded);
    assert_eq!(e.mvcc.current_rev(), 3, "a read-only branch writes nothing");
    // A compare on a missing key: version 0 holds, value never does.
    let t = TxnRequest {
        compare: vec![cmp(
            "nokey",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(0),
        )],
        success: vec![put_op("created", "1")],
        failure: vec![],
    };
    let out = TxnResponse::decode(
        e.run(Command::Txn(t.encode_to_vec()))
            .expect("txn")
            .as_slice(),
    )
    .expect("decode");
    assert!(out.succeeded);
}

#[test]
fn unknown_lease_fails_the_whole_txn() {
    let e = env();
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            put_op("a", "1"),
            RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: "b".into(),
                    lease: 99,
                    ..Default::default()
                })),
            },
        ],
        failure: vec![],
    };
    assert_eq!(
        e.run(Command::Txn(t.encode_to_vec())),
        Err(ApplyError::LeaseNotFound)
    );
    assert_eq!(e.mvcc.current_rev(), 1, "an empty store is at revision 1");
    assert!(
        e.mvcc.get(b"a").expect("get").is_none(),
        "nothing of a failed txn is stored"
    );
}

#[test]
fn lease_revoke_deletes_keys_in_one_revision() {
    let e = env();
    e.run(Command::LeaseGrant { id: 7, ttl: 60 })
        .expect("grant");
    for k in ["l1", "l2"] {
        let req = PutRequest {
            key: k.into(),
            value: "v".into(),
            lease: 7,
            ..Default::default()
        };
        e.run(Command::Put(req.encode_to_vec())).expect("put");
    }
    assert_eq!(e.lessor.keys(7).len(), 2);
    e.run(Command::LeaseRevoke { id: 7 }).expect("revoke");
    assert_eq!(e.mvcc.current_rev(), 4);
    assert!(e.keys(prefix("l")).is_empty());
    assert_eq!(
        e.run(Command::LeaseRevoke { id: 7 }),
        Err(ApplyError::LeaseNotFound)
    );
    assert_eq!(e.run(Command::LeaseGrant { id: 8, ttl: 5 }), Ok(vec![]));
    assert_eq!(
        e.run(Command::LeaseGrant { id: 8, ttl: 5 }),
        Err(ApplyError::LeaseExists)
    );
}
