//! A whole batch of reports in a handful of multi-row statements.
//!
//! Why: every statement is a round trip (to sqlx's SQLite worker thread, or
//! over the network to MariaDB), and per report the plain path needs three.
//! Here a batch takes its servers' pacing from the instance's cache (see
//! `cache`) or reads it, reads its nonces only when it must, decides every
//! report in memory with the same rules the SQL applies, then writes the
//! nonces, the servers and the reports with one statement each per chunk.
//!
//! Exactness does not rest on the reads or the cache: the nonce insert
//! still fails on a used nonce (unique key), and the server update only
//! matches rows that are exactly as the plan took them (a compare-and-set
//! on every pacing column and the key). Should another transaction have got
//! there first (another instance, or on Galera another node), or a cached
//! row be stale, the batch gives up as a whole; it is written again reading
//! every row when it used the cache, and otherwise the caller writes it
//! the plain way, one report at a time. No lock is taken for coordination,
//! so this holds on Galera too.

mod sqlite;

use std::collections::{HashMap, HashSet};

pub(in crate::storage) use sqlite::SqliteWriter;

use super::cache::PacingCache;
use super::{INSERT_REPORT_INTO, Pacing, Prepared, RecordOutcome};
use crate::config::DatabaseKind;
use crate::storage::db::{Columns, Db, WritePool, is_unique_violation, with_pool};
use crate::storage::multirow::{self, repeat};

/// Rows in one statement: powers of two up to 256, so each statement has
/// at most nine texts (see `multirow`).
const SIZES: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

fn chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    multirow::chunks(items, &SIZES)
}

fn select_servers(n: usize) -> String {
    format!(
        "SELECT id, key_id, last_collected_at, last_seen_at, window_start, window_count \
         FROM servers WHERE id IN ({})",
        repeat("?", ", ", n)
    )
}

fn select_nonces(n: usize) -> String {
    format!(
        "SELECT server_id, nonce FROM used_nonces WHERE {}",
        repeat("(server_id = ? AND nonce = ?)", " OR ", n)
    )
}

fn insert_nonces(n: usize) -> String {
    format!(
        "INSERT INTO used_nonces (server_id, nonce, expires_at) VALUES {}",
        repeat("(?, ?, ?)", ", ", n)
    )
}

/// The batch's servers as a derived table `v`, a row each: its id and key
/// id, its pacing as read, and its pacing as it must become.
fn batch_servers(n: usize) -> String {
    format!(
        "SELECT ? AS id, ? AS key_id, ? AS read_collected_at, ? AS read_window_start, \
         ? AS read_window_count, ? AS last_collected_at, ? AS last_seen_at, \
         ? AS window_start, ? AS window_count{}",
        " UNION ALL SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?".repeat(n.saturating_sub(1))
    )
}

/// Sets each server's pacing to its new values where the row still holds
/// the values read: a join of `servers` on [`batch_servers`], so each row
/// is found by its key. Binds per server, in order: id, key id, the read
/// last_collected_at, window_start, window_count, then the new
/// last_collected_at, last_seen_at, window_start, window_count.
///
/// Why a join: the earlier form (a `CASE id WHEN ? THEN ?` list per column
/// and an `OR` of one condition per server) grows with the square of the
/// rows; MariaDB spent 25 µs per row on it at 32 rows and 33 at 64,
/// against 13 and 11 for the join.
fn update_servers(n: usize, kind: DatabaseKind) -> String {
    let rows = batch_servers(n);
    match kind {
        DatabaseKind::Sqlite => format!(
            "UPDATE servers SET last_collected_at = v.last_collected_at, \
             last_seen_at = v.last_seen_at, window_start = v.window_start, \
             window_count = v.window_count FROM ({rows}) AS v \
             WHERE servers.id = v.id AND servers.key_id = v.key_id \
             AND servers.last_collected_at IS v.read_collected_at \
             AND servers.window_start = v.read_window_start \
             AND servers.window_count = v.read_window_count"
        ),
        DatabaseKind::MySql => format!(
            "UPDATE servers s JOIN ({rows}) AS v ON s.id = v.id \
             SET s.last_collected_at = v.last_collected_at, s.last_seen_at = v.last_seen_at, \
             s.window_start = v.window_start, s.window_count = v.window_count \
             WHERE s.key_id = v.key_id AND s.last_collected_at <=> v.read_collected_at \
             AND s.window_start = v.read_window_start AND s.window_count = v.read_window_count"
        ),
    }
}

