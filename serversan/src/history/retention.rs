//! Retention: raw reports and rollups older than their settings are
//! deleted in small batches, each its own short statement, so ingest never
//! waits long for the database (SQLite has one writer).
//!
//! Raw reports go only once they are rolled up at every resolution, and in
//! whole hours, so pruning never changes what a rollup says.
//!
//! `reports` has no index on `collected_at` (migration 0140 dropped it: it
//! cost about 47 bytes per report on MariaDB). Raw reports are found
//! through the primary key instead: ids follow arrival, so a binary search
//! over ids ([`received_before`]) finds where reports received at the
//! cutoff begin, and the delete scans only ids below that. A report spooled
//! by its agent (collected long before it arrived) therefore stays until
//! its arrival, too, is older than the cutoff: at most `max_report_age`
//! longer than the reports collected with it.

use super::rollup::rolled_up_to;
use super::settings::HistorySettings;
use crate::storage::db::{Columns, Db, retry_conflicts, with_pool};
use crate::storage::{Storage, StorageError, detail};

/// What one pass of [`prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunePass {
    pub reports: u64,
    pub rollups: u64,
    /// Whether old rows are left (the caller pauses, then calls again).
    pub more: bool,
}

/// Deletes history older than the retention settings, at most
/// `max_batches` batches of each kind.
pub async fn prune(
    storage: &Storage,
    settings: &HistorySettings,
    now: i64,
    max_batches: u32,
) -> Result<PrunePass, StorageError> {
    let mut pass = PrunePass::default();
    let batch = u64::from(settings.batch.max(1));
    if let Some(cutoff) = settings.raw_cutoff(now) {
        let rolled = rolled_up_to(storage).await?;
        let below = received_before(storage, cutoff, rolled.saturating_add(1)).await?;
        let sql = raw_sql(storage.db(), batch);
        let binds = [cutoff, below];
        let (mut n, mut more) = repeat(settings, max_batches, batch, || {
            delete(storage, &sql, &binds)
        })
        .await?;
        if n > 0 && !more {
            // Keyframes whose last deltas the last statement deleted (a
            // statement checks them against the rows as they were).
            let freed = delete(storage, &sql, &binds).await?;
            n += freed;
            more = freed >= batch;
        }
        pass.reports = n;
        pass.more |= more;
    }
    if let Some(cutoff) = settings.rollup_cutoff(now) {
        let sql = rollup_sql(storage.db(), batch);
        let binds = [cutoff];
        let (n, more) = repeat(settings, max_batches, batch, || {
            delete(storage, &sql, &binds)
        })
        .await?;
        pass.rollups = n;
        pass.more |= more;
    }
    Ok(pass)
}

/// Reports collected before a cutoff among those below an id (binds:
/// cutoff, id bound from [`received_before`]): a range of the primary key.
///
/// Except keyframes still needed: a format-1 row stays while a delta
/// (format 2) of its server is stored within
/// [`detail::MAX_KEYFRAME_GAP_SECS`] after it, since that delta may be
/// encoded against it (see `storage::detail`). A delta is never collected
/// before its keyframe, so the check is a short range of the
/// `(server_id, collected_at)` index; it may keep a keyframe that only a
/// delta of another keyframe lies after, until that delta goes too. A
/// statement sees the rows as they were before it, so a keyframe whose
/// deltas it deletes goes with the next statement ([`prune`] runs one
/// more). Deltas being written meanwhile never refer to a row this old
/// (`storage::keyframes`).
fn raw_sql(db: &Db, batch: u64) -> String {
    let gap = detail::MAX_KEYFRAME_GAP_SECS;
    let (keyframe, delta) = (detail::FORMAT_ZSTD_V1, detail::FORMAT_ZSTD_DELTA);
    match db {
        Db::Sqlite(_) => format!(
            "DELETE FROM reports WHERE id IN (SELECT id FROM reports k \
             WHERE collected_at < ? AND id < ? \
             AND (substr(detail, 1, 1) <> X'{keyframe:02x}' OR NOT EXISTS (\
             SELECT 1 FROM reports d WHERE d.server_id = k.server_id \
             AND d.collected_at > k.collected_at AND d.collected_at <= k.collected_at + {gap} \
             AND substr(d.detail, 1, 1) = X'{delta:02x}')) \
             LIMIT {batch})"
        ),
        Db::MySql(_) => format!(
            "DELETE FROM reports WHERE collected_at < ? AND id < ? \
             AND (SUBSTRING(detail, 1, 1) <> X'{keyframe:02x}' OR NOT EXISTS (\
             SELECT 1 FROM reports d WHERE d.server_id = reports.server_id \
             AND d.collected_at > reports.collected_at \
             AND d.collected_at <= reports.collected_at + {gap} \
             AND SUBSTRING(d.detail, 1, 1) = X'{delta:02x}')) \
             LIMIT {batch}"
        ),
    }
}

/// The first report (by id, first at or after `id`): `(id, received_at)`.
const FIRST_FROM: &str = "SELECT id, received_at FROM reports WHERE id >= ? ORDER BY id LIMIT 1";

/// An id below `limit` such that the reports below it were received before
/// `cutoff` and those from it on (below `limit`) at or after it, found by
/// a binary search over the primary key (a few dozen lookups, whatever the
/// table's size). Ids follow arrival only nearly (concurrent batches, other
/// instances): a report on the wrong side is pruned a pass later, or
/// checked by the delete and kept, as the delete's own conditions decide.
async fn received_before(storage: &Storage, cutoff: i64, limit: i64) -> Result<i64, StorageError> {
    let first = |id: i64| async move {
        retry_conflicts(|| async {
            with_pool!(storage.db(), pool => {
                let row = sqlx::query(FIRST_FROM).bind(id).fetch_optional(pool).await?;
                row.map(|r| Ok::<_, sqlx::Error>((r.int("id")?, r.int("received_at")?)))
                    .transpose()
            })
        })
        .await
    };
    // Ids start at 1.
    let (mut lo, mut hi) = (0, limit);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match first(mid).await? {
            Some((id, received_at)) if id < hi && received_at < cutoff => lo = id + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// Rollups of buckets that started before a cutoff (bind: cutoff).
fn rollup_sql(db: &Db, batch: u64) -> String {
    match db {
        Db::Sqlite(_) => format!(
            "DELETE FROM history_rollups WHERE rowid IN (SELECT rowid FROM history_rollups \
             WHERE width IN (600, 3600) AND bucket_start < ? LIMIT {batch})"
        ),
        Db::MySql(_) => format!(
            "DELETE FROM history_rollups WHERE width IN (600, 3600) AND bucket_start < ? \
             LIMIT {batch}"
        ),
    }
}

/// Runs a batch delete until it deletes less than a full batch or
/// `max_batches` ran; `(deleted, more)`.
async fn repeat<F, Fut>(
    settings: &HistorySettings,
    max_batches: u32,
    batch: u64,
    mut run: F,
) -> Result<(u64, bool), StorageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, StorageError>>,
{
    let mut total = 0;
    for i in 0..max_batches {
        if i > 0 {
            tokio::time::sleep(settings.batch_pause).await;
        }
        let n = run().await?;
        total += n;
        if n < batch {
            return Ok((total, false));
        }
    }
    Ok((total, max_batches > 0))
}

async fn delete(storage: &Storage, sql: &str, binds: &[i64]) -> Result<u64, StorageError> {
    let n = retry_conflicts(|| async {
        with_pool!(storage.db(), pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in binds {
                query = query.bind(*b);
            }
            query.execute(pool).await.map(|r| r.rows_affected())
        })
    })
    .await?;
    Ok(n)
}
