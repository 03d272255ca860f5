//! Which stored report each server's next report may be encoded against
//! (its keyframe, see `detail`): a per-process cache, filled only once a
//! keyframe is committed.
//!
//! Safety rests on three rules:
//! - An entry is added only after its report's transaction committed
//!   ([`Storage::record_report`](super::Storage::record_report) got
//!   `Stored`), so a delta is only ever encoded against a row that exists:
//!   a batch that fails, retries or falls back to the per-report path
//!   cannot leave a delta behind without its keyframe.
//! - A keyframe serves only reports that arrive within [`SPAN_SECS`] of it
//!   (and collected at most `detail::MAX_KEYFRAME_GAP_SECS` after it), far
//!   less than the hour retention always keeps beyond the newest arrivals
//!   (`history::settings`): a delta being written never refers to a row
//!   retention may be deleting. Retention keeps a keyframe while a stored
//!   delta may refer to it.
//! - An entry belongs to a server *and* the key its reports were signed
//!   with: a server deleted or reinstalled starts with a fresh keyframe,
//!   and server ids are never reused (AUTOINCREMENT), so no report ever
//!   refers to another server's row.
//!
//! Anything else only costs bytes: a missing entry (restart, eviction, a
//! report that went to another instance) just means the next report is
//! written whole and becomes the keyframe. Two instances sharing a
//! database each keep their own keyframes; both are committed rows.
//!
//! Bounded: at most [`MAX_BYTES`] of keyframes (each entry is its format-1
//! detail, a few hundred bytes, not its JSON, which would be 4–5 times
//! larger). At 300–600 B per server that is 100,000–200,000 servers; past
//! the cap, expired entries go first, then arbitrary ones (an evicted
//! server just writes a keyframe next).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::detail;

/// Most seconds between a keyframe's arrival and a report encoded against
/// it. Retention keeps at least the last hour of arrivals plus
/// `max_report_age` (rounded down to the hour), so 45 minutes leave a
/// margin for batches in flight and for clocks of several instances.
pub const SPAN_SECS: i64 = 45 * 60;

/// Most reports encoded against one keyframe (the keyframe included):
/// each delta's size grows as its report drifts from the keyframe; at one
/// report a minute [`SPAN_SECS`] comes first anyway.
pub const MAX_USES: u32 = 60;

/// Most bytes of keyframes kept (details plus a fixed cost per entry).
pub const MAX_BYTES: usize = 64 << 20;

/// Bookkeeping bytes counted per entry besides its detail.
const ENTRY_OVERHEAD: usize = 96;

/// One server's keyframe.
#[derive(Debug, Clone)]
struct Entry {
    /// The key the keyframe's report was signed with.
    key_id: Option<String>,
    collected_at: i64,
    received_at: i64,
    /// Reports encoded against it so far, itself included.
    uses: u32,
    /// Its format-1 detail.
    detail: Arc<[u8]>,
}

impl Entry {
    fn cost(&self) -> usize {
        self.detail.len() + ENTRY_OVERHEAD
    }
}

/// A keyframe to encode a report against.
#[derive(Debug, Clone)]
pub(super) struct Lease {
    pub collected_at: i64,
    pub detail: Arc<[u8]>,
}

/// The cache; one per [`Storage`](super::Storage), shared by its clones.
#[derive(Default)]
pub(super) struct Keyframes {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<i64, Entry>,
    bytes: usize,
}

impl std::fmt::Debug for Keyframes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Keyframes")
            .field("servers", &inner.entries.len())
            .field("bytes", &inner.bytes)
            .finish()
    }
}

