//! Shared test helpers: a throwaway database per test on SQLite or a real
//! MySQL/MariaDB, a server running in-process, and an agent that signs its
//! requests exactly as the protocol says.
//!
//! MySQL tests use `SERVERSAN_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306`), create a database with a random name and
//! drop it at the end. When MySQL is unreachable they FAIL if `CI=true`;
//! otherwise they are skipped with a loud message.

#![allow(dead_code)]

pub mod binary;
pub mod proxy;

use std::time::Duration;

use serversan::config::{Config, DatabaseUrl, SettingValue};
use serversan::storage::{Storage, StorageOptions};
use serversan::web::RunningServer;
use serversan_protocol::{AuthCode, Report, headers, sign};
use sqlx::Connection;
use sqlx::mysql::MySqlConnection;

/// Whether this process runs as root, which `what` needs. Elsewhere than in
/// CI (which runs as root) the test says why it did nothing; in CI a missing
/// root is a failure, never a silent skip.
pub fn running_as_root(what: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    if uid != 0 {
        assert!(!in_ci(), "{what} must run as root in CI");
        eprintln!("skipped: {what} needs root");
    }
    uid == 0
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

/// Generates one `#[tokio::test]` per backend for each named scenario, an
/// `async fn NAME(backend: Backend)` in the same file.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )+
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::MySql).await;
                }
            )+
        }
    };
}

/// The MySQL server tests use, without a database name.
pub fn mysql_server_url() -> String {
    let url = std::env::var("SERVERSAN_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned());
    let (scheme, rest) = url.split_once("://").unwrap_or(("mysql", &url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{}://{authority}", scheme.replace("mariadb", "mysql"))
}

/// Whether the run is CI's, where a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Connects to the MySQL server, or explains why not: panics under CI,
/// otherwise prints a loud notice and returns `None` (the test is skipped).
pub async fn mysql_admin() -> Option<MySqlConnection> {
    let url = mysql_server_url();
    let attempt =
        tokio::time::timeout(Duration::from_secs(5), MySqlConnection::connect(&url)).await;
    let error = match attempt {
        Ok(Ok(conn)) => return Some(conn),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    if in_ci() {
        panic!(
            "MySQL/MariaDB is unreachable at {url} ({error}) and CI=true: \
             MySQL tests must not be skipped in CI. Start MariaDB or set SERVERSAN_TEST_MYSQL_URL."
        );
    }
    eprintln!(
        "\n*** SKIPPED: MySQL/MariaDB unreachable at {url} ({error}).\n\
         *** Start MariaDB on 127.0.0.1:3306 or set SERVERSAN_TEST_MYSQL_URL; \
         with CI=true this is a failure.\n"
    );
    None
}

/// A database that exists for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: DatabaseUrl,
    dir: Option<tempfile::TempDir>,
    mysql_name: Option<String>,
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("random");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prefix of throwaway MySQL databases; leftovers older than an hour (from
/// a killed test run) are dropped by the next run.
const MYSQL_PREFIX: &str = "serversan_test_";

impl TestDb {
    /// A fresh empty database, or `None` when MySQL is unavailable outside CI.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("serversan.db");
                let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display()))
                    .expect("sqlite url");
                Some(Self {
                    backend,
                    url,
                    dir: Some(dir),
                    mysql_name: None,
                })
            }
            Backend::MySql => {
                let mut admin = mysql_admin().await?;
                sweep_stale_databases(&mut admin).await;
                let now = serversan::storage::unix_now();
                let name = format!("{MYSQL_PREFIX}{now}_{}", random_hex(6));
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )))
                .execute(&mut admin)
                .await
                .expect("create test database");
                let _ = admin.close().await;
                let url = DatabaseUrl::parse(&format!("{}/{name}", mysql_server_url()))
                    .expect("mysql url");
                Some(Self {
                    backend,
                    url,
                    dir: None,
                    mysql_name: Some(name),
                })
            }
        }
    }

    /// A migrated storage handle on this database.
    pub async fn storage(&self) -> Storage {
        let storage = Storage::connect(&StorageOptions::from_config(&self.config()))
            .await
            .expect("connect");
        storage.migrate().await.expect("migrate");
        storage
    }

    /// A connection of its own to this database, outside the storage's
    /// pools: for what only a test does to it (rows written as another
    /// version would have, triggers, schema changes).
    pub async fn raw_connection(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(self.url.expose())
            .await
            .expect("connect")
    }

    /// A configuration for a server on this database, listening on a free
    /// loopback port, with short timeouts.
    pub fn config(&self) -> Config {
        Config {
            database_url: self.url.clone(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_timeout: Duration::from_secs(2),
            unavailable_retry_after: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(2),
            database_max_connections: 8,
            ..Config::default()
        }
    }

    /// The MySQL database's name (MySQL only).
    pub fn mysql_database(&self) -> Option<&str> {
        self.mysql_name.as_deref()
    }

    /// The SQLite file's directory (SQLite only).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// Takes the SQLite file's write lock from another connection, as
    /// another process (a backup, a stuck script) would (SQLite only).
    pub async fn hold_write_lock(&self) -> WriteLock {
        let path = self.dir().expect("sqlite").join("serversan.db");
        let mut holder =
            sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("connect");
        sqlx::raw_sql("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .expect("lock");
        WriteLock(holder)
    }
}

/// An SQLite write lock held by another connection.
pub struct WriteLock(sqlx::sqlite::SqliteConnection);

impl WriteLock {
    pub async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("unlock");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.mysql_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime; a helper thread with its own
        // runtime can block on the cleanup.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = MySqlConnection::connect(&mysql_server_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS `{name}`"
                    )))
                    .execute(&mut admin)
                    .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

