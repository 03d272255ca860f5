//! Stored reports queued for alert evaluation and evaluated in batches, on
//! SQLite and MariaDB: the same state and messages as one report at a
//! time, reports of one server applied in order within a batch, a deleted
//! server not breaking its batch, and a batch failing on the database
//! logged while the worker goes on.

mod alerts_support;
mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alerts_support::*;
use common::Backend;
use serversan::alerts::eval::{Subject, Track};
use serversan::alerts::{AlertSettings, Alerts, ManualClock, Metric, ReportQueue};
use serversan::storage::{NewReport, RecordOutcome, Server, Storage, StorageOptions, unix_now};
use serversan_protocol::Report;
use tokio_util::sync::CancellationToken;

on_both_backends!(
    a_burst_through_the_queue_matches_one_report_at_a_time,
    reports_of_one_server_in_one_batch_apply_in_order,
    a_deleted_server_does_not_break_its_batch,
    ingest_and_alert_batches_interleave,
);

/// A second owner who talked to the bot, with servers named like the first
/// owner's, so their messages can be compared word for word.
const OTHER: i64 = OWNER + 1;

/// The queue's worker, stopped when dropped.
struct Worker {
    queue: ReportQueue,
    stop: CancellationToken,
}

impl Worker {
    fn start(alerts: &Alerts) -> Self {
        let stop = CancellationToken::new();
        let (queue, _task) = alerts.start_report_queue(&stop);
        Self { queue, stop }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A report of server `i` at minute `m` of the burst: CPU in and out of a
/// two-minute window, the root filesystem around its line, memory high on
/// some servers, and now and then a report from a flushed spool.
fn burst_report(now: i64, i: usize, m: usize) -> Report {
    let stale = (i + m) % 9 == 4;
    let mut r = Report::example(if stale { now - 1200 } else { now });
    cpu(if (i * 3 + m) % 7 < 4 {
        95.0
    } else {
        40.0 + i as f64
    })(&mut r);
    disk("/", 80.0 + ((i * 5 + m * 3) % 15) as f64)(&mut r);
    if i.is_multiple_of(4) {
        mem(95.0)(&mut r);
    }
    r
}

async fn servers_of(storage: &Storage, owner: i64, n: usize) -> Vec<Server> {
    let mut servers = Vec::new();
    for i in 0..n {
        servers.push(add_server(storage, owner, &format!("s{i:02}")).await);
    }
    servers
}

async fn state(alerts: &Alerts, server_id: i64) -> Vec<(Subject, Track)> {
    alerts.state(server_id).await.expect("state")
}

async fn a_burst_through_the_queue_matches_one_report_at_a_time(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    const SERVERS: usize = 12;
    talk_to_bot(&f.storage, OTHER).await;
    // OWNER's servers are evaluated one report at a time, OTHER's through
    // the queue, with the same reports at the same times.
    let one_by_one = servers_of(&f.storage, OWNER, SERVERS).await;
    let queued_ones = servers_of(&f.storage, OTHER, SERVERS).await;
    for owner in [OWNER, OTHER] {
        f.alerts
            .set_rule(owner, None, Metric::Cpu, rule(90.0, 2))
            .await
            .expect("rule");
    }
    for (owner, servers) in [(OWNER, &one_by_one), (OTHER, &queued_ones)] {
        f.alerts
            .mute(owner, Some(servers[2].id), Duration::from_secs(150))
            .await
            .expect("mute");
    }
    let worker = Worker::start(&f.alerts);
    // Servers 5 and 11 are silent in minutes 2 to 4.
    let reports_at = |m: usize| {
        let now = T0 + 60 * (m as i64 + 1);
        (0..SERVERS)
            .filter(move |i| !(i % 6 == 5 && (2..5).contains(&m)))
            .map(move |i| (i, now, burst_report(now, i, m)))
    };
    for minutes in [0..5, 5..8] {
        if minutes.start == 5 {
            // The silent servers go offline; the mute has ended.
            f.clock.set(T0 + 360);
            f.alerts.tick().await.expect("tick");
        }
        for (i, now, report) in minutes.clone().flat_map(reports_at) {
            f.clock.set(now);
            f.alerts
                .on_report(one_by_one[i].id, &report)
                .await
                .expect("evaluate");
        }
        // The same reports at the same times, queued in a burst: the worker
        // takes them in large batches holding several of each server.
        for (i, now, report) in minutes.clone().flat_map(reports_at) {
            f.clock.set(now);
            worker
                .queue
                .report_stored(queued_ones[i].id, &report)
                .await
                .expect("queue");
        }
        worker.queue.flush().await.expect("flush");
    }

    let expected = queued(&f.storage, OWNER).await;
    assert!(expected.len() >= SERVERS, "too quiet a burst: {expected:?}");
    for kind in ["alert", "recovered", "Offline", "reporting again"] {
        assert!(
            expected.iter().any(|m| m.contains(kind)),
            "no {kind:?} message in {expected:?}"
        );
    }
    assert_eq!(queued(&f.storage, OTHER).await, expected);
    for (a, b) in one_by_one.iter().zip(&queued_ones) {
        assert_eq!(
            state(&f.alerts, b.id).await,
            state(&f.alerts, a.id).await,
            "{}",
            a.name
        );
    }
}

async fn reports_of_one_server_in_one_batch_apply_in_order(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let t = f.now();
    let at = |secs_ago: i64, percent: f64| {
        let mut r = Report::example(t - secs_ago);
        cpu(percent)(&mut r);
        r
    };
    // A breach then a recovery in one batch: told both, in that order,
    // and nothing left stored.
    f.set_rule(Some(f.server.id), Metric::Cpu, rule(90.0, 0))
        .await;
    let (breach, recovery) = (at(60, 95.0), at(0, 50.0));
    f.alerts
        .on_reports(&[(f.server.id, &breach), (f.server.id, &recovery)])
        .await
        .expect("batch");
    let messages = f.messages().await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].starts_with("🔴 <b>web1</b>: alert"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("✅ <b>web1</b>: recovered")
            && messages[1].contains("CPU back to 50%"),
        "{messages:?}"
    );
    assert!(state(&f.alerts, f.server.id).await.is_empty());

    // Three breaching minutes in one batch fill a two-minute window: each
    // report saw the run the one before started.
    let db2 = add_server(&f.storage, OWNER, "db2").await;
    f.set_rule(Some(db2.id), Metric::Cpu, rule(90.0, 2)).await;
    let run = [at(120, 95.0), at(60, 96.0), at(0, 97.0)];
    let batch: Vec<(i64, &Report)> = run.iter().map(|r| (db2.id, r)).collect();
    f.alerts.on_reports(&batch).await.expect("batch");
    let messages = f.messages().await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(
        messages[2].contains("CPU 97% ≥ 90% for 2m, since 2026-11-25 11:58 UTC"),
        "{}",
        messages[2]
    );
    let stored = state(&f.alerts, db2.id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (subject, track) = &stored[0];
    assert_eq!(subject, &Subject::of(Metric::Cpu));
    assert_eq!(track.breach_since, Some(t - 120));
    assert_eq!(track.firing_since, Some(t - 120));
    assert_eq!(track.last_at, Some(t));
    assert!(track.told);
}

async fn a_deleted_server_does_not_break_its_batch(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let db2 = add_server(&f.storage, OWNER, "db2").await;
    f.set_rule(None, Metric::Cpu, rule(90.0, 0)).await;
    f.set_rule(Some(f.server.id), Metric::Disk, None).await;
    f.report(cpu(99.0)).await;
    assert_eq!(f.messages().await.len(), 1);
    assert!(
        f.storage
            .delete_server(f.server.id, OWNER)
            .await
            .expect("delete")
    );
    f.clock.advance(60);
    let mut hot = Report::example(f.now());
    cpu(99.0)(&mut hot);
    f.alerts
        .on_reports(&[(f.server.id, &hot), (db2.id, &hot), (f.server.id, &hot)])
        .await
        .expect("batch");
    let messages = f.messages().await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[1].contains("<b>db2</b>"), "{}", messages[1]);
    assert_eq!(state(&f.alerts, db2.id).await.len(), 1);
    // The deleted server's rows are gone: state, and its own rule.
    assert!(state(&f.alerts, f.server.id).await.is_empty());
    let rules = f.alerts.stored_rules(OWNER).await.expect("rules");
    assert!(
        rules.iter().all(|(server, _, _)| *server != f.server.id),
        "{rules:?}"
    );
}

/// Warnings logged by this test binary.
fn logged() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        log
    })
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn take_log() -> String {
    String::from_utf8_lossy(&std::mem::take(&mut *logged().lock().expect("log"))).into_owned()
}

