//! The SQLite batch on the batch writer's own connection, run by the
//! writer's thread itself.
//!
//! Why not through sqlx: sqlx runs every SQLite connection on a thread of
//! its own, so each statement of a batch was a hand-off from the writer's
//! thread to that one and back. Under load each hand-off waited for a core
//! (about 65 µs per report at saturation, more than the writing itself;
//! BENCHMARKS.md), and on SQLite the one writer sets ingest's pace. Here
//! the statements run where the batch is formed: at saturation 15 % more
//! reports a second for 15 % less server CPU per report.
//!
//! The statements and the decisions are the parent module's (`plan`, the
//! compare-and-set update, the multi-row inserts), so both paths decide
//! every report alike; a test holds this path to the per-report SQL as it
//! holds the sqlx one. SQLite has no pacing cache: the servers' rows are
//! always read.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::{
    Attempt, Nonces, Pacing, Plan, Prepared, RecordOutcome, chunks, insert_nonces, insert_reports,
    plan, select_nonces, select_servers, update_servers,
};
use crate::config::DatabaseKind;
use crate::storage::{SQLITE_PRAGMAS, writer_pragmas};

/// Statement texts kept prepared: each kind of statement comes in up to
/// nine lengths (`SIZES`).
const PREPARED: usize = 64;

/// The batch writer's own connection to an SQLite file.
pub(in crate::storage) struct SqliteWriter {
    conn: rusqlite::Connection,
}

impl SqliteWriter {
    /// Opens `file` with the pragmas `Storage::connect` opens the
    /// writers' connections with (`SQLITE_PRAGMAS`, `writer_pragmas`).
    pub(in crate::storage) fn open(file: &Path, busy_timeout: Duration) -> rusqlite::Result<Self> {
        let conn = rusqlite::Connection::open(file)?;
        conn.busy_timeout(busy_timeout)?;
        let writer = writer_pragmas();
        let pragmas = SQLITE_PRAGMAS
            .into_iter()
            .chain(writer.iter().map(|(key, value)| (*key, value.as_str())));
        let sql: String = pragmas
            .map(|(key, value)| format!("PRAGMA {key} = {value};"))
            .collect();
        conn.execute_batch(&sql)?;
        conn.set_prepared_statement_cache_capacity(PREPARED);
        Ok(Self { conn })
    }

    /// Writes `batch` in one transaction, as `bulk::write` does. `Ok(None)`
    /// when it must be written the plain way instead (a nonce or a server
    /// row changed under it, which on SQLite only another process's write
    /// can do); nothing was written then. Calls `before_commit` once every
    /// statement is done, right before the commit.
    pub(in crate::storage) fn write(
        &mut self,
        batch: &[Prepared],
        before_commit: &(dyn Fn() + Sync),
    ) -> rusqlite::Result<Option<Vec<RecordOutcome>>> {
        let mut nonces = Nonces::Assumed;
        loop {
            match write_once(&mut self.conn, batch, before_commit, nonces)? {
                Attempt::Written(outcomes) => return Ok(Some(outcomes)),
                Attempt::NonceUsed => nonces = Nonces::Read,
                Attempt::Conflict { .. } => return Ok(None),
            }
        }
    }
}

/// Binds a statement's parameters in order, one call each, as sqlx's
/// `Query::bind` does: so the parent's binding lists (`bind_report!`)
/// serve both paths, and no position is counted by hand. The first
/// failure is kept for [`Binder::done`].
struct Binder<'s, 'c> {
    statement: &'s mut rusqlite::CachedStatement<'c>,
    bound: usize,
    failed: Option<rusqlite::Error>,
}

impl<'s, 'c> Binder<'s, 'c> {
    fn new(statement: &'s mut rusqlite::CachedStatement<'c>) -> Self {
        Self {
            statement,
            bound: 0,
            failed: None,
        }
    }

    fn bind<T: rusqlite::ToSql>(mut self, value: T) -> Self {
        if self.failed.is_none() {
            self.bound += 1;
            if let Err(e) = self.statement.raw_bind_parameter(self.bound, value) {
                self.failed = Some(e);
            }
        }
        self
    }

