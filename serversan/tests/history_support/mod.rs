//! What the history tests share: a database with servers whose reports go
//! through the real storage path, and an independent, naive recomputation
//! of what charts and rollups must say, straight from the reports as sent.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use serversan::charts::Point;
use serversan::history::{self, Bucket, HistorySettings, Resolution, Stat};
use serversan::storage::{NewReport, RecordOutcome, Server, ServerName, Storage};
use serversan_protocol::Report;
use serversan_protocol::report::Load;

use crate::common::{Backend, TestDb};

/// The owner of the test servers (a Telegram user id).
pub const OWNER: i64 = 515_151;

/// A fixed hour: 2026-11-04 00:00 UTC. Reports are collected 17 seconds
/// past the minute so none sits exactly on a bucket or window edge.
pub const T0: i64 = 1_793_750_400;

pub struct Fixture {
    pub db: TestDb,
    pub storage: Storage,
    pub server: Server,
}

impl Fixture {
    /// A migrated database with one server, `web1`; `None` when MySQL is
    /// unavailable outside CI.
    pub async fn new(backend: Backend) -> Option<Self> {
        let db = TestDb::create(backend).await?;
        let storage = db.storage().await;
        let server = add_server(&storage, OWNER, "web1").await;
        Some(Self {
            db,
            storage,
            server,
        })
    }
}

pub async fn add_server(storage: &Storage, owner: i64, name: &str) -> Server {
    let name = ServerName::parse(name).expect("valid name");
    storage.create_server(owner, &name).await.expect("create").0
}

/// Every rollup stored for a server at `resolution`, by time.
pub async fn stored_rollups(
    storage: &Storage,
    server_id: i64,
    resolution: Resolution,
) -> Vec<Bucket> {
    history::rollups(storage, server_id, resolution, 0, i64::MAX)
        .await
        .expect("rollups")
}

/// Settings for tests: reports are rolled up as soon as their bucket ended.
pub fn settings() -> HistorySettings {
    HistorySettings {
        settle: Duration::from_secs(5),
        batch_pause: Duration::ZERO,
        max_report_age: Duration::from_secs(600),
        ..HistorySettings::default()
    }
}

/// A host's figures changing with time: a CPU wave, memory and disk
/// creeping up, counters growing by a varying amount.
pub struct Host {
    rx: u64,
    tx: u64,
    /// Whether the host reports load averages (Linux) or not (Windows).
    pub load: bool,
}

impl Default for Host {
    fn default() -> Self {
        Self {
            rx: 5_000_000,
            tx: 1_000_000,
            load: true,
        }
    }
}

impl Host {
    /// The report collected at `at`.
    pub fn report(&mut self, at: i64) -> Report {
        let mut r = Report::example(at);
        let k = at.rem_euclid(7919) as f64;
        r.cpu.usage_percent = (k * 0.37) % 100.0;
        r.memory.used = (2 << 30) + (at.rem_euclid(1000) as u64) * (1 << 20);
        r.memory.available = r.memory.total - r.memory.used;
        r.filesystems[0].used = (30 << 30) + (at.rem_euclid(3600) as u64) * (1 << 16);
        self.rx += 1_000 + (at.rem_euclid(977) as u64) * 4_096;
        self.tx += 500 + (at.rem_euclid(313) as u64) * 1_024;
        r.network[0].rx_bytes = self.rx;
        r.network[0].tx_bytes = self.tx;
        r.load = self.load.then(|| Load {
            one: k / 1000.0,
            five: k / 2000.0,
            fifteen: k / 4000.0,
        });
        r
    }

    /// The host rebooted: its counters start again from zero.
    pub fn reboot(&mut self) {
        self.rx = 0;
        self.tx = 0;
    }
}

/// Stores the report through the real storage path, as ingest does, as if
/// received `delay` seconds after collection.
pub async fn store(storage: &Storage, server_id: i64, report: &Report, delay: i64) {
    let nonce = serversan_protocol::random_nonce().expect("nonce");
    let outcome = storage
        .record_report(&NewReport {
            server_id,
            key_id: None,
            report,
            nonce: &nonce,
            nonce_expires_at: report.collected_at + 600,
            received_at: report.collected_at + delay,
            min_interval_secs: 1,
            max_per_minute: 1_000,
        })
        .await
        .expect("storage works");
    assert!(matches!(outcome, RecordOutcome::Stored), "{outcome:?}");
}

/// Stores one report at each time (sorted), received 2 seconds after
/// collection; returns them.
pub async fn store_series(
    storage: &Storage,
    server_id: i64,
    host: &mut Host,
    times: impl IntoIterator<Item = i64>,
) -> Vec<Report> {
    let mut stored = Vec::new();
    for at in times {
        let report = host.report(at);
        store(storage, server_id, &report, 2).await;
        stored.push(report);
    }
    stored
}

