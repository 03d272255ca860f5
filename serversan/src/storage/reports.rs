//! Accepted reports: one row each, key figures as columns for queries and
//! charts, the rest of the report compressed in `detail` (see `detail`):
//! the report is rebuilt exactly from the row, unknown fields included, and
//! a figure too large for a BIGINT column (clamped there) is exact in
//! `detail`.

use serversan_protocol::Report;

use super::db::{
    Columns, Db, InsertedId, WritePool, is_unique_violation, retry_conflicts, with_pool,
};
use super::{Result, Storage, StorageError, clamp_i64, detail, nonces, servers};

/// The key figures stored as columns of `reports`.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub hostname: String,
    pub boot_time: i64,
    pub cpu_percent: f64,
    pub cpu_cores: i64,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    pub mem_total: i64,
    pub mem_used: i64,
    pub mem_available: i64,
    pub swap_total: i64,
    pub swap_used: i64,
    /// Sum over all filesystems.
    pub disk_total: i64,
    pub disk_used: i64,
    /// Usage of the fullest filesystem.
    pub disk_max_percent: f64,
    /// Sum of all interfaces' counters (bytes since they came up).
    pub net_rx: i64,
    pub net_tx: i64,
    pub process_count: i64,
}

impl Figures {
    pub fn from_report(r: &Report) -> Self {
        let (disk_total, disk_used) = r.disk_totals();
        let (net_rx, net_tx) = r.network_totals();
        Figures {
            hostname: r.hostname.clone(),
            boot_time: r.boot_time,
            cpu_percent: r.cpu.usage_percent,
            cpu_cores: i64::from(r.cpu.logical_cores),
            load1: r.load.as_ref().map(|l| l.one),
            load5: r.load.as_ref().map(|l| l.five),
            load15: r.load.as_ref().map(|l| l.fifteen),
            mem_total: clamp_i64(r.memory.total),
            mem_used: clamp_i64(r.memory.used),
            mem_available: clamp_i64(r.memory.available),
            swap_total: clamp_i64(r.swap.total),
            swap_used: clamp_i64(r.swap.used),
            disk_total: clamp_i64(disk_total),
            disk_used: clamp_i64(disk_used),
            disk_max_percent: r.max_disk_percent(),
            net_rx: clamp_i64(net_rx),
            net_tx: clamp_i64(net_tx),
            process_count: i64::from(r.process_count),
        }
    }

    /// Memory in use as a percentage of total.
    pub fn mem_percent(&self) -> f64 {
        percent(self.mem_used, self.mem_total)
    }

    /// Swap in use as a percentage of total (0 without swap).
    pub fn swap_percent(&self) -> f64 {
        percent(self.swap_used, self.swap_total)
    }
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A stored report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub id: i64,
    pub server_id: i64,
    pub collected_at: i64,
    pub received_at: i64,
    pub figures: Figures,
    /// What the columns do not hold of the report, encoded by
    /// [`detail::encode`] (or, in rows written before, the whole report as
    /// JSON text).
    pub detail: Vec<u8>,
}

impl ReportRow {
    /// The full report, rebuilt from the row.
    pub fn report(&self) -> Result<Report> {
        let columns = detail::Columns {
            collected_at: self.collected_at,
            figures: &self.figures,
        };
        detail::decode(&self.detail, columns).map_err(|e| {
            StorageError::Corrupt(format!("report {} has unreadable detail: {e}", self.id))
        })
    }
}

/// Network throughput between two reports of one server, in bytes per
/// second `(rx, tx)`. `None` when they are not in order or a counter went
/// backwards (the host rebooted or an interface was reset).
pub fn network_rates(newer: &ReportRow, older: &ReportRow) -> Option<(f64, f64)> {
    let secs = newer.collected_at - older.collected_at;
    if secs <= 0 || newer.server_id != older.server_id {
        return None;
    }
    let rx = newer.figures.net_rx.checked_sub(older.figures.net_rx)?;
    let tx = newer.figures.net_tx.checked_sub(older.figures.net_tx)?;
    if rx < 0 || tx < 0 {
        return None;
    }
    Some((rx as f64 / secs as f64, tx as f64 / secs as f64))
}

