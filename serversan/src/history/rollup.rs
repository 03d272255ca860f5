//! Rollups: each server's reports averaged (and their peaks kept) over
//! 10-minute and hourly buckets, so a 30-day chart reads 720 rows instead
//! of 43,200.
//!
//! Why a scheduled job rather than work on arrival: ingest stays one short
//! transaction that touches nothing but the report (and can never fail
//! because of a chart), and each bucket is computed about once instead of
//! being rewritten by every report.
//!
//! How the job knows what to compute: it follows `reports` by id (ids grow
//! in insert order) from where it stopped, per width, and recomputes every
//! bucket that a newly read report falls into, from scratch: 10-minute
//! buckets from the raw reports, hourly ones from their six 10-minute
//! buckets. Recomputing is idempotent, so a crash or two instances racing
//! after a lost lease only repeat work. It reads a report once the bucket
//! it falls into has ended and the report has been stored for a while
//! ([`HistorySettings::settle`]), so reports in flight, or a transaction
//! that still holds a smaller id, are never skipped. A report an agent
//! spooled during an outage arrives late into an old bucket, which is then
//! simply recomputed. Charts read the newest, not yet rolled up, minutes
//! from the raw reports.

use std::collections::BTreeSet;

use super::bucket::{Bucket, Stat, aggregate, bucket_start, merge};
use super::raw;
use super::settings::HistorySettings;
use crate::storage::db::{Columns, WritePool, retry_conflicts, with_pool};
use crate::storage::{Storage, StorageError};

/// The bucket widths rollups are kept at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// 10-minute buckets, for 7-day charts.
    TenMinutes,
    /// Hourly buckets, for 30-day charts.
    Hour,
}

impl Resolution {
    pub const ALL: [Resolution; 2] = [Resolution::TenMinutes, Resolution::Hour];

    /// Bucket width in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Resolution::TenMinutes => 600,
            Resolution::Hour => 3600,
        }
    }
}

/// What one pass of [`roll_up`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupPass {
    /// Reports read (once per resolution).
    pub reports: u64,
    /// Buckets recomputed and written.
    pub buckets: u64,
    /// Whether more reports are ready than this pass took on.
    pub more: bool,
}

const ARRIVALS: &str = "SELECT id, server_id, collected_at, received_at FROM reports \
     WHERE id > ? AND id <= ? ORDER BY id LIMIT ?";

const PROGRESS: &str = "SELECT report_id FROM history_progress WHERE width = ?";

/// Never moves backwards, should an instance that lost the lease finish a
/// stale pass.
const ADVANCE: &str = "UPDATE history_progress SET report_id = ? WHERE width = ? AND report_id < ?";

const ROLLUPS: &str = "SELECT bucket_start, samples, cores, cpu_avg, cpu_max, \
     mem_avg, mem_max, disk_avg, disk_max, net_samples, rx_avg, rx_max, tx_avg, tx_max, \
     load_samples, load1_avg, load1_max, load5_avg, load5_max, load15_avg, load15_max \
     FROM history_rollups WHERE server_id = ? AND width = ? \
     AND bucket_start >= ? AND bucket_start < ? ORDER BY bucket_start";

/// Writes a bucket, but only while its server exists: a server deleted
/// meanwhile must not get rows back after its purge.
const UPSERT_SQLITE: &str = "INSERT INTO history_rollups (server_id, width, bucket_start, \
     samples, cores, cpu_avg, cpu_max, mem_avg, mem_max, disk_avg, disk_max, \
     net_samples, rx_avg, rx_max, tx_avg, tx_max, \
     load_samples, load1_avg, load1_max, load5_avg, load5_max, load15_avg, load15_max) \
     SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
     FROM servers WHERE id = ? \
     ON CONFLICT (server_id, width, bucket_start) DO UPDATE SET \
     samples = excluded.samples, cores = excluded.cores, \
     cpu_avg = excluded.cpu_avg, cpu_max = excluded.cpu_max, \
     mem_avg = excluded.mem_avg, mem_max = excluded.mem_max, \
     disk_avg = excluded.disk_avg, disk_max = excluded.disk_max, \
     net_samples = excluded.net_samples, rx_avg = excluded.rx_avg, rx_max = excluded.rx_max, \
     tx_avg = excluded.tx_avg, tx_max = excluded.tx_max, \
     load_samples = excluded.load_samples, \
     load1_avg = excluded.load1_avg, load1_max = excluded.load1_max, \
     load5_avg = excluded.load5_avg, load5_max = excluded.load5_max, \
     load15_avg = excluded.load15_avg, load15_max = excluded.load15_max";

