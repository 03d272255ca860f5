//! The SQL of the alert tables: rules, mutes, per-subject state, and the
//! transaction in which a state change and its message are written
//! together.
//!
//! Every change to a server's alert state goes through [`in_server_tx`]: it
//! first bumps the server's row in `alert_servers` (an upsert, which holds
//! that row's lock until commit), so the report path and the scheduler,
//! on any instance, take turns per server instead of overwriting each
//! other. Reads come after that write, so InnoDB's snapshot already sees the
//! previous holder's commit. On SQLite `BEGIN IMMEDIATE` serializes anyway.

use std::collections::BTreeMap;

use super::eval::{Subject, Track};
use super::rules::{Metric, Rule, RuleSet, Setting};
use crate::storage::db::{Columns, WritePool, retry_conflicts, with_pool};
use crate::storage::{Storage, StorageError, unix_now};

pub(super) type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What a planning function knows about a server, read inside the
/// transaction.
#[derive(Debug, Clone)]
pub(super) struct ServerCtx {
    pub name: String,
    /// Arrival of the last report (after this transaction's own update).
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

/// Takes the server's turn; binds server id, report arrival (or NULL).
const LOCK_SQLITE: &str = "INSERT INTO alert_servers (server_id, last_report_at, version) \
     VALUES (?, ?, 1) ON CONFLICT (server_id) DO UPDATE SET version = version + 1, \
     last_report_at = COALESCE(excluded.last_report_at, last_report_at)";
const LOCK_MYSQL: &str = "INSERT INTO alert_servers (server_id, last_report_at, version) \
     VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE version = version + 1, \
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

const CONTEXT: &str = concat!(
    "SELECT s.owner_id, s.name, a.last_report_at, \
     (SELECT COUNT(*) FROM users u WHERE u.user_id = s.owner_id AND ",
    talked!(),
    ") AS talked, \
     (SELECT MAX(m.muted_until) FROM alert_mutes m \
      WHERE m.owner_id = s.owner_id AND m.server_id IN (0, s.id)) AS muted_until \
     FROM servers s \
     LEFT JOIN alert_servers a ON a.server_id = s.id \
     WHERE s.id = ?"
);

const RULES: &str = "SELECT server_id, metric, threshold, for_secs FROM alert_rules \
     WHERE owner_id = ? AND server_id IN (0, ?)";

const TRACKS: &str = "SELECT metric, target, breach_since, last_at, firing_since, cleared_at, \
     value, threshold, told, notified_at FROM alert_state WHERE server_id = ?";

const SAVE_TRACK_SQLITE: &str = "INSERT INTO alert_state (server_id, metric, target, \
     breach_since, last_at, firing_since, cleared_at, value, threshold, told, notified_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (server_id, metric, target) DO UPDATE SET \
     breach_since = excluded.breach_since, last_at = excluded.last_at, \
     firing_since = excluded.firing_since, cleared_at = excluded.cleared_at, \
     value = excluded.value, threshold = excluded.threshold, told = excluded.told, \
     notified_at = excluded.notified_at";
const SAVE_TRACK_MYSQL: &str = "INSERT INTO alert_state (server_id, metric, target, \
     breach_since, last_at, firing_since, cleared_at, value, threshold, told, notified_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE \
     breach_since = VALUES(breach_since), last_at = VALUES(last_at), \
     firing_since = VALUES(firing_since), cleared_at = VALUES(cleared_at), \
     value = VALUES(value), threshold = VALUES(threshold), told = VALUES(told), \
     notified_at = VALUES(notified_at)";

const DELETE_TRACK: &str =
    "DELETE FROM alert_state WHERE server_id = ? AND metric = ? AND target = ?";

/// Queues a message; binds chat id, text, created_at, next_attempt_at.
pub(super) const ENQUEUE: &str =
    "INSERT INTO outbox (chat_id, text, created_at, next_attempt_at) VALUES (?, ?, ?, ?)";

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

/// Runs `plan` on the server's current alert state inside one short
/// transaction, writes what it changed and queues its message, all or
/// nothing. `report_at` records a report's arrival first. `Ok(None)` when
/// the server no longer exists (its alert rows are removed).
pub(super) async fn in_server_tx<T>(
    storage: &Storage,
    server_id: i64,
    now: i64,
    report_at: Option<i64>,
    plan: impl Fn(&ServerCtx, BTreeMap<Subject, Track>) -> Plan<T>,
) -> Result<Option<T>> {
    let db = storage.db();
    let lock = db.sql(LOCK_SQLITE, LOCK_MYSQL);
    let save = db.sql(SAVE_TRACK_SQLITE, SAVE_TRACK_MYSQL);
    let plan = &plan;
    let done = retry_conflicts(|| async move {
        with_pool!(db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(lock).bind(server_id).bind(report_at).execute(&mut *tx).await?;
            let Some(row) = sqlx::query(CONTEXT).bind(server_id).fetch_optional(&mut *tx).await? else {
                for sql in FORGET_SERVER {
                    sqlx::query(*sql).bind(server_id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                return Ok(None);
            };
            let owner_id = row.int("owner_id")?;
            let talked = row.int("talked")? > 0;
            let muted = row.opt_int("muted_until")?.is_some_and(|until| until > now);
            let rules = sqlx::query(RULES).bind(owner_id).bind(server_id).fetch_all(&mut *tx).await?;
            let rules = rules.iter().map(rule_from_row).collect::<Result<Vec<_>, _>>()?;
            let ctx = ServerCtx {
                name: row.text("name")?,
                last_report_at: row.opt_int("last_report_at")?,
                quiet: muted || !talked,
                rules: rule_set(rules.into_iter().flatten()),
            };
            let tracks = sqlx::query(TRACKS).bind(server_id).fetch_all(&mut *tx).await?;
            let tracks = tracks.iter().map(track_from_row).collect::<Result<Vec<_>, _>>()?;
            let decided = plan(&ctx, tracks.into_iter().flatten().collect());
            for (subject, track) in &decided.changed {
                if track.is_idle() {
                    sqlx::query(DELETE_TRACK)
                        .bind(server_id)
                        .bind(subject.metric.as_str())
                        .bind(subject.target.as_str())
                        .execute(&mut *tx)
                        .await?;
                } else {
                    sqlx::query(save)
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
                        .bind(track.notified_at)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if let Some(text) = &decided.message {
                // The outbox lives in real time, whatever the alert clock says.
                sqlx::query(ENQUEUE)
                    .bind(owner_id)
                    .bind(text.as_str())
                    .bind(unix_now())
                    .bind(0_i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(Some(decided.value))
        })
    })
    .await?;
    Ok(done)
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
        with_pool!(db, pool => {
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
        with_pool!(storage.db(), pool => {
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
        with_pool!(db, pool => {
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
        with_pool!(storage.db(), pool => {
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
/// silent first. The rule in force is the server's own, else the owner's
/// default, else `default_minutes`; a rule that is off (NULL) never
/// matches. `before` (now minus the shortest offline threshold in use) lets
/// the index skip every server that reported recently.
pub(super) async fn silent_servers(
    storage: &Storage,
    before: i64,
    default_minutes: f64,
    now: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    with_pool!(storage.db(), pool => {
        Ok(sqlx::query_scalar(
            "SELECT a.server_id FROM alert_servers a \
             JOIN servers s ON s.id = a.server_id \
             LEFT JOIN alert_rules own ON own.owner_id = s.owner_id \
               AND own.server_id = s.id AND own.metric = 'offline' \
             LEFT JOIN alert_rules dflt ON dflt.owner_id = s.owner_id \
               AND dflt.server_id = 0 AND dflt.metric = 'offline' \
             WHERE a.last_report_at <= ? \
             AND (CASE WHEN own.owner_id IS NOT NULL THEN own.threshold \
                       WHEN dflt.owner_id IS NOT NULL THEN dflt.threshold \
                       ELSE ? END) * 60 <= ? - a.last_report_at \
             AND NOT EXISTS (SELECT 1 FROM alert_state t \
               WHERE t.server_id = a.server_id AND t.metric = 'offline' \
               AND t.firing_since IS NOT NULL AND t.cleared_at IS NULL) \
             ORDER BY a.last_report_at LIMIT ?",
        )
        .bind(before)
        .bind(default_minutes)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?)
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
/// longer and can be told now.
pub(super) async fn servers_to_remind(
    storage: &Storage,
    notified_before: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT t.server_id FROM alert_state t JOIN servers s ON s.id = t.server_id \
         WHERE t.told = 1 AND t.firing_since IS NOT NULL AND t.cleared_at IS NULL \
         AND t.notified_at <= ? AND {REACHABLE} ORDER BY t.server_id LIMIT ?"
    ));
    with_pool!(storage.db(), pool => {
        Ok(sqlx::query_scalar(sql)
            .bind(notified_before)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?)
    })
}

/// Servers where what the owner was told differs from the truth (a mute
/// ended, or they started talking to the bot) and they can be told now.
pub(super) async fn servers_to_catch_up(
    storage: &Storage,
    now: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT t.server_id FROM alert_state t JOIN servers s ON s.id = t.server_id \
         WHERE ((t.told = 0 AND t.firing_since IS NOT NULL AND t.cleared_at IS NULL) \
           OR (t.told = 1 AND t.cleared_at IS NOT NULL)) \
         AND {REACHABLE} ORDER BY t.server_id LIMIT ?"
    ));
    with_pool!(storage.db(), pool => {
        Ok(sqlx::query_scalar(sql).bind(now).bind(limit).fetch_all(pool).await?)
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