fn insert_reports(n: usize) -> String {
    let row = format!("({})", repeat("?", ", ", 22));
    format!("{INSERT_REPORT_INTO} VALUES {}", repeat(&row, ", ", n))
}

/// What the batch decided before writing anything.
struct Plan<'a> {
    outcomes: Vec<Option<RecordOutcome>>,
    /// Indexes (into the batch) of the reports to store, in batch order.
    stored: Vec<usize>,
    /// Servers to move: id, the row as read, the row as it must become.
    servers: Vec<(i64, &'a Pacing, Pacing)>,
}

/// Decides every report of `batch` in order, from its servers' rows and the
/// nonces already used, as the plain path would one after another.
fn plan<'a>(
    batch: &[Prepared],
    read: &'a HashMap<i64, Pacing>,
    used: &HashMap<i64, HashSet<String>>,
) -> Plan<'a> {
    let mut moved: HashMap<i64, Pacing> = HashMap::new();
    let mut taken: HashSet<(i64, &str)> = HashSet::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut stored = Vec::with_capacity(batch.len());
    for (i, p) in batch.iter().enumerate() {
        let nonce = (p.server_id, p.nonce.as_str());
        let used_before = used
            .get(&p.server_id)
            .is_some_and(|nonces| nonces.contains(p.nonce.as_str()));
        if used_before || taken.contains(&nonce) {
            outcomes.push(Some(RecordOutcome::NonceUsed));
            continue;
        }
        let Some(original) = read.get(&p.server_id) else {
            outcomes.push(Some(RecordOutcome::ServerGone));
            continue;
        };
        let pacing = moved.entry(p.server_id).or_insert_with(|| original.clone());
        match pacing.advance(p) {
            Ok(()) => {
                taken.insert(nonce);
                stored.push(i);
                // Stored, once the batch commits.
                outcomes.push(None);
            }
            Err(refused) => outcomes.push(Some(refused)),
        }
    }
    let mut servers: Vec<_> = moved
        .into_iter()
        .filter_map(|(id, now)| {
            let before = read.get(&id)?;
            (*before != now).then_some((id, before, now))
        })
        .collect();
    servers.sort_by_key(|s| s.0);
    Plan {
        outcomes,
        stored,
        servers,
    }
}

/// How a batch learns which of its nonces are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nonces {
    /// Assumed unused, as they nearly always are: the nonce insert fails
    /// on any that is not, and the batch is written again with `Read`.
    Assumed,
    /// Read first, so a replay is answered as one.
    Read,
}

/// How a batch learns its servers' pacing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// From the cache where it has them, read for the others.
    Cached,
    /// All read: the cache was wrong about one of them.
    Read,
}

/// What one attempt at a batch came to.
enum Attempt {
    Written(Vec<RecordOutcome>),
    /// A nonce assumed unused was used: try again, reading them.
    NonceUsed,
    /// Another transaction changed a nonce or a server under the batch, or
    /// a cached row was not what the database holds (`cached`: the plan
    /// used one).
    Conflict {
        cached: bool,
    },
}

