//! Retention: raw reports and rollups older than their settings are
//! deleted in small batches, each its own short statement, so ingest never
//! waits long for the database (SQLite has one writer).
//!
//! Raw reports go only once they are rolled up at every resolution, and in
//! whole hours, so pruning never changes what a rollup says.

use super::rollup::rolled_up_to;
use super::settings::HistorySettings;
use crate::storage::db::{Db, retry_conflicts, with_pool};
use crate::storage::{Storage, StorageError};

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
        let sql = raw_sql(storage.db(), batch);
        let binds = [cutoff, rolled];
        let (n, more) = repeat(settings, max_batches, batch, || {
            delete(storage, &sql, &binds)
        })
        .await?;
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

/// Reports collected before a cutoff and already rolled up (binds: cutoff,
/// last rolled-up id), through the `collected_at` index.
fn raw_sql(db: &Db, batch: u64) -> String {
    match db {
        Db::Sqlite(_) => format!(
            "DELETE FROM reports WHERE id IN (SELECT id FROM reports \
             WHERE collected_at < ? AND id <= ? LIMIT {batch})"
        ),
        Db::MySql(_) => {
            format!("DELETE FROM reports WHERE collected_at < ? AND id <= ? LIMIT {batch}")
        }
    }
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
