//! Each server's pacing row as this instance last wrote it, so that a batch
//! of reports from servers it has seen need not read their rows (the read
//! was a fifth of MariaDB's statement time per batch; MariaDB only, see
//! `batch`).
//!
//! Nothing rests on the cache being right. Another instance, the CLI or the
//! bot may change a row at any time (a report stored elsewhere, a key
//! rotated, a server deleted), and this instance's own writers commit in
//! overlapping transactions. So the batch path (`bulk`) trusts an entry
//! only as far as the database confirms it: a report stored on a cached
//! row goes through the compare-and-set update, which matches only a row
//! still holding every value the plan started from; a report refused on a
//! cached row has its row read first and is decided again. Whatever the
//! cache holds, a batch stores and refuses exactly what it would without it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Pacing;

/// Rows in one generation (see [`Generations`]); the cache holds at most
/// two. Why this many: every server that reports more often than the
/// cache turns over must stay in it, or its batches read again, so a
/// generation holds a fleet of 100,000 servers with room to spare; and
/// it is 7/8 of 2^17, the most a hash map of 2^17 slots holds before it
/// doubles. A slot is 81 bytes and a key id's allocation about 32, so a
/// full generation takes about 14 MB and the cache at most about 29 MB,
/// however many servers report (fleets larger than a generation still
/// save the read for the servers written lately).
const GENERATION: usize = 114_688;

/// The rows, shared by every batch writer of one storage handle.
#[derive(Debug)]
pub(in crate::storage) struct PacingCache {
    generations: Mutex<Generations>,
    /// Most entries in one generation.
    generation: usize,
}

/// Two generations instead of a recency list: a row written goes into
/// `current`; when `current` is full it becomes `previous` and what
/// `previous` held is dropped. A server that reports keeps its row (each
/// write moves it into `current`), a deleted or silent one falls out after
/// two turnovers, and no per-entry bookkeeping is needed. A row survives
/// at least a generation's worth of other servers' writes.
#[derive(Debug, Default)]
struct Generations {
    current: HashMap<i64, Pacing>,
    previous: HashMap<i64, Pacing>,
}

impl Generations {
    fn get(&self, id: i64) -> Option<&Pacing> {
        self.current.get(&id).or_else(|| self.previous.get(&id))
    }

    fn remove(&mut self, id: i64) {
        self.current.remove(&id);
        self.previous.remove(&id);
    }
}

impl PacingCache {
    pub(in crate::storage) fn new() -> Self {
        Self::with_generation(GENERATION)
    }

    fn with_generation(generation: usize) -> Self {
        Self {
            generations: Mutex::default(),
            generation: generation.max(1),
        }
    }

    /// A panic while the lock was held cannot have left an entry half
    /// written (every change is one map operation), and a wrong entry is
    /// caught anyway: carry on with what is there.
    fn lock(&self) -> MutexGuard<'_, Generations> {
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies into `into` the rows held for `ids`.
    pub(super) fn fill(&self, ids: &[i64], into: &mut HashMap<i64, Pacing>) {
        let generations = self.lock();
        for &id in ids {
            if let Some(pacing) = generations.get(id) {
                into.insert(id, pacing.clone());
            }
        }
    }

    /// Drops the rows of `ids`: they may no longer be what the database
    /// holds.
    pub(super) fn forget(&self, ids: impl IntoIterator<Item = i64>) {
        let mut generations = self.lock();
        for id in ids {
            generations.remove(id);
        }
    }

    /// Records rows a committed transaction moved from `before` to `after`.
    /// An entry that holds neither nothing nor `before` was written by a
    /// transaction this one cannot order itself against (another writer
    /// committing at the same moment): it is dropped rather than guessed.
    pub(super) fn committed<'a>(
        &self,
        moves: impl IntoIterator<Item = (i64, &'a Pacing, &'a Pacing)>,
    ) {
        let mut generations = self.lock();
        for (id, before, after) in moves {
            let known = generations.get(id).is_none_or(|held| held == before);
            generations.remove(id);
            if !known {
                continue;
            }
            if generations.current.len() >= self.generation {
                generations.previous = std::mem::take(&mut generations.current);
            }
            generations.current.insert(id, after.clone());
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let generations = self.lock();
        generations.current.len() + generations.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing(last: i64) -> Pacing {
        Pacing {
            key_id: "k".repeat(16),
            last_collected_at: Some(last),
            last_seen_at: Some(last),
            window_start: last,
            window_count: 1,
        }
    }

    fn held(cache: &PacingCache, id: i64) -> Option<Pacing> {
        let mut into = HashMap::new();
        cache.fill(&[id], &mut into);
        into.remove(&id)
    }

    #[test]
    fn a_commit_moves_an_entry_only_from_the_row_it_started_from() {
        let cache = PacingCache::with_generation(4);
        let (p1, p2, p3) = (pacing(1), pacing(2), pacing(3));
        cache.committed([(7, &p1, &p2)]);
        assert_eq!(held(&cache, 7), Some(p2.clone()), "nothing held: taken");
        cache.committed([(7, &p2, &p3)]);
        assert_eq!(held(&cache, 7), Some(p3.clone()), "moved from what it held");
        // Another writer planned from the row before p3 and committed too.
        cache.committed([(7, &p1, &p2)]);
        assert_eq!(held(&cache, 7), None, "an unordered commit drops it");
        cache.committed([(7, &p2, &p3)]);
        cache.forget([7]);
        assert_eq!(held(&cache, 7), None);
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_the_servers_written_lately() {
        let cache = PacingCache::with_generation(50);
        let (before, after) = (pacing(1), pacing(2));
        for id in 0..1_000 {
            cache.committed([(id, &before, &after)]);
            assert!(cache.len() <= 100, "{} entries", cache.len());
        }
        // The last generation's worth written are all there.
        for id in 950..1_000 {
            assert_eq!(held(&cache, id), Some(after.clone()), "server {id}");
        }
        assert_eq!(held(&cache, 0), None);
        // A server written again survives the turnover.
        for id in 1_000..1_200 {
            cache.committed([(id, &before, &after), (999, &after, &after)]);
        }
        assert_eq!(held(&cache, 999), Some(after));
    }
}
