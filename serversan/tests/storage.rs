//! The storage API on SQLite and on a real MariaDB: users and roles,
//! servers and their codes, reports and what the database enforces for
//! them, leases and pruning.

mod common;

use common::{Backend, TestDb};
use serversan::storage::{
    NewReport, RecordOutcome, RoleName, ServerName, Storage, StorageError, UserProfile,
    network_rates, unix_now,
};
use serversan_protocol::Report;
use serversan_protocol::report::{Load, ProcessInfo, Temperature};
use sqlx::Connection;

on_both_backends!(
    users_and_roles,
    servers_are_per_owner,
    rotating_and_deleting_codes,
    reports_are_stored_losslessly,
    extreme_reports_are_stored_losslessly,
    rows_written_before_compact_details_stay_readable,
    rows_written_before_0140_stay_readable,
    a_corrupt_detail_is_a_clear_error,
    the_database_paces_each_server,
    the_arrival_cap_holds,
    deleting_a_server_removes_its_reports,
    leases_are_exclusive_until_expiry,
    expired_nonces_are_pruned,
    concurrent_reports_stay_exact,
    two_instances_racing_stay_exact,
    a_stale_pacing_cache_changes_no_outcome,
    reports_are_stored_as_deltas_against_keyframes,
    a_lost_or_stale_keyframe_cache_never_loses_a_report,
    concurrent_deltas_all_read,
    latest_figures_of_many_servers,
);

fn name(s: &str) -> ServerName {
    ServerName::parse(s).expect("valid name")
}

fn new_report<'a>(server_id: i64, report: &'a Report, nonce: &'a str) -> NewReport<'a> {
    NewReport {
        server_id,
        key_id: None,
        report,
        nonce,
        nonce_expires_at: unix_now() + 300,
        received_at: unix_now(),
        min_interval_secs: 10,
        max_per_minute: 60,
    }
}

async fn store(storage: &Storage, server_id: i64, report: &Report) -> RecordOutcome {
    let nonce = serversan_protocol::random_nonce().expect("nonce");
    storage
        .record_report(&new_report(server_id, report, &nonce))
        .await
        .expect("storage works")
}

async fn users_and_roles(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let roles = storage.roles().await.expect("roles");
    let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["admin", "user", "banned"]);
    assert!(roles[0].permission.is_admin() && roles[0].permission.can_use());
    assert!(!roles[2].permission.can_use());

    assert_eq!(storage.get_user(42).await.expect("get"), None);
    let profile = UserProfile {
        user_id: 42,
        username: Some("@Alice".into()),
        nickname: Some("Alice <b>Liddell</b> 🐇".into()),
    };
    let user = storage.upsert_user(&profile).await.expect("upsert");
    assert_eq!(user.username.as_deref(), Some("Alice"));
    assert_eq!(user.nickname.as_deref(), Some("Alice <b>Liddell</b> 🐇"));
    assert_eq!(user.role.name, "user");

    assert!(
        storage
            .set_role(42, RoleName::Admin)
            .await
            .expect("set role")
    );
    assert!(
        !storage
            .set_role(43, RoleName::Admin)
            .await
            .expect("no such user")
    );
    let again = storage
        .upsert_user(&UserProfile {
            user_id: 42,
            username: Some("alice2".into()),
            nickname: None,
        })
        .await
        .expect("upsert again");
    assert_eq!(again.role.name, "admin", "a profile refresh keeps the role");
    assert_eq!(again.username.as_deref(), Some("alice2"));
    assert_eq!(again.created_at, user.created_at);

    let found = storage
        .find_user_by_username("@ALICE2")
        .await
        .expect("find");
    assert_eq!(found.map(|u| u.user_id), Some(42));
    assert_eq!(storage.find_user_by_username("").await.expect("find"), None);

    let long = "x".repeat(1000);
    let bounded = storage
        .upsert_user(&UserProfile {
            user_id: 7,
            username: None,
            nickname: Some(long),
        })
        .await
        .expect("overlong names are cut, not refused");
    assert_eq!(bounded.nickname.map(|n| n.len()), Some(255));
    assert_eq!(storage.list_users().await.expect("list").len(), 2);
}

async fn servers_are_per_owner(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (web, code) = storage
        .create_server(100, &name("Web1"))
        .await
        .expect("create");
    assert_eq!(code.key_id(), web.key_id);
    assert_eq!(
        storage
            .get_user(100)
            .await
            .expect("get")
            .map(|u| u.role.name),
        Some("user".into()),
        "creating a server creates its owner"
    );
    match storage.create_server(100, &name("web1")).await {
        Err(StorageError::NameTaken(n)) => assert_eq!(n, "web1"),
        other => panic!("names are unique per owner regardless of case: {other:?}"),
    }
    let (_other, _) = storage
        .create_server(200, &name("web1"))
        .await
        .expect("another owner may use the name");
    storage
        .create_server(100, &name("db.2"))
        .await
        .expect("create");

    let mine = storage.list_servers(100).await.expect("list");
    let names: Vec<&str> = mine.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["db.2", "Web1"]);
    assert_eq!(storage.count_servers(100).await.expect("count"), 2);
    assert_eq!(storage.count_servers(300).await.expect("count"), 0);
    assert_eq!(storage.list_all_servers().await.expect("all").len(), 3);

    let found = storage.find_server(100, "WEB1").await.expect("find");
    assert_eq!(found.as_ref().map(|s| s.id), Some(web.id));
    assert_eq!(storage.find_server(200, "db.2").await.expect("find"), None);
    assert_eq!(
        storage
            .find_server(100, "x'; DROP TABLE servers;--")
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        storage
            .get_server(web.id, 100)
            .await
            .expect("get")
            .map(|s| s.id),
        Some(web.id)
    );
    assert_eq!(
        storage.get_server(web.id, 200).await.expect("get"),
        None,
        "owner checked"
    );

    assert!(
        storage
            .rename_server(web.id, 100, &name("web-main"))
            .await
            .expect("rename")
    );
    assert!(
        !storage
            .rename_server(web.id, 200, &name("stolen"))
            .await
            .expect("not theirs")
    );
    match storage.rename_server(web.id, 100, &name("DB.2")).await {
        Err(StorageError::NameTaken(_)) => {}
        other => panic!("rename onto a taken name: {other:?}"),
    }
    assert_eq!(
        storage
            .get_server(web.id, 100)
            .await
            .expect("get")
            .map(|s| s.name),
        Some("web-main".into())
    );
}

