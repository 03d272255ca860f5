//! Monitored servers: their names, owners and auth codes.
//!
//! Every query that names a server by id or name also names its owner, so
//! a caller acting for a Telegram user cannot reach someone else's server
//! by guessing an id.

use std::fmt;

use serversan_protocol::AuthCode;
use serversan_protocol::auth_code::is_valid_key_id;

use super::db::{Columns, InsertedId, WritePool, is_unique_violation, retry_conflicts, with_pool};
use super::{Result, Storage, StorageError, unix_now, users};

/// Words that cannot be server names: they mean something else in bot
/// commands (`/mute all`, `/threshold cpu off`, `/chart web1 net`).
const RESERVED: &[&str] = &[
    "all", "off", "cpu", "mem", "swap", "disk", "load", "offline", "net",
];

const MAX_NAME_LEN: usize = 32;

/// A valid server name: 1 to 32 of `[A-Za-z0-9._-]`, not a reserved word.
/// Unique per owner regardless of case; kept as typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerName(String);

/// Why a string is not a server name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a server name cannot be empty")]
    Empty,
    #[error("a server name is at most 32 characters")]
    TooLong,
    #[error("a server name may only contain letters, digits, dots, dashes and underscores")]
    BadCharacter,
    #[error("{0:?} is a reserved word and cannot be a server name")]
    Reserved(String),
}

impl ServerName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(NameError::BadCharacter);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)) {
            return Err(NameError::Reserved(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ServerName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s)
    }
}

/// A server as its owner sees it (the secret stays in the database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub id: i64,
    /// Telegram id of the owner.
    pub owner_id: i64,
    pub name: String,
    /// The public half of the auth code.
    pub key_id: String,
    pub created_at: i64,
    /// When the last accepted report arrived.
    pub last_seen_at: Option<i64>,
    /// When the last accepted report was collected.
    pub last_collected_at: Option<i64>,
}