const UPSERT_MYSQL: &str = "INSERT INTO history_rollups (server_id, width, bucket_start, \
     samples, cores, cpu_avg, cpu_max, mem_avg, mem_max, disk_avg, disk_max, \
     net_samples, rx_avg, rx_max, tx_avg, tx_max, \
     load_samples, load1_avg, load1_max, load5_avg, load5_max, load15_avg, load15_max) \
     SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
     FROM servers WHERE id = ? \
     ON DUPLICATE KEY UPDATE \
     samples = VALUES(samples), cores = VALUES(cores), \
     cpu_avg = VALUES(cpu_avg), cpu_max = VALUES(cpu_max), \
     mem_avg = VALUES(mem_avg), mem_max = VALUES(mem_max), \
     disk_avg = VALUES(disk_avg), disk_max = VALUES(disk_max), \
     net_samples = VALUES(net_samples), rx_avg = VALUES(rx_avg), rx_max = VALUES(rx_max), \
     tx_avg = VALUES(tx_avg), tx_max = VALUES(tx_max), \
     load_samples = VALUES(load_samples), \
     load1_avg = VALUES(load1_avg), load1_max = VALUES(load1_max), \
     load5_avg = VALUES(load5_avg), load5_max = VALUES(load5_max), \
     load15_avg = VALUES(load15_avg), load15_max = VALUES(load15_max)";

fn bucket_from_row(row: &impl Columns) -> Result<Bucket, sqlx::Error> {
    let samples = row.int("samples")?;
    let stat = |count: i64, avg: &str, max: &str| -> Result<Stat, sqlx::Error> {
        Ok(Stat::from_avg(
            count,
            row.opt_float(avg)?,
            row.opt_float(max)?,
        ))
    };
    let net = row.int("net_samples")?;
    let load = row.int("load_samples")?;
    Ok(Bucket {
        start: row.int("bucket_start")?,
        samples,
        cores: row.int("cores")?,
        cpu: stat(samples, "cpu_avg", "cpu_max")?,
        mem: stat(samples, "mem_avg", "mem_max")?,
        disk: stat(samples, "disk_avg", "disk_max")?,
        net_rx: stat(net, "rx_avg", "rx_max")?,
        net_tx: stat(net, "tx_avg", "tx_max")?,
        load1: stat(load, "load1_avg", "load1_max")?,
        load5: stat(load, "load5_avg", "load5_max")?,
        load15: stat(load, "load15_avg", "load15_max")?,
    })
}

/// A server's stored rollups at `resolution` whose buckets start in
/// `[from, to)`, by time.
pub async fn rollups(
    storage: &Storage,
    server_id: i64,
    resolution: Resolution,
    from: i64,
    to: i64,
) -> Result<Vec<Bucket>, StorageError> {
    with_pool!(storage.db(), pool => {
        let rows = sqlx::query(ROLLUPS)
            .bind(server_id)
            .bind(resolution.seconds())
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
        Ok(rows.iter().map(bucket_from_row).collect::<Result<_, _>>()?)
    })
}

/// How far (by report id) the rollups at `resolution` are complete.
async fn progress(storage: &Storage, resolution: Resolution) -> Result<i64, StorageError> {
    with_pool!(storage.db(), pool => {
        let id: Option<i64> = sqlx::query_scalar(PROGRESS)
            .bind(resolution.seconds())
            .fetch_optional(pool)
            .await?;
        Ok(id.unwrap_or(0))
    })
}

/// The id up to which reports are rolled up at every resolution: raw
/// reports up to it may be pruned without changing any rollup.
pub(crate) async fn rolled_up_to(storage: &Storage) -> Result<i64, StorageError> {
    let mut least = i64::MAX;
    for resolution in Resolution::ALL {
        least = least.min(progress(storage, resolution).await?);
    }
    Ok(least)
}

#[derive(Debug, Clone, Copy)]
struct Arrival {
    id: i64,
    server_id: i64,
    collected_at: i64,
    received_at: i64,
}

/// Brings the rollups up to date with the reports that are ready, at most
/// `max_batches` batches per resolution; `more` says whether work is left
/// (the caller pauses, then calls again).
pub async fn roll_up(
    storage: &Storage,
    settings: &HistorySettings,
    now: i64,
    max_batches: u32,
) -> Result<RollupPass, StorageError> {
    let mut pass = RollupPass::default();
    // Ten minutes first: hourly buckets are merged from them.
    for resolution in Resolution::ALL {
        for _ in 0..max_batches {
            let (reports, buckets, more) =
                roll_up_batch(storage, settings, resolution, now).await?;
            pass.reports += reports;
            pass.buckets += buckets;
            if !more {
                break;
            }
            pass.more = true;
            tokio::time::sleep(settings.batch_pause).await;
        }
    }
    Ok(pass)
}