async fn rotating_and_deleting_codes(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, old) = storage
        .create_server(1, &name("box"))
        .await
        .expect("create");
    let key = storage
        .server_key(old.key_id())
        .await
        .expect("key")
        .expect("found");
    assert_eq!(key.server_id, server.id);
    assert_eq!(key.secret, old.secret());
    assert!(
        storage
            .server_key("not a key id!")
            .await
            .expect("lookup")
            .is_none()
    );

    assert_eq!(
        storage.rotate_code(server.id, 2).await.expect("rotate"),
        None
    );
    let new = storage
        .rotate_code(server.id, 1)
        .await
        .expect("rotate")
        .expect("rotated");
    assert_ne!(new, old);
    assert!(
        storage
            .server_key(old.key_id())
            .await
            .expect("lookup")
            .is_none()
    );
    assert_eq!(
        storage
            .server_key(new.key_id())
            .await
            .expect("lookup")
            .map(|k| k.secret),
        Some(new.secret().to_owned())
    );

    assert!(
        !storage
            .delete_server(server.id, 2)
            .await
            .expect("not theirs")
    );
    assert!(storage.delete_server(server.id, 1).await.expect("delete"));
    assert!(
        storage
            .server_key(new.key_id())
            .await
            .expect("lookup")
            .is_none()
    );
    assert!(
        !storage
            .delete_server(server.id, 1)
            .await
            .expect("already gone")
    );
    let r = common::report(0);
    assert_eq!(
        store(&storage, server.id, &r).await,
        RecordOutcome::ServerGone
    );
}

/// `/list`'s read: each server's newest figures in one query, servers
/// without reports left out, nobody else's rows mixed in.
async fn latest_figures_of_many_servers(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let mut ids = Vec::new();
    for (i, reports) in [3, 0, 1].into_iter().enumerate() {
        let (server, _) = storage
            .create_server(1, &name(&format!("box-{i}")))
            .await
            .expect("create");
        for n in 0..reports {
            let mut report = common::report(600 - 60 * n);
            report.cpu.usage_percent = f64::from(10 * i as u32 + n as u32);
            assert_eq!(
                store(&storage, server.id, &report).await,
                RecordOutcome::Stored
            );
        }
        ids.push(server.id);
    }
    let (other, _) = storage
        .create_server(2, &name("theirs"))
        .await
        .expect("create");
    assert_eq!(
        store(&storage, other.id, &common::report(0)).await,
        RecordOutcome::Stored
    );

    let latest = storage.latest_figures(&ids).await.expect("figures");
    assert_eq!(latest.len(), 2, "the server without reports is left out");
    assert_eq!(latest[&ids[0]].cpu_percent, 2.0, "the newest of three");
    assert_eq!(latest[&ids[2]].cpu_percent, 20.0);
    assert!(!latest.contains_key(&ids[1]));
    assert!(
        !latest.contains_key(&other.id),
        "only the servers asked for"
    );
    for id in [ids[0], ids[2]] {
        let newest = storage
            .latest_report(id)
            .await
            .expect("latest")
            .expect("some");
        assert_eq!(latest[&id], newest.figures, "as the newest report has them");
    }
    assert!(storage.latest_figures(&[]).await.expect("none").is_empty());
}

async fn reports_are_stored_losslessly(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, _) = storage
        .create_server(1, &name("box"))
        .await
        .expect("create");
    assert_eq!(
        storage.latest_report(server.id).await.expect("latest"),
        None
    );

    let mut first = common::report(60);
    first.hostname = "<b>x&y</b>'; DROP TABLE reports;-- \"q\" \\ 🐇".into();
    first.memory.total = u64::MAX; // beyond a BIGINT: clamped in its column, exact in detail
    first.memory.available = 1;
    first.extra.insert(
        "gpu".into(),
        serde_json::json!({"model": "X", "usage_percent": 3.25}),
    );
    assert_eq!(
        store(&storage, server.id, &first).await,
        RecordOutcome::Stored
    );
    // 60 s after the first exactly: taken from the clock, the two could be
    // 61 s apart when a second ticks between them, and the rates be off.
    let mut second = common::report(0);
    second.collected_at = first.collected_at + 60;
    second.network[0].rx_bytes += 600_000;
    second.network[0].tx_bytes += 60_000;
    assert!(matches!(
        store(&storage, server.id, &second).await,
        RecordOutcome::Stored
    ));

    let rows = storage.last_two_reports(server.id).await.expect("last two");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].collected_at, first.collected_at);
    assert!(rows[0].id > rows[1].id, "ids in insert order");
    let stored = &rows[1];
    assert_eq!(stored.report().expect("rebuilt"), first, "lossless");
    assert_eq!(stored.figures.hostname, first.hostname, "verbatim");
    assert_eq!(stored.figures.mem_total, i64::MAX);
    assert_eq!(stored.collected_at, first.collected_at);
    assert!((stored.figures.cpu_percent - 12.5).abs() < 1e-9);
    assert_eq!(stored.figures.load1, Some(0.42));
    assert_eq!(stored.figures.cpu_cores, 4);
    assert_eq!(stored.figures.disk_total, (80i64 << 30) + (512 << 20));
    assert!((stored.figures.disk_max_percent - 38.75).abs() < 1e-9);
    assert_eq!(stored.figures.net_rx, 912_345_678_901);
    assert_eq!(stored.figures.process_count, 143);

    let latest = storage
        .latest_report(server.id)
        .await
        .expect("latest")
        .expect("some");
    assert_eq!(latest.report().expect("rebuilt"), second);
    assert_eq!(
        storage
            .latest_figures(&[server.id])
            .await
            .expect("figures")
            .get(&server.id),
        Some(&latest.figures),
        "the newest row's columns, as /list shows them"
    );
    let (rx, tx) = network_rates(&rows[0], &rows[1]).expect("rates");
    assert!((rx - 10_000.0).abs() < 1e-6, "{rx}");
    assert!((tx - 1_000.0).abs() < 1e-6, "{tx}");
    assert_eq!(network_rates(&rows[1], &rows[0]), None, "order matters");

    let mut windows = common::report(0);
    windows.collected_at += 30;
    windows.load = None;
    windows.swap.total = 0;
    windows.swap.used = 0;
    windows.filesystems.clear();
    assert!(matches!(
        store(&storage, server.id, &windows).await,
        RecordOutcome::Stored
    ));
    let latest = storage
        .latest_report(server.id)
        .await
        .expect("latest")
        .expect("some");
    assert_eq!(latest.figures.load1, None);
    assert_eq!(latest.figures.disk_max_percent, 0.0);
    assert_eq!(latest.figures.swap_percent(), 0.0);
    assert_eq!(latest.report().expect("rebuilt"), windows);
    assert_eq!(storage.count_reports(server.id).await.expect("count"), 3);
}

