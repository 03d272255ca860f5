//! Accepted reports: one row each, key figures as columns for queries and
//! charts, the rest of the report compressed in `detail` (see `detail`):
//! the report is rebuilt exactly from the row, unknown fields included, and
//! a figure too large for a BIGINT column (clamped there) is exact in
//! `detail`.

/// Binds a report's 22 columns, in [`insert_report_into!`]'s order.
macro_rules! bind_report {
    ($query:expr, $p:expr) => {{
        let p: &Prepared = $p;
        let f = &p.figures;
        $query
            .bind(p.server_id)
            .bind(p.collected_at)
            .bind(p.received_at)
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
    }};
}

mod bulk;
mod cache;

pub(super) use bulk::SqliteWriter;
pub(super) use cache::PacingCache;

use serversan_protocol::Report;

use super::db::{Columns, Db, WritePool, is_unique_violation, retry_conflicts, with_pool};
use super::keyframes::Keyframes;
use super::multirow::{self, repeat};
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

fn encode_error(e: detail::DetailError) -> StorageError {
    StorageError::Corrupt(format!("cannot encode a report: {e}"))
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
    /// [`detail::encode`] or [`detail::encode_against`] (or, in rows
    /// written before, the whole report as JSON text).
    pub detail: Vec<u8>,
    /// The detail of the row `detail` is a delta against (see
    /// [`detail::keyframe_at`]), read along with it; `None` when it needs
    /// none, or when that row is missing (then [`ReportRow::report`] says
    /// so).
    pub keyframe: Option<Vec<u8>>,
}

impl ReportRow {
    /// The full report, rebuilt from the row.
    pub fn report(&self) -> Result<Report> {
        let columns = detail::Columns {
            collected_at: self.collected_at,
            figures: &self.figures,
        };
        detail::decode(&self.detail, columns, self.keyframe.as_deref()).map_err(|e| {
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
    /// The key the request was signed with. When given, the report is
    /// refused as [`RecordOutcome::ServerGone`] unless the server still has
    /// that key, so a key cached before a reinstall or delete (on any
    /// instance) stores nothing.
    pub key_id: Option<&'a str>,
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
    /// Committed. (No row id: reading ids back cost the batch a statement
    /// per chunk, and nothing needs them; a report is found by its server
    /// and `collected_at`, which are unique.)
    Stored,
    /// The nonce was already used by an accepted request.
    NonceUsed,
    /// The server was deleted meanwhile, or reinstalled (it has another
    /// key now).
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

/// The start of every insert into `reports`: 22 columns, bound in this
/// order. A macro so the two statements below share it at compile time.
macro_rules! insert_report_into {
    () => {
        "INSERT INTO reports (server_id, collected_at, received_at, \
         hostname, boot_time, cpu_percent, cpu_cores, load1, load5, load15, \
         mem_total, mem_used, mem_available, swap_total, swap_used, \
         disk_total, disk_used, disk_max_percent, net_rx, net_tx, process_count, detail)"
    };
}

const INSERT_REPORT_INTO: &str = insert_report_into!();

const INSERT_REPORT: &str = concat!(
    insert_report_into!(),
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
);

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
            cpu_cores: row.uint32("cpu_cores")?,
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
            process_count: row.uint32("process_count")?,
        },
        detail: row.bytes("detail")?,
        keyframe: None,
    })
}

/// Most keyframes read by one query (bound parameters stay far below both
/// backends' limits).
const KEYFRAMES_PER_QUERY: usize = 500;

/// Servers per query of [`Storage::latest_figures`], a `UNION ALL` branch
/// each, the largest well under SQLite's limit of 500 terms in a compound
/// SELECT. A list is padded to the next of these lengths: close enough
/// that padding costs little (a full list of the default 20 servers per
/// user needs none; 20 padded to 32 made `/list` 0.06 ms slower), few
/// enough to bound the statement texts.
const LATEST_SIZES: [usize; 12] = [1, 2, 4, 8, 12, 16, 20, 24, 32, 48, 64, 100];

