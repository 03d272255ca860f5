//! Storage on SQLite (the default: one file, nothing to install) or
//! MySQL/MariaDB (production, several server instances sharing it).
//!
//! [`Storage`] is the only door to the database. Each submodule owns the SQL
//! of its tables; the code above the small per-backend layer in `db` is
//! written once for both backends. Transactions are short and retried when
//! they lose a conflict (deadlock 1213, which is also how Galera reports a
//! conflict between nodes).

mod batch;
mod checkpoint;
pub(crate) mod db;
pub mod detail;
mod keyframes;
mod leases;
mod migrations;
pub(crate) mod multirow;
mod nonces;
mod reports;
mod servers;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::config::{Config, DatabaseKind, DatabaseUrl};
use db::{Db, with_pool};

pub use reports::{Figures, NewReport, RecordOutcome, ReportRow, network_rates};
pub use servers::{NameError, Server, ServerKey, ServerName};
pub use users::{Permissions, Role, RoleName, User, UserProfile};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    /// Longest wait for a pooled connection.
    pub acquire_timeout: Duration,
    /// Longest wait for an SQLite lock held by another process.
    pub sqlite_busy_timeout: Duration,
}

impl StorageOptions {
    pub fn from_config(config: &Config) -> Self {
        Self {
            url: config.database_url.clone(),
            max_connections: config.database_max_connections,
            acquire_timeout: config.database_timeout,
            sqlite_busy_timeout: config.sqlite_busy_timeout,
        }
    }

    /// Defaults for `url`, as used by tests and tools.
    pub fn new(url: DatabaseUrl) -> Self {
        let config = Config::default();
        Self {
            url,
            ..Self::from_config(&config)
        }
    }
}

