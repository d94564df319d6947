//! Values that many objects carry alike (a ReplicaSet's pods' label and toleration sets, the
//! garbage collector's namespaces and owner kinds), each kept once: a value is looked up by
//! content and its shared copy handed out. Copies no holder uses any more are swept every so
//! many lookups (or when the owner calls [`Pool::sweep`]).

use std::{collections::HashSet, hash::Hash, sync::Arc};

/// Lookups between two sweeps of the copies no holder uses.
pub const SWEEP_EVERY: usize = 4096;

/// The shared copies.
#[derive(Debug)]
pub struct Pool<T: ?Sized> {
    sets: HashSet<Arc<T>>,
    lookups: usize,
}

impl<T: ?Sized> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            sets: HashSet::new(),
            lookups: 0,
        }
    }
}

impl<T: ?Sized + Hash + Eq> Pool<T> {
    /// The pool's copy of `value` (added when it has none).
    pub fn share<V>(&mut self, value: V) -> Arc<T>
    where
        V: std::borrow::Borrow<T> + Into<Arc<T>>,
    {
        self.lookups += 1;
        if self.lookups >= SWEEP_EVERY {
            self.sweep();
        }
        if let Some(s) = self.sets.get(value.borrow()) {
            return s.clone();
        }
        let s: Arc<T> = value.into();
        self.sets.insert(s.clone());
        s
    }

    /// Drops the copies only the pool holds.
    pub fn sweep(&mut self) {
        self.lookups = 0;
        self.sets.retain(|s| Arc::strong_count(s) > 1);
    }

    /// Copies kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_no_holder_uses_leave_at_a_sweep() {
        let mut pool: Pool<[i32]> = Pool::default();
        let kept = pool.share(vec![1]);
        drop(pool.share(vec![2]));
        for _ in 0..SWEEP_EVERY {
            pool.share(vec![1]);
        }
        assert_eq!(pool.len(), 1);
        assert!(Arc::ptr_eq(&kept, &pool.share(vec![1])));
        let mut s: Pool<str> = Pool::default();
        let a = s.share("ns");
        assert!(Arc::ptr_eq(&a, &s.share("ns")));
        drop(a);
        s.sweep();
        assert_eq!(s.len(), 0);
    }
}