/// A verified, validated report to store, with what the database must
/// enforce for it.
#[derive(Debug, Clone)]
pub struct NewReport<'a> {
    pub server_id: i64,
    pub report: &'a Report,
    /// The request's nonce; stored so the same request is never accepted
    /// twice, on any instance.
    pub nonce: &'a str,
    /// When the nonce may be forgotten (the request timestamp's window end).
    pub nonce_expires_at: i64,
    /// Arrival time (unix seconds).
    pub received_at: i64,
    /// Least seconds between this server's accepted `collected_at`s.
    pub min_interval_secs: i64,
    /// Most accepted reports per server per minute.
    pub max_per_minute: i64,
}

/// What became of a report handed to [`Storage::record_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Committed.
    Stored { report_id: i64 },
    /// The nonce was already used by an accepted request.
    NonceUsed,
    /// The server was deleted meanwhile.
    ServerGone,
    /// `collected_at` is not later than the last accepted report's: a
    /// duplicate (such as a retry whose first answer was lost) or out of
    /// order. Retrying cannot help.
    NotNewer { last_collected_at: i64 },
    /// Collected sooner than the minimum interval after the last accepted
    /// report; the next report should be collected `retry_after_secs` later.
    TooSoon { retry_after_secs: i64 },
    /// The per-minute cap is reached; room again in `retry_after_secs`.
    RateCapped { retry_after_secs: i64 },
}

const INSERT_REPORT: &str = "INSERT INTO reports (server_id, collected_at, received_at, \
     hostname, boot_time, cpu_percent, cpu_cores, load1, load5, load15, \
     mem_total, mem_used, mem_available, swap_total, swap_used, \
     disk_total, disk_used, disk_max_percent, net_rx, net_tx, process_count, detail) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const REPORT_COLUMNS: &str = "SELECT id, server_id, collected_at, received_at, \
     hostname, boot_time, cpu_percent, cpu_cores, load1, load5, load15, \
     mem_total, mem_used, mem_available, swap_total, swap_used, \
     disk_total, disk_used, disk_max_percent, net_rx, net_tx, process_count, detail \
     FROM reports";

fn report_from_row(row: &impl Columns) -> Result<ReportRow, sqlx::Error> {
    Ok(ReportRow {
        id: row.int("id")?,
        server_id: row.int("server_id")?,
        collected_at: row.int("collected_at")?,
        received_at: row.int("received_at")?,
        figures: Figures {
            hostname: row.text("hostname")?,
            boot_time: row.int("boot_time")?,
            cpu_percent: row.float("cpu_percent")?,
            cpu_cores: row.int("cpu_cores")?,
            load1: row.opt_float("load1")?,
            load5: row.opt_float("load5")?,
            load15: row.opt_float("load15")?,
            mem_total: row.int("mem_total")?,
            mem_used: row.int("mem_used")?,
            mem_available: row.int("mem_available")?,
            swap_total: row.int("swap_total")?,
            swap_used: row.int("swap_used")?,
            disk_total: row.int("disk_total")?,
            disk_used: row.int("disk_used")?,
            disk_max_percent: row.float("disk_max_percent")?,
            net_rx: row.int("net_rx")?,
            net_tx: row.int("net_tx")?,
            process_count: row.int("process_count")?,
        },
        detail: row.bytes("detail")?,
    })
}

/// A report ready for the database: everything computed outside the
/// transaction (figures, encoded detail), so a batch holds its lock only
/// for SQL.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    server_id: i64,
    collected_at: i64,
    received_at: i64,
    nonce: String,
    nonce_expires_at: i64,
    min_interval_secs: i64,
    max_per_minute: i64,
    figures: Figures,
    detail: Vec<u8>,
}

impl Prepared {
    pub(super) fn server_id(&self) -> i64 {
        self.server_id
    }

    fn new(new: &NewReport<'_>) -> Result<Self> {
        let detail = detail::encode(new.report)
            .map_err(|e| StorageError::Corrupt(format!("cannot encode a report: {e}")))?;
        Ok(Self {
            server_id: new.server_id,
            collected_at: new.report.collected_at,
            received_at: new.received_at,
            nonce: new.nonce.to_owned(),
            nonce_expires_at: new.nonce_expires_at,
            min_interval_secs: new.min_interval_secs,
            max_per_minute: new.max_per_minute,
            figures: Figures::from_report(new.report),
            detail,
        })
    }