/// Why a storage operation failed. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the database: {0}")]
    Connect(String),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite batch writer's own connection.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a server named {0:?} already exists for this owner")]
    NameTaken(String),
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error("the system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// A batch of reports failed as a whole; each of its callers gets this.
    #[error("{0}")]
    Batch(std::sync::Arc<StorageError>),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Pragmas of every connection to an SQLite database: WAL, so readers and
/// the CLI work beside `serve`; `synchronous = NORMAL`, safe from a crash
/// of the process in WAL mode (see `checkpoint`); foreign keys enforced.
/// One list for the pools and the batch writer's own connection
/// (`reports::bulk::SqliteWriter`), so they cannot drift apart.
pub(super) const SQLITE_PRAGMAS: [(&str, &str); 3] = [
    ("journal_mode", "WAL"),
    ("synchronous", "NORMAL"),
    ("foreign_keys", "ON"),
];

/// Pragmas of the frequent writers' connections on top of
/// [`SQLITE_PRAGMAS`] (why: in [`Storage::connect`]): checkpoints left to
/// another connection (see `checkpoint`), statement journals in memory.
pub(super) fn writer_pragmas() -> [(&'static str, String); 2] {
    [
        (
            "wal_autocheckpoint",
            checkpoint::WRITER_AUTOCHECKPOINT.to_string(),
        ),
        ("temp_store", "MEMORY".to_owned()),
    ]
}

/// A handle to the database; cheap to clone and share between tasks.
#[derive(Debug, Clone)]
pub struct Storage {
    db: Db,
    /// Where whoever holds the write turn writes: on an SQLite file a pool
    /// of one connection of its own (see [`Storage::connect`]; the batch
    /// writer has another), otherwise the same pool.
    writer: Db,
    /// On SQLite, taken by this process's frequent writers (the batch
    /// writer, the alert worker) around their transactions; see
    /// [`Storage::write_turn`].
    write_turn: Option<WriteTurn>,
    /// Group commit of accepted reports (see `batch`).
    batcher: batch::Batcher,
    /// Each server's keyframe for the next report's detail.
    keyframes: std::sync::Arc<keyframes::Keyframes>,
}

impl Storage {
    /// Opens a pool. SQLite files are created when missing (an existing empty
    /// file is fine) and use WAL with a busy timeout, so the CLI can write
    /// while `serve` runs. A MySQL database must already exist.
    pub async fn connect(options: &StorageOptions) -> Result<Self> {
        let url = options.url.expose();
        // On an SQLite file, the batch writer's own connection (see `batch`).
        let mut own_writer = None;
        let (db, writer, checkpoints) = match options.url.kind() {
            DatabaseKind::Sqlite => {
                let connect = SqliteConnectOptions::from_str(url)
                    .map_err(|e| StorageError::Connect(e.to_string()))?
                    .create_if_missing(true)
                    .busy_timeout(options.sqlite_busy_timeout);
                let connect = SQLITE_PRAGMAS
                    .into_iter()
                    .fold(connect, |c, (key, value)| c.pragma(key, value));
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                if !in_memory {
                    check_parent_dir(connect.get_filename())?;
                }
                // Each in-memory connection would be its own database.
                let max = if in_memory {
                    1
                } else {
                    options.max_connections
                };
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect.clone())
                    .await
                    .map_err(|e| StorageError::Connect(describe_connect_error(&e)))?;
                // The frequent writers get connections of their own, kept
                // for good: the batch writer one that its thread drives
                // itself (`own_writer`, see `batch`), the holders of the
                // write turn (the alert worker, the bot's writes) this
                // pool of one. SQLite drops a connection's whole page cache
                // when another connection wrote since its last transaction,
                // and the pool hands out its least recently used
                // connection: batches taken from it found their cache
                // dropped nearly every time and read the index pages they
                // update again (BENCHMARKS.md, "Ingest"). Both leave
                // checkpoints to another connection (see `checkpoint`).
                // Its statement journals stay in memory: a batch's
                // multi-row statements (which SQLite must be able to undo
                // alone inside the transaction) touch more than the 64 KiB
                // SQLite keeps in memory by default, and each one that
                // spilled created, wrote and deleted a temporary file, 5 %
                // of the server's CPU at saturation (BENCHMARKS.md). A
                // statement journal holds the pages one statement changed:
                // at most a batch's, about a megabyte.
                if in_memory {
                    (Db::Sqlite(pool.clone()), Db::Sqlite(pool), None)
                } else {
                    own_writer = Some((
                        connect.get_filename().to_path_buf(),
                        options.sqlite_busy_timeout,
                    ));
                    let writer = SqlitePoolOptions::new()
                        .max_connections(1)
                        .acquire_timeout(options.acquire_timeout)
                        .idle_timeout(None)
                        .max_lifetime(None)
                        .connect_with(
                            writer_pragmas()
                                .into_iter()
                                .fold(connect, |c, (key, value)| c.pragma(key, value)),
                        )
                        .await
                        .map_err(|e| StorageError::Connect(describe_connect_error(&e)))?;
                    let checkpoints = Db::Sqlite(pool.clone());
                    (Db::Sqlite(pool), Db::Sqlite(writer), Some(checkpoints))
                }
            }
            DatabaseKind::MySql => {
                let connect = MySqlConnectOptions::from_str(url)
                    .map_err(|e| StorageError::Connect(e.to_string()))?;
                let pool = MySqlPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(|e| StorageError::Connect(describe_connect_error(&e)))?;
                (Db::MySql(pool.clone()), Db::MySql(pool), None)
            }
        };
        let write_turn = matches!(db, Db::Sqlite(_)).then(WriteTurn::default);
        let batcher =
            batch::Batcher::start(writer.clone(), checkpoints, write_turn.clone(), own_writer);
        Ok(Self {
            db,
            writer,
            write_turn,
            batcher,
            keyframes: Default::default(),
        })
    }

    /// On SQLite, this process's turn to write, to hold around a write
    /// transaction that runs often; on MySQL, where writers do not exclude
    /// each other, only the pool to write on.
    ///
    /// Why: SQLite has one writer at a time, and a connection that finds the
    /// lock taken sleeps in its busy handler, 1 ms, then 2, then 5, and so
    /// on, whenever the lock is freed in between. The batch writer met the
    /// alert worker's transactions that way about 40 times a second at
    /// saturation. Waiting here ends the moment the other transaction does.
    /// The bot's writes take it too (each command's user row, servers,
    /// rules, mutes): under ingest load the busy handler's sleeps put the
    /// bot's p99 at four to ten times its goal (BENCHMARKS.md, "Bot
    /// latency"). So do the alert sender's (a message sent, a chat found
    /// unreachable), which otherwise waited 15 ms at the median and over
    /// 100 ms at the p99 between two messages. Other writers (the CLI,
    /// another process; the scheduler's housekeeping, retention and
    /// rollups) still meet the busy handler: delayed under load, not
    /// refused (BENCHMARKS.md).
    ///
    /// The turn comes with the connection to write on: on an SQLite file
    /// one kept for the turn's holders. Why: SQLite drops a connection's
    /// page cache when another connection wrote since its last
    /// transaction, and a pool connection, least recently used, nearly
    /// always finds that so (BENCHMARKS.md, "Ingest"). The batch writer,
    /// which also takes the turn, writes on a connection of its own that
    /// its thread drives (see `batch`): sharing this one through sqlx
    /// kept the caches warm but cost a hand-off to sqlx's thread per
    /// statement, which under load was dearer.
    pub(crate) async fn write_turn(&self) -> Turn<'_> {
        Turn {
            _held: WriteTurn::take_any(self.write_turn.as_ref()).await,
            db: &self.writer,
        }
    }

    /// Which backend this is.
    pub fn kind(&self) -> DatabaseKind {
        self.db.kind()
    }

    /// The pool, for the modules that own their own tables' SQL (history,
    /// alerts) through `with_pool!`.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Applies pending migrations. Safe to run on every start and from
    /// several processes (a second one finds nothing to do).
    pub async fn migrate(&self) -> Result<()> {
        let attempt = || async {
            match &self.db {
                Db::Sqlite(pool) => migrations::sqlite().run(pool).await,
                Db::MySql(pool) => migrations::mysql().run(pool).await,
            }
        };
        match attempt().await {
            Ok(()) => Ok(()),
            // Two processes migrating a fresh database at once: the loser
            // fails on the winner's tables; by now there is nothing to do.
            Err(first) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                attempt().await.map_err(|_| StorageError::Migrate(first))
            }
        }
    }

    /// A round trip to the database (for `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        with_pool!(&self.db, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every connection (SQLite then checkpoints its WAL).
    pub async fn close(&self) {
        self.batcher.close();
        with_pool!(&self.db, pool => pool.close().await);
        with_pool!(&self.writer, pool => pool.close().await);
    }
}

