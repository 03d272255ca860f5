//! Bot latency benchmark: time from an update reaching the Bot API (the
//! test double) to the bot's reply arriving there, for `/stat NAME` and
//! `/list`, with 1,000 servers stored (50 owners with 20 servers each, two
//! reports per server), on SQLite.
//!
//! ```text
//! cargo run --release -p serversan --example bot_latency -- [--runs N]
//! ```
//!
//! The bot long-polls the double exactly as it polls Telegram; each command
//! is sent only after the previous reply arrived, so the figures are one
//! user's latency on an otherwise idle bot, not throughput.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bot_api_double::{BotApiDouble, Options, TestUser};
use serversan::bot::{BotSettings, Dispatcher, TelegramSettings};
use serversan::config::{DatabaseUrl, Secret, SettingValue};
use serversan::storage::{NewReport, ServerName, Storage, StorageOptions, unix_now};
use serversan_protocol::Report;
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error>;

const OWNERS: i64 = 50;
const SERVERS_EACH: i64 = 20;
const FIRST_OWNER: i64 = 5000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let mut runs = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().ok_or("--runs needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let dir = tempfile::tempdir()?;
    let url = DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("bot.db").display()))?;
    let storage = Storage::connect(&StorageOptions::new(url)).await?;
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

    let user = TestUser::new(FIRST_OWNER, "Bench");
    ask(&double, &user, "/start").await?;
    for (label, text) in [("/stat web-7", "/stat web-7"), ("/list", "/list")] {
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