async fn extreme_reports_are_stored_losslessly(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, _) = storage
        .create_server(1, &name("edge"))
        .await
        .expect("create");
    let mut r = common::report(60);
    r.hostname = "ß-中文-😀 x".into();
    r.boot_time = i64::MIN;
    r.memory.total = u64::MAX;
    r.memory.used = i64::MAX as u64;
    r.memory.available = i64::MAX as u64 + 1;
    r.swap.total = u64::MAX;
    r.cpu.logical_cores = u32::MAX;
    r.process_count = u32::MAX;
    r.cpu.usage_percent = -0.0;
    r.cpu.frequency_mhz = Some(f64::MAX);
    r.load = Some(Load {
        one: 5e-324,
        five: 0.1 + 0.2,
        fifteen: 1e300,
    });
    r.filesystems[0].total = u64::MAX;
    r.network[0].rx_bytes = u64::MAX;
    r.top_cpu.push(ProcessInfo {
        pid: u32::MAX,
        name: "\u{0}\"\\\n".into(),
        cpu_percent: 2.2250738585072014e-308,
        memory_bytes: u64::MAX,
    });
    r.temperatures.push(Temperature {
        label: String::new(),
        celsius: -273.15,
    });
    r.extra.insert(
        "future".into(),
        serde_json::json!({"big": u64::MAX, "neg": -1.5e300, "list": [null, true, "s", {}]}),
    );
    let mut sparse = common::report(0);
    sparse.agent_version = None;
    sparse.load = None;
    sparse.cpu.frequency_mhz = None;
    sparse.ipv4 = None;
    sparse.ipv6 = None;
    sparse.network.clear();
    sparse.sessions.clear();
    sparse.top_cpu.clear();
    sparse.top_memory.clear();
    sparse.temperatures.clear();
    for report in [&r, &sparse] {
        assert!(matches!(
            store(&storage, server.id, report).await,
            RecordOutcome::Stored
        ));
        let row = storage
            .latest_report(server.id)
            .await
            .expect("latest")
            .expect("some");
        assert_eq!(&row.report().expect("rebuilt"), report, "lossless");
        assert_eq!(
            serde_json::to_string(&row.report().expect("rebuilt")).expect("json"),
            serde_json::to_string(report).expect("json"),
            "the same JSON, float bits and key order included"
        );
    }
}

/// A raw connection to the test database, for writing rows as an older
/// server (or a broken disk) would have.
/// What to write into a row's `detail`.
enum RawDetail {
    /// JSON text, as servers wrote before compact details.
    Text(String),
    /// Bytes as written now (or damaged).
    Bytes(Vec<u8>),
}

/// Stores `report` as ingest does, then overwrites its `detail` the way an
/// older server (or a broken disk) would have left it; returns the row id.
/// Stores `report`, then overwrites its detail as an older version would
/// have written it. Through a handle of its own, as such rows were written
/// by another process: the row must not be a keyframe this process knows.
async fn store_with_detail(
    db: &TestDb,
    conn: &mut sqlx::AnyConnection,
    server_id: i64,
    report: &Report,
    detail: RawDetail,
) -> i64 {
    let writer = db.storage().await;
    assert_eq!(
        store(&writer, server_id, report).await,
        RecordOutcome::Stored
    );
    let report_id: i64 =
        sqlx::query_scalar("SELECT id FROM reports WHERE server_id = ? AND collected_at = ?")
            .bind(server_id)
            .bind(report.collected_at)
            .fetch_one(&mut *conn)
            .await
            .expect("the stored row");
    let update = sqlx::query("UPDATE reports SET detail = ? WHERE id = ?");
    let update = match detail {
        RawDetail::Text(text) => update.bind(text),
        RawDetail::Bytes(bytes) => update.bind(bytes),
    };
    let done = update
        .bind(report_id)
        .execute(&mut *conn)
        .await
        .expect("update");
    assert_eq!(done.rows_affected(), 1);
    report_id
}

