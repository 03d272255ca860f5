//! Command-line entry point: parse arguments, load the configuration once,
//! dispatch to the command. Each command is one arm of [`Command::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use tokio_util::sync::CancellationToken;

use crate::admin::{self, ServerCommand};
use std::sync::Arc;

use crate::alerts::{AlertSettings, Alerts};
use crate::bot::telegram::TelegramClient;
use crate::bot::{self, BotSettings, Dispatcher};
use crate::config::{CONFIG_ENV, Config, Loaded};
use crate::history::{self, HistorySettings};
use crate::storage::{Storage, StorageOptions};
use crate::web::{self, RunningServer};

/// ServerSan: self-hosted server monitoring run from Telegram.
#[derive(Debug, Parser)]
#[command(name = "serversan", version, about)]
pub struct Cli {
    /// TOML configuration file; SERVERSAN_* environment variables override it
    #[arg(long, global = true, env = CONFIG_ENV, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: report ingest, plus the Telegram bot when a token is set
    Serve,
    /// Apply database migrations and exit
    Migrate,
    /// Print the effective configuration, secrets masked
    CheckConfig,
    /// Manage monitored servers without Telegram
    #[command(subcommand)]
    Server(ServerCommand),
    /// Try ServerSan here: server, an agent reporting this machine, and a console chat
    Demo {
        /// Directory for the demo's database and saved charts
        #[arg(long, value_name = "DIR", default_value = crate::demo::default_dir().as_os_str())]
        dir: PathBuf,
        /// Seconds between the in-process agent's reports
        #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
    },
}

impl Command {
    pub async fn run(self, loaded: Loaded) -> anyhow::Result<()> {
        let config = loaded.config;
        match self {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(&config).await,
            Command::CheckConfig => {
                let loaded = Loaded { config, ..loaded };
                print!("{}", Config::render(&loaded));
                Ok(())
            }
            Command::Server(cmd) => admin::run(cmd, &config, &mut std::io::stdout().lock()).await,
            Command::Demo { dir, interval } => {
                let options = crate::demo::DemoOptions {
                    dir,
                    interval: std::time::Duration::from_secs(interval),
                };
                crate::demo::run(config, options).await
            }
        }
    }
}

/// Parses arguments and runs the command; the process's exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match Config::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("serversan: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&loaded.config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serversan: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.command.run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serversan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries command output such as auth codes);
/// RUST_LOG wins over the `log` setting.
fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn open(config: &Config) -> anyhow::Result<Storage> {
    let storage = Storage::connect(&StorageOptions::from_config(config))
        .await
        .with_context(|| format!("database {}", config.database_url.masked()))?;
    storage.migrate().await?;
    Ok(storage)
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let storage = open(config).await?;
    storage.close().await;
    println!("Database {} is up to date.", config.database_url.masked());
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let storage = open(&config).await?;
    let stop = CancellationToken::new();
    let holder = web::instance_id();
    let mut jobs = tokio::task::JoinSet::new();

    // Servers added from the command line expire too, bot or not.
    jobs.spawn(bot::run_pending_expiry(
        storage.clone(),
        config.code_expiry,
        config.code_expiry_interval,
        holder.clone(),
        stop.clone(),
    ));

    // Chart rollups and retention, one instance at a time.
    jobs.spawn(history::run(
        storage.clone(),
        HistorySettings::from_config(&config),
        holder.clone(),
        stop.clone(),
    ));

    let alerts = Alerts::new(storage.clone(), AlertSettings::from_config(&config));
    let mut extras = web::Extras::default();
    let mut telegram = None;
    match BotSettings::from_config(&config) {
        Some(settings) => {
            telegram =
                Some(TelegramClient::new(settings.telegram.clone()).map_err(anyhow::Error::msg)?);
            let on_unreachable = alerts.clone();
            let dispatcher = Dispatcher::new(storage.clone(), Arc::new(settings)).on_unreachable(
                Arc::new(move |user_id| {
                    let alerts = on_unreachable.clone();
                    tokio::spawn(async move {
                        if let Err(e) = alerts.user_unreachable(user_id).await {
                            tracing::warn!("cannot record an unreachable user: {e}");
                        }
                    });
                }),
            );
            let running = bot::start_with(dispatcher, holder.clone(), stop.clone())?;
            if let Some(routes) = running.webhook {
                extras.routes = routes;
            }
            jobs.spawn(async move {
                let _ = running.task.await;
            });
        }
        None => tracing::info!(
            "no bot token (SERVERSAN_BOT_TOKEN) is set: running report ingest only, without the Telegram bot; alerts are kept in the outbox until a bot is configured"
        ),
    }
    // The scheduler runs either way (alert state stays current); the outbox
    // sender needs Telegram.
    let background = alerts.start(telegram, None, holder.clone(), &stop);
    extras.alerts = Some(background.reports());

    let server = RunningServer::start_with(&config, storage.clone(), extras).await?;
    tracing::info!(
        listen = %server.addr,
        tls = config.tls_cert.is_some(),
        public_url = %config.public_url(),
        database = %config.database_url.masked(),
        "ServerSan is serving"
    );
    server.run_until(web::shutdown_signal()).await;
    stop.cancel();
    background.stop().await;
    while jobs.join_next().await.is_some() {}
    storage.close().await;
    tracing::info!("stopped");
    Ok(())
}
