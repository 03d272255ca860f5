//! The SQL of the alert tables: rules, mutes, per-subject state, and the
//! transaction in which state changes and their messages are written
//! together.
//!
//! Every change to servers' alert state goes through [`in_servers_tx`]: it
//! first bumps each server's row in `alert_servers` (upserts in server id
//! order, which hold those rows' locks until commit), so batches of
//! reports and the scheduler, on any instance, take turns per server
//! instead of overwriting each other. Reads come after those writes, so
//! InnoDB's snapshot already sees the previous holder's commit. On SQLite
//! `BEGIN IMMEDIATE` serializes anyway.
//!
//! A batch reads and writes all its servers with a few statements: IN lists
//! and multi-row VALUES whose lengths come from [`SIZES`], so only a few
//! distinct texts reach sqlx's per-connection statement cache.

use std::collections::{BTreeMap, BTreeSet};

use super::eval::{Subject, Track};
use super::rules::{Metric, Rule, RuleSet, Setting};
use crate::storage::db::{Columns, WritePool, retry_conflicts, with_pool};
use crate::storage::multirow;
use crate::storage::{Storage, StorageError, unix_now};

pub(super) type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What a planning function knows about a server, read inside the
/// transaction.
#[derive(Debug, Clone)]
pub(super) struct ServerCtx {
    pub name: String,
    /// Arrival of the last report (after this turn's own update).
    pub last_report_at: Option<i64>,
    /// The owner cannot be told now: a mute is on, or they never talked to
    /// the bot (messages go only to chats that did).
    pub quiet: bool,
    pub rules: RuleSet,
}

/// What a planning function decided.
#[derive(Debug)]
pub(super) struct Plan<T> {
    /// Subjects whose state changed; idle ones are deleted.
    pub changed: Vec<(Subject, Track)>,
    /// A message for the owner, queued in the same transaction.
    pub message: Option<String>,
    pub value: T,
}

/// One server's turn in a transaction: whose state, when its report
/// arrived (`None`: no report, a scheduler tick), and the time its plan
/// runs at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Turn {
    pub server_id: i64,
    pub report_at: Option<i64>,
    pub now: i64,
}

/// The lengths of IN lists and multi-row VALUES: a fixed few, so a batch
/// of any size uses at most four texts per statement.
const SIZES: [usize; 4] = [1, 4, 16, 64];

/// `items` in chunks of at most the largest size, each padded to one of
/// [`SIZES`] by repeating its last item (see `multirow::padded`). Only for
/// statements a repeated item does not change: IN lists, deletes, and
/// upserts of the same row to the same values (which at most bump a row's
/// version more than once).
fn padded<T: Copy>(items: &[T]) -> impl Iterator<Item = Vec<T>> + '_ {
    multirow::padded(items, &SIZES)
}

/// `items` in chunks whose lengths are in [`SIZES`], largest first, none
/// padded: for inserts where every row counts (messages).
fn exact<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    multirow::chunks(items, &SIZES)
}

/// `head`, then `row` `n` times joined by `separator`, then `tail`.
fn repeated(
    head: &str,
    row: &str,
    separator: &str,
    n: usize,
    tail: &str,
) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!(
        "{head}{}{tail}",
        multirow::repeat(row, separator, n)
    ))
}

/// An IN list of `n` placeholders after `head`.
fn in_list(head: &str, n: usize) -> sqlx::AssertSqlSafe<String> {
    repeated(head, "?", ", ", n, ")")
}

/// Takes the servers' turns; binds server id and report arrival (or NULL)
/// per row.
const LOCK: &str = "INSERT INTO alert_servers (server_id, last_report_at, version) VALUES ";
const LOCK_ROW: &str = "(?, ?, 1)";
const LOCK_SQLITE: &str = " ON CONFLICT (server_id) DO UPDATE SET version = version + 1, \
     last_report_at = COALESCE(excluded.last_report_at, last_report_at)";
const LOCK_MYSQL: &str = " ON DUPLICATE KEY UPDATE version = version + 1, \
     last_report_at = COALESCE(VALUES(last_report_at), last_report_at)";

/// Condition on `u` (users): the user can be sent messages. They have
/// talked to the bot (it recorded their profile; owners created from the
/// command line have none yet) and Telegram has not refused them since
/// (their row is updated on every contact).
macro_rules! talked {
    () => {
        "(u.nickname IS NOT NULL OR u.username IS NOT NULL) \
         AND NOT EXISTS (SELECT 1 FROM unreachable_chats c \
           WHERE c.chat_id = u.user_id AND c.since >= u.updated_at)"
    };
}

