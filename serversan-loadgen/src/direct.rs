//! Direct mode: the same reports stored through `Storage::record_report`
//! (nonce row, server pacing update and report row in one transaction, as
//! ingest does) by concurrent tasks, with no HTTP, no signing and no JSON
//! parsing. The figure is the database's own ceiling for ingest's writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serversan::storage::{NewReport, RecordOutcome, Storage, StorageOptions, unix_now};
use serversan_protocol::random_nonce;

use crate::agents::{self, Schedule, SimAgent, Turns};
use crate::cli::DirectArgs;
use crate::stats::Tally;

/// Runs the direct mode; `Ok(true)` when every report was stored.
pub async fn run(args: DirectArgs) -> anyhow::Result<bool> {
    args.load.check()?;
    // The server's default pool: writes go through the same group commit
    // as ingest's, which needs only a few connections however many
    // reports are in flight.
    let options = StorageOptions::new(args.database_url.clone());
    let storage = Storage::connect(&options).await?;
    storage.migrate().await?;
    let agents = agents::provision(&storage, &args.load).await?;
    let concurrency = args.load.concurrency.min(agents.len());
    let schedule = Schedule::new(&args.load, agents.len())?;
    let tickets = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.load.duration);
    println!(
        "direct: {} agents, {concurrency} in flight, {} reports at most in {} s",
        agents.len(),
        args.load.count,
        args.load.duration
    );
    let agents: Vec<Arc<SimAgent>> = agents.into_iter().map(Arc::new).collect();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let mine = Turns::share(&agents, w, concurrency, &schedule);
        let job = Job {
            storage: storage.clone(),
            schedule,
            count: args.load.count,
            tickets: tickets.clone(),
            deadline,
            min_interval_secs: args.load.spacing,
        };
        writers.spawn(job.write(mine));
    }
    let mut tally = Tally::default();
    while let Some(done) = writers.join_next().await {
        tally.merge(done.context("a writer failed")?);
    }
    let elapsed = start.elapsed();
    storage.close().await;
    tally.print("stored", elapsed);
    Ok(tally.count(200) == tally.total())
}

struct Job {
    storage: Storage,
    schedule: Schedule,
    count: u64,
    tickets: Arc<AtomicU64>,
    deadline: Instant,
    min_interval_secs: i64,
}

impl Job {
    /// Stores reports for its agents in turn; a stored report counts as a
    /// 200, any other outcome as 409 and an error as a transport error.
    async fn write(self, mut agents: Turns<Arc<SimAgent>>) -> Tally {
        let mut tally = Tally::default();
        while agents.has_more()
            && self.tickets.fetch_add(1, Ordering::Relaxed) < self.count
            && Instant::now() < self.deadline
        {
            let Some((index, agent, seq)) = agents.take() else {
                break;
            };
            let Some(server_id) = agent.server_id else {
                tally.record_error("an agent without a server id".into());
                continue;
            };
            let report = agents::report(index, seq, self.schedule.collected_at(seq));
            let nonce = match random_nonce() {
                Ok(n) => n,
                Err(e) => {
                    tally.record_error(e.to_string());
                    continue;
                }
            };
            let now = unix_now();
            let new = NewReport {
                server_id,
                key_id: None,
                report: &report,
                nonce: &nonce,
                nonce_expires_at: now + 300,
                received_at: now,
                min_interval_secs: self.min_interval_secs,
                max_per_minute: i64::MAX,
            };
            let began = Instant::now();
            match self.storage.record_report(&new).await {
                Ok(RecordOutcome::Stored) => tally.record(200, began.elapsed()),
                Ok(other) => {
                    tally.record(409, began.elapsed());
                    if tally.errors.len() < 5 {
                        tally.errors.push(format!("{other:?}"));
                    }
                }
                Err(e) => tally.record_error(e.to_string()),
            }
        }
        tally
    }
}