/// Writes `batch` in one transaction. `Ok(None)` when it must be written the
/// plain way instead (a nonce or a server row changed under it); the
/// transaction is then rolled back and nothing was written. Calls
/// `before_commit` once every statement is done, right before the commit.
///
/// The nonces are first assumed unused, which saves reading them (a
/// statement per chunk, 15% of MariaDB's statement time at saturation);
/// they are read when the plan refuses any report (a refused report keeps
/// its nonce unused, so whether it was a replay must be known) or when
/// the assumption fails.
///
/// The servers' rows come from `cache` where it has them (there is none
/// on SQLite). A conflict on a batch that used cached rows may only mean
/// the cache was stale, so the batch is written once more with every row
/// read before giving up.
/// After a conflict or an error (a failed commit may have committed or
/// not) the batch's servers are dropped from the cache: the next batch
/// reads their rows.
pub(super) async fn write(
    db: &Db,
    cache: Option<&PacingCache>,
    batch: &[Prepared],
    before_commit: &(dyn Fn() + Sync),
) -> Result<Option<Vec<RecordOutcome>>, sqlx::Error> {
    let (mut nonces, mut rows) = (Nonces::Assumed, Rows::Cached);
    let forget = || {
        if let Some(cache) = cache {
            cache.forget(batch.iter().map(Prepared::server_id));
        }
    };
    loop {
        let attempt = write_once(db, cache, batch, before_commit, nonces, rows).await;
        match attempt.inspect_err(|_| forget())? {
            Attempt::Written(outcomes) => return Ok(Some(outcomes)),
            Attempt::NonceUsed => nonces = Nonces::Read,
            Attempt::Conflict { cached } => {
                forget();
                if !cached {
                    return Ok(None);
                }
                tracing::debug!(
                    reports = batch.len(),
                    "cached pacing was stale, writing the batch again"
                );
                rows = Rows::Read;
            }
        }
    }
}