/// Ingest's group commit and the queue's alert batches at once. On an
/// SQLite file both write on one connection, taking turns
/// (`Storage::write_turn`); every report must still be stored, in order,
/// and evaluated, whichever batch gets the connection first.
async fn ingest_and_alert_batches_interleave(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    const SERVERS: usize = 24;
    const REPORTS: i64 = 8;
    let servers = servers_of(&f.storage, OWNER, SERVERS).await;
    f.alerts
        .set_rule(OWNER, None, Metric::Cpu, rule(90.0, 0))
        .await
        .expect("rule");
    let worker = Worker::start(&f.alerts);
    let mut agents = tokio::task::JoinSet::new();
    for server in &servers {
        let (storage, queue, id) = (f.storage.clone(), worker.queue.clone(), server.id);
        agents.spawn(async move {
            for k in 0..REPORTS {
                // Hot from the fourth report on: the rule fires then.
                let mut report = Report::example(T0 - 600 + 60 * k);
                cpu(if k < 3 { 20.0 } else { 99.0 })(&mut report);
                let nonce = serversan_protocol::random_nonce().expect("nonce");
                let outcome = storage
                    .record_report(&NewReport {
                        server_id: id,
                        key_id: None,
                        report: &report,
                        nonce: &nonce,
                        nonce_expires_at: unix_now() + 300,
                        received_at: unix_now(),
                        min_interval_secs: 10,
                        max_per_minute: 1_000,
                    })
                    .await
                    .expect("stored");
                assert_eq!(outcome, RecordOutcome::Stored);
                queue.report_stored(id, &report).await.expect("queued");
            }
        });
    }
    // A bound, not a timing: writers waiting for each other for ever would
    // hang the test instead of failing it.
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(agent) = agents.join_next().await {
            agent.expect("agent");
        }
    })
    .await
    .expect("ingest and alert batches both went on");
    worker.queue.flush().await.expect("flush");

    let messages = queued(&f.storage, OWNER).await;
    for server in &servers {
        assert_eq!(
            f.storage.count_reports(server.id).await.expect("count"),
            REPORTS,
            "{}",
            server.name
        );
        let rows = f.storage.recent_reports(server.id, 1).await.expect("rows");
        assert_eq!(rows[0].collected_at, T0 - 600 + 60 * (REPORTS - 1));
        let fired: Vec<_> = messages
            .iter()
            .filter(|m| m.contains(&server.name) && m.contains("CPU"))
            .collect();
        assert_eq!(fired.len(), 1, "{}: {messages:?}", server.name);
    }
}