impl Keyframes {
    /// The keyframe a report of `server_id` signed with `key_id`, collected
    /// at `collected_at` and arriving at `received_at`, may be encoded
    /// against, counting the use; `None` when it should be a keyframe
    /// itself.
    pub fn lease(
        &self,
        server_id: i64,
        key_id: Option<&str>,
        collected_at: i64,
        received_at: i64,
    ) -> Option<Lease> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = inner.entries.get_mut(&server_id)?;
        let arrived = received_at.checked_sub(entry.received_at);
        let gap = collected_at.checked_sub(entry.collected_at);
        let usable = entry.key_id.as_deref() == key_id
            && entry.uses < MAX_USES
            && arrived.is_some_and(|a| (0..SPAN_SECS).contains(&a))
            && gap.is_some_and(|g| (1..=detail::MAX_KEYFRAME_GAP_SECS).contains(&g));
        if !usable {
            return None;
        }
        entry.uses += 1;
        Some(Lease {
            collected_at: entry.collected_at,
            detail: Arc::clone(&entry.detail),
        })
    }

    /// Makes a committed format-1 detail its server's keyframe, unless a
    /// later one is already there (reports of one server may commit out of
    /// order across batches).
    pub fn insert(
        &self,
        server_id: i64,
        key_id: Option<&str>,
        collected_at: i64,
        received_at: i64,
        detail: Arc<[u8]>,
    ) {
        let entry = Entry {
            key_id: key_id.map(str::to_owned),
            collected_at,
            received_at,
            uses: 1,
            detail,
        };
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = inner.entries.get(&server_id) {
            if old.key_id == entry.key_id && old.collected_at >= collected_at {
                return;
            }
            inner.bytes -= old.cost();
        }
        inner.bytes += entry.cost();
        inner.entries.insert(server_id, entry);
        if inner.bytes > MAX_BYTES {
            inner.evict(received_at);
        }
    }

    /// Forgets a server's keyframe (its key changed or it was deleted).
    pub fn forget(&self, server_id: i64) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = inner.entries.remove(&server_id) {
            inner.bytes -= old.cost();
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

impl Inner {
    /// Brings the cache down to 7/8 of [`MAX_BYTES`] (so eviction, a pass
    /// over all entries, runs once per many inserts): expired keyframes
    /// first, then arbitrary ones (the map's order).
    fn evict(&mut self, now: i64) {
        let target = MAX_BYTES / 8 * 7;
        let mut bytes = self.bytes;
        self.entries.retain(|_, e| {
            let expired = now.saturating_sub(e.received_at) >= SPAN_SECS || e.uses >= MAX_USES;
            if expired {
                bytes -= e.cost();
            }
            !expired
        });
        if bytes > target {
            self.entries.retain(|_, e| {
                if bytes <= target {
                    return true;
                }
                bytes -= e.cost();
                false
            });
        }
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(len: usize) -> Arc<[u8]> {
        vec![detail::FORMAT_ZSTD_V1; len].into()
    }

    #[test]
    fn a_keyframe_serves_its_server_and_key_within_its_span_and_uses() {
        let k = Keyframes::default();
        assert!(k.lease(1, Some("a"), 160, 1_000).is_none(), "empty");
        k.insert(1, Some("a"), 100, 1_000, detail(10));
        let lease = k.lease(1, Some("a"), 160, 1_060).expect("a lease");
        assert_eq!(lease.collected_at, 100);
        assert!(k.lease(2, Some("a"), 160, 1_060).is_none(), "other server");
        assert!(k.lease(1, Some("b"), 160, 1_060).is_none(), "other key");
        assert!(k.lease(1, None, 160, 1_060).is_none(), "other key");
        assert!(k.lease(1, Some("a"), 100, 1_060).is_none(), "not later");
        assert!(
            k.lease(1, Some("a"), 100 + detail::MAX_KEYFRAME_GAP_SECS + 1, 1_060)
                .is_none(),
            "collected too long after"
        );
        assert!(
            k.lease(1, Some("a"), 160, 1_000 + SPAN_SECS).is_none(),
            "arrived too long after"
        );
        assert!(k.lease(1, Some("a"), 160, 999).is_none(), "arrived before");
        // One lease above; the keyframe counts as a use.
        for _ in 2..MAX_USES {
            assert!(k.lease(1, Some("a"), 160, 1_060).is_some());
        }
        assert!(k.lease(1, Some("a"), 160, 1_060).is_none(), "used up");
        // A later keyframe replaces it, an earlier one does not.
        k.insert(1, Some("a"), 200, 1_100, detail(10));
        k.insert(1, Some("a"), 150, 1_100, detail(10));
        assert_eq!(
            k.lease(1, Some("a"), 260, 1_160)
                .expect("lease")
                .collected_at,
            200
        );
        // A new key replaces it whatever its time.
        k.insert(1, Some("b"), 120, 1_200, detail(10));
        assert!(k.lease(1, Some("a"), 260, 1_210).is_none());
        assert_eq!(
            k.lease(1, Some("b"), 260, 1_210)
                .expect("lease")
                .collected_at,
            120
        );
        k.forget(1);
        assert!(k.lease(1, Some("b"), 260, 1_210).is_none());
        assert_eq!(k.bytes(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let k = Keyframes::default();
        let size = 4_000;
        let per = size + ENTRY_OVERHEAD;
        let fit = MAX_BYTES / per;
        for server in 0..(2 * fit) as i64 {
            k.insert(server, None, 100, 1_000, detail(size));
            assert!(k.bytes() <= MAX_BYTES);
        }
        let inner = k.inner.lock().expect("lock");
        assert!(inner.entries.len() <= fit);
        assert!(
            inner.entries.len() >= fit * 3 / 4,
            "{}",
            inner.entries.len()
        );
        assert_eq!(
            inner.bytes,
            inner.entries.values().map(Entry::cost).sum::<usize>()
        );
        drop(inner);
        // Expired entries go first.
        k.insert(-1, None, 100, 1_000 + SPAN_SECS, detail(size));
        for server in 0..fit as i64 {
            k.insert(
                10_000_000 + server,
                None,
                100,
                1_000 + SPAN_SECS,
                detail(size),
            );
        }
        let inner = k.inner.lock().expect("lock");
        assert!(
            inner.entries.values().all(|e| e.received_at > 1_000),
            "the expired entries went"
        );
    }
}
