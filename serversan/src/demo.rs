//! `serversan demo`: the whole product on one machine, without Telegram.
//!
//! It runs the real server on SQLite, an in-process agent that reports this
//! machine over real signed HTTP, and a console chat that feeds typed
//! commands to the same bot handlers Telegram updates reach. Nothing is
//! simulated: what works here works in production.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serversan_protocol::AuthCode;
use tokio_util::sync::CancellationToken;

use crate::bot::{self, BotSettings, Dispatcher, Sender};
use crate::config::{Config, DatabaseUrl, SettingValue};
use crate::history::{self, HistorySettings};
use crate::storage::{ServerName, Storage, StorageOptions, UserProfile};
use crate::web::RunningServer;

/// The Telegram id of the console's user. Telegram ids are positive, so this
/// one never collides with a real account sharing the database.
pub const DEMO_USER_ID: i64 = 1;

/// Name of the server the in-process agent reports as.
const DEMO_SERVER: &str = "this-host";

/// What `serversan demo` takes from the command line.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Directory for the database and saved charts.
    pub dir: PathBuf,
    /// How often the in-process agent reports.
    pub interval: Duration,
}

/// Runs the demo until the console's input ends (Ctrl-D or `/quit`).
pub async fn run(mut config: Config, options: DemoOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.dir)
        .with_context(|| format!("cannot create {}", options.dir.display()))?;
    let dir = std::fs::canonicalize(&options.dir)?;
    let db_path = dir.join("demo.db");
    config.database_url = DatabaseUrl::parse(&format!("sqlite://{}", db_path.display()))
        .map_err(|e| anyhow::anyhow!("demo database path: {e}"))?;
    let port = free_port().context("no free local port for the demo server")?;
    config.listen = ([127, 0, 0, 1], port).into();
    let url = format!("http://127.0.0.1:{port}");
    config.public_url = Some(url.clone());
    // The agent reports every few seconds: let the server accept that.
    config.min_report_interval = options.interval.min(config.min_report_interval) / 2;
    config.max_reports_per_minute = config.max_reports_per_minute.max(60);

    let storage = Storage::connect(&StorageOptions::from_config(&config)).await?;
    storage.migrate().await?;
    let server = RunningServer::start(&config, storage.clone()).await?;

    let jobs = CancellationToken::new();
    let history = tokio::spawn(history::run(
        storage.clone(),
        HistorySettings::from_config(&config),
        crate::web::instance_id(),
        jobs.clone(),
    ));

    let code = demo_server_code(&storage).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let agent = spawn_agent(&url, code, options.interval, Arc::clone(&stop))?;
    wait_for_first_report(&storage, Duration::from_secs(10)).await;

    let settings = BotSettings {
        public_url: url.clone(),
        admins: vec![DEMO_USER_ID],
        ..BotSettings::default()
    };
    let dispatcher = Dispatcher::new(storage.clone(), Arc::new(settings));
    let user = Sender {
        user_id: DEMO_USER_ID,
        username: Some("you".into()),
        display_name: "Demo user".into(),
        private_chat: true,
    };
    let charts = dir.join("charts");
    let mut out = std::io::stdout();
    writeln!(
        out,
        "ServerSan demo\n\
         - server:   {url} (SQLite database {db})\n\
         - agent:    reporting this machine every {secs} s as \"{DEMO_SERVER}\"\n\
         - charts:   saved under {charts}\n\
         Type commands as you would in Telegram: /help, /list, /stat, /add NAME ...\n\
         Buttons show as [1], [2]...: type the number to press one. /quit or Ctrl-D ends.",
        db = db_path.display(),
        secs = options.interval.as_secs(),
        charts = charts.display(),
    )?;
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    let result = bot::console::run(&dispatcher, user, input, &mut out, &charts).await;

    stop.store(true, Ordering::Relaxed);
    jobs.cancel();
    let _ = history.await;
    let _ = tokio::task::spawn_blocking(move || agent.join()).await;
    server.shutdown().await;
    storage.close().await;
    result.map_err(Into::into)
}

/// A fresh code for the demo's own server, created on first run. Codes are
/// only ever shown once, so a later run rotates it.
async fn demo_server_code(storage: &Storage) -> anyhow::Result<AuthCode> {
    storage
        .upsert_user(&UserProfile {
            user_id: DEMO_USER_ID,
            username: Some("you".into()),
            nickname: Some("Demo user".into()),
        })
        .await?;
    if let Some(server) = storage.find_server(DEMO_USER_ID, DEMO_SERVER).await? {
        return storage
            .rotate_code(server.id, DEMO_USER_ID)
            .await?
            .context("the demo server vanished while starting");
    }
    let name = ServerName::parse(DEMO_SERVER).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, code) = storage.create_server(DEMO_USER_ID, &name).await?;
    Ok(code)
}

/// The agent library on a thread of its own, exactly as the binary sends:
/// collect, sign, POST. It stops when `stop` is set.
fn spawn_agent(
    url: &str,
    code: AuthCode,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let server = serversan_agent::ServerUrl::parse(url)?;
    let sender = serversan_agent::Sender::new(&server, &serversan_agent::HttpOptions::default())?;
    Ok(std::thread::spawn(move || {
        let mut collector = serversan_agent::Collector::in_memory();
        while !stop.load(Ordering::Relaxed) {
            let report = collector.collect();
            match sender.send_report(&code, &report) {
                serversan_agent::Outcome::Accepted { .. } => {}
                other => tracing::warn!("demo agent: report not stored: {other:?}"),
            }
            // Sleep in short steps so the demo ends promptly.
            let mut slept = Duration::ZERO;
            while slept < interval && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                slept += Duration::from_millis(100);
            }
        }
    }))
}

/// Gives the agent a moment so the first `/stat` already has figures.
async fn wait_for_first_report(storage: &Storage, limit: Duration) {
    let started = tokio::time::Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(server)) = storage.find_server(DEMO_USER_ID, DEMO_SERVER).await
            && let Ok(Some(_)) = storage.latest_report(server.id).await
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Default directory of the demo's files, under the working directory.
pub fn default_dir() -> &'static Path {
    Path::new("serversan-demo")
}