async fn rows_written_before_compact_details_stay_readable(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, _) = storage
        .create_server(1, &name("old"))
        .await
        .expect("create");
    let mut conn = db.raw_connection().await;
    let mut old = common::report(60);
    old.hostname = "old-é-🐇".into();
    old.memory.total = u64::MAX;
    old.extra
        .insert("gpu".into(), serde_json::json!({"model": "X"}));
    let json = serde_json::to_string(&old).expect("json");
    store_with_detail(&db, &mut conn, server.id, &old, RawDetail::Text(json)).await;
    if backend == Backend::MySql {
        // The column as it was before migration 0120, holding that row...
        sqlx::raw_sql(
            "ALTER TABLE reports MODIFY detail MEDIUMTEXT \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
        )
        .execute(&mut conn)
        .await
        .expect("old column type");
        // ...and the upgrade itself.
        sqlx::raw_sql(include_str!("../migrations/mysql/0120_compact_detail.sql"))
            .execute(&mut conn)
            .await
            .expect("migration 0120");
    }
    let row = storage
        .latest_report(server.id)
        .await
        .expect("latest")
        .expect("some");
    assert_eq!(row.detail.first(), Some(&b'{'), "still the old JSON");
    assert_eq!(row.report().expect("rebuilt"), old);

    // A new report beside it is written compact.
    let new = common::report(0);
    assert!(matches!(
        store(&storage, server.id, &new).await,
        RecordOutcome::Stored
    ));
    let rows = storage.last_two_reports(server.id).await.expect("last two");
    assert_eq!(rows[0].detail.first(), Some(&1), "format 1");
    assert!(rows[0].detail.len() < rows[1].detail.len() / 3);
    assert_eq!(rows[0].report().expect("rebuilt"), new);
    assert_eq!(rows[1].report().expect("rebuilt"), old);
    conn.close().await.expect("close");
}

/// Migration 0140 (no `collected_at` index; on MySQL narrower columns and
/// page compression) keeps every row written before it readable, figures
/// at the top of their range included.
async fn rows_written_before_0140_stay_readable(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, _) = storage
        .create_server(1, &name("old"))
        .await
        .expect("create");
    let mut conn = db.raw_connection().await;
    // The table as it was before migration 0140.
    let before = match backend {
        Backend::MySql => {
            "ALTER TABLE reports ADD INDEX reports_collected_at (collected_at), \
             MODIFY cpu_cores BIGINT NOT NULL, MODIFY process_count BIGINT NOT NULL, \
             PAGE_COMPRESSED = 0"
        }
        Backend::Sqlite => "CREATE INDEX reports_collected_at ON reports (collected_at)",
    };
    sqlx::raw_sql(before)
        .execute(&mut conn)
        .await
        .expect("the table before 0140");
    // Rows written then: a compact one with the largest figures the
    // narrowed columns must hold, and, older still, the whole report as
    // JSON.
    let mut legacy = common::report(180);
    legacy.cpu.logical_cores = 0;
    let legacy_json = RawDetail::Text(serde_json::to_string(&legacy).expect("json"));
    store_with_detail(&db, &mut conn, server.id, &legacy, legacy_json).await;
    let mut old = common::report(120);
    old.cpu.logical_cores = u32::MAX;
    old.process_count = u32::MAX;
    assert!(matches!(
        store(&storage, server.id, &old).await,
        RecordOutcome::Stored
    ));
    let migration = match backend {
        Backend::MySql => include_str!("../migrations/mysql/0140_narrow_reports.sql"),
        Backend::Sqlite => include_str!("../migrations/sqlite/0140_narrow_reports.sql"),
    };
    sqlx::raw_sql(migration)
        .execute(&mut conn)
        .await
        .expect("migration 0140");

    let index = match backend {
        Backend::MySql => {
            "SELECT COUNT(*) FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND index_name = 'reports_collected_at'"
        }
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE name = 'reports_collected_at'",
    };
    let indexes: i64 = sqlx::query_scalar(index)
        .fetch_one(&mut conn)
        .await
        .expect("index count");
    assert_eq!(indexes, 0, "the collected_at index is gone");
    if backend == Backend::MySql {
        let types: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(column_type AS CHAR) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = 'reports' \
             AND column_name IN ('cpu_cores', 'process_count') ORDER BY column_name",
        )
        .fetch_all(&mut conn)
        .await
        .expect("column types");
        assert_eq!(types, ["int(10) unsigned", "int(10) unsigned"]);
    }

    let new = common::report(60);
    assert!(matches!(
        store(&storage, server.id, &new).await,
        RecordOutcome::Stored
    ));
    let rows = storage.recent_reports(server.id, 10).await.expect("recent");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].detail.first(), Some(&b'{'));
    assert_eq!(rows[2].report().expect("rebuilt"), legacy);
    assert_eq!(rows[1].figures.cpu_cores, i64::from(u32::MAX));
    assert_eq!(rows[1].figures.process_count, i64::from(u32::MAX));
    assert_eq!(rows[1].report().expect("rebuilt"), old);
    assert_eq!(rows[0].report().expect("rebuilt"), new);
    conn.close().await.expect("close");
}