/// One batch at one resolution: `(reports read, buckets written, more)`.
async fn roll_up_batch(
    storage: &Storage,
    settings: &HistorySettings,
    resolution: Resolution,
    now: i64,
) -> Result<(u64, u64, bool), StorageError> {
    let width = resolution.seconds();
    let after = progress(storage, resolution).await?;
    // Hourly buckets are merged from 10-minute ones, so they wait for those.
    let up_to = match resolution {
        Resolution::TenMinutes => i64::MAX,
        Resolution::Hour => progress(storage, Resolution::TenMinutes).await?,
    };
    let batch = i64::from(settings.batch.max(1));
    let arrivals: Vec<Arrival> = with_pool!(storage.db(), pool => {
        let rows = sqlx::query(ARRIVALS)
            .bind(after)
            .bind(up_to)
            .bind(batch)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| -> Result<Arrival, sqlx::Error> {
                Ok(Arrival {
                    id: r.int("id")?,
                    server_id: r.int("server_id")?,
                    collected_at: r.int("collected_at")?,
                    received_at: r.int("received_at")?,
                })
            })
            .collect::<Result<_, _>>()?
    });
    let settle = settings.settle_secs();
    let ready: Vec<Arrival> = arrivals
        .iter()
        .take_while(|a| {
            let ends = bucket_start(a.collected_at, width).saturating_add(width);
            ends.saturating_add(settle) <= now && a.received_at.saturating_add(settle) <= now
        })
        .copied()
        .collect();
    let Some(last) = ready.last() else {
        return Ok((0, 0, false));
    };
    let dirty: BTreeSet<(i64, i64)> = ready
        .iter()
        .map(|a| (a.server_id, bucket_start(a.collected_at, width)))
        .collect();
    let mut fresh: Vec<(i64, Bucket)> = Vec::with_capacity(dirty.len());
    for &(server_id, start) in &dirty {
        let bucket = recompute(storage, server_id, resolution, start).await?;
        fresh.extend(bucket.map(|b| (server_id, b)));
    }
    write(storage, resolution, &fresh, last.id).await?;
    let more = ready.len() == arrivals.len() && arrivals.len() as i64 == batch;
    Ok((ready.len() as u64, fresh.len() as u64, more))
}

/// A bucket computed from what is stored now: 10 minutes from the raw
/// reports, an hour from its 10-minute buckets. `None` when nothing is left
/// to compute it from (the server was deleted meanwhile).
async fn recompute(
    storage: &Storage,
    server_id: i64,
    resolution: Resolution,
    start: i64,
) -> Result<Option<Bucket>, StorageError> {
    let width = resolution.seconds();
    let end = start.saturating_add(width);
    let buckets = match resolution {
        Resolution::TenMinutes => {
            aggregate(&raw::samples(storage, server_id, start, end).await?, width)
        }
        Resolution::Hour => merge(
            &rollups(storage, server_id, Resolution::TenMinutes, start, end).await?,
            width,
        ),
    };
    Ok(buckets.into_iter().find(|b| b.start == start))
}

/// Stores recomputed buckets and the new progress in one short transaction.
async fn write(
    storage: &Storage,
    resolution: Resolution,
    buckets: &[(i64, Bucket)],
    progress: i64,
) -> Result<(), StorageError> {
    let db = storage.db();
    let upsert = db.sql(UPSERT_SQLITE, UPSERT_MYSQL);
    let width = resolution.seconds();
    retry_conflicts(|| async {
        with_pool!(db, pool => {
            let mut tx = pool.begin_write().await?;
            for (server_id, b) in buckets {
                sqlx::query(upsert)
                    .bind(server_id)
                    .bind(width)
                    .bind(b.start)
                    .bind(b.samples)
                    .bind(b.cores)
                    .bind(b.cpu.avg())
                    .bind(b.cpu.peak())
                    .bind(b.mem.avg())
                    .bind(b.mem.peak())
                    .bind(b.disk.avg())
                    .bind(b.disk.peak())
                    .bind(b.net_rx.count)
                    .bind(b.net_rx.avg())
                    .bind(b.net_rx.peak())
                    .bind(b.net_tx.avg())
                    .bind(b.net_tx.peak())
                    .bind(b.load1.count)
                    .bind(b.load1.avg())
                    .bind(b.load1.peak())
                    .bind(b.load5.avg())
                    .bind(b.load5.peak())
                    .bind(b.load15.avg())
                    .bind(b.load15.peak())
                    .bind(server_id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(ADVANCE)
                .bind(progress)
                .bind(width)
                .bind(progress)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    })
    .await?;
    Ok(())
}