/// A report ready for the database: everything computed outside the
/// transaction (figures, encoded detail), so a batch holds its lock only
/// for SQL.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    server_id: i64,
    key_id: Option<String>,
    collected_at: i64,
    received_at: i64,
    nonce: String,
    nonce_expires_at: i64,
    min_interval_secs: i64,
    max_per_minute: i64,
    figures: Figures,
    detail: Vec<u8>,
    /// Whether `detail` is format 1, which may become the server's keyframe
    /// once stored.
    is_keyframe: bool,
}

impl Prepared {
    pub(super) fn server_id(&self) -> i64 {
        self.server_id
    }

    /// The report with a format-1 detail.
    #[cfg(test)]
    fn new(new: &NewReport<'_>) -> Result<Self> {
        let detail = detail::encode(new.report).map_err(encode_error)?;
        Ok(Self::with_detail(new, detail::Encoded::Keyframe(detail)))
    }

    /// The report with its detail encoded against the server's keyframe
    /// when `keyframes` has a usable one.
    fn against(new: &NewReport<'_>, keyframes: &Keyframes) -> Result<Self> {
        let lease = keyframes.lease(
            new.server_id,
            new.key_id,
            new.report.collected_at,
            new.received_at,
        );
        let encoded = match lease {
            Some(lease) => detail::encode_against(
                new.report,
                detail::Keyframe {
                    collected_at: lease.collected_at,
                    detail: &lease.detail,
                },
            ),
            None => detail::encode(new.report).map(detail::Encoded::Keyframe),
        };
        Ok(Self::with_detail(new, encoded.map_err(encode_error)?))
    }

    fn with_detail(new: &NewReport<'_>, encoded: detail::Encoded) -> Self {
        let (detail, is_keyframe) = match encoded {
            detail::Encoded::Keyframe(d) => (d, true),
            detail::Encoded::Delta(d) => (d, false),
        };
        Self {
            server_id: new.server_id,
            key_id: new.key_id.map(str::to_owned),
            collected_at: new.report.collected_at,
            received_at: new.received_at,
            nonce: new.nonce.to_owned(),
            nonce_expires_at: new.nonce_expires_at,
            min_interval_secs: new.min_interval_secs,
            max_per_minute: new.max_per_minute,
            figures: Figures::from_report(new.report),
            detail,
            is_keyframe,
        }
    }

    /// Why [`servers::ADVANCE`] matched no row, from the row as it is now.
    fn explain_refusal(&self, pacing: Option<&Pacing>) -> RecordOutcome {
        let Some(pacing) = pacing else {
            return RecordOutcome::ServerGone;
        };
        if self.key_id.as_deref().is_some_and(|k| k != pacing.key_id) {
            return RecordOutcome::ServerGone;
        }
        if let Some(last) = pacing.last_collected_at {
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
            retry_after_secs: (pacing.window_start + 60 - self.received_at).max(1),
        }
    }
}

/// A server's pacing columns: what [`servers::ADVANCE`] checks and moves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pacing {
    key_id: String,
    last_collected_at: Option<i64>,
    last_seen_at: Option<i64>,
    window_start: i64,
    window_count: i64,
}