/// A writer's turn from [`Storage::write_turn`], held until dropped.
pub(crate) struct Turn<'a> {
    _held: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Where to write while the turn lasts.
    pub db: &'a Db,
}

/// See [`Storage::write_turn`].
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteTurn(std::sync::Arc<tokio::sync::Mutex<()>>);

impl WriteTurn {
    /// Waits for `turn` where there is one (SQLite); held until dropped.
    pub(crate) async fn take_any(turn: Option<&Self>) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match turn {
            Some(turn) => Some(turn.0.clone().lock_owned().await),
            None => None,
        }
    }
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn check_parent_dir(file: &std::path::Path) -> Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            Err(StorageError::Connect(format!(
                "the directory {} for the SQLite file does not exist",
                dir.display()
            )))
        }
        _ => Ok(()),
    }
}

/// A connection error in words an operator can act on.
fn describe_connect_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::PoolTimedOut => {
            "timed out connecting to the database (is it running and reachable?)".into()
        }
        other => other.to_string(),
    }
}

/// Converts a byte count to a BIGINT column value; sizes beyond i64 are
/// clamped (the exact value stays in the report's JSON).
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn temp_store(db: &Db) -> i64 {
        let Db::Sqlite(pool) = db else {
            panic!("an SQLite pool")
        };
        sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(pool)
            .await
            .expect("pragma")
    }

    /// A batch's statement journals spilled to temporary files at the
    /// default setting (BENCHMARKS.md); the shared pool keeps the default,
    /// so a large sort of a chart query may still spill to disk.
    #[tokio::test]
    async fn the_writer_keeps_statement_journals_in_memory() {
        let (_dir, storage) = test_support::sqlite_file(Duration::from_secs(5)).await;
        assert_eq!(temp_store(&storage.writer).await, 2, "MEMORY");
        assert_eq!(temp_store(&storage.db).await, 0, "DEFAULT");
        storage.close().await;
    }

    /// `close` closes the batch writer's own connection too: the last
    /// connection to go checkpoints the log and removes it, and a closed
    /// storage stores nothing more.
    #[tokio::test]
    async fn closing_closes_the_batch_writers_own_connection() {
        let (dir, storage) = test_support::sqlite_file(Duration::from_secs(5)).await;
        let name = ServerName::parse("box").expect("name");
        let (server, _) = storage.create_server(1, &name).await.expect("server");
        let now = unix_now();
        let report = serversan_protocol::Report::example(now);
        let new = |nonce| NewReport {
            server_id: server.id,
            key_id: None,
            report: &report,
            nonce,
            nonce_expires_at: now + 600,
            received_at: now,
            min_interval_secs: 0,
            max_per_minute: 1000,
        };
        let stored = storage
            .record_report(&new("nonce-before-close-0"))
            .await
            .expect("stored");
        assert_eq!(stored, RecordOutcome::Stored);
        let log = dir.path().join("db.sqlite-wal");
        assert!(log.exists(), "the log is in use");

        storage.close().await;
        assert!(
            !log.exists(),
            "every connection closed, the log checkpointed"
        );
        storage
            .record_report(&new("nonce-after-close-00"))
            .await
            .expect_err("a closed storage stores nothing");
    }

    /// The bot's writes, while ingest's batch writer holds SQLite's lock:
    /// each waits for its turn, not in SQLite's busy handler.
    #[tokio::test]
    async fn the_bots_writes_wait_for_the_write_turn() {
        use test_support::{sqlite_with_busy_timeout, waits_for_the_write_turn};
        let (_dir, storage) = sqlite_with_busy_timeout().await;
        let profile = UserProfile {
            user_id: 42,
            username: Some("someone".into()),
            nickname: None,
        };
        let s = storage.clone();
        let user = waits_for_the_write_turn(&storage, async move { s.upsert_user(&profile).await })
            .await
            .expect("user recorded");
        assert_eq!(user.user_id, 42);

        let s = storage.clone();
        let name = ServerName::parse("box").expect("name");
        let (server, _) =
            waits_for_the_write_turn(&storage, async move { s.create_server(42, &name).await })
                .await
                .expect("server created");
        let s = storage.clone();
        let code =
            waits_for_the_write_turn(&storage, async move { s.rotate_code(server.id, 42).await })
                .await
                .expect("code rotated");
        assert!(code.is_some());
        let s = storage.clone();
        let promoted =
            waits_for_the_write_turn(
                &storage,
                async move { s.set_role(42, RoleName::Admin).await },
            )
            .await
            .expect("role set");
        assert!(promoted);
        let s = storage.clone();
        let deleted =
            waits_for_the_write_turn(
                &storage,
                async move { s.delete_server(server.id, 42).await },
            )
            .await
            .expect("server deleted");
        assert!(deleted);
        storage.close().await;
    }
}