async fn a_corrupt_detail_is_a_clear_error(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, _) = storage
        .create_server(1, &name("bad"))
        .await
        .expect("create");
    let mut conn = db.raw_connection().await;
    let cases: [(Vec<u8>, &str); 4] = [
        (vec![1, 0xde, 0xad, 0xbe, 0xef], "does not decompress"),
        (vec![9, 1, 2], "format 0x09"),
        (Vec::new(), "empty"),
        (b"{\"version\":1".to_vec(), "not a readable report"),
    ];
    for (i, (detail, expected)) in cases.into_iter().enumerate() {
        let report = common::report(200 - 20 * i as i64);
        let id =
            store_with_detail(&db, &mut conn, server.id, &report, RawDetail::Bytes(detail)).await;
        let row = storage
            .latest_report(server.id)
            .await
            .expect("the row itself reads")
            .expect("some");
        assert_eq!(row.id, id);
        match row.report() {
            Err(StorageError::Corrupt(message)) => {
                assert!(message.contains(&format!("report {id}")), "{message}");
                assert!(message.contains(expected), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    conn.close().await.expect("close");
}

async fn the_database_paces_each_server(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (a, _) = storage.create_server(1, &name("a")).await.expect("create");
    let (b, _) = storage.create_server(1, &name("b")).await.expect("create");
    let first = common::report(100);
    assert!(matches!(
        store(&storage, a.id, &first).await,
        RecordOutcome::Stored
    ));

    // Same nonce again: a replay, whatever the report.
    let nonce = "same-nonce-0123456789";
    let later = common::report(50);
    let outcome = storage
        .record_report(&new_report(a.id, &later, nonce))
        .await
        .expect("storage");
    assert!(matches!(outcome, RecordOutcome::Stored));
    let even_later = common::report(20);
    let replay = storage
        .record_report(&new_report(a.id, &even_later, nonce))
        .await
        .expect("storage");
    assert_eq!(replay, RecordOutcome::NonceUsed);
    // The same nonce on another server is that server's business.
    let outcome = storage
        .record_report(&new_report(b.id, &even_later, nonce))
        .await
        .expect("storage");
    assert!(matches!(outcome, RecordOutcome::Stored));

    // Not later than the last: duplicate or out of order.
    assert_eq!(
        store(&storage, a.id, &later).await,
        RecordOutcome::NotNewer {
            last_collected_at: later.collected_at
        }
    );
    assert_eq!(
        store(&storage, a.id, &first).await,
        RecordOutcome::NotNewer {
            last_collected_at: later.collected_at
        }
    );
    // Sooner than the interval.
    let mut soon = later.clone();
    soon.collected_at += 4;
    assert_eq!(
        store(&storage, a.id, &soon).await,
        RecordOutcome::TooSoon {
            retry_after_secs: 6
        }
    );
    // Refusals changed nothing: the interval still counts from `later`.
    let mut on_time = later.clone();
    on_time.collected_at += 10;
    assert!(matches!(
        store(&storage, a.id, &on_time).await,
        RecordOutcome::Stored
    ));
    assert_eq!(storage.count_reports(a.id).await.expect("count"), 3);
    let server = storage
        .get_server(a.id, 1)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(server.last_collected_at, Some(on_time.collected_at));
    assert!(server.last_seen_at.is_some());
}

async fn the_arrival_cap_holds(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, _) = storage
        .create_server(1, &name("flood"))
        .await
        .expect("create");
    let mut outcomes = Vec::new();
    for i in 0..4 {
        let r = common::report(1000 - i * 10);
        let nonce = serversan_protocol::random_nonce().expect("nonce");
        let mut new = new_report(server.id, &r, &nonce);
        new.max_per_minute = 3;
        outcomes.push(storage.record_report(&new).await.expect("storage"));
    }
    assert!(
        outcomes[..3]
            .iter()
            .all(|o| matches!(o, RecordOutcome::Stored))
    );
    match &outcomes[3] {
        RecordOutcome::RateCapped { retry_after_secs } => {
            assert!((1..=60).contains(retry_after_secs), "{retry_after_secs}")
        }
        other => panic!("capped: {other:?}"),
    }
    assert_eq!(storage.count_reports(server.id).await.expect("count"), 3);
}

async fn deleting_a_server_removes_its_reports(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (gone, _) = storage
        .create_server(1, &name("gone"))
        .await
        .expect("create");
    let (kept, _) = storage
        .create_server(1, &name("kept"))
        .await
        .expect("create");
    for i in 0..5 {
        let r = common::report(500 - i * 10);
        assert!(matches!(
            store(&storage, gone.id, &r).await,
            RecordOutcome::Stored
        ));
        assert!(matches!(
            store(&storage, kept.id, &r).await,
            RecordOutcome::Stored
        ));
    }
    assert!(storage.delete_server(gone.id, 1).await.expect("delete"));
    assert_eq!(storage.count_reports(gone.id).await.expect("count"), 0);
    assert_eq!(storage.count_reports(kept.id).await.expect("count"), 5);
    assert_eq!(
        storage.purge_deleted_servers().await.expect("purge"),
        0,
        "nothing left"
    );
}

async fn leases_are_exclusive_until_expiry(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let ttl = std::time::Duration::from_secs(30);
    let now = unix_now();
    assert!(
        storage
            .try_lease("job", "a", now, ttl)
            .await
            .expect("lease")
    );
    assert!(
        !storage
            .try_lease("job", "b", now, ttl)
            .await
            .expect("lease")
    );
    assert!(
        storage
            .try_lease("job", "a", now + 1, ttl)
            .await
            .expect("renew")
    );
    assert!(
        storage
            .try_lease("other", "b", now, ttl)
            .await
            .expect("lease")
    );
    // Once it expires, another holder takes over.
    assert!(
        storage
            .try_lease("job", "b", now + 40, ttl)
            .await
            .expect("take over")
    );
    assert!(
        !storage
            .try_lease("job", "a", now + 41, ttl)
            .await
            .expect("lost")
    );
    storage.release_lease("job", "b").await.expect("release");
    assert!(
        storage
            .try_lease("job", "a", now + 42, ttl)
            .await
            .expect("free again")
    );
}

async fn expired_nonces_are_pruned(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, _) = storage.create_server(1, &name("n")).await.expect("create");
    for (i, expires) in [(0, -100), (1, -1), (2, 1000)] {
        let r = common::report(300 - i * 10);
        let nonce = format!("nonce-number-{i:08}");
        let mut new = new_report(server.id, &r, &nonce);
        new.nonce_expires_at = unix_now() + expires;
        assert!(matches!(
            storage.record_report(&new).await.expect("storage"),
            RecordOutcome::Stored
        ));
    }
    assert_eq!(storage.count_nonces().await.expect("count"), 3);
    assert_eq!(storage.prune_nonces(unix_now()).await.expect("prune"), 2);
    assert_eq!(storage.count_nonces().await.expect("count"), 1);
}

/// The batch writer leaves checkpoints to a connection of its own: shortly
/// after batches are written, the log is copied into the database file
/// without anyone else writing (the writer's automatic checkpoint only
/// runs after 10,000 pages). Read here from the file alone, as SQLite does
/// with `immutable=1`, which ignores the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batches_are_checkpointed_in_the_background() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, _) = storage
        .create_server(1, &name("wal"))
        .await
        .expect("create");
    for i in 0..40 {
        let r = common::report(500 - i * 11);
        assert_eq!(store(&storage, server.id, &r).await, RecordOutcome::Stored);
    }
    let file = db.dir().expect("sqlite").join("serversan.db");
    let in_file = || async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .immutable(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.ok()?;
        let n: Option<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM reports")
            .fetch_one(&mut conn)
            .await
            .ok();
        let _ = conn.close().await;
        n
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = in_file().await;
    while seen != Some(40) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        seen = in_file().await;
    }
    assert_eq!(seen, Some(40), "reports in the database file itself");
    storage.close().await;
}