async fn sweep_stale_databases(admin: &mut MySqlConnection) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME LIKE 'serversan\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    else {
        return;
    };
    let cutoff = serversan::storage::unix_now() - 3600;
    for name in names {
        let created: Option<i64> = name
            .strip_prefix(MYSQL_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|ts| ts.parse().ok());
        if created.is_some_and(|t| t < cutoff) {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{name}`"
            )))
            .execute(&mut *admin)
            .await;
        }
    }
}

/// A server running in this process.
pub struct TestServer {
    pub url: String,
    pub addr: std::net::SocketAddr,
    running: RunningServer,
}

impl TestServer {
    pub async fn start(config: &Config, storage: Storage) -> Self {
        let running = RunningServer::start(config, storage)
            .await
            .expect("server starts");
        let addr = running.addr;
        Self {
            url: format!("http://{addr}"),
            addr,
            running,
        }
    }

    pub async fn stop(self) {
        self.running.shutdown().await;
    }
}

/// An agent: an auth code and an HTTP client that signs like the real one.
#[derive(Clone)]
pub struct Agent {
    pub code: AuthCode,
    pub base_url: String,
    pub client: reqwest::Client,
}

impl Agent {
    pub fn new(code: AuthCode, base_url: &str) -> Self {
        Self {
            code,
            base_url: base_url.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    /// A request signed for `body` at `timestamp` with `nonce`.
    pub fn signed(&self, body: &[u8], timestamp: i64, nonce: &str) -> reqwest::RequestBuilder {
        self.signed_as(body, timestamp, nonce, &["application/json"])
    }

    /// Like [`Agent::signed`], with these Content-Type headers instead.
    pub fn signed_as(
        &self,
        body: &[u8],
        timestamp: i64,
        nonce: &str,
        content_types: &[&str],
    ) -> reqwest::RequestBuilder {
        let s = sign(&self.code, timestamp, nonce, body);
        let mut request = self.client.post(format!("{}/v1/report", self.base_url));
        for ct in content_types {
            request = request.header("content-type", *ct);
        }
        request
            .header(headers::KEY, s.key_id)
            .header(headers::TIMESTAMP, s.timestamp.to_string())
            .header(headers::NONCE, s.nonce)
            .header(headers::SIGNATURE, s.signature)
            .body(body.to_vec())
    }

    /// Sends `body` signed now with a fresh nonce.
    pub async fn send_body(&self, body: &[u8]) -> Reply {
        let nonce = serversan_protocol::random_nonce().expect("nonce");
        Reply::from(
            self.signed(body, serversan::storage::unix_now(), &nonce)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Sends `report` signed now with a fresh nonce.
    pub async fn send(&self, report: &Report) -> Reply {
        self.send_body(&serde_json::to_vec(report).expect("json"))
            .await
    }
}

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `error` member of a JSON refusal.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error member: {}", self.body))
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A realistic valid report collected `secs_ago` seconds ago.
pub fn report(secs_ago: i64) -> Report {
    Report::example(serversan::storage::unix_now() - secs_ago)
}

/// Sends raw bytes on a new connection and returns everything the server
/// answers until it closes the connection or 5 seconds pass. Write errors
/// are ignored: a server may answer and close before reading everything.
pub async fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                // One answer is enough when the request was complete.
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && ends_a_response(&answer) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether `bytes` hold a whole response with a Content-Length body.
fn ends_a_response(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .is_some_and(|len| body.len() >= len)
}

/// `GET url`, read in full.
pub async fn get(url: &str) -> Reply {
    Reply::from(reqwest::get(url).await.expect("GET")).await
}
