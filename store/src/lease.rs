//! The lessor: leases with a TTL, the keys attached to them, and their expiry clock.
//!
//! Grants, revokes and attachments are applied from the Raft log on every member, so all agree
//! on which leases exist. Only the leader runs the expiry clock: it renews leases on keep-alive
//! and proposes a revoke when one runs out. A new leader restarts every clock at its full TTL
//! plus an election timeout, so a leader change never expires a lease early.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::schema::{lease_id, CF_LEASE};

/// The largest TTL etcd accepts, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// A lease as stored in the `lease` column family.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseRecord {
    /// Granted TTL in seconds.
    pub ttl: i64,
}

#[derive(Debug)]
struct Lease {
    ttl: i64,
    keys: BTreeSet<Vec<u8>>,
    /// When the lease runs out; kept by every member, acted on by the leader only.
    expiry: Instant,
}

/// What [`Lessor::time_to_live`] reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseTtl {
    /// Remaining seconds (rounded up).
    pub remaining: i64,
    /// The granted TTL.
    pub granted: i64,
    /// Attached keys.
    pub keys: Vec<Vec<u8>>,
}

/// All leases of a member.
#[derive(Debug, Default)]
pub struct Lessor {
    leases: Mutex<BTreeMap<i64, Lease>>,
}

impl Lessor {
    /// Loads leases from the database and attaches `keys` (key, lease) to them.
    pub fn load(db: &Db, keys: Vec<(Vec<u8>, i64)>) -> Result<Lessor, String> {
        let lessor = Lessor::default();
        lessor.reload(db, keys)?;
        Ok(lessor)
    }

    /// Replaces the in-memory leases with those in the database (start, snapshot install).
    pub fn reload(&self, db: &Db, keys: Vec<(Vec<u8>, i64)>) -> Result<(), String> {
        let mut map = BTreeMap::new();
        let now = Instant::now();
        for item in db
            .raw()
            .iterator_cf(db.cf(CF_LEASE), rocksdb::IteratorMode::Start)
        {
            let (k, v) = item.map_err(|e| e.to_string())?;
            let id = lease_id(&k).ok_or_else(|| "bad lease key".to_string())?;
            let rec: LeaseRecord = crate::codec::decode(&v).map_err(|e| e.to_string())?;
            map.insert(
                id,
                Lease {
                    ttl: rec.ttl,
                    keys: BTreeSet::new(),
                    expiry: now + secs(rec.ttl),
                },
            );
        }
        for (key, id) in keys {
            if let Some(l) = map.get_mut(&id) {
                l.keys.insert(key);
            }
        }
        *self.leases.lock() = map;
        Ok(())
    }

    /// Whether a lease exists.
    pub fn exists(&self, id: i64) -> bool {
        self.leases.lock().contains_key(&id)
    }

    /// Applies a grant (the caller persists the record).
    pub fn grant(&self, id: i64, ttl: i64) {
        let lease = Lease {
            ttl,
            keys: BTreeSet::new(),
            expiry: Instant::now() + secs(ttl),
        };
        self.leases.lock().insert(id, lease);
    }

    /// Applies a revoke; returns the keys that were attached.
    pub fn revoke(&self, id: i64) -> Option<Vec<Vec<u8>>> {
        self.leases
            .lock()
            .remove(&id)
            .map(|l| l.keys.into_iter().collect())
    }

    /// Keys attached to a lease.
    pub fn keys(&self, id: i64) -> Vec<Vec<u8>> {
        self.leases
            .lock()
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Attaches a key to a lease (no-op for lease 0 or an unknown lease).
    pub fn attach(&self, key: &[u8], id: i64) {
        if let Some(l) = self.leases.lock().get_mut(&id) {
            l.keys.insert(key.to_vec());
        }
    }

    /// Detaches a key from a lease.
    pub fn detach(&self, key: &[u8], id: i64) {
        if let Some(l) = self.leases.lock().get_mut(&id) {
            l.keys.remove(key);
        }
    }

    /// IDs of all leases, ascending.
    pub fn ids(&self) -> Vec<i64> {
        self.leases.lock().keys().copied().collect()
    }

    /// Restarts every lease's clock at its full TTL plus `extend` (on becoming leader).
    pub fn promote(&self, extend: Duration) {
        let now = Instant::now();
        for l in self.leases.lock().values_mut() {
            l.expiry = now + extend + secs(l.ttl);
        }
    }

    /// Renews a lease for its full TTL; `None` if it does not exist.
    pub fn renew(&self, id: i64) -> Option<i64> {
        let mut leases = self.leases.lock();
        let l = leases.get_mut(&id)?;
        l.expiry = Instant::now() + secs(l.ttl);
        Some(l.ttl)
    }

    /// Remaining and granted TTL and the attached keys; `None` if the lease does not exist.
    pub fn time_to_live(&self, id: i64) -> Option<LeaseTtl> {
        let leases = self.leases.lock();
        let l = leases.get(&id)?;
        let left = l.expiry.saturating_duration_since(Instant::now());
        let remaining = (left.as_millis() as i64 + 999) / 1000;
        Some(LeaseTtl {
            remaining,
            granted: l.ttl,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    /// Leases whose clock has run out (the leader proposes their revocation).
    pub fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        self.leases
            .lock()
            .iter()
            .filter(|(_, l)| l.expiry <= now)
            .map(|(id, _)| *id)
            .collect()
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.clamp(0, MAX_LEASE_TTL) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_attach_revoke() {
        let l = Lessor::default();
        l.grant(7, 10);
        l.attach(b"a", 7);
        l.attach(b"b", 7);
        l.detach(b"a", 7);
        assert_eq!(l.keys(7), vec![b"b".to_vec()]);
        let ttl = l.time_to_live(7).expect("lease exists");
        assert_eq!(ttl.granted, 10);
        assert!(ttl.remaining <= 10 && ttl.remaining >= 9);
        assert_eq!(l.revoke(7), Some(vec![b"b".to_vec()]));
        assert!(!l.exists(7));
        assert_eq!(l.renew(7), None);
    }

    #[test]
    fn promote_extends_clocks() {
        let l = Lessor::default();
        l.grant(1, 0);
        assert_eq!(l.expired(), vec![1]);
        l.promote(Duration::from_secs(2));
        assert!(l.expired().is_empty());
    }
}
