//! Bot latency benchmark: time from an update reaching the Bot API (the
//! test double) to the bot's reply arriving there, for `/stat NAME`,
//! `/list` and a write, `/threshold NAME cpu 90`, with 1,000 servers
//! stored (50 owners with 20 servers each, two reports per server), on
//! SQLite unless told otherwise.
//!
//! ```text
//! cargo run --release -p serversan --example bot_latency -- [--runs N] \
//!     [--database-url URL] [--serve ADDR [--start-after SECS]]
//! ```
//!
//! The bot long-polls the double exactly as it polls Telegram; each command
//! is sent only after the previous reply arrived, so the figures are one
//! user's latency, not throughput.
//!
//! `--database-url URL` stores the servers in that database (it must not
//! hold owners 5000–5049 yet) instead of a temporary SQLite file: MariaDB,
//! or the database of a `serversan serve` that a load generator saturates
//! at the same time, to see the bot's latency under ingest load.
//!
//! `--serve ADDR` also serves report ingest on ADDR from this process,
//! with alert evaluation, as `serversan serve` does next to its bot, and
//! waits `--start-after SECS` (default 0) before timing: point
//! `serversan-loadgen http --url http://ADDR --database-url URL` at it to
//! time the bot while the same process stores reports, as it would in
//! production.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bot_api_double::{BotApiDouble, Options, TestUser};
use serversan::alerts::{AlertSettings, Alerts};
use serversan::bot::{BotSettings, Dispatcher, TelegramSettings};
use serversan::config::{Config, DatabaseUrl, Secret, SettingValue};
use serversan::storage::{NewReport, ServerName, Storage, StorageOptions, unix_now};
use serversan_protocol::Report;
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error>;

/// The server binary's allocator, so the figures are the shipped bot's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OWNERS: i64 = 50;
const SERVERS_EACH: i64 = 20;
const FIRST_OWNER: i64 = 5000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let mut runs = 200usize;
    let mut database_url = None;
    let mut serve = None;
    let mut start_after = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().ok_or("--runs needs a number")?.parse()?,
            "--database-url" => {
                database_url = Some(args.next().ok_or("--database-url needs a URL")?)
            }
            "--serve" => serve = Some(args.next().ok_or("--serve needs an address")?.parse()?),
            "--start-after" => {
                start_after = args.next().ok_or("--start-after needs seconds")?.parse()?;
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let dir = tempfile::tempdir()?;
    let url = match database_url {
        Some(url) => DatabaseUrl::parse(&url)?,
        None => DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("bot.db").display()))?,
    };
    let storage = Storage::connect(&StorageOptions::new(url.clone())).await?;
    storage.migrate().await?;
    let started = Instant::now();
    fill(&storage).await?;
    println!(
        "stored {} servers, {} reports in {:.1} s",
        OWNERS * SERVERS_EACH,
        storage.count_all_reports().await?,
        started.elapsed().as_secs_f64()
    );

    let double = BotApiDouble::start_with(Options {
        repeated_poll_min_timeout: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    let settings = BotSettings {
        commands_per_minute: 100_000,
        command_burst: 10_000,
        telegram: TelegramSettings {
            api_url: double.api_url(),
            token: Secret::new(double.token()),
            poll_timeout: Duration::from_secs(10),
            ..BotSettings::default().telegram
        },
        ..BotSettings::default()
    };
    let stop = CancellationToken::new();
    let bot = serversan::bot::start_with(
        Dispatcher::new(storage.clone(), Arc::new(settings)),
        "bench".into(),
        stop.clone(),
    )?;

    let ingest = match serve {
        Some(listen) => {
            let config = Config {
                listen,
                database_url: url.clone(),
                max_reports_per_minute: 1_000_000,
                ..Config::default()
            };
            let alerts = Alerts::new(storage.clone(), AlertSettings::from_config(&config));
            let background = alerts.start(None, None, "bench".into(), &stop);
            let extras = serversan::web::Extras {
                alerts: Some(background.reports()),
                ..Default::default()
            };
            let server =
                serversan::web::RunningServer::start_with(&config, storage.clone(), extras).await?;
            println!("serving ingest on {}", server.addr);
            Some((server, background))
        }
        None => None,
    };
    tokio::time::sleep(Duration::from_secs(start_after)).await;

    let timing = (Instant::now(), storage.count_all_reports().await?);

    let user = TestUser::new(FIRST_OWNER, "Bench");
    ask(&double, &user, "/start").await?;
    // /threshold writes (the server's CPU rule), the others only read.
    for (label, text) in [
        ("/stat web-7", "/stat web-7"),
        ("/list", "/list"),
        ("/threshold", "/threshold web-7 cpu 90"),
    ] {
        for _ in 0..10 {
            ask(&double, &user, text).await?; // warm-up
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            times.push(ask(&double, &user, text).await?);
        }
        // Show what was measured, so a refusal is never timed as a reply.
        let reply = double
            .last_message(user.id)
            .map(|m| m.text)
            .unwrap_or_default();
        println!(
            "{label}: {} …",
            reply
                .chars()
                .take(160)
                .collect::<String>()
                .replace('\n', " | ")
        );
        times.sort();
        let ms = |q: f64| {
            let i = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
            times[i].as_secs_f64() * 1000.0
        };
        println!(
            "{label:12} runs {runs}: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(1.0)
        );
    }
    if let Some((server, _background)) = ingest {
        let stored = storage.count_all_reports().await? - timing.1;
        let secs = timing.0.elapsed().as_secs_f64();
        println!(
            "ingest while timing: {stored} reports stored in {secs:.1} s ({:.0}/s)",
            stored as f64 / secs
        );
        server.shutdown().await;
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), bot.task).await;
    Ok(())
}

/// Sends `text` as `user`; the time until the bot's reply reached the double.
async fn ask(double: &BotApiDouble, user: &TestUser, text: &str) -> Result<Duration, Error> {
    let before = double.messages(user.id).len();
    let sent = Instant::now();
    double.send_text(user, text);
    let all = double
        .wait_for_message_count(user.id, before + 1)
        .await
        .map_err(|e| format!("no reply to {text}: {e}"))?;
    Ok(all[before].sent_at.saturating_duration_since(sent))
}

/// 50 owners with 20 servers each, two reports per server a minute apart.
async fn fill(storage: &Storage) -> Result<(), Error> {
    let now = unix_now();
    for owner in FIRST_OWNER..FIRST_OWNER + OWNERS {
        for i in 0..SERVERS_EACH {
            let name = ServerName::parse(&format!("web-{i}"))?;
            let (server, _) = storage.create_server(owner, &name).await?;
            for (n, ago) in [120, 60].into_iter().enumerate() {
                let mut report = Report::example(now - ago);
                report.hostname = format!("web-{i}.owner-{owner}.example");
                for net in &mut report.network {
                    net.rx_bytes += n as u64 * 60_000_000;
                }
                let nonce = serversan_protocol::random_nonce()?;
                storage
                    .record_report(&NewReport {
                        server_id: server.id,
                        key_id: None,
                        report: &report,
                        nonce: &nonce,
                        nonce_expires_at: now + 300,
                        received_at: now,
                        min_interval_secs: 10,
                        max_per_minute: 60,
                    })
                    .await?;
            }
        }
    }
    Ok(())
}
