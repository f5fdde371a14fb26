//! What one client may hold of the operator API at once, so that no client (with a token or
//! without) can lock the others out or make the daemon hold gigabytes.
//!
//! An adversarial run found four ways: 64 connections trickling a large body one byte every few
//! seconds held every connection slot; 64 unauthenticated 19 MiB uploads were buffered before
//! the token was looked at (155 MB resident became 1.40 GB); 16 parallel image bombs decoded at
//! once (5.38 GB); 64 event streams from one read token starved every other request. The
//! mechanism here: connections are counted per client address, a body is read only after its
//! token is checked, with a deadline and a size cap, by a bounded number of uploads per client
//! and overall; event streams are counted per token and overall, with a slot kept for admin.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections served at once (an event stream holds one while it is open).
pub const MAX_CONNECTIONS: usize = 64;
/// Connections one client address may hold: a quarter, so one client cannot take them all.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 16;
/// Requests carrying a body (uploads) in progress at once, reading included.
pub const MAX_UPLOADS: usize = 8;
/// Uploads one client address may have in progress at once.
pub const MAX_UPLOADS_PER_CLIENT: usize = 2;
/// Every body gets this long, plus the time its size takes at [`MIN_BODY_RATE`].
pub const BODY_GRACE: Duration = Duration::from_secs(10);
/// The slowest upload rate a body is waited for, in bytes per second (a phone on poor Wi-Fi
/// sends a few hundred kB/s; a client trickling a byte every few seconds is cut off).
pub const MIN_BODY_RATE: u64 = 64 * 1024;
/// Event streams open at once; the last one is kept for an admin token. Fewer than one
/// client's connections, so that streams alone never use up a client's share either.
pub const MAX_STREAMS: usize = 8;
/// Event streams one token may hold open at once (each open operator page holds one).
pub const MAX_STREAMS_PER_TOKEN: usize = 4;
/// Photos decoded and searched at once: a photo may decode to 512 MiB (capture::decode).
pub const MAX_DECODES: usize = 1;

/// How long a body of `declared` bytes (the cap when not declared) is waited for.
pub fn body_deadline(declared: u64) -> Duration {
    BODY_GRACE + Duration::from_secs(declared / MIN_BODY_RATE)
}

/// Counts what each key (a client's address, a token's name) holds at once, and the total.
pub struct Quota<K: Hash + Eq + Clone> {
    per_key: usize,
    total: usize,
    held: Mutex<(usize, HashMap<K, usize>)>,
}

/// Why a slot was not given: the key's own share is used up, or everyone's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Key(usize),
    Total(usize),
}

impl<K: Hash + Eq + Clone> Quota<K> {
    pub fn new(per_key: usize, total: usize) -> Arc<Quota<K>> {
        Arc::new(Quota { per_key, total, held: Mutex::new((0, HashMap::new())) })
    }

    /// A slot for `key`, unless it holds its share already or all but `reserve` slots are
    /// held. The slot is given back when the returned value is dropped.
    pub fn take(self: &Arc<Self>, key: K, reserve: usize) -> Result<Held<K>, Full> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let (total, keys) = &mut *held;
        if *total + reserve >= self.total {
            return Err(Full::Total(self.total));
        }
        let mine = keys.entry(key.clone()).or_insert(0);
        if *mine >= self.per_key {
            return Err(Full::Key(self.per_key));
        }
        *mine += 1;
        *total += 1;
        Ok(Held { quota: self.clone(), key })
    }

    /// Slots held now, in all.
    pub fn in_use(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

/// A slot of a [`Quota`], given back on drop.
pub struct Held<K: Hash + Eq + Clone> {
    quota: Arc<Quota<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        let mut held = self.quota.held.lock().unwrap_or_else(|e| e.into_inner());
        let (total, keys) = &mut *held;
        *total -= 1;
        if let Some(n) = keys.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_share_the_total_keeps_its_reserve_and_slots_come_back() {
        let q = Quota::new(2, 4);
        let a1 = q.take("a", 0).unwrap();
        let _a2 = q.take("a", 0).unwrap();
        assert_eq!(q.take("a", 0).err(), Some(Full::Key(2)));
        let _b1 = q.take("b", 0).unwrap();
        // One slot left: kept for whoever may use the reserve.
        assert_eq!(q.take("c", 1).err(), Some(Full::Total(4)));
        let _c1 = q.take("c", 0).unwrap();
        assert_eq!(q.take("d", 0).err(), Some(Full::Total(4)));
        assert_eq!(q.in_use(), 4);
        drop(a1);
        assert_eq!(q.in_use(), 3);
        assert!(q.take("a", 0).is_ok());
    }

    #[test]
    fn the_body_deadline_grows_with_the_declared_size() {
        assert_eq!(body_deadline(0), BODY_GRACE);
        assert_eq!(body_deadline(20 << 20), BODY_GRACE + Duration::from_secs(320));
    }
}
