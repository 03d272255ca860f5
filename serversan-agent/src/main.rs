//! `serversan-agent`: see `serversan-agent --help` and docs/agent.md.

use std::process::ExitCode;
use std::time::Duration;

use serversan_agent::{Collector, Config, report_once, run_daemon};

const USAGE: &str = "\
serversan-agent: reports this host's figures to a ServerSan server

Usage:
  serversan-agent report               send spooled reports, then a fresh one (for cron)
  serversan-agent run --interval SECS  report every SECS seconds (for systemd or a service)
  serversan-agent print                print the report as JSON; nothing is sent
  serversan-agent --version

Configuration: SERVERSAN_AUTH_FILE, SERVERSAN_SERVER_URL, SERVERSAN_STATE_DIR,
SERVERSAN_AGENT_CONFIG (agent.toml); see docs/agent.md.";

enum Command {
    Report,
    Run(Duration),
    Print,
    Version,
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["report"] => Ok(Command::Report),
        ["print"] => Ok(Command::Print),
        ["--version" | "-V" | "version"] => Ok(Command::Version),
        ["--help" | "-h" | "help"] | [] => Ok(Command::Help),
        ["run", "--interval", secs] => interval(secs),
        ["run", flag] if flag.starts_with("--interval=") => interval(&flag["--interval=".len()..]),
        ["run"] => Err("run needs --interval SECS".into()),
        _ => Err(format!("unknown arguments: {}", args.join(" "))),
    }
}

fn interval(secs: &str) -> Result<Command, String> {
    match secs.parse::<u64>() {
        Ok(s) if s > 0 => Ok(Command::Run(Duration::from_secs(s))),
        _ => Err(format!(
            "--interval must be a whole number of seconds above 0, not {secs:?}"
        )),
    }
}

fn log(line: &str) {
    eprintln!("serversan-agent: {line}");
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Err(message) => {
            eprintln!("serversan-agent: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("serversan-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Print) => {
            let report = Collector::read_only(&Config::state_dir_from_env()).collect();
            match serde_json::to_string_pretty(&report) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    log(&format!("cannot encode the report: {e}"));
                    ExitCode::FAILURE
                }
            }
        }
        Ok(Command::Report) => match Config::from_env()
            .map_err(Into::into)
            .and_then(|c| report_once(&c, &log))
        {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                log(&e.to_string());
                ExitCode::from(e.exit_code())
            }
        },
        Ok(Command::Run(every)) => run_daemon(every, Config::from_env, &log),
    }
}
