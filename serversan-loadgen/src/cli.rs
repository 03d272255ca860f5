//! Command-line arguments and the two modes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serversan::config::DatabaseUrl;

use crate::{agents, direct, http};

#[derive(Debug, Parser)]
#[command(name = "serversan-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Send signed reports to a server over HTTP (keep-alive connections).
    Http(HttpArgs),
    /// Store the same reports through the server's storage layer, without
    /// HTTP: the database's own ceiling for the same transaction.
    Direct(DirectArgs),
}

/// What both modes share: how many agents, how many reports, how long.
#[derive(Debug, Clone, Args)]
pub struct Load {
    /// Simulated agents, each with its own auth code.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Reports to send in all (the run stops at this count or the duration).
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Longest run, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Requests in flight at once (one agent is never in flight twice).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds between one agent's successive `collected_at`s; reports are
    /// collected in the recent past so the server's minimum interval holds.
    #[arg(long, default_value_t = 60)]
    pub spacing: i64,
    /// Telegram id owning the simulated servers (created when missing).
    #[arg(long, default_value_t = 1)]
    pub owner: i64,
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    #[command(flatten)]
    pub load: Load,
    /// The server's base URL (loopback unless you name another).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Create the agents' servers in this database (the server's own).
    #[arg(long, conflicts_with = "codes", required_unless_present = "codes")]
    pub database_url: Option<DatabaseUrl>,
    /// Or read auth codes, one a line (as printed by `serversan server add`).
    /// Use codes no earlier run has sent with: a report collected before a
    /// server's last accepted one is refused.
    #[arg(long)]
    pub codes: Option<PathBuf>,
    /// Target total reports per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Send one signed request `--count` times at once: exactly one must be
    /// accepted, every other one refused with 409.
    #[arg(long)]
    pub replay: bool,
}

#[derive(Debug, Args)]
pub struct DirectArgs {
    #[command(flatten)]
    pub load: Load,
    /// The database to write to (migrated when needed).
    #[arg(long)]
    pub database_url: DatabaseUrl,
}

/// Parses arguments, runs the mode, and maps failure to exit status 1
/// (a run with refusals or errors also exits 1).
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // The HTTP mode's work per request is small next to the server's, and
    // one thread spares the server (on the same machine) the cross-thread
    // wake-ups and stealing of a second; the direct mode runs the storage
    // path itself, on every core, as a server would.
    let mut builder = match cli.mode {
        Mode::Http(_) => tokio::runtime::Builder::new_current_thread(),
        Mode::Direct(_) => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.mode {
            Mode::Http(args) => http::run(args).await,
            Mode::Direct(args) => direct::run(args).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Load {
    /// Checks the numbers make a run.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.agents > 0, "--agents must be at least 1");
        anyhow::ensure!(self.concurrency > 0, "--concurrency must be at least 1");
        anyhow::ensure!(self.spacing > 0, "--spacing must be at least 1 second");
        anyhow::ensure!(
            self.duration > 0.0 && self.duration.is_finite(),
            "--duration must be a positive number of seconds"
        );
        agents::Schedule::new(self, self.agents)?;
        Ok(())
    }
}