/// For tests of writes that must take [`Storage::write_turn`].
#[cfg(test)]
pub(crate) mod test_support {
    use std::future::Future;

    use super::*;
    use crate::config::SettingValue;
    use crate::storage::db::WritePool;

    /// An SQLite file whose busy handler gives up after 50 ms.
    pub(crate) async fn sqlite_with_busy_timeout() -> (tempfile::TempDir, Storage) {
        sqlite_file(Duration::from_millis(50)).await
    }

    /// A migrated SQLite file `db.sqlite` in a directory of its own, with
    /// this busy timeout.
    pub(crate) async fn sqlite_file(busy_timeout: Duration) -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("db.sqlite");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("url");
        let options = StorageOptions {
            sqlite_busy_timeout: busy_timeout,
            ..StorageOptions::new(url)
        };
        let storage = Storage::connect(&options).await.expect("open");
        storage.migrate().await.expect("migrate");
        (dir, storage)
    }

    /// Runs `write` while the write turn and SQLite's write lock are held
    /// as a batch holds them, asserts it is still waiting after six busy
    /// timeouts (in the busy handler it would have failed with "database
    /// is locked"), then releases both and returns what it gave.
    pub(crate) async fn waits_for_the_write_turn<T: Send + 'static>(
        storage: &Storage,
        write: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let turn = storage.write_turn().await;
        let Db::Sqlite(pool) = turn.db else {
            panic!("an SQLite pool")
        };
        let tx = pool.begin_write().await.expect("lock");
        let waiting = tokio::spawn(write);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "the write did not wait for its turn"
        );
        tx.commit().await.expect("commit");
        drop(turn);
        waiting.await.expect("task")
    }
}
