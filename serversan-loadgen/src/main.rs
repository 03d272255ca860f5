//! `serversan-loadgen`: many simulated agents, each with its own auth code,
//! sending signed reports to a ServerSan server (or straight into its
//! database, to measure the database's own ceiling). A benchmarking tool,
//! never shipped with the agent.

mod agents;
mod cli;
mod direct;
mod http;
mod stats;

fn main() -> std::process::ExitCode {
    cli::run()
}
