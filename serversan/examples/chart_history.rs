//! Chart benchmark from the database: query to PNG bytes, on SQLite and on
//! MariaDB, for one server that reported every minute for 30 days.
//!
//! ```text
//! cargo run --release -p serversan --example chart_history -- \
//!     [--runs N] [--mysql mysql://root@127.0.0.1:3306] [--no-mysql]
//! ```
//!
//! For each backend it creates a throwaway database (an SQLite file in a
//! temporary directory; a MariaDB database named `serversan_bench_…`,
//! dropped at the end), stores 43,200 reports (detail included, as ingest
//! stores them), runs the history job until every rollup exists (timed:
//! that is the backfill of a month), then times `history::chart_history`
//! plus `charts::render_png` per chart and prints the median of N runs
//! (default 21), with the query alone beside it.

use std::time::{Duration, Instant};

use serversan::charts::{ChartRequest, Metric, Period, TimeZone, render_png};
use serversan::config::{DatabaseUrl, SettingValue};
use serversan::history::{self, HistorySettings};
use serversan::storage::{Figures, ServerName, Storage, StorageOptions, detail};
use serversan_protocol::Report;
use serversan_protocol::report::Load;
use sqlx::Connection;

/// Thu 2026-11-05 14:32:10 UTC: the charts end here.
const END: i64 = 1_793_889_130;
const MINUTES: i64 = 30 * 24 * 60;
/// Reports per INSERT while loading.
const LOAD_BATCH: usize = 500;

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let mut runs = 21usize;
    let mut mysql = Some("mysql://root@127.0.0.1:3306".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().ok_or("--runs needs a number")?.parse()?,
            "--mysql" => mysql = Some(args.next().ok_or("--mysql needs a server URL")?),
            "--no-mysql" => mysql = None,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    sqlx::any::install_default_drivers();

    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    bench("SQLite", &sqlite, runs).await?;

    if let Some(server) = mysql {
        let name = format!("serversan_bench_{}", std::process::id());
        let mut admin = sqlx::mysql::MySqlConnection::connect(&server).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut admin)
        .await?;
        let result = bench("MariaDB", &format!("{server}/{name}"), runs).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE `{name}`")))
            .execute(&mut admin)
            .await?;
        result?;
    }
    Ok(())
}

async fn bench(label: &str, url: &str, runs: usize) -> Result<(), Error> {
    let storage = Storage::connect(&StorageOptions::new(DatabaseUrl::parse(url)?)).await?;
    storage.migrate().await?;
    let (server, _code) = storage
        .create_server(1, &ServerName::parse("web-1.example")?)
        .await?;

    let started = Instant::now();
    load(url, server.id).await?;
    let loading = started.elapsed();

    let settings = HistorySettings {
        batch_pause: Duration::ZERO,
        ..HistorySettings::default()
    };
    let started = Instant::now();
    while history::maintain(&storage, &settings, END + 2 * 3600)
        .await?
        .more()
    {}
    let backfill = started.elapsed();

    println!(
        "{label}: {MINUTES} reports loaded in {:.1} s",
        loading.as_secs_f64()
    );
    println!(
        "{label}: history job, a month of rollups from scratch: {:.2} s",
        backfill.as_secs_f64()
    );
    println!("{label}: query + render, median of {runs} runs (min .. max); query alone");
    for (metric, period) in [
        (Metric::Cpu, Period::H24),
        (Metric::All, Period::H24),
        (Metric::Cpu, Period::D7),
        (Metric::Cpu, Period::D30),
        (Metric::All, Period::D30),
    ] {
        let mut total = Vec::with_capacity(runs);
        let mut query = Vec::with_capacity(runs);
        let mut points = 0;
        // One warm-up run: font registration, connection, statement cache.
        for run in 0..=runs {
            let started = Instant::now();
            let history = history::chart_history(&storage, server.id, period, END).await?;
            let queried = started.elapsed();
            points = history.cpu.len();
            let png = render_png(&ChartRequest {
                server: server.name.clone(),
                metric,
                period,
                end: END,
                zone: TimeZone::utc(),
                history,
            })?;
            let elapsed = started.elapsed();
            std::hint::black_box(png);
            if run > 0 {
                total.push(elapsed);
                query.push(queried);
            }
        }
        let (median, min, max) = spread(&mut total);
        let (query_median, _, _) = spread(&mut query);
        println!(
            "  {period:>3} {metric:<4} {points:>4} points  {:>6.2} ms  ({:.2} .. {:.2})  query {:.2} ms",
            ms(median),
            ms(min),
            ms(max),
            ms(query_median)
        );
    }
    storage.close().await;
    Ok(())
}