    /// Why [`servers::ADVANCE`] matched no row, from the row as it is now.
    fn explain_refusal(&self, pacing: Option<(Option<i64>, i64)>) -> RecordOutcome {
        let Some((last, window_start)) = pacing else {
            return RecordOutcome::ServerGone;
        };
        if let Some(last) = last {
            if self.collected_at <= last {
                return RecordOutcome::NotNewer {
                    last_collected_at: last,
                };
            }
            let due = last.saturating_add(self.min_interval_secs);
            if self.collected_at < due {
                return RecordOutcome::TooSoon {
                    retry_after_secs: due - self.collected_at,
                };
            }
        }
        RecordOutcome::RateCapped {
            retry_after_secs: (window_start + 60 - self.received_at).max(1),
        }
    }
}

/// What a transaction must undo for a report that was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// Nothing was written (stored, or the failed statement changed nothing).
    Nothing,
    /// Only the report's nonce row was written.
    Nonce,
    /// The server row moved too: only a savepoint can take that back.
    Savepoint,
}

/// Stores one report inside an open transaction `$tx`: record the nonce (a
/// duplicate means a replay), move the server forward if the interval and
/// the per-minute cap allow, insert the row. Evaluates to
/// `Result<(RecordOutcome, Undo), sqlx::Error>`: what became of the report
/// and what the caller must undo when it was not stored. A failed statement
/// changes nothing and leaves the transaction open, on SQLite and InnoDB
/// alike. A macro rather than a function so it expands once per backend
/// with concrete types.
macro_rules! store_one {
    ($tx:expr, $p:expr) => {
        async {
            let p: &Prepared = $p;
            let nonce = sqlx::query(nonces::INSERT)
                .bind(p.server_id)
                .bind(p.nonce.as_str())
                .bind(p.nonce_expires_at)
                .execute(&mut *$tx)
                .await;
            match nonce {
                Err(e) if is_unique_violation(&e) => {
                    return Ok((RecordOutcome::NonceUsed, Undo::Nothing));
                }
                other => other?,
            };
            let now = p.received_at;
            let advanced = sqlx::query(servers::ADVANCE)
                .bind(p.collected_at)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(p.server_id)
                .bind(p.collected_at)
                .bind(p.collected_at.saturating_sub(p.min_interval_secs))
                .bind(now)
                .bind(p.max_per_minute)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
            if advanced == 0 {
                let row = sqlx::query(servers::PACING)
                    .bind(p.server_id)
                    .fetch_optional(&mut *$tx)
                    .await?;
                let pacing = row
                    .as_ref()
                    .map(|r| -> Result<_, sqlx::Error> {
                        Ok((r.opt_int("last_collected_at")?, r.int("window_start")?))
                    })
                    .transpose()?;
                return Ok((p.explain_refusal(pacing), Undo::Nonce));
            }
            let f = &p.figures;
            let inserted = sqlx::query(INSERT_REPORT)
                .bind(p.server_id)
                .bind(p.collected_at)
                .bind(now)
                .bind(f.hostname.as_str())
                .bind(f.boot_time)
                .bind(f.cpu_percent)
                .bind(f.cpu_cores)
                .bind(f.load1)
                .bind(f.load5)
                .bind(f.load15)
                .bind(f.mem_total)
                .bind(f.mem_used)
                .bind(f.mem_available)
                .bind(f.swap_total)
                .bind(f.swap_used)
                .bind(f.disk_total)
                .bind(f.disk_used)
                .bind(f.disk_max_percent)
                .bind(f.net_rx)
                .bind(f.net_tx)
                .bind(f.process_count)
                .bind(p.detail.as_slice())
                .execute(&mut *$tx)
                .await;
            match inserted {
                Ok(r) => Ok((
                    RecordOutcome::Stored {
                        report_id: r.inserted_id(),
                    },
                    Undo::Nothing,
                )),
                // The unique (server_id, collected_at) key backs up ADVANCE.
                Err(e) if is_unique_violation(&e) => Ok((
                    RecordOutcome::NotNewer {
                        last_collected_at: p.collected_at,
                    },
                    Undo::Savepoint,
                )),
                Err(e) => Err(e),
            }
        }
    };
}