/// Servers whose row refused a report: the refusal rests on that row
/// alone (nothing is written for it), so a cached one must be read.
fn refusing_servers(batch: &[Prepared], outcomes: &[Option<RecordOutcome>]) -> Vec<i64> {
    let mut ids: Vec<i64> = batch
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o, Some(o) if *o != RecordOutcome::NonceUsed))
        .map(|(p, _)| p.server_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

async fn write_once(
    db: &Db,
    cache: Option<&PacingCache>,
    batch: &[Prepared],
    before_commit: &(dyn Fn() + Sync),
    mut nonces: Nonces,
    rows: Rows,
) -> Result<Attempt, sqlx::Error> {
    let kind = db.kind();
    with_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;

        let mut ids: Vec<i64> = batch.iter().map(|p| p.server_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut read = HashMap::with_capacity(ids.len());
        if let (Rows::Cached, Some(cache)) = (rows, cache) {
            cache.fill(&ids, &mut read);
        }
        // Rows from the cache; any other came from the database just now.
        let mut cached: HashSet<i64> = read.keys().copied().collect();
        let mut missing: Vec<i64> = ids.iter().copied().filter(|id| !cached.contains(id)).collect();
        let mut used: HashMap<i64, HashSet<String>> = HashMap::new();
        let mut nonces_read = false;
        let decided = loop {
            for chunk in chunks(&missing) {
                let sql = select_servers(chunk.len());
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(*id);
                }
                for row in query.fetch_all(&mut *tx).await? {
                    read.insert(row.int("id")?, Pacing::from_row(&row)?);
                }
            }

            let mut decided = plan(batch, &read, &used);
            if decided.outcomes.iter().any(Option::is_some) {
                nonces = Nonces::Read;
            }
            if nonces == Nonces::Read && !nonces_read {
                for chunk in chunks(batch) {
                    let sql = select_nonces(chunk.len());
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for p in chunk {
                        query = query.bind(p.server_id).bind(p.nonce.as_str());
                    }
                    for row in query.fetch_all(&mut *tx).await? {
                        used.entry(row.int("server_id")?).or_default().insert(row.text("nonce")?);
                    }
                }
                nonces_read = true;
                decided = plan(batch, &read, &used);
            }

            // A stored report is checked by the compare-and-set below; a
            // refused one by nothing, so its row must not be the cache's.
            missing = refusing_servers(batch, &decided.outcomes);
            missing.retain(|id| cached.contains(id));
            if missing.is_empty() {
                break decided;
            }
            for id in &missing {
                read.remove(id);
                cached.remove(id);
            }
        };
        let conflict = || Attempt::Conflict { cached: !cached.is_empty() };

        let Plan { outcomes, stored, servers } = decided;
        let stored: Vec<&Prepared> = stored.iter().map(|&i| &batch[i]).collect();

        for chunk in chunks(&stored) {
            let sql = insert_nonces(chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in chunk {
                query = query.bind(p.server_id).bind(p.nonce.as_str()).bind(p.nonce_expires_at);
            }
            match query.execute(&mut *tx).await {
                Ok(_) => {}
                // Used before (assumed unused), or by a transaction that
                // committed after the read.
                Err(e) if is_unique_violation(&e) => {
                    return Ok(match nonces {
                        Nonces::Assumed => Attempt::NonceUsed,
                        Nonces::Read => conflict(),
                    });
                }
                Err(e) => return Err(e),
            }
        }

        for chunk in chunks(&servers) {
            let sql = update_servers(chunk.len(), kind);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, old, new) in chunk {
                query = query
                    .bind(*id)
                    .bind(old.key_id.as_str())
                    .bind(old.last_collected_at)
                    .bind(old.window_start)
                    .bind(old.window_count)
                    .bind(new.last_collected_at)
                    .bind(new.last_seen_at)
                    .bind(new.window_start)
                    .bind(new.window_count);
            }
            // Rows matched, not rows changed: sqlx's MySQL driver connects
            // with CLIENT_FOUND_ROWS, as SQLite counts. The two agree here
            // anyway, since a matched row always changes (its
            // last_collected_at moves forward).
            let moved = query.execute(&mut *tx).await?.rows_affected();
            if moved != chunk.len() as u64 {
                // A row changed since it was read, or is not as cached.
                return Ok(conflict());
            }
        }

        for chunk in chunks(&stored) {
            let sql = insert_reports(chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in chunk {
                query = bind_report!(query, p);
            }
            match query.execute(&mut *tx).await {
                Ok(_) => {}
                // A stored row at the same time: the pacing read should have
                // prevented it, so let the plain path sort it out.
                Err(e) if is_unique_violation(&e) => return Ok(conflict()),
                Err(e) => return Err(e),
            }
        }

        let outcomes = outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(RecordOutcome::Stored))
            .collect();
        before_commit();
        tx.commit().await?;
        if let Some(cache) = cache {
            cache.committed(servers.iter().map(|(id, before, after)| (*id, *before, after)));
        }
        Ok(Attempt::Written(outcomes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_largest_first() {
        let items: Vec<u32> = (0..300).collect();
        let sizes: Vec<usize> = chunks(&items).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![256, 32, 8, 4]);
        let sizes: Vec<usize> = chunks(&items[..7]).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![4, 2, 1]);
        assert_eq!(chunks::<u32>(&[]).count(), 0);
        let joined: Vec<u32> = chunks(&items).flatten().copied().collect();
        assert_eq!(joined, items);
    }

    #[test]
    fn statements_have_one_placeholder_per_bind() {
        let count = |s: String| s.matches('?').count();
        assert_eq!(count(select_servers(3)), 3);
        assert_eq!(count(select_nonces(3)), 6);
        assert_eq!(count(insert_nonces(3)), 9);
        for kind in [DatabaseKind::Sqlite, DatabaseKind::MySql] {
            assert_eq!(count(update_servers(3, kind)), 3 * 9);
            assert_eq!(count(update_servers(1, kind)), 9);
        }
        assert_eq!(count(insert_reports(3)), 3 * 22);
    }
}
