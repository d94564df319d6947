//! Range reads: keys in an interval as of a revision, filtered, sorted and limited as etcd does.

use proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use proto::etcdserverpb::{RangeRequest, RangeResponse};
use proto::mvccpb::KeyValue;

use super::{key_range, Mvcc, MvccError, MvccState, Record, Rev};

impl Mvcc {
    /// Serves a Range request at the current state of this member.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        let st = self.state.read();
        range_with(&st, st.current_rev, req, |rev| st.record_at(self, rev))
    }
}

/// Serves a Range request on `st`, whose newest revision is `cur_rev`, fetching records with
/// `fetch` (the applier passes one that also sees its not yet written changes).
pub(crate) fn range_with(
    st: &MvccState,
    cur_rev: i64,
    req: &RangeRequest,
    fetch: impl Fn(Rev) -> Result<Option<Record>, MvccError>,
) -> Result<RangeResponse, MvccError> {
    let at = if req.revision <= 0 {
        cur_rev
    } else {
        req.revision
    };
    if at > cur_rev {
        return Err(MvccError::FutureRev);
    }
    if at < st.compact_rev {
        return Err(MvccError::Compacted);
    }
    let mut revs: Vec<Rev> = Vec::new();
    if let Some(bounds) = key_range(&req.key, &req.range_end) {
        for (_, idx) in st.index.range(bounds) {
            if let Some(rev) = idx.visible_at(at) {
                revs.push(rev);
            }
        }
    }
    let count = revs.len() as i64;
    let mut resp = RangeResponse {
        header: None,
        kvs: Vec::new(),
        more: false,
        count,
    };
    if req.count_only || revs.is_empty() {
        return Ok(resp);
    }
    let order = match (
        SortOrder::try_from(req.sort_order),
        SortTarget::try_from(req.sort_target),
    ) {
        (Ok(SortOrder::None), Ok(SortTarget::Key)) | (Err(_), _) => SortOrder::None,
        (Ok(SortOrder::None), _) => SortOrder::Ascend,
        (Ok(o), _) => o,
    };
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    // Without sorting or filters only limit+1 records are needed (one more tells `more`).
    let sorted = !matches!(
        (order, target),
        (SortOrder::None, _) | (SortOrder::Ascend, SortTarget::Key)
    );
    if req.limit > 0 && !sorted && !filtered {
        revs.truncate(req.limit as usize + 1);
    }
    let mut kvs: Vec<KeyValue> = Vec::with_capacity(revs.len());
    for rev in revs {
        let rec = fetch(rev)?.ok_or_else(|| {
            MvccError::Storage(format!("missing record at {}/{}", rev.main, rev.sub))
        })?;
        kvs.push(rec.kv);
    }
    if filtered {
        kvs.retain(|kv| {
            (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
        });
    }
    if sorted {
        // Stable sorts over key order, so ties keep ascending keys as etcd's do.
        match target {
            SortTarget::Key => {}
            SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
            SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
            SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
            SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
        }
        if order == SortOrder::Descend {
            kvs.reverse();
        }
    }
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        resp.more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    resp.kvs = kvs;
    Ok(resp)
}