impl Pacing {
    fn from_row(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            key_id: row.text("key_id")?,
            last_collected_at: row.opt_int("last_collected_at")?,
            last_seen_at: row.opt_int("last_seen_at")?,
            window_start: row.int("window_start")?,
            window_count: row.int("window_count")?,
        })
    }

    /// Moves the server forward for `p` exactly as [`servers::ADVANCE`]
    /// moves its row, or says why `p` is refused. The batch path decides
    /// with this and the per-report path with the SQL; a test holds the
    /// two to the same outcomes.
    fn advance(&mut self, p: &Prepared) -> Result<(), RecordOutcome> {
        let now = p.received_at;
        let key_kept = p.key_id.as_deref().is_none_or(|k| k == self.key_id);
        let newer = self.last_collected_at.is_none_or(|last| {
            last < p.collected_at && last <= p.collected_at.saturating_sub(p.min_interval_secs)
        });
        let in_window = self.window_start > now - 60;
        let room = !in_window || self.window_count < p.max_per_minute;
        if !(key_kept && newer && room) {
            return Err(p.explain_refusal(Some(self)));
        }
        self.last_collected_at = Some(p.collected_at);
        self.last_seen_at = Some(now);
        if in_window {
            self.window_count += 1;
        } else {
            self.window_start = now;
            self.window_count = 1;
        }
        Ok(())
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
    ($tx:expr, $p:expr, $pacing:expr) => {
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
                .bind(p.key_id.as_deref())
                .bind(p.key_id.as_deref())
                .execute(&mut *$tx)
                .await?
                .rows_affected();
            if advanced == 0 {
                let row = sqlx::query($pacing)
                    .bind(p.server_id)
                    .fetch_optional(&mut *$tx)
                    .await?;
                let pacing = row.as_ref().map(Pacing::from_row).transpose()?;
                return Ok((p.explain_refusal(pacing.as_ref()), Undo::Nonce));
            }
            let inserted = bind_report!(sqlx::query(INSERT_REPORT), p)
                .execute(&mut *$tx)
                .await;
            match inserted {
                Ok(_) => Ok((RecordOutcome::Stored, Undo::Nothing)),
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
/// First with a few multi-row statements for the whole batch (`bulk`),
/// planned from `cache`'s copies of the servers' rows where it has them
/// (checked by the database, see `cache`), and again reading every row if
/// a cached one turned out stale. Should a concurrent transaction have
/// changed one of its servers or used one of its nonces, the batch is
/// written the plain way: statements per
/// report, without savepoints (a refused report has written at most its
/// nonce row, which is deleted again). Only when a report got as far as
/// moving its server (its row then clashed with a stored one, which the
/// pacing update should have prevented) is the batch written again with a
/// savepoint per report.
///
/// `before_commit` is called once the statements are done, right before
/// each commit attempt: the group-commit writer passes its turn to the
/// next batch there, so that batch is written while this one waits for its
/// commit (the log flush).
pub(super) async fn record_batch(
    db: &Db,
    cache: Option<&PacingCache>,
    batch: &[Prepared],
    before_commit: &(dyn Fn() + Sync),
) -> Result<Vec<RecordOutcome>> {
    if let Some(outcomes) = retry_conflicts(|| bulk::write(db, cache, batch, before_commit)).await?
    {
        metrics::counter!("serversan_report_batches_total", "path" => "bulk").increment(1);
        return Ok(outcomes);
    }
    // Another transaction changed a server or used a nonce of this batch
    // between its reads and its writes.
    tracing::debug!(
        reports = batch.len(),
        "batch written report by report after a conflict"
    );
    metrics::counter!("serversan_report_batches_total", "path" => "plain").increment(1);
    if let Some(outcomes) = write_batch(db, batch, false, before_commit).await? {
        return Ok(outcomes);
    }
    write_batch(db, batch, true, before_commit)
        .await?
        .ok_or_else(|| StorageError::Corrupt("a batch with savepoints gave up".into()))
}

/// One attempt at a batch; `None` when it needs savepoints after all (the
/// transaction is then rolled back).
async fn write_batch(
    db: &Db,
    batch: &[Prepared],
    savepoints: bool,
    before_commit: &(dyn Fn() + Sync),
) -> Result<Option<Vec<RecordOutcome>>> {
    let pacing = db.sql(servers::PACING_SQLITE, servers::PACING_MYSQL);
    let outcomes = retry_conflicts(|| async {
        with_pool!(db, pool => {
            let mut tx = pool.begin_write().await?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for p in batch {
                if savepoints {
                    let mut savepoint = sqlx::Acquire::begin(&mut tx).await?;
                    let (outcome, _) = store_one!(savepoint, p, pacing).await?;
                    if outcome == RecordOutcome::Stored {
                        savepoint.commit().await?;
                    } else {
                        savepoint.rollback().await?;
                    }
                    outcomes.push(outcome);
                    continue;
                }
                let (outcome, undo) = store_one!(tx, p, pacing).await?;
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
            before_commit();
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
    ///
    /// The detail is a delta against the server's keyframe when this
    /// instance has one (see `keyframes`); a report stored whole becomes
    /// the keyframe, but only once committed.
    pub async fn record_report(&self, new: &NewReport<'_>) -> Result<RecordOutcome> {
        let prepared = Prepared::against(new, &self.keyframes)?;
        let keyframe = prepared
            .is_keyframe
            .then(|| std::sync::Arc::<[u8]>::from(prepared.detail.as_slice()));
        let outcome = self.batcher.submit(prepared).await?;
        // Only a committed row may be referred to.
        if outcome == RecordOutcome::Stored
            && let Some(detail) = keyframe
        {
            self.keyframes.insert(
                new.server_id,
                new.key_id,
                new.report.collected_at,
                new.received_at,
                detail,
            );
        }
        Ok(outcome)
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
        let mut rows = self.newest_rows(server_id, limit).await?;
        self.attach_keyframes(server_id, &mut rows).await?;
        Ok(rows)
    }

    /// The key figures of each server's newest report, by server id (a
    /// server without reports is missing): columns only, so without the
    /// query for the keyframe a detail may need (`/list` took 2 ms more
    /// for 20 servers with it), and one query for up to
    /// 100 servers ([`LATEST_SIZES`]). Why one: `/list` asked once per
    /// server, and under ingest load each round trip waited behind the
    /// reports (p99 20–30 ms for 20 servers, BENCHMARKS.md).
    pub async fn latest_figures(
        &self,
        server_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Figures>> {
        // A branch per server: its newest row found by the
        // (server_id, collected_at) index, as for one server alone.
        let branch = format!(
            "{REPORT_COLUMNS} WHERE server_id = ? AND collected_at = \
             (SELECT MAX(collected_at) FROM reports WHERE server_id = ?)"
        );
        let mut latest = std::collections::HashMap::with_capacity(server_ids.len());
        // Padded to a few lengths (a repeated branch only finds the same
        // row again), so a connection prepares a few texts rather than one
        // per list length: each text takes a place in sqlx's cache of
        // prepared statements per connection, which on MariaDB also holds
        // ingest's statements, and is a prepared statement on the server.
        for chunk in multirow::padded(server_ids, &LATEST_SIZES) {
            let sql = sqlx::AssertSqlSafe(repeat(&branch, " UNION ALL ", chunk.len()));
            with_pool!(&self.db, pool => {
                let mut query = sqlx::query(sql);
                for id in &chunk {
                    query = query.bind(*id).bind(*id);
                }
                for row in query.fetch_all(pool).await? {
                    let row = report_from_row(&row)?;
                    latest.insert(row.server_id, row.figures);
                }
            });
        }
        Ok(latest)
    }

    /// The newest `limit` rows of a server, newest first, keyframes not
    /// attached: [`ReportRow::report`] needs them for a delta.
    async fn newest_rows(&self, server_id: i64, limit: u32) -> Result<Vec<ReportRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{REPORT_COLUMNS} WHERE server_id = ? ORDER BY collected_at DESC LIMIT ?"
        ));
        Ok(with_pool!(&self.db, pool => {
            let rows = sqlx::query(sql)
                .bind(server_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter().map(report_from_row).collect::<Result<_, _>>()?
        }))
    }

    /// Reads the keyframes `rows` (all of `server_id`) are deltas against:
    /// one more query (per [`KEYFRAMES_PER_QUERY`] keyframes), by the
    /// `(server_id, collected_at)` index. A malformed reference is left
    /// for [`ReportRow::report`] to report.
    async fn attach_keyframes(&self, server_id: i64, rows: &mut [ReportRow]) -> Result<()> {
        let at = |r: &ReportRow| {
            detail::keyframe_at(&r.detail, r.collected_at)
                .ok()
                .flatten()
        };
        let mut wanted: Vec<i64> = rows.iter().filter_map(at).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut found = std::collections::HashMap::new();
        for chunk in wanted.chunks(KEYFRAMES_PER_QUERY) {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT collected_at, detail FROM reports WHERE server_id = ? \
                 AND collected_at IN ({})",
                repeat("?", ", ", chunk.len())
            ));
            with_pool!(&self.db, pool => {
                let mut query = sqlx::query(sql).bind(server_id);
                for t in chunk {
                    query = query.bind(*t);
                }
                for row in query.fetch_all(pool).await? {
                    found.insert(row.int("collected_at")?, row.bytes("detail")?);
                }
            });
        }
        for row in rows {
            if let Some(t) = at(row) {
                row.keyframe = found.get(&t).cloned();
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseUrl, SettingValue};
    use crate::storage::{ServerName, StorageOptions, unix_now};

    /// A small deterministic generator: the test must replay the same
    /// batches on both databases, and fail the same way every run.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    /// `/list` of any length prepares at most one statement text per
    /// padded length on a connection, not one per number of servers.
    #[tokio::test]
    async fn latest_figures_prepares_a_few_texts_whatever_the_list_length() {
        use sqlx::Connection as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("db.sqlite");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("url");
        let options = StorageOptions {
            max_connections: 1,
            ..StorageOptions::new(url)
        };
        let storage = Storage::connect(&options).await.expect("open");
        storage.migrate().await.expect("migrate");
        let Db::Sqlite(pool) = &storage.db else {
            panic!("an SQLite file")
        };
        let cached = || async {
            pool.acquire()
                .await
                .expect("the read connection")
                .cached_statements_size()
        };
        let before = cached().await;
        for n in 1..=LATEST_SIZES[LATEST_SIZES.len() - 1] as i64 {
            let ids: Vec<i64> = (1..=n).collect();
            let latest = storage.latest_figures(&ids).await.expect("read");
            assert!(latest.is_empty(), "no reports stored");
        }
        let texts = cached().await - before;
        assert!(
            texts <= LATEST_SIZES.len(),
            "{texts} statement texts for lists of 1 to 100 servers"
        );
    }

    async fn open(dir: &tempfile::TempDir, name: &str) -> (Storage, Vec<String>) {
        let path = dir.path().join(name);
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("url");
        let storage = Storage::connect(&StorageOptions::new(url))
            .await
            .expect("open");
        storage.migrate().await.expect("migrate");
        let mut keys = Vec::new();
        for i in 0..5 {
            let name = ServerName::parse(&format!("s{i}")).expect("name");
            let (server, _) = storage.create_server(1, &name).await.expect("server");
            assert_eq!(server.id, i + 1);
            keys.push(server.key_id);
        }
        (storage, keys)
    }

    /// What the database holds that ingest writes: pacing, nonces, reports.
    async fn state(
        storage: &Storage,
    ) -> (Vec<(i64, Pacing)>, Vec<(i64, String)>, Vec<(i64, i64, i64)>) {
        with_pool!(&storage.db, pool => {
            let mut servers = Vec::new();
            for id in 1..=5 {
                let row = sqlx::query(servers::PACING_SQLITE).bind(id).fetch_one(pool).await.expect("row");
                let mut pacing = Pacing::from_row(&row).expect("pacing");
                // Key ids are random per database.
                pacing.key_id.clear();
                servers.push((id, pacing));
            }
            let nonces = sqlx::query("SELECT server_id, nonce FROM used_nonces ORDER BY 1, 2")
                .fetch_all(pool).await.expect("nonces").iter()
                .map(|r| (r.int("server_id").expect("id"), r.text("nonce").expect("nonce")))
                .collect();
            let reports = sqlx::query("SELECT id, server_id, collected_at FROM reports ORDER BY id")
                .fetch_all(pool).await.expect("reports").iter()
                .map(|r| (r.int("id").expect("id"), r.int("server_id").expect("s"), r.int("collected_at").expect("c")))
                .collect();
            (servers, nonces, reports)
        })
    }

    /// Which batch path a test drives.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum BatchPath {
        /// `bulk::write` through the pool, with a pacing cache as given.
        Pool(Cache),
        /// The SQLite batch writer's own connection (`bulk::SqliteWriter`).
        Own,
    }

    /// Writes batches on a test's storage along one [`BatchPath`].
    struct Bulk<'a> {
        storage: &'a Storage,
        cache: PacingCache,
        own: Option<SqliteWriter>,
    }

    impl<'a> Bulk<'a> {
        fn new(storage: &'a Storage, file: &std::path::Path, path: BatchPath) -> Self {
            let own = (path == BatchPath::Own).then(|| {
                SqliteWriter::open(file, std::time::Duration::from_secs(5)).expect("own connection")
            });
            Self {
                storage,
                cache: PacingCache::new(),
                own,
            }
        }

        async fn write(
            &mut self,
            batch: &[Prepared],
            before_commit: &(dyn Fn() + Sync),
        ) -> Option<Vec<RecordOutcome>> {
            match &mut self.own {
                Some(own) => own.write(batch, before_commit).expect("write"),
                None => bulk::write(&self.storage.db, Some(&self.cache), batch, before_commit)
                    .await
                    .expect("write"),
            }
        }
    }

    /// A batch that would store every report assumes its nonces unused and
    /// does not read them; a replay among them is still answered as one
    /// (the nonce insert fails, the batch is written again reading them)
    /// and the rest of the batch is stored.
    #[tokio::test]
    async fn a_replay_in_a_batch_that_reads_no_nonces_is_refused() {
        replay_in_a_batch_is_refused(BatchPath::Pool(Cache::AsWritten)).await;
    }

    /// The same on the SQLite batch writer's own connection.
    #[tokio::test]
    async fn a_replay_on_the_writers_own_connection_is_refused() {
        replay_in_a_batch_is_refused(BatchPath::Own).await;
    }

    async fn replay_in_a_batch_is_refused(path: BatchPath) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, keys) = open(&dir, "replay.db").await;
        let mut bulk = Bulk::new(&storage, &dir.path().join("replay.db"), path);
        let now = unix_now();
        let prepared = |server: i64, collected_at: i64, nonce: &str| {
            let report = Report::example(collected_at);
            Prepared::new(&NewReport {
                server_id: server,
                key_id: Some(keys[server as usize - 1].as_str()),
                report: &report,
                nonce,
                nonce_expires_at: now + 600,
                received_at: now,
                min_interval_secs: 0,
                max_per_minute: 1000,
            })
            .expect("prepared")
        };
        let first = [prepared(1, now - 100, "nonce-first-000000")];
        let stored = bulk.write(&first, &|| {}).await;
        assert_eq!(stored, Some(vec![RecordOutcome::Stored]));
        let before = state(&storage).await;

        // Newer, so pacing would take it: only its nonce gives it away.
        let batch = [
            prepared(1, now - 50, "nonce-first-000000"),
            prepared(2, now - 50, "nonce-second-00000"),
        ];
        let commits = std::sync::atomic::AtomicUsize::new(0);
        let outcomes = bulk
            .write(&batch, &|| {
                commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .await;
        assert_eq!(
            outcomes,
            Some(vec![RecordOutcome::NonceUsed, RecordOutcome::Stored])
        );
        assert_eq!(commits.into_inner(), 1, "one attempt committed");
        let after = state(&storage).await;
        assert_eq!(after.0[0], before.0[0], "server 1 did not move");
        assert_ne!(after.0[1], before.0[1], "server 2 did");
        assert_eq!(after.1.len(), before.1.len() + 1, "one nonce more");
        assert_eq!(after.2.len(), before.2.len() + 1, "one report more");
    }

    /// The batch path and the per-report SQL path give every report the
    /// same outcome and leave the same rows, through replays, duplicates
    /// within a batch, reports not newer or too soon, the per-minute cap,
    /// unknown servers and keys a server no longer has.
    #[tokio::test]
    async fn batch_path_decides_as_the_sql_does() {
        bulk_and_plain_agree(BatchPath::Pool(Cache::AsWritten)).await;
    }

    /// The same on the SQLite batch writer's own connection.
    #[tokio::test]
    async fn the_writers_own_connection_decides_as_the_sql_does() {
        bulk_and_plain_agree(BatchPath::Own).await;
    }

    /// The same with a cache that is wrong before every round, as if other
    /// instances had moved the servers, rotated their keys, deleted them:
    /// the batch path still decides every report as the row does, and still
    /// never gives up (no other writer is at work).
    #[tokio::test]
    async fn a_wrong_pacing_cache_changes_no_outcome() {
        bulk_and_plain_agree(BatchPath::Pool(Cache::Wrong)).await;
    }

    /// What the batch path's pacing cache holds in `bulk_and_plain_agree`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Cache {
        /// What the batches wrote, as in the server.
        AsWritten,
        /// Before each round, random rows for random servers.
        Wrong,
    }

    async fn bulk_and_plain_agree(path: BatchPath) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (bulk_db, bulk_keys) = open(&dir, "bulk.db").await;
        let (plain_db, plain_keys) = open(&dir, "plain.db").await;
        let mut rng = Lcg(7);
        let base = unix_now() - 3_000;
        let mut refusals = std::collections::BTreeMap::new();
        // Its cache is kept across rounds, as the batch writers keep it.
        let mut bulk = Bulk::new(&bulk_db, &dir.path().join("bulk.db"), path);
        for round in 0..60_i64 {
            let size = 1 + rng.below(40) as usize;
            let mut picks = Vec::with_capacity(size);
            for _ in 0..size {
                // Server 6 does not exist.
                let server = 1 + rng.below(6) as i64;
                let collected_at = base + round * 40 + rng.below(60) as i64;
                let nonce = format!("nonce-{:016}", rng.below(400));
                let received_at = base + round * 20 + rng.below(3) as i64;
                let key = rng.below(20);
                let report = Report::example(collected_at);
                picks.push((server, report, nonce, received_at, key));
            }
            let batch = |keys: &[String]| -> Vec<Prepared> {
                picks
                    .iter()
                    .map(|(server, report, nonce, received_at, key)| {
                        let key_id = match key {
                            0 => Some("notthekey0000000"),
                            1..=9 => keys.get(*server as usize - 1).map(String::as_str),
                            _ => None,
                        };
                        Prepared::new(&NewReport {
                            server_id: *server,
                            key_id,
                            report,
                            nonce,
                            nonce_expires_at: received_at + 600,
                            received_at: *received_at,
                            min_interval_secs: 10,
                            max_per_minute: 3,
                        })
                        .expect("prepared")
                    })
                    .collect()
            };
            if path == BatchPath::Pool(Cache::Wrong) {
                // Server 6 never exists; a row for it is one deleted.
                for server in 1..=6_i64 {
                    if rng.below(3) == 0 {
                        continue;
                    }
                    let key_id = match rng.below(3) {
                        0 => "stalekey00000000".to_owned(),
                        _ => bulk_keys
                            .get(server as usize - 1)
                            .cloned()
                            .unwrap_or_default(),
                    };
                    let wrong = Pacing {
                        key_id,
                        last_collected_at: (rng.below(5) > 0)
                            .then(|| base + round * 40 + rng.below(120) as i64 - 60),
                        last_seen_at: Some(base + round * 20),
                        window_start: base + round * 20 - rng.below(90) as i64,
                        window_count: rng.below(5) as i64,
                    };
                    bulk.cache.forget([server]);
                    bulk.cache.committed([(server, &wrong, &wrong)]);
                }
            }
            let by_bulk = bulk
                .write(&batch(&bulk_keys), &|| {})
                .await
                .expect("no concurrent writer, so the batch path never gives up");
            let plain_batch = batch(&plain_keys);
            let by_plain = match write_batch(&plain_db.db, &plain_batch, false, &|| {})
                .await
                .expect("plain")
            {
                Some(outcomes) => outcomes,
                None => write_batch(&plain_db.db, &plain_batch, true, &|| {})
                    .await
                    .expect("savepoints")
                    .expect("outcomes"),
            };
            assert_eq!(by_bulk, by_plain, "round {round}");
            for outcome in by_bulk {
                let kind = format!("{outcome:?}");
                let kind = kind.split([' ', '{']).next().unwrap_or_default().to_owned();
                *refusals.entry(kind).or_insert(0) += 1;
            }
        }
        assert_eq!(state(&bulk_db).await, state(&plain_db).await);
        // Every kind of outcome was exercised.
        for kind in [
            "Stored",
            "NonceUsed",
            "ServerGone",
            "NotNewer",
            "TooSoon",
            "RateCapped",
        ] {
            assert!(
                refusals.get(kind).copied().unwrap_or(0) > 0,
                "{kind} never happened: {refusals:?}"
            );
        }
    }
}