/// Reports written at the same moment share a transaction (group commit);
/// each must still get exactly the outcome it would get alone.
async fn concurrent_reports_stay_exact(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let mut servers = Vec::new();
    for i in 0..10 {
        let (server, _) = storage
            .create_server(1, &name(&format!("busy{i}")))
            .await
            .expect("create");
        servers.push(server.id);
    }
    let replayed = common::report(900);
    let same_time = common::report(600);
    let nonce = serversan_protocol::random_nonce().expect("nonce");
    let mut tasks = tokio::task::JoinSet::new();
    // One request sent 20 times at once: stored once, then a replay.
    for _ in 0..20 {
        let (storage, r, nonce, id) =
            (storage.clone(), replayed.clone(), nonce.clone(), servers[0]);
        tasks.spawn(async move {
            (
                "replay",
                storage.record_report(&new_report(id, &r, &nonce)).await,
            )
        });
    }
    // Two different requests with one collected_at for one server: one wins.
    for _ in 0..2 {
        let (storage, r, id) = (storage.clone(), same_time.clone(), servers[1]);
        tasks.spawn(async move {
            let nonce = serversan_protocol::random_nonce().expect("nonce");
            (
                "same time",
                storage.record_report(&new_report(id, &r, &nonce)).await,
            )
        });
    }
    // Every other server reports once.
    for &id in &servers[2..] {
        let (storage, r) = (storage.clone(), common::report(300));
        tasks.spawn(async move {
            let nonce = serversan_protocol::random_nonce().expect("nonce");
            (
                "fleet",
                storage.record_report(&new_report(id, &r, &nonce)).await,
            )
        });
    }
    let mut tally = std::collections::BTreeMap::<(&str, String), usize>::new();
    while let Some(done) = tasks.join_next().await {
        let (what, outcome) = done.expect("join");
        let kind = match outcome.expect("storage works") {
            RecordOutcome::Stored => "stored".to_owned(),
            RecordOutcome::NonceUsed => "nonce used".to_owned(),
            RecordOutcome::NotNewer { .. } => "not newer".to_owned(),
            other => format!("{other:?}"),
        };
        *tally.entry((what, kind)).or_default() += 1;
    }
    let expected: std::collections::BTreeMap<(&str, String), usize> = [
        (("replay", "stored".to_owned()), 1),
        (("replay", "nonce used".to_owned()), 19),
        (("same time", "stored".to_owned()), 1),
        (("same time", "not newer".to_owned()), 1),
        (("fleet", "stored".to_owned()), 8),
    ]
    .into_iter()
    .collect();
    assert_eq!(tally, expected);
    assert_eq!(storage.count_all_reports().await.expect("count"), 10);
    // Refused reports left nothing behind: one nonce per stored report.
    assert_eq!(storage.count_nonces().await.expect("count"), 10);
    assert_eq!(storage.count_reports(servers[0]).await.expect("count"), 1);
    assert_eq!(storage.count_reports(servers[1]).await.expect("count"), 1);
}

