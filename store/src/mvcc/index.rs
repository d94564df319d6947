//! Per-key revision lists: which record of a key is visible at a given revision.

use std::ops::Bound;

use smallvec::SmallVec;

use super::Rev;

/// The retained revisions of one key, oldest first; a tombstone ends a generation.
///
/// Most keys have one (an event, a pod between its updates' compactions): it is kept inline,
/// saving a heap allocation per key (96 bytes for a one-element `Vec`), which at 150,000 pods
/// and their half a million events was about 60 MB of the store's memory.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeyIndex {
    revs: SmallVec<[(Rev, bool); 1]>,
}

impl KeyIndex {
    /// Appends a change (revisions only grow).
    pub fn push(&mut self, rev: Rev, tombstone: bool) {
        self.revs.push((rev, tombstone));
    }

    /// The newest change's revision (a deletion's too).
    pub fn newest(&self) -> Option<Rev> {
        self.revs.last().map(|(r, _)| *r)
    }

    /// The revision of the record visible at main revision `at`, unless deleted or absent.
    pub fn visible_at(&self, at: i64) -> Option<Rev> {
        let pos = self.revs.partition_point(|(r, _)| r.main <= at);
        match pos.checked_sub(1).map(|i| self.revs[i]) {
            Some((rev, false)) => Some(rev),
            _ => None,
        }
    }

    /// The live record just before `rev` (the `prev_kv` of a change at `rev`).
    pub fn visible_before(&self, rev: Rev) -> Option<Rev> {
        let pos = self.revs.partition_point(|(r, _)| *r < rev);
        match pos.checked_sub(1).map(|i| self.revs[i]) {
            Some((r, false)) => Some(r),
            _ => None,
        }
    }

    /// Drops what compaction at `at` makes unreachable: every revision older than the one
    /// visible at `at`, and that one too if it is a deletion. Returns the dropped revisions.
    pub fn compact(&mut self, at: i64) -> Vec<Rev> {
        let pos = self.revs.partition_point(|(r, _)| r.main <= at);
        if pos == 0 {
            return Vec::new();
        }
        let keep_from = match self.revs[pos - 1] {
            (_, true) => pos,
            (_, false) => pos - 1,
        };
        let dropped = self.revs.drain(..keep_from).map(|(r, _)| r).collect();
        if self.revs.len() <= 1 {
            // Back inline once one revision is left (a lease, a pod between updates).
            self.revs.shrink_to_fit();
        }
        dropped
    }

    /// True when `rev` is retained.
    pub fn contains(&self, rev: Rev) -> bool {
        self.revs.binary_search_by(|(r, _)| r.cmp(&rev)).is_ok()
    }

    /// True when nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }
}

/// The key interval of an etcd request: an empty `range_end` means the single `key`,
/// `"\0"` means every key from `key` on, anything else the half-open `[key, range_end)`.
/// Returns `None` for an empty interval.
pub fn key_range(key: &[u8], range_end: &[u8]) -> Option<(Bound<Vec<u8>>, Bound<Vec<u8>>)> {
    if range_end.is_empty() {
        return Some((Bound::Included(key.to_vec()), Bound::Included(key.to_vec())));
    }
    if range_end == [0] {
        return Some((Bound::Included(key.to_vec()), Bound::Unbounded));
    }
    if range_end <= key {
        return None;
    }
    Some((
        Bound::Included(key.to_vec()),
        Bound::Excluded(range_end.to_vec()),
    ))
}

/// Whether `k` lies in the interval of (`key`, `range_end`) as [`key_range`] reads it.
pub fn in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        k == key
    } else if range_end == [0] {
        k >= key
    } else {
        k >= key && k < range_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Rev {
        Rev { main, sub: 0 }
    }

    #[test]
    fn visibility_follows_generations() {
        let mut k = KeyIndex::default();
        k.push(r(2), false);
        k.push(r(4), false);
        k.push(r(5), true);
        k.push(r(7), false);
        assert_eq!(k.visible_at(1), None);
        assert_eq!(k.visible_at(3), Some(r(2)));
        assert_eq!(k.visible_at(4), Some(r(4)));
        assert_eq!(k.visible_at(6), None);
        assert_eq!(k.visible_at(9), Some(r(7)));
        assert_eq!(k.visible_before(r(5)), Some(r(4)));
        assert_eq!(k.visible_before(r(7)), None);
    }

    #[test]
    fn one_revision_is_kept_inline_and_returns_inline_after_compaction() {
        let mut k = KeyIndex::default();
        k.push(r(2), false);
        assert!(!k.revs.spilled(), "one revision needs no allocation");
        k.push(r(3), false);
        k.push(r(4), false);
        assert!(k.revs.spilled());
        assert_eq!(k.compact(4), vec![r(2), r(3)]);
        assert!(!k.revs.spilled(), "back inline with one revision left");
        assert_eq!(k.visible_at(4), Some(r(4)));
    }

    #[test]
    fn compaction_keeps_what_is_visible() {
        let mut k = KeyIndex::default();
        k.push(r(2), false);
        k.push(r(4), false);
        k.push(r(5), true);
        k.push(r(7), false);
        assert_eq!(k.compact(4), vec![r(2)]);
        assert_eq!(k.visible_at(4), Some(r(4)));
        assert_eq!(k.compact(6), vec![r(4), r(5)]);
        assert_eq!(k.visible_at(8), Some(r(7)));
        assert_eq!(k.compact(8), Vec::<Rev>::new());
    }

    #[test]
    fn ranges() {
        assert!(in_range(b"a", b"a", b""));
        assert!(!in_range(b"ab", b"a", b""));
        assert!(in_range(b"zz", b"a", b"\0"));
        assert!(in_range(b"ab", b"a", b"b"));
        assert!(!in_range(b"b", b"a", b"b"));
        assert!(key_range(b"b", b"a").is_none());
    }
}
