//! Mass-outage benchmark: how long the alert scheduler takes to notice
//! that many servers went silent at once (a data centre losing its
//! uplink), from the first tick after their offline rule is due to the
//! last server's alert queued.
//!
//! ```text
//! cargo run --release -p serversan --example offline_storm -- \
//!     [--servers N] [--owners N] [--database-url URL]
//! ```
//!
//! It stores `--servers` servers (default 10,000) spread over `--owners`
//! owners (default 10) who talked to the bot, evaluates one report of each
//! (as ingest's alert queue does), moves the engine's clock past the
//! default offline rule and runs the scheduler's ticks back to back until
//! every server's alert is queued. It prints each tick's time and count,
//! and how long the alerts would take at the default tick interval (30 s).
//! The database is a temporary SQLite file unless `--database-url` names
//! another, which must be empty (MariaDB: create it first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serversan::alerts::{AlertSettings, Alerts, ManualClock, outbox};
use serversan::storage::{ServerName, Storage, StorageOptions, UserProfile};
use serversan_protocol::Report;

type Error = Box<dyn std::error::Error>;

/// The server binary's allocator, so the figures are the shipped server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 2026-11-25 12:00 UTC.
const T0: i64 = 1_795_608_000;
const FIRST_OWNER: i64 = 7000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let mut servers = 10_000i64;
    let mut owners = 10i64;
    let mut database_url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--servers" => servers = value()?.parse()?,
            "--owners" => owners = value()?.parse()?,
            "--database-url" => database_url = Some(value()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if servers < 1 || owners < 1 || owners > servers {
        return Err("need 1 <= --owners <= --servers".into());
    }
    let dir = tempfile::tempdir()?;
    let url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("storm.sqlite").display()));
    let storage = Storage::connect(&StorageOptions::new(url.parse()?)).await?;
    storage.migrate().await?;

    let clock = ManualClock::new(T0);
    let settings = AlertSettings::default();
    let tick_every = settings.tick_interval;
    let alerts = Alerts::with_clock(storage.clone(), settings, Arc::new(clock.clone()));

    let started = Instant::now();
    fill(&storage, &alerts, servers, owners).await?;
    println!(
        "{servers} servers of {owners} owners stored and reported in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The default offline rule: silent for 3 minutes. The storm begins.
    clock.advance(4 * 60);
    let mut offline = 0usize;
    let mut ticks = 0usize;
    let mut busy = Duration::ZERO;
    while offline < servers as usize {
        let tick = Instant::now();
        let summary = alerts.tick().await?;
        let took = tick.elapsed();
        busy += took;
        ticks += 1;
        offline += summary.offline;
        println!(
            "tick {ticks}: {} offline in {:.1} ms",
            summary.offline,
            took.as_secs_f64() * 1e3
        );
        if summary.offline == 0 {
            return Err(format!("a tick found nothing with {offline} of {servers} alerted").into());
        }
    }
    let wall = tick_every.as_secs_f64() * (ticks - 1) as f64 + busy.as_secs_f64();
    println!(
        "all {servers} alerts queued: {ticks} ticks, {:.2} s of ticking ({:.0} µs per server); \
         at one tick every {} s the last alert is queued {:.1} s after the first tick",
        busy.as_secs_f64(),
        busy.as_secs_f64() * 1e6 / servers as f64,
        tick_every.as_secs(),
        wall
    );
    // The outage goes on: what every further tick costs meanwhile.
    clock.advance(60);
    let tick = Instant::now();
    let summary = alerts.tick().await?;
    println!(
        "the next tick, with all {servers} still offline: {} new in {:.1} ms",
        summary.offline,
        tick.elapsed().as_secs_f64() * 1e3
    );
    let mut queued = 0;
    for owner in FIRST_OWNER..FIRST_OWNER + owners {
        queued += outbox::messages_for(&storage, owner).await?.len();
    }
    println!("messages in the outbox: {queued}");
    storage.close().await;
    Ok(())
}

/// The owners, their servers and one evaluated report of each.
async fn fill(storage: &Storage, alerts: &Alerts, servers: i64, owners: i64) -> Result<(), Error> {
    for owner in FIRST_OWNER..FIRST_OWNER + owners {
        storage
            .upsert_user(&UserProfile {
                user_id: owner,
                username: Some(format!("owner{owner}")),
                nickname: Some("Owner".to_owned()),
            })
            .await?;
    }
    let report = Report::example(T0);
    let mut ids = Vec::with_capacity(servers as usize);
    for i in 0..servers {
        let owner = FIRST_OWNER + i % owners;
        let name = ServerName::parse(&format!("node-{i}"))?;
        ids.push(storage.create_server(owner, &name).await?.0.id);
    }
    for chunk in ids.chunks(256) {
        let batch: Vec<(i64, &Report)> = chunk.iter().map(|id| (*id, &report)).collect();
        alerts.on_reports(&batch).await?;
    }
    Ok(())
}