/// `count` times `every` seconds apart from `first`.
pub fn times(first: i64, every: i64, count: i64) -> impl Iterator<Item = i64> {
    (0..count).map(move |i| first + i * every)
}

/// What a chart must show for one report, computed the obvious way from
/// the report itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    pub at: i64,
    pub cpu: f64,
    pub mem: f64,
    pub disk: f64,
    pub net: Option<(f64, f64)>,
    pub load: Option<(f64, f64, f64)>,
}

/// Each report's figures; rates from the report before it, none across a
/// counter going backwards.
pub fn expected(reports: &[Report]) -> Vec<Expected> {
    let mut out: Vec<Expected> = Vec::new();
    let mut previous: Option<&Report> = None;
    for r in reports {
        let net = previous.and_then(|p| {
            let secs = (r.collected_at - p.collected_at) as f64;
            let (prx, ptx) = p.network_totals();
            let (rx, tx) = r.network_totals();
            (rx >= prx && tx >= ptx).then(|| ((rx - prx) as f64 / secs, (tx - ptx) as f64 / secs))
        });
        out.push(Expected {
            at: r.collected_at,
            cpu: r.cpu.usage_percent,
            mem: r.memory.used as f64 * 100.0 / r.memory.total as f64,
            disk: r.max_disk_percent(),
            net,
            load: r.load.as_ref().map(|l| (l.one, l.five, l.fifteen)),
        });
        previous = Some(r);
    }
    out
}

/// Mean, peak and count of one figure, summed the obvious way.
#[derive(Debug, Clone, Copy, Default)]
pub struct Naive {
    pub count: i64,
    pub sum: f64,
    pub max: f64,
}

impl Naive {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v {
            self.max = if self.count == 0 { v } else { self.max.max(v) };
            self.count += 1;
            self.sum += v;
        }
    }
}

/// The figures of every bucket of `width` seconds that holds a report, keyed
/// by bucket start: cpu, mem, disk, rx, tx, load1, load5, load15.
pub fn naive_buckets(expected: &[Expected], width: i64) -> BTreeMap<i64, (i64, [Naive; 8])> {
    let mut buckets: BTreeMap<i64, (i64, [Naive; 8])> = BTreeMap::new();
    for e in expected {
        let entry = buckets
            .entry(e.at.div_euclid(width) * width)
            .or_insert((0, [Naive::default(); 8]));
        entry.0 += 1;
        let figures = [
            Some(e.cpu),
            Some(e.mem),
            Some(e.disk),
            e.net.map(|n| n.0),
            e.net.map(|n| n.1),
            e.load.map(|l| l.0),
            e.load.map(|l| l.1),
            e.load.map(|l| l.2),
        ];
        for (n, v) in entry.1.iter_mut().zip(figures) {
            n.add(v);
        }
    }
    buckets
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Asserts a stored figure matches the naive one.
pub fn assert_stat(what: &str, stat: &Stat, naive: &Naive) {
    assert_eq!(stat.count, naive.count, "{what}: count");
    if naive.count == 0 {
        assert_eq!(stat.avg(), None, "{what}");
        return;
    }
    let avg = stat.avg().expect("a mean");
    let max = stat.peak().expect("a peak");
    assert!(
        close(avg, naive.sum / naive.count as f64),
        "{what}: mean {avg} vs {}",
        naive.sum / naive.count as f64
    );
    assert!(close(max, naive.max), "{what}: peak {max} vs {}", naive.max);
}

/// Asserts stored rollups are exactly the naive buckets, no more, no less.
pub fn assert_rollups(what: &str, stored: &[Bucket], naive: &BTreeMap<i64, (i64, [Naive; 8])>) {
    let starts: Vec<i64> = stored.iter().map(|b| b.start).collect();
    let expected_starts: Vec<i64> = naive.keys().copied().collect();
    assert_eq!(starts, expected_starts, "{what}: bucket starts");
    for b in stored {
        let (samples, n) = &naive[&b.start];
        let at = format!("{what} @ {}", b.start);
        assert_eq!(b.samples, *samples, "{at}: samples");
        let stats = [
            b.cpu, b.mem, b.disk, b.net_rx, b.net_tx, b.load1, b.load5, b.load15,
        ];
        for (i, (stat, naive)) in stats.iter().zip(n).enumerate() {
            assert_stat(&format!("{at} figure {i}"), stat, naive);
        }
    }
}

/// Asserts a chart line holds one point per expected report with its value.
pub fn assert_line(
    what: &str,
    line: &[Point],
    expected: &[Expected],
    read: fn(&Expected) -> Option<f64>,
) {
    assert_eq!(line.len(), expected.len(), "{what}: points");
    for (p, e) in line.iter().zip(expected) {
        assert_eq!(p.at, e.at, "{what}");
        match (p.avg, read(e)) {
            (Some(a), Some(b)) => assert!(close(a, b), "{what} @ {}: {a} vs {b}", e.at),
            (a, b) => assert_eq!(a, b, "{what} @ {}", e.at),
        }
    }
}