/// What ingest needs to check a request signed with `key_id`.
#[derive(Clone)]
pub struct ServerKey {
    pub server_id: i64,
    pub owner_id: i64,
    pub secret: String,
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKey")
            .field("server_id", &self.server_id)
            .field("owner_id", &self.owner_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

const SERVER_COLUMNS: &str =
    "SELECT id, owner_id, name, key_id, created_at, last_seen_at, last_collected_at FROM servers";

fn server_from_row(row: &impl Columns) -> Result<Server, sqlx::Error> {
    Ok(Server {
        id: row.int("id")?,
        owner_id: row.int("owner_id")?,
        name: row.text("name")?,
        key_id: row.text("key_id")?,
        created_at: row.int("created_at")?,
        last_seen_at: row.opt_int("last_seen_at")?,
        last_collected_at: row.opt_int("last_collected_at")?,
    })
}

/// Moves a server forward when a report is accepted, all in one statement
/// so concurrent requests (on any instance) cannot both pass: the report's
/// `collected_at` must be later than the last one by the minimum interval,
/// and the per-minute arrival window must have room; when the request's
/// key id is given, the server must still have that key.
/// Binds, in order: collected_at, now, now, now, now, server id,
/// collected_at, collected_at − interval, now, per-minute cap, key id or
/// NULL, key id or NULL.
///
/// MySQL applies `SET` assignments left to right, so `window_count` is
/// assigned before `window_start` changes; SQLite reads old values anyway.
pub(super) const ADVANCE: &str = "UPDATE servers SET \
     last_collected_at = ?, last_seen_at = ?, \
     window_count = CASE WHEN window_start > ? - 60 THEN window_count + 1 ELSE 1 END, \
     window_start = CASE WHEN window_start > ? - 60 THEN window_start ELSE ? END \
     WHERE id = ? \
     AND (last_collected_at IS NULL OR (last_collected_at < ? AND last_collected_at <= ?)) \
     AND (window_start <= ? - 60 OR window_count < ?) \
     AND (? IS NULL OR key_id = ?)";

/// The state [`ADVANCE`] checks, read back to explain a refusal.
pub(super) const PACING_SQLITE: &str = "SELECT key_id, last_collected_at, last_seen_at, \
     window_start, window_count FROM servers WHERE id = ?";

/// The same on MySQL, as a locking read: ADVANCE compared against the
/// newest committed row, and a plain read would see the transaction's
/// older snapshot (another instance may have moved the server since), so
/// a report refused as too soon could be explained as rate-capped. The
/// failed ADVANCE already holds this row's lock; this is not coordination.
pub(super) const PACING_MYSQL: &str = "SELECT key_id, last_collected_at, last_seen_at, \
     window_start, window_count FROM servers WHERE id = ? FOR UPDATE";

/// Tables holding rows of a server, emptied in batches after it is
/// deleted. Each has a `server_id` column (and, on SQLite, a rowid). Later
/// features that store per-server rows add their table here. (Used nonces
/// need no purge: they expire within minutes.)
const PURGED_TABLES: &[&str] = &["reports", "history_rollups"];

/// Rows deleted per statement while purging, to keep transactions short.
const PURGE_BATCH: u64 = 5000;

impl Storage {
    /// Creates a server for `owner_id` (and the owner's user row when
    /// missing) with a fresh auth code. The code is returned only here and by
    /// [`Storage::rotate_code`]; it is never logged.
    pub async fn create_server(
        &self,
        owner_id: i64,
        name: &ServerName,
    ) -> Result<(Server, AuthCode)> {
        let ensure_user = users::ensure_user_sql(&self.db);
        let now = unix_now();
        // A key id collision (62^16 ids) is astronomically unlikely, but
        // costs nothing to handle: draw a new code.
        for _ in 0..3 {
            let code = AuthCode::generate().map_err(StorageError::Random)?;
            let inserted = retry_conflicts(|| async {
                let turn = self.write_turn().await;
                with_pool!(turn.db, pool => {
                    let mut tx = pool.begin_write().await?;
                    sqlx::query(ensure_user)
                        .bind(owner_id)
                        .bind(users::RoleName::User.id())
                        .bind(now)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    let result = sqlx::query(
                        "INSERT INTO servers (owner_id, name, key_id, secret, created_at) \
                         VALUES (?, ?, ?, ?, ?)",
                    )
                    .bind(owner_id)
                    .bind(name.as_str())
                    .bind(code.key_id())
                    .bind(code.secret())
                    .bind(now)
                    .execute(&mut *tx)
                    .await;
                    match result {
                        Ok(r) => {
                            let id = r.inserted_id();
                            tx.commit().await?;
                            Ok(Ok(id))
                        }
                        Err(e) if is_unique_violation(&e) => Ok(Err(e.to_string())),
                        Err(e) => Err(e),
                    }
                })
            })
            .await?;
            match inserted {
                Ok(id) => {
                    let server = Server {
                        id,
                        owner_id,
                        name: name.as_str().to_owned(),
                        key_id: code.key_id().to_owned(),
                        created_at: now,
                        last_seen_at: None,
                        last_collected_at: None,
                    };
                    return Ok((server, code));
                }
                Err(message) if message.contains("key_id") => continue,
                Err(_) => return Err(StorageError::NameTaken(name.as_str().to_owned())),
            }
        }
        Err(StorageError::Corrupt(
            "could not draw an unused key id in three attempts".into(),
        ))
    }

    /// The servers of one owner, by name.
    pub async fn list_servers(&self, owner_id: i64) -> Result<Vec<Server>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SERVER_COLUMNS} WHERE owner_id = ? ORDER BY name, id"
        ));
        with_pool!(&self.db, pool => {
            let rows = sqlx::query(sql).bind(owner_id).fetch_all(pool).await?;
            Ok(rows.iter().map(server_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// Every server, by owner then name (for operators).
    pub async fn list_all_servers(&self) -> Result<Vec<Server>> {
        let sql = sqlx::AssertSqlSafe(format!("{SERVER_COLUMNS} ORDER BY owner_id, name, id"));
        with_pool!(&self.db, pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            Ok(rows.iter().map(server_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// How many servers `owner_id` has.
    pub async fn count_servers(&self, owner_id: i64) -> Result<i64> {
        with_pool!(&self.db, pool => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM servers WHERE owner_id = ?")
                .bind(owner_id)
                .fetch_one(pool)
                .await?;
            Ok(n)
        })
    }

    /// An owner's server by name (any case). Text that cannot be a name
    /// finds nothing without a query.
    pub async fn find_server(&self, owner_id: i64, name: &str) -> Result<Option<Server>> {
        let Ok(name) = ServerName::parse(name) else {
            return Ok(None);
        };
        let sql = sqlx::AssertSqlSafe(format!("{SERVER_COLUMNS} WHERE owner_id = ? AND name = ?"));
        with_pool!(&self.db, pool => {
            let row = sqlx::query(sql)
                .bind(owner_id)
                .bind(name.as_str())
                .fetch_optional(pool)
                .await?;
            Ok(row.as_ref().map(server_from_row).transpose()?)
        })
    }

    /// A server by id, only if `owner_id` owns it.
    pub async fn get_server(&self, id: i64, owner_id: i64) -> Result<Option<Server>> {
        let sql = sqlx::AssertSqlSafe(format!("{SERVER_COLUMNS} WHERE id = ? AND owner_id = ?"));
        with_pool!(&self.db, pool => {
            let row = sqlx::query(sql).bind(id).bind(owner_id).fetch_optional(pool).await?;
            Ok(row.as_ref().map(server_from_row).transpose()?)
        })
    }

    /// The secret behind a key id, for verifying a signature. A string that
    /// cannot be a key id finds nothing without a query.
    pub async fn server_key(&self, key_id: &str) -> Result<Option<ServerKey>> {
        if !is_valid_key_id(key_id) {
            return Ok(None);
        }
        with_pool!(&self.db, pool => {
            let row = sqlx::query("SELECT id, owner_id, secret FROM servers WHERE key_id = ?")
                .bind(key_id)
                .fetch_optional(pool)
                .await?;
            Ok(row
                .as_ref()
                .map(|r| -> Result<ServerKey, sqlx::Error> {
                    Ok(ServerKey {
                        server_id: r.int("id")?,
                        owner_id: r.int("owner_id")?,
                        secret: r.text("secret")?,
                    })
                })
                .transpose()?)
        })
    }

    /// Renames an owner's server; `Ok(false)` when it does not exist,
    /// [`StorageError::NameTaken`] when the owner has one by that name.
    pub async fn rename_server(
        &self,
        id: i64,
        owner_id: i64,
        new_name: &ServerName,
    ) -> Result<bool> {
        let result = retry_conflicts(|| async {
            with_pool!(&self.db, pool => {
                sqlx::query("UPDATE servers SET name = ? WHERE id = ? AND owner_id = ?")
                    .bind(new_name.as_str())
                    .bind(id)
                    .bind(owner_id)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })
        })
        .await;
        match result {
            Ok(n) => Ok(n > 0),
            Err(e) if is_unique_violation(&e) => {
                Err(StorageError::NameTaken(new_name.as_str().to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives a server a new auth code (new key id and secret); the old code
    /// is refused from the moment this returns. `None` when the owner has no
    /// such server.
    pub async fn rotate_code(&self, id: i64, owner_id: i64) -> Result<Option<AuthCode>> {
        let code = AuthCode::generate().map_err(StorageError::Random)?;
        let changed = retry_conflicts(|| async {
            let turn = self.write_turn().await;
            with_pool!(turn.db, pool => {
                sqlx::query("UPDATE servers SET key_id = ?, secret = ? WHERE id = ? AND owner_id = ?")
                    .bind(code.key_id())
                    .bind(code.secret())
                    .bind(id)
                    .bind(owner_id)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })
        })
        .await?;
        // Its next report starts afresh (the new key would not find this
        // keyframe anyway).
        self.keyframes.forget(id);
        Ok((changed > 0).then_some(code))
    }

    /// Deletes an owner's server and, right after, all its rows. Its code is
    /// refused from the moment the server row is gone (the first, short
    /// transaction); the reports then go in batches, so a server with years
    /// of history never holds a long transaction. Should the process stop
    /// half-way, the periodic [`Storage::purge_deleted_servers`] finishes.
    /// `Ok(false)` when the owner has no such server.
    pub async fn delete_server(&self, id: i64, owner_id: i64) -> Result<bool> {
        let now = unix_now();
        let deleted = retry_conflicts(|| async {
            let turn = self.write_turn().await;
            with_pool!(turn.db, pool => {
                let mut tx = pool.begin_write().await?;
                let n = sqlx::query("DELETE FROM servers WHERE id = ? AND owner_id = ?")
                    .bind(id)
                    .bind(owner_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n > 0 {
                    sqlx::query("INSERT INTO server_purges (server_id, requested_at) VALUES (?, ?)")
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(n > 0)
            })
        })
        .await?;
        self.keyframes.forget(id);
        if deleted && let Err(e) = self.purge_deleted_servers().await {
            tracing::warn!(
                server_id = id,
                "server deleted; its reports will be removed later: {e}"
            );
        }
        Ok(deleted)
    }

    /// Removes the rows of deleted servers, in batches. Returns how many
    /// rows went. Runs after each delete and periodically.
    pub async fn purge_deleted_servers(&self) -> Result<u64> {
        let pending: Vec<i64> = with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT server_id FROM server_purges ORDER BY requested_at LIMIT 100")
                .fetch_all(pool)
                .await?
        });
        let mut total = 0;
        for server_id in pending {
            for table in PURGED_TABLES {
                total += self.purge_table(table, server_id).await?;
            }
            with_pool!(&self.db, pool => {
                sqlx::query("DELETE FROM server_purges WHERE server_id = ?")
                    .bind(server_id)
                    .execute(pool)
                    .await?;
            });
        }
        Ok(total)
    }

    async fn purge_table(&self, table: &str, server_id: i64) -> Result<u64> {
        let sql = match &self.db {
            super::db::Db::Sqlite(_) => format!(
                "DELETE FROM {table} WHERE rowid IN \
                 (SELECT rowid FROM {table} WHERE server_id = ? LIMIT {PURGE_BATCH})"
            ),
            super::db::Db::MySql(_) => {
                format!("DELETE FROM {table} WHERE server_id = ? LIMIT {PURGE_BATCH}")
            }
        };
        let mut total = 0;
        loop {
            let n = retry_conflicts(|| async {
                with_pool!(&self.db, pool => {
                    sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(server_id)
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected())
                })
            })
            .await?;
            total += n;
            if n < PURGE_BATCH {
                return Ok(total);
            }
        }
    }
}

// --- Bot: pending servers and per-owner counts -------------------------

/// Most pending servers expired in one run; the next run takes the rest.
const EXPIRE_BATCH: i64 = 500;

impl Storage {
    /// Deletes servers whose code was never used (no report ever accepted)
    /// and that were created before `created_before`, the way
    /// [`Storage::delete_server`] does. The condition is checked again in
    /// the `DELETE` itself, so a first report arriving meanwhile keeps its
    /// server. Returns the servers removed (at most a batch per call).
    pub async fn expire_pending_servers(&self, created_before: i64) -> Result<Vec<Server>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SERVER_COLUMNS} WHERE last_seen_at IS NULL AND created_at < ? ORDER BY id LIMIT ?"
        ));
        let candidates: Vec<Server> = with_pool!(&self.db, pool => {
            let rows = sqlx::query(sql)
                .bind(created_before)
                .bind(EXPIRE_BATCH)
                .fetch_all(pool)
                .await?;
            rows.iter().map(server_from_row).collect::<Result<_, _>>()?
        });
        let now = unix_now();
        let mut expired = Vec::new();
        for server in candidates {
            let gone = retry_conflicts(|| async {
                with_pool!(&self.db, pool => {
                    let mut tx = pool.begin_write().await?;
                    let n = sqlx::query(
                        "DELETE FROM servers WHERE id = ? AND last_seen_at IS NULL AND created_at < ?",
                    )
                    .bind(server.id)
                    .bind(created_before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n > 0 {
                        sqlx::query("INSERT INTO server_purges (server_id, requested_at) VALUES (?, ?)")
                            .bind(server.id)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(n > 0)
                })
            })
            .await?;
            if gone {
                expired.push(server);
            }
        }
        if !expired.is_empty()
            && let Err(e) = self.purge_deleted_servers().await
        {
            tracing::warn!("pending servers expired; their rows will be removed later: {e}");
        }
        Ok(expired)
    }

    /// How many servers each owner has (owners without servers are absent).
    pub async fn server_counts(&self) -> Result<std::collections::HashMap<i64, i64>> {
        with_pool!(&self.db, pool => {
            let rows: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT owner_id, COUNT(*) FROM servers GROUP BY owner_id",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        for ok in ["web1", "db-2.eu", "a", "A_b-C.d", &"x".repeat(32)] {
            assert!(ServerName::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(ServerName::parse(""), Err(NameError::Empty));
        assert_eq!(ServerName::parse(&"x".repeat(33)), Err(NameError::TooLong));
        for bad in ["web 1", "web/1", "<b>", "wéb", "a;b", "x'"] {
            assert_eq!(
                ServerName::parse(bad),
                Err(NameError::BadCharacter),
                "{bad}"
            );
        }
        for reserved in [
            "all", "OFF", "cpu", "mem", "swap", "disk", "load", "offline", "Net",
        ] {
            assert!(
                matches!(ServerName::parse(reserved), Err(NameError::Reserved(_))),
                "{reserved}"
            );
        }
    }

    #[test]
    fn server_key_debug_hides_the_secret() {
        let key = ServerKey {
            server_id: 1,
            owner_id: 2,
            secret: "very-secret".into(),
        };
        assert!(!format!("{key:?}").contains("very-secret"));
    }
}