    /// Every parameter bound, or the first failure.
    fn done(self) -> rusqlite::Result<()> {
        match self.failed {
            None if self.bound == self.statement.parameter_count() => Ok(()),
            None => Err(rusqlite::Error::InvalidParameterCount(
                self.bound,
                self.statement.parameter_count(),
            )),
            Some(e) => Err(e),
        }
    }
}

/// A unique key refused a row.
fn unique(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn write_once(
    conn: &mut rusqlite::Connection,
    batch: &[Prepared],
    before_commit: &(dyn Fn() + Sync),
    mut nonces: Nonces,
) -> Result<Attempt, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut ids: Vec<i64> = batch.iter().map(|p| p.server_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut read = HashMap::with_capacity(ids.len());
    for chunk in chunks(&ids) {
        let mut st = tx.prepare_cached(&select_servers(chunk.len()))?;
        chunk
            .iter()
            .fold(Binder::new(&mut st), |b, id| b.bind(id))
            .done()?;
        let mut rows = st.raw_query();
        while let Some(row) = rows.next()? {
            read.insert(
                row.get::<_, i64>(0)?,
                Pacing {
                    key_id: row.get(1)?,
                    last_collected_at: row.get(2)?,
                    last_seen_at: row.get(3)?,
                    window_start: row.get(4)?,
                    window_count: row.get(5)?,
                },
            );
        }
    }
    let mut used: HashMap<i64, HashSet<String>> = HashMap::new();
    let mut decided = plan(batch, &read, &used);
    if decided.outcomes.iter().any(Option::is_some) {
        nonces = Nonces::Read;
    }
    if nonces == Nonces::Read {
        for chunk in chunks(batch) {
            let mut st = tx.prepare_cached(&select_nonces(chunk.len()))?;
            chunk
                .iter()
                .fold(Binder::new(&mut st), |b, p| {
                    b.bind(p.server_id).bind(p.nonce.as_str())
                })
                .done()?;
            let mut rows = st.raw_query();
            while let Some(row) = rows.next()? {
                used.entry(row.get(0)?).or_default().insert(row.get(1)?);
            }
        }
        decided = plan(batch, &read, &used);
    }
    let Plan {
        outcomes,
        stored,
        servers,
    } = decided;
    let stored: Vec<&Prepared> = stored.iter().map(|&i| &batch[i]).collect();
    for chunk in chunks(&stored) {
        let mut st = tx.prepare_cached(&insert_nonces(chunk.len()))?;
        chunk
            .iter()
            .fold(Binder::new(&mut st), |b, p| {
                b.bind(p.server_id)
                    .bind(p.nonce.as_str())
                    .bind(p.nonce_expires_at)
            })
            .done()?;
        match st.raw_execute() {
            Ok(_) => {}
            Err(e) if unique(&e) => {
                return Ok(match nonces {
                    Nonces::Assumed => Attempt::NonceUsed,
                    Nonces::Read => Attempt::Conflict { cached: false },
                });
            }
            Err(e) => return Err(e),
        }
    }
    for chunk in chunks(&servers) {
        let mut st = tx.prepare_cached(&update_servers(chunk.len(), DatabaseKind::Sqlite))?;
        chunk
            .iter()
            .fold(Binder::new(&mut st), |b, (id, old, new)| {
                b.bind(id)
                    .bind(old.key_id.as_str())
                    .bind(old.last_collected_at)
                    .bind(old.window_start)
                    .bind(old.window_count)
                    .bind(new.last_collected_at)
                    .bind(new.last_seen_at)
                    .bind(new.window_start)
                    .bind(new.window_count)
            })
            .done()?;
        if st.raw_execute()? != chunk.len() {
            return Ok(Attempt::Conflict { cached: false });
        }
    }
    for chunk in chunks(&stored) {
        let mut st = tx.prepare_cached(&insert_reports(chunk.len()))?;
        chunk
            .iter()
            .fold(Binder::new(&mut st), |b, p| bind_report!(b, p))
            .done()?;
        match st.raw_execute() {
            Ok(_) => {}
            Err(e) if unique(&e) => return Ok(Attempt::Conflict { cached: false }),
            Err(e) => return Err(e),
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.unwrap_or(RecordOutcome::Stored))
        .collect();
    before_commit();
    tx.commit()?;
    Ok(Attempt::Written(outcomes))
}