/// Followed by an IN list of server ids.
const CONTEXT: &str = concat!(
    "SELECT s.id, s.owner_id, s.name, a.last_report_at, \
     (SELECT COUNT(*) FROM users u WHERE u.user_id = s.owner_id AND ",
    talked!(),
    ") AS talked, \
     (SELECT MAX(m.muted_until) FROM alert_mutes m \
      WHERE m.owner_id = s.owner_id AND m.server_id IN (0, s.id)) AS muted_until \
     FROM servers s \
     LEFT JOIN alert_servers a ON a.server_id = s.id \
     WHERE s.id IN ("
);

const RULES: &str = "SELECT server_id, metric, threshold, for_secs FROM alert_rules \
     WHERE owner_id = ? AND server_id IN (0, ?)";

/// The rules of each server (its own and its owner's defaults); followed
/// by an IN list of server ids.
const SERVER_RULES: &str = "SELECT s.id AS for_server, r.server_id, r.metric, r.threshold, \
     r.for_secs FROM servers s JOIN alert_rules r \
     ON r.owner_id = s.owner_id AND r.server_id IN (0, s.id) WHERE s.id IN (";

/// Followed by an IN list of server ids.
const TRACKS: &str = "SELECT server_id, metric, target, breach_since, last_at, firing_since, \
     cleared_at, value, threshold, told, notified_at FROM alert_state WHERE server_id IN (";

const SAVE_TRACKS: &str = "INSERT INTO alert_state (server_id, metric, target, \
     breach_since, last_at, firing_since, cleared_at, value, threshold, told, notified_at) VALUES ";
const SAVE_TRACK_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const SAVE_TRACKS_SQLITE: &str = " ON CONFLICT (server_id, metric, target) DO UPDATE SET \
     breach_since = excluded.breach_since, last_at = excluded.last_at, \
     firing_since = excluded.firing_since, cleared_at = excluded.cleared_at, \
     value = excluded.value, threshold = excluded.threshold, told = excluded.told, \
     notified_at = excluded.notified_at";
const SAVE_TRACKS_MYSQL: &str = " ON DUPLICATE KEY UPDATE \
     breach_since = VALUES(breach_since), last_at = VALUES(last_at), \
     firing_since = VALUES(firing_since), cleared_at = VALUES(cleared_at), \
     value = VALUES(value), threshold = VALUES(threshold), told = VALUES(told), \
     notified_at = VALUES(notified_at)";

const DELETE_TRACKS: &str = "DELETE FROM alert_state WHERE ";
const DELETE_TRACK_ROW: &str = "(server_id = ? AND metric = ? AND target = ?)";

/// Queues messages; binds chat id, text, created_at, next_attempt_at per
/// row.
const ENQUEUE: &str = "INSERT INTO outbox (chat_id, text, created_at, next_attempt_at) VALUES ";
const ENQUEUE_ROW: &str = "(?, ?, ?, ?)";

/// Rows of a deleted server; each statement binds the server id.
const FORGET_SERVER: &[&str] = &[
    "DELETE FROM alert_state WHERE server_id = ?",
    "DELETE FROM alert_servers WHERE server_id = ?",
    "DELETE FROM alert_mutes WHERE server_id = ?",
    "DELETE FROM alert_rules WHERE server_id = ?",
];

/// Rows left by servers deleted since (the deletion itself does not know
/// about alert tables).
const FORGET_ORPHANS: &[&str] = &[
    "DELETE FROM alert_state WHERE server_id NOT IN (SELECT id FROM servers)",
    "DELETE FROM alert_servers WHERE server_id NOT IN (SELECT id FROM servers)",
    "DELETE FROM alert_mutes WHERE server_id <> 0 AND server_id NOT IN (SELECT id FROM servers)",
    "DELETE FROM alert_rules WHERE server_id <> 0 AND server_id NOT IN (SELECT id FROM servers)",
];

