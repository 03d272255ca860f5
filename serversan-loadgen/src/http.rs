//! HTTP mode: workers posting signed reports over a keep-alive pool, at a
//! target rate or as fast as the server answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use serversan::storage::{Storage, StorageOptions, unix_now};
use serversan_protocol::{AuthCode, headers, random_nonce, sign};
use tokio::time::Instant;

use crate::agents::{self, Schedule, SimAgent, Turns};
use crate::cli::HttpArgs;
use crate::stats::Tally;

/// Runs the HTTP mode; `Ok(true)` when every answer was the expected one.
pub async fn run(args: HttpArgs) -> anyhow::Result<bool> {
    args.load.check()?;
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be positive");
    }
    let base = reqwest::Url::parse(&args.url).context("--url is not a URL")?;
    if !is_loopback(&base) {
        eprintln!("note: sending to {base}, which is not loopback");
    }
    let endpoint = base
        .join(serversan_protocol::REPORT_PATH)
        .context("--url cannot take the report path")?;
    let agents = match (&args.database_url, &args.codes) {
        (Some(url), _) => {
            let storage = Storage::connect(&StorageOptions::new(url.clone())).await?;
            storage.migrate().await?;
            let agents = agents::provision(&storage, &args.load).await?;
            storage.close().await;
            agents
        }
        (None, Some(path)) => agents::read_codes(path)?,
        (None, None) => anyhow::bail!("give --database-url or --codes"),
    };
    anyhow::ensure!(!agents.is_empty(), "no auth codes to send with");
    let concurrency = if args.replay {
        args.load.concurrency
    } else {
        // One agent is never in flight twice, so its reports stay in order.
        args.load.concurrency.min(agents.len())
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let plan = Arc::new(Plan {
        client,
        endpoint,
        schedule: Schedule::new(&args.load, agents.len())?,
        count: args.load.count,
        rate: args.rate,
        tickets: AtomicU64::new(0),
        start: Instant::now(),
        deadline: Instant::now() + Duration::from_secs_f64(args.load.duration),
    });
    println!(
        "http: {} agents, {concurrency} in flight, {} reports at most in {} s, rate {}{}",
        agents.len(),
        args.load.count,
        args.load.duration,
        args.rate
            .map_or("as fast as possible".to_owned(), |r| format!("{r}/s")),
        if args.replay { ", REPLAY" } else { "" }
    );

    let mut tally = Tally::default();
    let mut workers = tokio::task::JoinSet::new();
    if args.replay {
        let request = Arc::new(ReplayRequest::new(&agents[0].code, &plan.schedule)?);
        for _ in 0..concurrency {
            workers.spawn(replay_worker(plan.clone(), request.clone()));
        }
    } else {
        let agents: Vec<Arc<SimAgent>> = agents.into_iter().map(Arc::new).collect();
        for w in 0..concurrency {
            let mine = Turns::share(&agents, w, concurrency, &plan.schedule);
            workers.spawn(worker(plan.clone(), mine));
        }
    }
    while let Some(done) = workers.join_next().await {
        tally.merge(done.context("a worker failed")?);
    }
    let elapsed = plan.start.elapsed();
    tally.print("200", elapsed);
    let total = tally.total();
    if args.replay {
        let ok = tally.count(200) == 1 && tally.count(409) == total - 1;
        println!(
            "replay: {}",
            if ok {
                "exactly one accepted, every other copy refused with 409"
            } else {
                "FAILED: expected exactly one 200 and 409 for the rest"
            }
        );
        Ok(ok)
    } else {
        Ok(tally.count(200) == total)
    }
}

/// What every worker shares.
struct Plan {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    schedule: Schedule,
    count: u64,
    rate: Option<f64>,
    /// Requests handed out so far (each is a ticket to send one).
    tickets: AtomicU64,
    start: Instant,
    deadline: Instant,
}

impl Plan {
    /// The next request's ticket and when it is due to start, or `None`
    /// when the count or the time is used up. At a target rate, ticket `n`
    /// is due at `start + n / rate`; latency counts from then, so a server
    /// that falls behind shows it (no coordinated omission).
    async fn next(&self) -> Option<Instant> {
        let n = self.tickets.fetch_add(1, Ordering::Relaxed);
        if n >= self.count || Instant::now() >= self.deadline {
            return None;
        }
        match self.rate {
            None => Some(Instant::now()),
            Some(rate) => {
                let due = self.start + Duration::from_secs_f64(n as f64 / rate);
                if due >= self.deadline {
                    return None;
                }
                tokio::time::sleep_until(due).await;
                Some(due)
            }
        }
    }

    async fn post(&self, key_id: &str, signed: Signed, due: Instant, tally: &mut Tally) {
        let result = self
            .client
            .post(self.endpoint.clone())
            .header("content-type", "application/json")
            .header(headers::KEY, key_id)
            .header(headers::TIMESTAMP, signed.timestamp)
            .header(headers::NONCE, signed.nonce)
            .header(headers::SIGNATURE, signed.signature)
            .body(signed.body)
            .send()
            .await;
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the answer in full so the connection is reused.
                match response.bytes().await {
                    Ok(body) => {
                        tally.record(status, due.elapsed());
                        if status != 200 {
                            tally.note_refusal(status, &body);
                        }
                    }
                    Err(e) => tally.record_error(e.to_string()),
                }
            }
            Err(e) => tally.record_error(e.to_string()),
        }
    }
}

/// The parts of a signed request that vary.
#[derive(Clone)]
struct Signed {
    timestamp: String,
    nonce: String,
    signature: String,
    body: Vec<u8>,
}

fn signed(code: &AuthCode, body: Vec<u8>) -> anyhow::Result<Signed> {
    let nonce = random_nonce().context("the system's random generator failed")?;
    let s = sign(code, unix_now(), &nonce, &body);
    Ok(Signed {
        timestamp: s.timestamp.to_string(),
        nonce: s.nonce,
        signature: s.signature,
        body,
    })
}

/// Sends reports for its own agents in turn until the plan runs out.
async fn worker(plan: Arc<Plan>, mut agents: Turns<Arc<SimAgent>>) -> Tally {
    let mut tally = Tally::default();
    while agents.has_more() {
        let Some(due) = plan.next().await else { break };
        let Some((index, agent, seq)) = agents.take() else {
            break;
        };
        let report = agents::report(index, seq, plan.schedule.collected_at(seq));
        let request = serde_json::to_vec(&report)
            .map_err(anyhow::Error::from)
            .and_then(|body| signed(&agent.code, body));
        match request {
            Ok(s) => plan.post(agent.code.key_id(), s, due, &mut tally).await,
            Err(e) => tally.record_error(e.to_string()),
        }
    }
    tally
}

/// One signed request, sent again and again.
struct ReplayRequest {
    key_id: String,
    signed: Signed,
}

impl ReplayRequest {
    fn new(code: &AuthCode, schedule: &Schedule) -> anyhow::Result<Self> {
        let body = serde_json::to_vec(&agents::report(0, 0, schedule.collected_at(0)))?;
        Ok(Self {
            key_id: code.key_id().to_owned(),
            signed: signed(code, body)?,
        })
    }
}

async fn replay_worker(plan: Arc<Plan>, request: Arc<ReplayRequest>) -> Tally {
    let mut tally = Tally::default();
    while let Some(due) = plan.next().await {
        plan.post(&request.key_id, request.signed.clone(), due, &mut tally)
            .await;
    }
    tally
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