/// Two instances (two pools, two batch writers) store the same requests at
/// once, as when an agent's retry lands on another instance behind a load
/// balancer: each nonce is accepted at most once, each server's stored
/// reports keep the minimum interval, and nothing refused leaves a row.
/// On MariaDB the batches race for the same rows, which is what sends a
/// batch back to the report-by-report path.
async fn two_instances_racing_stay_exact(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (a, b) = (db.storage().await, db.storage().await);
    let mut servers = Vec::new();
    for i in 0..8 {
        let (server, _) = a
            .create_server(1, &name(&format!("race{i}")))
            .await
            .expect("create");
        servers.push(server.id);
    }
    let start = unix_now() - 1_000;
    let mut stored_nonces = std::collections::HashSet::new();
    let mut nonce_used = Vec::new();
    let mut stored = 0;
    // Two waves: in the second, an instance that stored a report of a
    // server in the first has a keyframe to encode against (whether its
    // delta or the other instance's keyframe wins each race varies).
    for wave in [0..15, 15..30] {
        let mut tasks = tokio::task::JoinSet::new();
        for &id in &servers {
            for k in wave.clone() {
                // 5 s apart against a 10 s interval: about every other one fits.
                let report = common::report(0);
                let report = Report {
                    collected_at: start + k * 5,
                    ..report
                };
                let nonce = serversan_protocol::random_nonce().expect("nonce");
                for storage in [a.clone(), b.clone()] {
                    let (report, nonce) = (report.clone(), nonce.clone());
                    tasks.spawn(async move {
                        let outcome = storage
                            .record_report(&new_report(id, &report, &nonce))
                            .await;
                        (id, nonce, outcome.expect("storage works"))
                    });
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            let (id, nonce, outcome) = done.expect("join");
            match outcome {
                RecordOutcome::Stored => {
                    assert!(stored_nonces.insert(nonce), "a nonce was accepted twice");
                    stored += 1;
                }
                RecordOutcome::NonceUsed => nonce_used.push(nonce),
                RecordOutcome::NotNewer { .. } | RecordOutcome::TooSoon { .. } => {}
                other => panic!("server {id}: unexpected {other:?}"),
            }
        }
    }
    for nonce in &nonce_used {
        assert!(
            stored_nonces.contains(nonce),
            "NonceUsed for a nonce never stored"
        );
    }
    assert!(
        stored >= servers.len(),
        "every server got at least one report in"
    );
    assert_eq!(a.count_all_reports().await.expect("count"), stored as i64);
    assert_eq!(a.count_nonces().await.expect("count"), stored as i64);
    let listed = a.list_servers(1).await.expect("list");
    for &id in &servers {
        let rows = a.recent_reports(id, 100).await.expect("reports");
        for pair in rows.windows(2) {
            assert!(
                pair[0].collected_at >= pair[1].collected_at + 10,
                "interval broken: {pair:?}"
            );
        }
        let server = listed.iter().find(|s| s.id == id).expect("listed");
        assert_eq!(
            server.last_collected_at,
            rows.first().map(|r| r.collected_at)
        );
        // Each instance encoded against its own keyframes, committed
        // batch by batch: every row reads.
        for row in &rows {
            let report = row.report().expect("every row decodes");
            assert_eq!(report.collected_at, row.collected_at);
        }
    }
}

/// Format bytes of `storage::detail`.
const FORMAT_KEYFRAME: u8 = 1;
const FORMAT_DELTA: u8 = 2;

/// Stores `report` as received 2 s after collection.
async fn store_received(storage: &Storage, server_id: i64, report: &Report) -> RecordOutcome {
    let nonce = serversan_protocol::random_nonce().expect("nonce");
    let received_at = report.collected_at + 2;
    storage
        .record_report(&NewReport {
            server_id,
            key_id: None,
            report,
            nonce: &nonce,
            nonce_expires_at: received_at + 300,
            received_at,
            min_interval_secs: 10,
            max_per_minute: 1_000,
        })
        .await
        .expect("storage works")
}

/// A host's report at minute `i` after `start`: the shape stays, figures
/// move.
fn minute(start: i64, i: i64) -> Report {
    let mut r = Report::example(start + 60 * i);
    r.cpu.usage_percent = (i * 7 % 100) as f64;
    r.memory.used = (2 << 30) + (i as u64 % 97) * (1 << 20);
    r.memory.available = r.memory.total - r.memory.used;
    r.filesystems[0].used += i as u64 * 4096 * 13;
    r.network[0].rx_bytes += i as u64 * 1_234_567;
    r.network[0].tx_bytes += i as u64 * 123_457;
    r.top_cpu[0].memory_bytes += i as u64 * 4096;
    r.top_cpu[0].cpu_percent = (i % 13) as f64 + 0.25;
    r
}

/// A server's reports become deltas against a keyframe, a new keyframe
/// after [`MAX_USES`](serversan::storage) reports or when the report no
/// longer looks like the keyframe, and every one reads back exactly.
async fn reports_are_stored_as_deltas_against_keyframes(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let (server, _) = storage
        .create_server(1, &name("seq"))
        .await
        .expect("create");
    let start = unix_now() - 200 * 60;
    let mut sent = Vec::new();
    for i in 0..150 {
        let mut report = minute(start, i);
        if i >= 100 {
            // Another shape: a keyframe is due.
            for k in 0..8 {
                report
                    .filesystems
                    .push(serversan_protocol::report::Filesystem {
                        mount_point: format!("/mnt/volume_{k:02}_{:x}", 0x9e37_79b9_u64 * k),
                        fs_type: "xfs".into(),
                        total: (1 << 40) + k * 4096,
                        used: (1 << 38) + k * 8192,
                    });
            }
        }
        assert_eq!(
            store_received(&storage, server.id, &report).await,
            RecordOutcome::Stored
        );
        sent.push(report);
    }
    let mut rows = storage
        .recent_reports(server.id, 1_000)
        .await
        .expect("rows");
    rows.reverse();
    assert_eq!(rows.len(), sent.len());
    let formats: Vec<u8> = rows.iter().map(|r| r.detail[0]).collect();
    let keyframes: Vec<usize> = (0..formats.len())
        .filter(|&i| formats[i] == FORMAT_KEYFRAME)
        .collect();
    // A keyframe serves the reports arriving within 45 minutes of it; one
    // more where the shape changed.
    assert_eq!(keyframes, [0, 45, 90, 100, 145], "{formats:?}");
    assert!(
        formats
            .iter()
            .all(|f| [FORMAT_KEYFRAME, FORMAT_DELTA].contains(f))
    );
    for (row, report) in rows.iter().zip(&sent) {
        assert_eq!(&row.report().expect("rebuilt"), report, "lossless");
        assert_eq!(
            row.keyframe.is_some(),
            row.detail[0] == FORMAT_DELTA,
            "a delta is read with its keyframe, nothing else is"
        );
    }
    let size = |f: u8| {
        let sizes: Vec<usize> = rows
            .iter()
            .filter(|r| r.detail[0] == f)
            .map(|r| r.detail.len())
            .collect();
        sizes.iter().sum::<usize>() / sizes.len()
    };
    assert!(
        size(FORMAT_DELTA) * 2 < size(FORMAT_KEYFRAME),
        "deltas {} B, keyframes {} B",
        size(FORMAT_DELTA),
        size(FORMAT_KEYFRAME)
    );
    // The latest report alone, and the last two, read with their keyframe.
    let latest = storage
        .latest_report(server.id)
        .await
        .expect("latest")
        .expect("some");
    assert_eq!(latest.report().expect("rebuilt"), sent[149]);
    let two = storage.last_two_reports(server.id).await.expect("two");
    assert_eq!(two[1].report().expect("rebuilt"), sent[148]);
}

/// A second instance (its own, empty keyframe cache), a new handle (a
/// restart) and refused reports never leave a delta without its keyframe:
/// a report refused by the database must not become a keyframe, since
/// its row does not exist.
async fn a_lost_or_stale_keyframe_cache_never_loses_a_report(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (a, b) = (db.storage().await, db.storage().await);
    let (server, _) = a.create_server(1, &name("two")).await.expect("create");
    let start = unix_now() - 100 * 60;
    let at = |secs: i64| minute(start, 0).collected_at + secs;
    let report = |secs: i64| {
        let mut r = minute(start, secs / 60 + 1);
        r.collected_at = at(secs);
        r
    };
    // The third handle is a restart: nothing cached.
    let c = db.storage().await;
    let steps: [(&Storage, i64, &str); 10] = [
        (&a, 0, "Stored"),    // a's keyframe
        (&a, 60, "Stored"),   // delta against 0
        (&b, 65, "TooSoon"),  // b's would-be keyframe: refused
        (&b, 60, "NotNewer"), // likewise
        (&b, 120, "Stored"),  // so this one is a keyframe
        (&a, 180, "Stored"),  // delta against 0
        (&b, 240, "Stored"),  // delta against 120
        (&c, 300, "Stored"),  // keyframe
        (&c, 360, "Stored"),  // delta against 300
        (&a, 420, "Stored"),  // delta against 0, still
    ];
    let mut sent = Vec::new();
    for (storage, secs, expect) in steps {
        let r = report(secs);
        let outcome = store_received(storage, server.id, &r).await;
        let kind = format!("{outcome:?}");
        assert!(kind.starts_with(expect), "at {secs}: {kind}");
        if outcome == RecordOutcome::Stored {
            sent.push(r);
        }
    }
    let mut rows = a.recent_reports(server.id, 100).await.expect("rows");
    rows.reverse();
    let formats: Vec<u8> = rows.iter().map(|r| r.detail[0]).collect();
    assert_eq!(formats, [1, 2, 1, 2, 2, 1, 2, 2]);
    for (row, report) in rows.iter().zip(&sent) {
        assert_eq!(&row.report().expect("rebuilt"), report);
    }
    let keyframe_of = |i: usize| {
        serversan::storage::detail::keyframe_at(&rows[i].detail, rows[i].collected_at)
            .expect("reference")
    };
    assert_eq!(keyframe_of(3), Some(at(0)));
    assert_eq!(keyframe_of(4), Some(at(120)));
    assert_eq!(keyframe_of(6), Some(at(300)));
    assert_eq!(keyframe_of(7), Some(at(0)));
}

/// Deltas of many servers stored at once (batched; on MariaDB by 4
/// concurrent writers), against keyframes stored before: every row reads.
async fn concurrent_deltas_all_read(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let start = unix_now() - 100 * 60;
    let mut servers = Vec::new();
    for i in 0..20 {
        let (server, _) = storage
            .create_server(1, &name(&format!("many{i}")))
            .await
            .expect("create");
        assert_eq!(
            store_received(&storage, server.id, &minute(start, 0)).await,
            RecordOutcome::Stored
        );
        servers.push(server.id);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for &id in &servers {
        for i in 1..6 {
            let storage = storage.clone();
            tasks.spawn(async move {
                let report = minute(start, i);
                (store_received(&storage, id, &report).await, report)
            });
        }
    }
    let mut stored = 0;
    while let Some(done) = tasks.join_next().await {
        let (outcome, _) = done.expect("join");
        stored += usize::from(outcome == RecordOutcome::Stored);
    }
    assert!(stored >= servers.len(), "{stored}");
    let mut deltas = 0;
    for &id in &servers {
        for row in storage.recent_reports(id, 100).await.expect("rows") {
            let report = row.report().expect("every row decodes");
            assert_eq!(report, minute(start, (row.collected_at - start) / 60));
            deltas += usize::from(row.detail[0] == FORMAT_DELTA);
        }
    }
    assert_eq!(
        deltas, stored,
        "every report after the keyframes is a delta"
    );
}

/// On MariaDB each instance keeps its servers' pacing rows as it last
/// wrote them and plans batches from them (SQLite reads them every time,
/// and must give the same outcomes). Here another instance (another
/// `Storage` on the same database) moves a server on, rotates its key,
/// deletes it, each time right after the first instance cached the row:
/// every report must still get the outcome the row itself gives, and
/// store nothing else.
async fn a_stale_pacing_cache_changes_no_outcome(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (a, b) = (db.storage().await, db.storage().await);
    let (server, _) = a.create_server(1, &name("stale")).await.expect("create");
    let id = server.id;
    let start = unix_now() - 1_000;
    let send = |storage: &Storage, key: &str, at: i64| {
        let (storage, key) = (storage.clone(), key.to_owned());
        async move {
            let report = Report {
                collected_at: start + at,
                ..common::report(0)
            };
            let nonce = serversan_protocol::random_nonce().expect("nonce");
            let new = NewReport {
                key_id: Some(&key),
                ..new_report(id, &report, &nonce)
            };
            storage.record_report(&new).await.expect("storage works")
        }
    };
    let key = server.key_id.clone();
    let mut stored = 0;

    // Moved on by b: a's copy is older than the row.
    assert_eq!(send(&a, &key, 0).await, RecordOutcome::Stored);
    assert_eq!(send(&b, &key, 100).await, RecordOutcome::Stored);
    stored += 2;
    assert_eq!(
        send(&a, &key, 50).await,
        RecordOutcome::NotNewer {
            last_collected_at: start + 100
        },
        "newer than a's copy, not than the row"
    );
    assert_eq!(send(&a, &key, 200).await, RecordOutcome::Stored);
    assert_eq!(send(&b, &key, 300).await, RecordOutcome::Stored);
    stored += 2;
    assert_eq!(
        send(&a, &key, 305).await,
        RecordOutcome::TooSoon {
            retry_after_secs: 5
        },
        "due by a's copy, too soon by the row"
    );

    // Rotated by b: a's copy has the old key.
    assert_eq!(send(&a, &key, 400).await, RecordOutcome::Stored);
    stored += 1;
    let second = b.rotate_code(id, 1).await.expect("rotate").expect("server");
    assert_eq!(
        send(&a, &key, 450).await,
        RecordOutcome::ServerGone,
        "the old key, which a's copy still has"
    );
    assert_eq!(send(&a, second.key_id(), 500).await, RecordOutcome::Stored);
    stored += 1;
    let third = b.rotate_code(id, 1).await.expect("rotate").expect("server");
    assert_eq!(
        send(&a, third.key_id(), 600).await,
        RecordOutcome::Stored,
        "the new key, which a's copy does not have yet"
    );
    stored += 1;

    // Deleted by b: a's copy is of a row that is gone.
    assert!(b.delete_server(id, 1).await.expect("delete"));
    assert_eq!(
        send(&a, third.key_id(), 700).await,
        RecordOutcome::ServerGone
    );
    // The delete purged the reports; nothing was stored after it.
    assert_eq!(a.count_all_reports().await.expect("count"), 0);
    assert_eq!(a.count_nonces().await.expect("count"), stored);
}