fn track_from_row(row: &impl Columns) -> Result<Option<(Subject, Track)>, sqlx::Error> {
    let Some(metric) = Metric::parse(&row.text("metric")?) else {
        return Ok(None);
    };
    let subject = Subject {
        metric,
        target: row.text("target")?,
    };
    let track = Track {
        breach_since: row.opt_int("breach_since")?,
        last_at: row.opt_int("last_at")?,
        firing_since: row.opt_int("firing_since")?,
        cleared_at: row.opt_int("cleared_at")?,
        value: row.float("value")?,
        threshold: row.float("threshold")?,
        told: row.int("told")? != 0,
        notified_at: row.opt_int("notified_at")?,
    };
    Ok(Some((subject, track)))
}

/// A stored rule: its server (0 for the owner's default), metric, setting.
fn rule_from_row(row: &impl Columns) -> Result<Option<(i64, Metric, Setting)>, sqlx::Error> {
    let Some(metric) = Metric::parse(&row.text("metric")?) else {
        return Ok(None);
    };
    let setting = row.opt_float("threshold")?.map(|threshold| Rule {
        threshold,
        for_secs: row.int("for_secs").unwrap_or(0),
    });
    Ok(Some((row.int("server_id")?, metric, setting)))
}

fn rule_set(rows: impl IntoIterator<Item = (i64, Metric, Setting)>) -> RuleSet {
    let mut set = RuleSet::default();
    for (server_id, metric, setting) in rows {
        let map = if server_id == 0 {
            &mut set.defaults
        } else {
            &mut set.overrides
        };
        map.insert(metric, setting);
    }
    set
}

/// What a transaction read about one server, and its state as the turns
/// before the current one left it.
struct Entry {
    owner_id: i64,
    talked: bool,
    muted_until: Option<i64>,
    /// `last_report_at` as read (after this transaction's own updates).
    last_report_at: Option<i64>,
    ctx: ServerCtx,
    tracks: BTreeMap<Subject, Track>,
    /// Subjects that had a row when read: only those need deleting.
    stored: BTreeSet<Subject>,
}

impl Entry {
    fn from_row(row: &impl Columns) -> Result<(i64, Self), sqlx::Error> {
        let last_report_at = row.opt_int("last_report_at")?;
        let entry = Self {
            owner_id: row.int("owner_id")?,
            talked: row.int("talked")? > 0,
            muted_until: row.opt_int("muted_until")?,
            last_report_at,
            ctx: ServerCtx {
                name: row.text("name")?,
                last_report_at,
                quiet: false,
                rules: RuleSet::default(),
            },
            tracks: BTreeMap::new(),
            stored: BTreeSet::new(),
        };
        Ok((row.int("id")?, entry))
    }
}

/// What the plans of a transaction's turns decided, together.
struct Decided<T> {
    /// Each turn's value; `None` when its server no longer exists.
    values: Vec<Option<T>>,
    /// The last state of every subject a plan changed and left busy.
    saves: Vec<(i64, Subject, Track)>,
    /// Stored subjects a plan left idle.
    deletes: Vec<(i64, Subject)>,
    /// Messages in the order of the turns: `(owner, text)`.
    messages: Vec<(i64, String)>,
}

/// Runs each turn's plan in order on the state the turns before it left
/// (the same results as one transaction per turn), and gathers what they
/// changed.
fn plan_turns<T>(
    turns: &[Turn],
    entries: &mut BTreeMap<i64, Entry>,
    plan: &impl Fn(usize, &ServerCtx, BTreeMap<Subject, Track>) -> Plan<T>,
) -> Decided<T> {
    let mut values = Vec::with_capacity(turns.len());
    let mut messages = Vec::new();
    let mut changed = BTreeSet::new();
    for (i, turn) in turns.iter().enumerate() {
        let Some(entry) = entries.get_mut(&turn.server_id) else {
            values.push(None);
            continue;
        };
        let muted = entry.muted_until.is_some_and(|until| until > turn.now);
        entry.ctx.quiet = muted || !entry.talked;
        entry.ctx.last_report_at = turn.report_at.or(entry.last_report_at);
        let decided = plan(i, &entry.ctx, entry.tracks.clone());
        for (subject, track) in decided.changed {
            if track.is_idle() {
                entry.tracks.remove(&subject);
            } else {
                entry.tracks.insert(subject.clone(), track);
            }
            changed.insert((turn.server_id, subject));
        }
        if let Some(text) = decided.message {
            messages.push((entry.owner_id, text));
        }
        values.push(Some(decided.value));
    }
    let mut saves = Vec::new();
    let mut deletes = Vec::new();
    for (server_id, subject) in changed {
        let Some(entry) = entries.get(&server_id) else {
            continue;
        };
        match entry.tracks.get(&subject) {
            Some(track) => saves.push((server_id, subject, track.clone())),
            None if entry.stored.contains(&subject) => deletes.push((server_id, subject)),
            None => {}
        }
    }
    Decided {
        values,
        saves,
        deletes,
        messages,
    }
}

