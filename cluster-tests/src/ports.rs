//! Free loopback ports that no other cluster of this process uses.
//!
//! Ports are taken from a range below Linux's ephemeral range (32768 and up), so they do not
//! race with the local ports of outgoing connections. Each pick is checked by binding it on
//! 127.0.0.1 and remembered process-wide, so concurrent tests never get the same port; the
//! random starting point makes collisions with other test processes unlikely.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Result};
use rand::Rng;

const FIRST: u16 = 20_000;
const END: u16 = 32_000;

fn taken() -> &'static Mutex<HashSet<u16>> {
    static TAKEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    TAKEN.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Returns a port that was free on 127.0.0.1 just now and that this process has not handed
/// out before.
pub fn allocate() -> Result<u16> {
    let mut taken = taken()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let span = END - FIRST;
    let start = rand::rng().random_range(0..span);
    for offset in 0..span {
        let port = FIRST + (start + offset) % span;
        if taken.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            taken.insert(port);
            return Ok(port);
        }
    }
    bail!("no free loopback port left in {FIRST}..{END}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct() {
        let ports: Vec<u16> = (0..50).map(|_| allocate().expect("allocate")).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|p| (FIRST..END).contains(p)));
    }
}
