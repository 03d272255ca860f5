//! Secrets of recently seen keys, so a report's signature is checked
//! without a database round trip.
//!
//! Why a stale entry is harmless: the secret behind a key id never changes
//! (a reinstall draws a new key id), and the transaction that stores a
//! report checks that its server still has the key it was signed with. A
//! report verified against a cached key of a server that was deleted or
//! reinstalled meanwhile, on this instance or any other, is refused there
//! with the same 401 and stores nothing; its entry is then dropped.
//!
//! Only keys the database returned are cached: an unknown key id costs a
//! lookup every time (and counts toward its client's failure limit), so a
//! flood of made-up ids cannot fill the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::storage::ServerKey;

/// Entries held before the cache starts over: enough for every server of
/// a fleet of a million (10,000 reports/s at one a minute is 600,000), at
/// roughly 180 bytes each, about 180 MiB then. A smaller fleet holds only
/// its own keys. Past it, the cache empties and fills again with the keys
/// in use; until then each key costs one lookup again.
const CAPACITY: usize = 1_000_000;

/// Key id to the server and secret behind it.
pub(super) struct KeyCache {
    keys: Mutex<HashMap<String, Arc<ServerKey>>>,
    capacity: usize,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl KeyCache {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            keys: Mutex::default(),
            capacity,
        }
    }

    pub(super) fn get(&self, key_id: &str) -> Option<Arc<ServerKey>> {
        self.lock().get(key_id).cloned()
    }

    pub(super) fn insert(&self, key_id: &str, key: Arc<ServerKey>) {
        let mut keys = self.lock();
        if keys.len() >= self.capacity {
            // Simpler than an eviction order, and rare: the next minute's
            // reports fill it again with the keys in use.
            keys.clear();
        }
        keys.insert(key_id.to_owned(), key);
    }

    /// Forgets a key its server no longer has.
    pub(super) fn remove(&self, key_id: &str) {
        self.lock().remove(key_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ServerKey>>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(server_id: i64) -> Arc<ServerKey> {
        Arc::new(ServerKey {
            server_id,
            owner_id: 1,
            secret: format!("secret-{server_id}"),
        })
    }

    #[test]
    fn keeps_and_forgets_keys() {
        let cache = KeyCache::default();
        assert!(cache.get("abc").is_none());
        cache.insert("abc", key(7));
        assert_eq!(cache.get("abc").map(|k| k.server_id), Some(7));
        cache.remove("abc");
        assert!(cache.get("abc").is_none());
    }

    #[test]
    fn starts_over_when_full() {
        let cache = KeyCache::with_capacity(100);
        for i in 0..100 {
            cache.insert(&format!("k{i}"), key(i as i64));
        }
        assert!(cache.get("k0").is_some());
        cache.insert("one-more", key(-1));
        assert!(cache.get("k0").is_none());
        assert!(cache.get("one-more").is_some());
        assert_eq!(cache.lock().len(), 1);
    }
}