/// Stores a batch in one transaction and returns each report's outcome in
/// order. The whole batch is retried when it loses a conflict; no outcome
/// counts until the commit succeeds.
///
/// First without savepoints (two statements fewer per report): a refused
/// report has written at most its nonce row, which is deleted again. Only
/// when a report got as far as moving its server (its row then clashed
/// with a stored one, which the pacing update should have prevented) is
/// the batch written again with a savepoint per report.
pub(super) async fn record_batch(db: &Db, batch: &[Prepared]) -> Result<Vec<RecordOutcome>> {
    if let Some(outcomes) = write_batch(db, batch, false).await? {
        return Ok(outcomes);
    }
    write_batch(db, batch, true)
        .await?
        .ok_or_else(|| StorageError::Corrupt("a batch with savepoints gave up".into()))
}

/// One attempt at a batch; `None` when it needs savepoints after all (the
/// transaction is then rolled back).
async fn write_batch(
    db: &Db,
    batch: &[Prepared],
    savepoints: bool,
) -> Result<Option<Vec<RecordOutcome>>> {
    let outcomes = retry_conflicts(|| async {
        with_pool!(db, pool => {
            let mut tx = pool.begin_write().await?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for p in batch {
                if savepoints {
                    let mut savepoint = sqlx::Acquire::begin(&mut tx).await?;
                    let (outcome, _) = store_one!(savepoint, p).await?;
                    if matches!(outcome, RecordOutcome::Stored { .. }) {
                        savepoint.commit().await?;
                    } else {
                        savepoint.rollback().await?;
                    }
                    outcomes.push(outcome);
                    continue;
                }
                let (outcome, undo) = store_one!(tx, p).await?;
                match undo {
                    Undo::Nothing => {}
                    Undo::Nonce => {
                        sqlx::query(nonces::DELETE)
                            .bind(p.server_id)
                            .bind(p.nonce.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    // Dropping the transaction rolls it back.
                    Undo::Savepoint => return Ok(None),
                }
                outcomes.push(outcome);
            }
            tx.commit().await?;
            Ok(Some(outcomes))
        })
    })
    .await?;
    Ok(outcomes)
}

impl Storage {
    /// Stores an accepted report: record the nonce (a duplicate means a
    /// replay), move the server forward if the interval and the per-minute
    /// cap allow, insert the row, commit. Anything short of
    /// [`RecordOutcome::Stored`] leaves the database as it was, so a
    /// refused request neither burns its nonce nor counts toward the
    /// interval.
    ///
    /// Concurrent calls are grouped: their reports share one transaction
    /// (each in its own savepoint, so one refusal undoes only itself), and
    /// every call returns only after that transaction has committed. The
    /// nonce and pacing checks are the database's, so they stay exact
    /// within a batch, across batches and across instances.
    pub async fn record_report(&self, new: &NewReport<'_>) -> Result<RecordOutcome> {
        let prepared = Prepared::new(new)?;
        self.batcher.submit(prepared).await
    }
    /// The newest report of a server (by collection time).
    pub async fn latest_report(&self, server_id: i64) -> Result<Option<ReportRow>> {
        Ok(self.recent_reports(server_id, 1).await?.into_iter().next())
    }

    /// The two newest reports of a server, newest first (fewer when it has
    /// fewer); with [`network_rates`] they give current throughput.
    pub async fn last_two_reports(&self, server_id: i64) -> Result<Vec<ReportRow>> {
        self.recent_reports(server_id, 2).await
    }

    /// The newest `limit` reports of a server, newest first.
    pub async fn recent_reports(&self, server_id: i64, limit: u32) -> Result<Vec<ReportRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{REPORT_COLUMNS} WHERE server_id = ? ORDER BY collected_at DESC LIMIT ?"
        ));
        with_pool!(&self.db, pool => {
            let rows = sqlx::query(sql)
                .bind(server_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            Ok(rows.iter().map(report_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// How many reports a server has.
    pub async fn count_reports(&self, server_id: i64) -> Result<i64> {
        with_pool!(&self.db, pool => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports WHERE server_id = ?")
                .bind(server_id)
                .fetch_one(pool)
                .await?;
            Ok(n)
        })
    }

    /// How many reports are stored in all (for tests and operators).
    pub async fn count_all_reports(&self) -> Result<i64> {
        with_pool!(&self.db, pool => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports")
                .fetch_one(pool)
                .await?;
            Ok(n)
        })
    }
}
