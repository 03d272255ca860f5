//! `serversan-loadgen`: many simulated agents, each with its own auth code,
//! sending signed reports to a ServerSan server (or straight into its
//! database, to measure the database's own ceiling). A benchmarking tool,
//! never shipped with the agent.

mod agents;
mod cli;
mod direct;
mod http;
mod stats;

/// The server's allocator, for the same reason: glibc's malloc and free
/// were about a seventh of the load generator's CPU samples, and the load
/// generator shares the machine with the server it measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::run()
}