const BATCH_FAILED: &str = "alert evaluation of a batch of reports failed";

/// An engine with the owner, a server with a CPU rule firing at once, and
/// its queue's worker.
struct Failing {
    _alerts: Alerts,
    clock: ManualClock,
    server: Server,
    worker: Worker,
}

impl Failing {
    async fn new(storage: &Storage) -> Self {
        talk_to_bot(storage, OWNER).await;
        let server = add_server(storage, OWNER, "web1").await;
        let clock = ManualClock::new(T0);
        let alerts = Alerts::with_clock(
            storage.clone(),
            AlertSettings::default(),
            Arc::new(clock.clone()),
        );
        alerts
            .set_rule(OWNER, Some(server.id), Metric::Cpu, rule(90.0, 0))
            .await
            .expect("rule");
        let worker = Worker::start(&alerts);
        Self {
            _alerts: alerts,
            clock,
            server,
            worker,
        }
    }

    /// Queues a hot report a minute after the last one and waits until
    /// the worker has dealt with it.
    async fn hot_report(&self) {
        use serversan::alerts::Clock;
        self.clock.advance(60);
        let mut r = Report::example(self.clock.now());
        cpu(99.0)(&mut r);
        let queue = &self.worker.queue;
        queue
            .report_stored(self.server.id, &r)
            .await
            .expect("queue");
        queue.flush().await.expect("the worker answers");
    }

    /// While the database fails: the batch fails, is logged, and raises
    /// nothing.
    async fn fails_while_down(&self) {
        take_log();
        self.hot_report().await;
        let log = take_log();
        assert!(log.contains(BATCH_FAILED), "{log}");
    }

    /// Once the database is back: hot reports until one raises the alert
    /// (the pool may need a moment to reconnect).
    async fn goes_on(&self, storage: &Storage) {
        assert!(
            queued(storage, OWNER).await.is_empty(),
            "the failed batch raised nothing"
        );
        for _ in 0..20 {
            self.hot_report().await;
            if !queued(storage, OWNER).await.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the worker did not go on after a failed batch");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_logged_and_the_worker_goes_on() {
    logged();

    // SQLite: another process holds the write lock past the busy timeout.
    let db = common::TestDb::create(Backend::Sqlite)
        .await
        .expect("sqlite");
    let mut options = StorageOptions::from_config(&db.config());
    options.sqlite_busy_timeout = Duration::from_millis(200);
    let storage = Storage::connect(&options).await.expect("connect");
    storage.migrate().await.expect("migrate");
    let failing = Failing::new(&storage).await;
    let lock = db.hold_write_lock().await;
    failing.fails_while_down().await;
    lock.release().await;
    failing.goes_on(&storage).await;
    drop(failing);

    // MariaDB: the connection to the database is cut.
    let Some(db) = common::TestDb::create(Backend::MySql).await else {
        return;
    };
    let direct = db.storage().await;
    let proxy = common::proxy::Proxy::start().await;
    let mut config = db.config();
    config.database_url = proxy.url_of(&db);
    config.database_timeout = Duration::from_secs(1);
    let storage = Storage::connect(&StorageOptions::from_config(&config))
        .await
        .expect("connect");
    let failing = Failing::new(&storage).await;
    proxy.cut();
    failing.fails_while_down().await;
    proxy.restore();
    failing.goes_on(&direct).await;
}