/// Runs `plan` for every turn, in order, on its server's current alert
/// state inside one short transaction; writes what they changed and queues
/// their messages, all or nothing. Turns of one server see what the turns
/// before them did. A turn's `report_at` records its report's arrival
/// first. A turn's value is `None` when its server no longer exists (its
/// alert rows are removed).
pub(super) async fn in_servers_tx<T>(
    storage: &Storage,
    turns: &[Turn],
    plan: impl Fn(usize, &ServerCtx, BTreeMap<Subject, Track>) -> Plan<T>,
) -> Result<Vec<Option<T>>> {
    // One lock row per server, in id order, with its latest report.
    let mut locks: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    for turn in turns {
        let at = locks.entry(turn.server_id).or_default();
        *at = turn.report_at.or(*at);
    }
    let ids: Vec<i64> = locks.keys().copied().collect();
    let locks: Vec<(i64, Option<i64>)> = locks.into_iter().collect();
    // Runs for every batch of reports: on SQLite, wait for the batch
    // writer here rather than in SQLite's busy handler, and write on its
    // connection.
    let turn = storage.write_turn().await;
    let db = turn.db;
    let lock_tail = db.sql(LOCK_SQLITE, LOCK_MYSQL);
    let save_tail = db.sql(SAVE_TRACKS_SQLITE, SAVE_TRACKS_MYSQL);
    let (plan, locks, ids) = (&plan, &locks, &ids);
    let values = retry_conflicts(|| async move {
        with_pool!(db, pool => {
            let mut tx = pool.begin_write().await?;
            for chunk in padded(locks) {
                let mut q = sqlx::query(repeated(LOCK, LOCK_ROW, ", ", chunk.len(), lock_tail));
                for (id, at) in chunk {
                    q = q.bind(id).bind(at);
                }
                q.execute(&mut *tx).await?;
            }
            let mut entries = BTreeMap::new();
            for chunk in padded(ids) {
                let mut q = sqlx::query(in_list(CONTEXT, chunk.len()));
                for id in chunk {
                    q = q.bind(id);
                }
                for row in q.fetch_all(&mut *tx).await? {
                    let (id, entry) = Entry::from_row(&row)?;
                    entries.insert(id, entry);
                }
            }
            let mut rules: BTreeMap<i64, Vec<_>> = BTreeMap::new();
            for chunk in padded(ids) {
                let mut q = sqlx::query(in_list(SERVER_RULES, chunk.len()));
                for id in chunk {
                    q = q.bind(id);
                }
                for row in q.fetch_all(&mut *tx).await? {
                    if let Some(rule) = rule_from_row(&row)? {
                        rules.entry(row.int("for_server")?).or_default().push(rule);
                    }
                }
            }
            for (id, rules) in rules {
                if let Some(entry) = entries.get_mut(&id) {
                    entry.ctx.rules = rule_set(rules);
                }
            }
            for chunk in padded(ids) {
                let mut q = sqlx::query(in_list(TRACKS, chunk.len()));
                for id in chunk {
                    q = q.bind(id);
                }
                for row in q.fetch_all(&mut *tx).await? {
                    let Some((subject, track)) = track_from_row(&row)? else {
                        continue;
                    };
                    if let Some(entry) = entries.get_mut(&row.int("server_id")?) {
                        entry.stored.insert(subject.clone());
                        entry.tracks.insert(subject, track);
                    }
                }
            }
            for &id in ids.iter().filter(|id| !entries.contains_key(*id)) {
                for sql in FORGET_SERVER {
                    sqlx::query(*sql).bind(id).execute(&mut *tx).await?;
                }
            }
            let decided = plan_turns(turns, &mut entries, plan);
            let saves: Vec<_> = decided.saves.iter().map(|(id, s, t)| (*id, s, t)).collect();
            for chunk in padded(&saves) {
                let mut q = sqlx::query(repeated(SAVE_TRACKS, SAVE_TRACK_ROW, ", ", chunk.len(), save_tail));
                for (server_id, subject, track) in chunk {
                    q = q
                        .bind(server_id)
                        .bind(subject.metric.as_str())
                        .bind(subject.target.as_str())
                        .bind(track.breach_since)
                        .bind(track.last_at)
                        .bind(track.firing_since)
                        .bind(track.cleared_at)
                        .bind(track.value)
                        .bind(track.threshold)
                        .bind(i64::from(track.told))
                        .bind(track.notified_at);
                }
                q.execute(&mut *tx).await?;
            }
            let deletes: Vec<_> = decided.deletes.iter().map(|(id, s)| (*id, s)).collect();
            for chunk in padded(&deletes) {
                let mut q = sqlx::query(repeated(DELETE_TRACKS, DELETE_TRACK_ROW, " OR ", chunk.len(), ""));
                for (server_id, subject) in chunk {
                    q = q.bind(server_id).bind(subject.metric.as_str()).bind(subject.target.as_str());
                }
                q.execute(&mut *tx).await?;
            }
            // The outbox lives in real time, whatever the alert clock says.
            let queued_at = unix_now();
            for chunk in exact(&decided.messages) {
                let mut q = sqlx::query(repeated(ENQUEUE, ENQUEUE_ROW, ", ", chunk.len(), ""));
                for (owner_id, text) in chunk {
                    q = q.bind(*owner_id).bind(text.as_str()).bind(queued_at).bind(0_i64);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(decided.values)
        })
    })
    .await?;
    Ok(values)
}

/// [`in_servers_tx`] for one server: `Ok(None)` when it no longer exists.
pub(super) async fn in_server_tx<T>(
    storage: &Storage,
    server_id: i64,
    now: i64,
    report_at: Option<i64>,
    plan: impl Fn(&ServerCtx, BTreeMap<Subject, Track>) -> Plan<T>,
) -> Result<Option<T>> {
    let turn = Turn {
        server_id,
        report_at,
        now,
    };
    let mut values = in_servers_tx(storage, &[turn], |_, ctx, tracks| plan(ctx, tracks)).await?;
    Ok(values.pop().flatten())
}

/// Servers in one transaction of [`in_server_batches`]: as many as the
/// report queue's batches hold.
const SERVERS_PER_TX: usize = 256;

/// Runs `plan` at `now` (no report) for every server of `ids`, in
/// transactions of up to [`SERVERS_PER_TX`] servers: the scheduler's work
/// on many servers at once. One transaction per server made a mass outage
/// slow to announce: 0.6 ms per server on SQLite, 1.5 ms on MariaDB, all
/// of it commits (BENCHMARKS.md, "A mass outage").
///
/// A transaction that fails is tried again one server at a time, so a
/// server whose rows cannot be handled holds up no other: its failure is
/// logged and its value is `None`, as for a server that no longer exists.
/// Values are in the order of `ids`.
pub(super) async fn in_server_batches<T>(
    storage: &Storage,
    ids: &[i64],
    now: i64,
    plan: impl Fn(&ServerCtx, BTreeMap<Subject, Track>) -> Plan<T>,
) -> Vec<Option<T>> {
    let mut values = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(SERVERS_PER_TX) {
        let turns: Vec<Turn> = chunk
            .iter()
            .map(|&server_id| Turn {
                server_id,
                report_at: None,
                now,
            })
            .collect();
        match in_servers_tx(storage, &turns, |_, ctx, tracks| plan(ctx, tracks)).await {
            Ok(batch) => values.extend(batch),
            Err(e) if chunk.len() > 1 => {
                tracing::warn!(
                    servers = chunk.len(),
                    "alert work on a batch of servers failed, doing them one by one: {e}"
                );
                for &server_id in chunk {
                    let value = in_server_tx(storage, server_id, now, None, &plan).await;
                    values.push(one_server(server_id, value));
                }
            }
            Err(e) => values.push(one_server(chunk[0], Err(e))),
        }
    }
    values
}

/// One server's value, its failure logged.
fn one_server<T>(server_id: i64, result: Result<Option<T>>) -> Option<T> {
    result
        .inspect_err(|e| tracing::warn!(server_id, "alert work on a server failed: {e}"))
        .ok()
        .flatten()
}

/// Every rule an owner stored: `(server id or 0, metric, setting)`.
pub(super) async fn owner_rules(
    storage: &Storage,
    owner_id: i64,
) -> Result<Vec<(i64, Metric, Setting)>> {
    with_pool!(storage.db(), pool => {
        let rows = sqlx::query(
            "SELECT server_id, metric, threshold, for_secs FROM alert_rules \
             WHERE owner_id = ? ORDER BY server_id, metric",
        )
        .bind(owner_id)
        .fetch_all(pool)
        .await?;
        let rules = rows.iter().map(rule_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(rules.into_iter().flatten().collect())
    })
}

/// The rules that apply to one server of `owner_id`.
pub(super) async fn server_rules(
    storage: &Storage,
    owner_id: i64,
    server_id: i64,
) -> Result<RuleSet> {
    with_pool!(storage.db(), pool => {
        let rows = sqlx::query(RULES).bind(owner_id).bind(server_id).fetch_all(pool).await?;
        let rules = rows.iter().map(rule_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(rule_set(rules.into_iter().flatten()))
    })
}

/// The stored state of a server's rules, by subject.
pub(super) async fn server_state(
    storage: &Storage,
    server_id: i64,
) -> Result<Vec<(Subject, Track)>> {
    with_pool!(storage.db(), pool => {
        let rows = sqlx::query(in_list(TRACKS, 1)).bind(server_id).fetch_all(pool).await?;
        let tracks = rows.iter().map(track_from_row).collect::<Result<Vec<_>, _>>()?;
        let mut tracks: Vec<_> = tracks.into_iter().flatten().collect();
        tracks.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tracks)
    })
}

/// Stores a rule for a server (or, with server id 0, the owner's default).
pub(super) async fn save_rule(
    storage: &Storage,
    owner_id: i64,
    server_id: i64,
    metric: Metric,
    setting: Setting,
    now: i64,
) -> Result<()> {
    let db = storage.db();
    let sql = db.sql(
        "INSERT INTO alert_rules (owner_id, server_id, metric, threshold, for_secs, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner_id, server_id, metric) DO UPDATE SET \
         threshold = excluded.threshold, for_secs = excluded.for_secs, updated_at = excluded.updated_at",
        "INSERT INTO alert_rules (owner_id, server_id, metric, threshold, for_secs, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
         threshold = VALUES(threshold), for_secs = VALUES(for_secs), updated_at = VALUES(updated_at)",
    );
    retry_conflicts(|| async {
        let turn = storage.write_turn().await;
        with_pool!(turn.db, pool => {
            sqlx::query(sql)
                .bind(owner_id)
                .bind(server_id)
                .bind(metric.as_str())
                .bind(setting.map(|r| r.threshold))
                .bind(setting.map_or(0, |r| r.for_secs))
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        })
    })
    .await?;
    Ok(())
}

/// Removes a server's own rule so the owner's default applies again.
/// `false` when there was none.
pub(super) async fn delete_rule(
    storage: &Storage,
    owner_id: i64,
    server_id: i64,
    metric: Metric,
) -> Result<bool> {
    let n = retry_conflicts(|| async {
        let turn = storage.write_turn().await;
        with_pool!(turn.db, pool => {
            sqlx::query("DELETE FROM alert_rules WHERE owner_id = ? AND server_id = ? AND metric = ?")
                .bind(owner_id)
                .bind(server_id)
                .bind(metric.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
    })
    .await?;
    Ok(n > 0)
}

/// Mutes a server (or, with server id 0, all the owner's servers) until
/// `until`.
pub(super) async fn save_mute(
    storage: &Storage,
    owner_id: i64,
    server_id: i64,
    until: i64,
) -> Result<()> {
    let db = storage.db();
    let sql = db.sql(
        "INSERT INTO alert_mutes (owner_id, server_id, muted_until) VALUES (?, ?, ?) \
         ON CONFLICT (owner_id, server_id) DO UPDATE SET muted_until = excluded.muted_until",
        "INSERT INTO alert_mutes (owner_id, server_id, muted_until) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE muted_until = VALUES(muted_until)",
    );
    retry_conflicts(|| async {
        let turn = storage.write_turn().await;
        with_pool!(turn.db, pool => {
            sqlx::query(sql)
                .bind(owner_id)
                .bind(server_id)
                .bind(until)
                .execute(pool)
                .await
                .map(|_| ())
        })
    })
    .await?;
    Ok(())
}

/// Ends one mute (`Some(server id)`, 0 for the all-servers mute) or every
/// mute of the owner (`None`). Returns how many ended.
pub(super) async fn delete_mutes(
    storage: &Storage,
    owner_id: i64,
    server_id: Option<i64>,
) -> Result<u64> {
    let n = retry_conflicts(|| async {
        let turn = storage.write_turn().await;
        with_pool!(turn.db, pool => {
            match server_id {
                Some(id) => sqlx::query("DELETE FROM alert_mutes WHERE owner_id = ? AND server_id = ?")
                    .bind(owner_id)
                    .bind(id)
                    .execute(pool)
                    .await,
                None => sqlx::query("DELETE FROM alert_mutes WHERE owner_id = ?")
                    .bind(owner_id)
                    .execute(pool)
                    .await,
            }
            .map(|r| r.rows_affected())
        })
    })
    .await?;
    Ok(n)
}

/// The owner's mutes still running at `now`: `(server id or 0, until)`.
pub(super) async fn active_mutes(
    storage: &Storage,
    owner_id: i64,
    now: i64,
) -> Result<Vec<(i64, i64)>> {
    with_pool!(storage.db(), pool => {
        let rows = sqlx::query(
            "SELECT server_id, muted_until FROM alert_mutes \
             WHERE owner_id = ? AND muted_until > ? ORDER BY server_id",
        )
        .bind(owner_id)
        .bind(now)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.int("server_id")?, r.int("muted_until")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    })
}

/// The smallest offline threshold anyone uses, in minutes.
pub(super) async fn min_offline_minutes(storage: &Storage) -> Result<Option<f64>> {
    with_pool!(storage.db(), pool => {
        let min: Option<f64> = sqlx::query_scalar(
            "SELECT MIN(threshold) FROM alert_rules WHERE metric = 'offline' AND threshold IS NOT NULL",
        )
        .fetch_one(pool)
        .await?;
        Ok(min)
    })
}

/// Servers whose offline rule is due at `now` and not firing yet, longest
/// silent first, after `after` in that order: `(last_report_at, server
/// id)` pairs. The rule in force is the server's own, else the owner's
/// default, else `default_minutes`; a rule that is off (NULL) never
/// matches. `before` (now minus the shortest offline threshold in use) lets
/// the index skip every server that reported recently; `after` lets the
/// next round of a tick start where the last one ended, instead of reading
/// again past every server it just found offline.
pub(super) async fn silent_servers(
    storage: &Storage,
    before: i64,
    default_minutes: f64,
    now: i64,
    after: (i64, i64),
    limit: i64,
) -> Result<Vec<(i64, i64)>> {
    with_pool!(storage.db(), pool => {
        let rows = sqlx::query(
            "SELECT a.last_report_at, a.server_id FROM alert_servers a \
             JOIN servers s ON s.id = a.server_id \
             LEFT JOIN alert_rules own ON own.owner_id = s.owner_id \
               AND own.server_id = s.id AND own.metric = 'offline' \
             LEFT JOIN alert_rules dflt ON dflt.owner_id = s.owner_id \
               AND dflt.server_id = 0 AND dflt.metric = 'offline' \
             WHERE a.last_report_at <= ? \
             AND (a.last_report_at > ? OR (a.last_report_at = ? AND a.server_id > ?)) \
             AND (CASE WHEN own.owner_id IS NOT NULL THEN own.threshold \
                       WHEN dflt.owner_id IS NOT NULL THEN dflt.threshold \
                       ELSE ? END) * 60 <= ? - a.last_report_at \
             AND NOT EXISTS (SELECT 1 FROM alert_state t \
               WHERE t.server_id = a.server_id AND t.metric = 'offline' \
               AND t.firing_since IS NOT NULL AND t.cleared_at IS NULL) \
             ORDER BY a.last_report_at, a.server_id LIMIT ?",
        )
        .bind(before)
        .bind(after.0)
        .bind(after.0)
        .bind(after.1)
        .bind(default_minutes)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.int("last_report_at")?, r.int("server_id")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    })
}

/// Condition on `s` (servers) and the bind `now`: the owner can be told now.
const REACHABLE: &str = concat!(
    "EXISTS (SELECT 1 FROM users u WHERE u.user_id = s.owner_id AND ",
    talked!(),
    ") AND NOT EXISTS (SELECT 1 FROM alert_mutes m WHERE m.owner_id = s.owner_id \
       AND m.server_id IN (0, s.id) AND m.muted_until > ?)"
);

/// Servers with an alert whose owner heard of it `every` seconds ago or
/// longer and can be told now, in id order after `after`.
pub(super) async fn servers_to_remind(
    storage: &Storage,
    notified_before: i64,
    now: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT t.server_id FROM alert_state t JOIN servers s ON s.id = t.server_id \
         WHERE t.told = 1 AND t.firing_since IS NOT NULL AND t.cleared_at IS NULL \
         AND t.notified_at <= ? AND {REACHABLE} AND t.server_id > ? \
         ORDER BY t.server_id LIMIT ?"
    ));
    with_pool!(storage.db(), pool => {
        Ok(sqlx::query_scalar(sql)
            .bind(notified_before)
            .bind(now)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?)
    })
}

/// Servers where what the owner was told differs from the truth (a mute
/// ended, or they started talking to the bot) and they can be told now, in
/// id order after `after`.
pub(super) async fn servers_to_catch_up(
    storage: &Storage,
    now: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT t.server_id FROM alert_state t JOIN servers s ON s.id = t.server_id \
         WHERE ((t.told = 0 AND t.firing_since IS NOT NULL AND t.cleared_at IS NULL) \
           OR (t.told = 1 AND t.cleared_at IS NOT NULL)) \
         AND {REACHABLE} AND t.server_id > ? ORDER BY t.server_id LIMIT ?"
    ));
    with_pool!(storage.db(), pool => {
        Ok(sqlx::query_scalar(sql)
            .bind(now)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?)
    })
}

/// The owner's servers that have alert state (for catching up after an
/// unmute).
pub(super) async fn owner_servers_with_state(storage: &Storage, owner_id: i64) -> Result<Vec<i64>> {
    with_pool!(storage.db(), pool => {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT t.server_id FROM alert_state t JOIN servers s ON s.id = t.server_id \
             WHERE s.owner_id = ? ORDER BY t.server_id",
        )
        .bind(owner_id)
        .fetch_all(pool)
        .await?)
    })
}

