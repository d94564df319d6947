//! openraft's storage test suite, run on our RocksDB log store and MVCC state machine.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use store::db::Db;
use store::metrics::Metrics;
use store::raft::{LogStore, StateMachine, StorageError, StoreState, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("data")).expect("open db");
        let metrics = Arc::new(Metrics::new());
        let state = Arc::new(StoreState::load(db.clone()).expect("load state"));
        // The suite's votes are for node 0: its appends under them are a leader's own.
        let log = LogStore::new(db.clone(), metrics.clone(), 0)?;
        let sm = StateMachine::new(
            state,
            db,
            metrics,
            dir.path().join("snap"),
            log.durability(),
        )
        .expect("state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft storage suite passes");
}