/// Stores a month of one-minute reports in a few large transactions, with
/// the same columns ingest writes (through `Figures::from_report`).
async fn load(url: &str, server_id: i64) -> Result<(), Error> {
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let mut host = Host::default();
    let reports: Vec<Report> = (0..MINUTES)
        .rev()
        .map(|i| host.report(END - 60 * i - 13))
        .collect();
    for chunk in reports.chunks(LOAD_BATCH) {
        let rows =
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()];
        let sql = format!(
            "INSERT INTO reports (server_id, collected_at, received_at, hostname, boot_time, \
             cpu_percent, cpu_cores, load1, load5, load15, mem_total, mem_used, mem_available, \
             swap_total, swap_used, disk_total, disk_used, disk_max_percent, net_rx, net_tx, \
             process_count, detail) VALUES {}",
            rows.join(", ")
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            let f = Figures::from_report(r);
            insert = insert
                .bind(server_id)
                .bind(r.collected_at)
                .bind(r.collected_at + 1)
                .bind(f.hostname)
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
                .bind(detail::encode(r)?);
        }
        let mut tx = conn.begin().await?;
        insert.execute(&mut *tx).await?;
        tx.commit().await?;
    }
    conn.close().await?;
    Ok(())
}

/// A plausible server: a daily CPU wave with noise, memory and disk
/// creeping up, traffic counters growing, and a reboot on day 12.
struct Host {
    seed: u64,
    rx: u64,
    tx: u64,
}

impl Default for Host {
    fn default() -> Self {
        Self {
            seed: 0x5eed,
            rx: 0,
            tx: 0,
        }
    }
}

impl Host {
    fn noise(&mut self) -> f64 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.seed >> 33) as f64 / f64::from(u32::MAX >> 1)
    }

    fn report(&mut self, at: i64) -> Report {
        let mut r = Report::example(at);
        let hour = (at % 86_400) as f64 / 3600.0;
        let wave = (std::f64::consts::PI * (hour - 8.0) / 12.0).sin().max(0.0);
        let day = (END - at) as f64 / 86_400.0;
        if (day - 12.0).abs() < 0.0007 {
            self.rx = 0;
            self.tx = 0;
        }
        r.cpu.usage_percent = (8.0 + 45.0 * wave + 10.0 * self.noise()).min(100.0);
        r.load = Some(Load {
            one: 4.0 * r.cpu.usage_percent / 100.0,
            five: 3.0 * r.cpu.usage_percent / 100.0 + 0.1,
            fifteen: 2.0 * r.cpu.usage_percent / 100.0 + 0.2,
        });
        r.memory.used = ((3.0 + wave + self.noise() - day / 30.0) * f64::from(1 << 30)) as u64;
        r.memory.available = r.memory.total - r.memory.used;
        r.filesystems[0].used = ((31.0 - day / 10.0) * f64::from(1 << 30)) as u64;
        self.rx += (120_000_000.0 * (0.2 + wave) * (0.5 + self.noise())) as u64;
        self.tx += (24_000_000.0 * (0.2 + wave) * (0.5 + self.noise())) as u64;
        r.network[0].rx_bytes = self.rx;
        r.network[0].tx_bytes = self.tx;
        r
    }
}

fn spread(times: &mut [Duration]) -> (Duration, Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[0], times[times.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
