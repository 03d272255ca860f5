//! The simulated agents: their auth codes (made through the server's admin
//! path) and the reports they send.

use std::path::Path;

use anyhow::Context;
use serversan::storage::{ServerName, Storage, unix_now};
use serversan_protocol::{AuthCode, Report};

use crate::cli::Load;

/// One simulated agent.
pub struct SimAgent {
    pub code: AuthCode,
    /// Its server's row id (known when it was created here).
    pub server_id: Option<i64>,
}

/// Creates `load.agents` servers owned by `load.owner` with fresh auth
/// codes, exactly as `serversan server add` does. Names carry a random
/// run tag, so runs against one database never collide.
pub async fn provision(storage: &Storage, load: &Load) -> anyhow::Result<Vec<SimAgent>> {
    let tag = serversan_protocol::random_nonce().context("the random generator failed")?;
    let run = &tag[..8];
    let mut agents = Vec::with_capacity(load.agents);
    for i in 0..load.agents {
        let name = ServerName::parse(&format!("lg{run}-{i}"))
            .map_err(|e| anyhow::anyhow!("server name: {e}"))?;
        let (server, code) = storage
            .create_server(load.owner, &name)
            .await
            .context("creating a simulated agent's server")?;
        agents.push(SimAgent {
            code,
            server_id: Some(server.id),
        });
    }
    Ok(agents)
}

/// Reads auth codes, one a line; blank lines are skipped.
pub fn read_codes(path: &Path) -> anyhow::Result<Vec<SimAgent>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read auth codes from {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(n, line)| {
            let code = line
                .parse::<AuthCode>()
                .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), n + 1))?;
            Ok(SimAgent {
                code,
                server_id: None,
            })
        })
        .collect()
}

/// When each agent's reports were collected: `spacing` seconds apart,
/// the last one a minute ago, so every report is inside the server's
/// accepted age and each agent's `collected_at` only increases.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    first: i64,
    spacing: i64,
    /// Most reports one agent sends in a run.
    per_agent: u64,
}

/// Reports older than this are refused by a server with default settings
/// (7 days); a day of margin keeps a long run inside it.
const MAX_AGE_SECS: i64 = 6 * 86_400;

impl Schedule {
    /// The schedule for `load.count` reports shared by `agents` agents.
    pub fn new(load: &Load, agents: usize) -> anyhow::Result<Self> {
        let agents = u64::try_from(agents.max(1)).unwrap_or(u64::MAX);
        let per_agent = load.count.div_ceil(agents);
        let span = i64::try_from(per_agent)
            .unwrap_or(i64::MAX)
            .saturating_mul(load.spacing);
        anyhow::ensure!(
            span <= MAX_AGE_SECS,
            "{per_agent} reports per agent {}s apart reach back more than 6 days: \
             use more --agents or a smaller --spacing",
            load.spacing
        );
        Ok(Self {
            first: unix_now() - 60 - span,
            spacing: load.spacing,
            per_agent,
        })
    }

    /// `collected_at` of an agent's `seq`-th report.
    pub fn collected_at(&self, seq: u64) -> i64 {
        self.first + i64::try_from(seq).unwrap_or(i64::MAX / 2) * self.spacing
    }
}

/// A realistic report for agent `agent`'s `seq`-th run (see
/// [`Report::example_in_fleet`]).
pub fn report(agent: usize, seq: u64, collected_at: i64) -> Report {
    Report::example_in_fleet(agent, seq, collected_at)
}

/// A worker's own agents, taken in turn, each until it has sent its share
/// of the run (so the reports spread evenly and stay inside the schedule).
pub struct Turns<A> {
    agents: Vec<(usize, A)>,
    sent: Vec<u64>,
    next: usize,
    per_agent: u64,
}

impl<A> Turns<A> {
    /// Every `workers`-th agent starting at `worker`: no agent belongs to
    /// two workers, so none is ever in flight twice.
    pub fn share(all: &[A], worker: usize, workers: usize, schedule: &Schedule) -> Self
    where
        A: Clone,
    {
        let agents: Vec<(usize, A)> = all
            .iter()
            .enumerate()
            .skip(worker)
            .step_by(workers.max(1))
            .map(|(i, a)| (i, a.clone()))
            .collect();
        Self {
            sent: vec![0; agents.len()],
            agents,
            next: 0,
            per_agent: schedule.per_agent,
        }
    }

    /// Whether some agent still has reports to send.
    pub fn has_more(&self) -> bool {
        self.sent.iter().any(|&n| n < self.per_agent)
    }

    /// The next agent with reports left: its index in the run, the agent,
    /// and which of its reports this is.
    pub fn take(&mut self) -> Option<(usize, &A, u64)> {
        for _ in 0..self.agents.len() {
            let turn = self.next;
            self.next = (self.next + 1) % self.agents.len();
            if self.sent[turn] < self.per_agent {
                let seq = self.sent[turn];
                self.sent[turn] += 1;
                let (index, agent) = &self.agents[turn];
                return Some((*index, agent, seq));
            }
        }
        None
    }
}