/// Housekeeping: ended mutes and rows of deleted servers.
pub(super) async fn forget_stale(storage: &Storage, now: i64) -> Result<()> {
    with_pool!(storage.db(), pool => {
        sqlx::query("DELETE FROM alert_mutes WHERE muted_until <= ?")
            .bind(now)
            .execute(pool)
            .await?;
        for sql in FORGET_ORPHANS {
            sqlx::query(*sql).execute(pool).await?;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_chunks_cover_every_item_once() {
        let items: Vec<usize> = (0..87).collect();
        let chunks: Vec<&[usize]> = exact(&items).collect();
        let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(lens, [64, 16, 4, 1, 1, 1]);
        assert_eq!(chunks.concat(), items);
    }

    /// Thresholds and mutes, set from the bot while ingest's batch writer
    /// holds SQLite's lock: each waits for its turn, not in SQLite's busy
    /// handler.
    #[tokio::test]
    async fn rules_and_mutes_wait_for_the_write_turn() {
        use crate::storage::test_support::{sqlite_with_busy_timeout, waits_for_the_write_turn};
        let (_dir, storage) = sqlite_with_busy_timeout().await;
        let rule = Some(Rule {
            threshold: 80.0,
            for_secs: 300,
        });
        let s = storage.clone();
        waits_for_the_write_turn(&storage, async move {
            save_rule(&s, 7, 0, Metric::Cpu, rule, 1_000).await
        })
        .await
        .expect("rule saved");
        assert_eq!(owner_rules(&storage, 7).await.expect("rules").len(), 1);
        let s = storage.clone();
        let deleted =
            waits_for_the_write_turn(
                &storage,
                async move { delete_rule(&s, 7, 0, Metric::Cpu).await },
            )
            .await
            .expect("rule deleted");
        assert!(deleted);
        let s = storage.clone();
        waits_for_the_write_turn(&storage, async move { save_mute(&s, 7, 0, 5_000).await })
            .await
            .expect("mute saved");
        let s = storage.clone();
        let ended =
            waits_for_the_write_turn(&storage, async move { delete_mutes(&s, 7, None).await })
                .await
                .expect("mutes ended");
        assert_eq!(ended, 1);
        storage.close().await;
    }
}
