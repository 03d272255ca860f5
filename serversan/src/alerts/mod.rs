//! Alerts: thresholds, offline detection, recovery and reminders, and the
//! reliable delivery of what they say.
//!
//! - Every accepted report is queued right after it is stored and
//!   evaluated moments later, in a batch with the others queued meanwhile
//!   ([`ReportQueue`]); a scheduler tick ([`Alerts::tick`]) finds silent
//!   servers, due reminders and ended mutes.
//! - The state of every rule (breaching since, firing since, what the owner
//!   was told) is stored, so a restart neither forgets nor repeats an alert.
//! - Messages are written to the outbox in the same transaction as the
//!   state change; one sender drains it (see [`outbox`]).
//! - With several instances on one database, the scheduler and the sender
//!   run only under a lease ([`lease`]), so exactly one instance runs each.
//! - Mutes suppress messages, not evaluation: while muted, state moves on
//!   and nothing is sent; when the mute ends the owner is told once what
//!   differs from what they last heard (still firing, or recovered).
//! - All alert logic reads the time through an injectable [`Clock`].

pub mod clock;
pub mod command;
pub mod eval;
pub mod lease;
pub mod message;
pub mod outbox;
mod plan;
mod queue;
pub mod rules;
pub mod settings;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serversan_protocol::Report;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use outbox::{OutboxSender, UnreachableHook};
pub use queue::{QueueStopped, ReportQueue};
pub use rules::{Metric, Rule, Setting};
pub use settings::AlertSettings;

use crate::bot::telegram::TelegramClient;
use crate::storage::{Storage, StorageError, unix_now};
use eval::{Sample, Subject, Track};
use queue::StoredReport;

/// Lease names in the `leases` table.
pub const SCHEDULER_LEASE: &str = "alert-scheduler";
pub const SENDER_LEASE: &str = "alert-sender";

/// Servers found per round of one kind of a tick's work (see [`rounds`]).
const TICK_BATCH: i64 = 500;

/// How long a tick goes on finding more servers to handle: well inside the
/// scheduler's lease (30 s by default), and time enough for tens of
/// thousands of servers (BENCHMARKS.md, "A mass outage"). Once it is spent,
/// each kind of work does one round per tick.
const TICK_BUDGET: Duration = Duration::from_secs(10);

/// Why an alert operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for AlertError {
    fn from(e: sqlx::Error) -> Self {
        AlertError::Storage(e.into())
    }
}

/// What one scheduler tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickSummary {
    /// Servers found offline.
    pub offline: usize,
    /// Reminder lines queued.
    pub reminders: usize,
    /// Lines telling what changed during a mute.
    pub caught_up: usize,
}

/// The alert engine; cheap to clone and share.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    settings: AlertSettings,
    clock: SharedClock,
    /// Wakes this process's sender when a message was queued.
    wake: Arc<Notify>,
}

impl Alerts {
    pub fn new(storage: Storage, settings: AlertSettings) -> Self {
        Self::with_clock(storage, settings, Arc::new(SystemClock))
    }

    /// An engine reading the time from `clock` (tests move it by hand).
    pub fn with_clock(storage: Storage, settings: AlertSettings, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                settings,
                clock,
                wake: Arc::new(Notify::new()),
            }),
        }
    }

    /// An engine for one request answered at `now` (a bot command): its
    /// clock stands still.
    pub fn at_time(storage: Storage, now: i64) -> Self {
        Self::with_clock(
            storage,
            AlertSettings::default(),
            Arc::new(ManualClock::new(now)),
        )
    }

    pub fn settings(&self) -> &AlertSettings {
        &self.inner.settings
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    fn queued(&self, message: bool) {
        if message {
            self.inner.wake.notify_one();
        }
    }

    /// A stored report as the queue keeps it: arrival is now. Reports
    /// collected longer ago than the `max_report_age` setting (a spool
    /// flushed after an outage) only prove the server is alive.
    fn stored_report(&self, server_id: i64, report: &Report) -> StoredReport {
        let arrived_at = self.now();
        let sample = Sample::from_report(report);
        let max_age = secs(self.inner.settings.max_report_age);
        StoredReport {
            server_id,
            arrived_at,
            fresh: sample.collected_at >= arrived_at - max_age,
            sample,
        }
    }

    /// Evaluates one report at once, as the queue's worker would: clears an
    /// offline alert, feeds every rule, and queues one message for what
    /// changed. For tests and tools; `serve` queues reports instead
    /// ([`Alerts::start_report_queue`]).
    pub async fn on_report(&self, server_id: i64, report: &Report) -> Result<(), AlertError> {
        self.on_reports(&[(server_id, report)]).await
    }

    /// Evaluates `(server id, report)` pairs at once as one batch, in
    /// order, all arriving now: what the queue's worker does with what it
    /// takes from the queue.
    pub async fn on_reports(&self, reports: &[(i64, &Report)]) -> Result<(), AlertError> {
        let reports: Vec<StoredReport> = reports
            .iter()
            .map(|(server_id, report)| self.stored_report(*server_id, report))
            .collect();
        self.evaluate(&reports).await
    }

    /// Evaluates stored reports in one transaction, in order: reports of
    /// one server each see the state the one before left.
    async fn evaluate(&self, reports: &[StoredReport]) -> Result<(), AlertError> {
        let hysteresis = self.inner.settings.hysteresis;
        let turns: Vec<store::Turn> = reports
            .iter()
            .map(|r| store::Turn {
                server_id: r.server_id,
                report_at: Some(r.arrived_at),
                now: r.arrived_at,
            })
            .collect();
        let queued = store::in_servers_tx(&self.inner.storage, &turns, |i, ctx, tracks| {
            let r = &reports[i];
            plan::report(ctx, tracks, &r.sample, r.fresh, &hysteresis, r.arrived_at)
        })
        .await?;
        self.queued(queued.contains(&Some(true)));
        Ok(())
    }

    /// Starts the worker that evaluates stored reports in batches, and
    /// returns the queue that feeds it (for ingest). The worker ends when
    /// `shutdown` is cancelled, after evaluating what was queued before, or
    /// when every clone of the queue is dropped.
    pub fn start_report_queue(
        &self,
        shutdown: &CancellationToken,
    ) -> (ReportQueue, JoinHandle<()>) {
        queue::start(self.clone(), shutdown.clone())
    }

    /// One round of the scheduler: offline servers, catching up after
    /// mutes, reminders, housekeeping. Run it under [`SCHEDULER_LEASE`].
    pub async fn tick(&self) -> Result<TickSummary, AlertError> {
        let now = self.now();
        let storage = &self.inner.storage;
        let started = Instant::now();
        let mut summary = TickSummary::default();

        let default_offline = Metric::Offline.default_rule().threshold;
        let shortest = store::min_offline_minutes(storage)
            .await?
            .map_or(default_offline, |m| m.min(default_offline));
        let silent_before = now - (shortest * 60.0).floor() as i64;
        let find = |after| {
            store::silent_servers(
                storage,
                silent_before,
                default_offline,
                now,
                after,
                TICK_BATCH,
            )
        };
        let fired = rounds(storage, started, now, find, |ctx, tracks| {
            plan::silence(ctx, tracks, now)
        })
        .await?;
        summary.offline = fired.into_iter().filter(|fired| *fired).count();

        let find = |after: (i64, i64)| async move {
            let ids = store::servers_to_catch_up(storage, now, after.1, TICK_BATCH).await?;
            Ok(ids.into_iter().map(|id| (id, id)).collect())
        };
        let told = rounds(storage, started, now, find, |ctx, tracks| {
            plan::catch_up(ctx, tracks, now)
        })
        .await?;
        summary.caught_up = told.into_iter().sum();

        let every = secs(self.inner.settings.reminder_interval);
        if every > 0 {
            let find = |after: (i64, i64)| async move {
                let ids = store::servers_to_remind(storage, now - every, now, after.1, TICK_BATCH)
                    .await?;
                Ok(ids.into_iter().map(|id| (id, id)).collect())
            };
            let told = rounds(storage, started, now, find, |ctx, tracks| {
                plan::reminders(ctx, tracks, every, now)
            })
            .await?;
            summary.reminders = told.into_iter().sum();
        }

        store::forget_stale(storage, now).await?;
        outbox::prune(storage, unix_now() - secs(self.inner.settings.outbox_keep)).await?;
        self.queued(summary != TickSummary::default());
        Ok(summary)
    }

    /// The rules an owner stored: `(server id, or 0 for their default;
    /// metric; setting)`.
    pub async fn stored_rules(
        &self,
        owner_id: i64,
    ) -> Result<Vec<(i64, Metric, Setting)>, AlertError> {
        Ok(store::owner_rules(&self.inner.storage, owner_id).await?)
    }

    /// The stored state of every rule of a server that has any: for tests
    /// and troubleshooting.
    pub async fn state(&self, server_id: i64) -> Result<Vec<(Subject, Track)>, AlertError> {
        Ok(store::server_state(&self.inner.storage, server_id).await?)
    }

    /// The rules in force for one server.
    pub async fn server_rules(
        &self,
        owner_id: i64,
        server_id: i64,
    ) -> Result<rules::RuleSet, AlertError> {
        Ok(store::server_rules(&self.inner.storage, owner_id, server_id).await?)
    }

    /// Sets a rule for one server (`Some(id)`, which the caller checked the
    /// owner owns) or as the owner's default for all servers (`None`).
    pub async fn set_rule(
        &self,
        owner_id: i64,
        server_id: Option<i64>,
        metric: Metric,
        setting: Setting,
    ) -> Result<(), AlertError> {
        let now = self.now();
        store::save_rule(
            &self.inner.storage,
            owner_id,
            server_id.unwrap_or(0),
            metric,
            setting,
            now,
        )
        .await?;
        Ok(())
    }

    /// Removes a server's own rule so the owner's default applies.
    pub async fn reset_rule(
        &self,
        owner_id: i64,
        server_id: i64,
        metric: Metric,
    ) -> Result<bool, AlertError> {
        Ok(store::delete_rule(&self.inner.storage, owner_id, server_id, metric).await?)
    }

    /// Mutes one server (`Some(id)`) or all the owner's servers for `span`;
    /// returns when the mute ends.
    pub async fn mute(
        &self,
        owner_id: i64,
        server_id: Option<i64>,
        span: Duration,
    ) -> Result<i64, AlertError> {
        let until = self.now().saturating_add(secs(span));
        store::save_mute(&self.inner.storage, owner_id, server_id.unwrap_or(0), until).await?;
        Ok(until)
    }

    /// Ends the mute of one server (`Some(id)`) or every mute of the owner
    /// (`None`), then tells at once what changed while it lasted. Returns
    /// how many mutes ended and how many changes are being told.
    pub async fn unmute(
        &self,
        owner_id: i64,
        server_id: Option<i64>,
    ) -> Result<(u64, usize), AlertError> {
        let ended = store::delete_mutes(&self.inner.storage, owner_id, server_id).await?;
        let now = self.now();
        let storage = &self.inner.storage;
        let mut ids = store::owner_servers_with_state(storage, owner_id).await?;
        ids.retain(|id| server_id.is_none_or(|s| s == *id));
        // A server that fails here is caught up by the next tick.
        let told: usize = store::in_server_batches(storage, &ids, now, |ctx, tracks| {
            plan::catch_up(ctx, tracks, now)
        })
        .await
        .into_iter()
        .flatten()
        .sum();
        self.queued(told > 0);
        Ok((ended, told))
    }

    /// The owner's running mutes: `(server id, or 0 for all; until)`.
    pub async fn mutes(&self, owner_id: i64) -> Result<Vec<(i64, i64)>, AlertError> {
        Ok(store::active_mutes(&self.inner.storage, owner_id, self.now()).await?)
    }

    /// Telegram said `user_id` cannot be reached (they blocked the bot):
    /// their queued messages are dropped and no more are queued until they
    /// talk to the bot again. For the bot's `on_unreachable` hook (spawn
    /// it: the hook must return quickly).
    pub async fn user_unreachable(&self, user_id: i64) -> Result<(), AlertError> {
        outbox::mark_unreachable(&self.inner.storage, user_id).await?;
        Ok(())
    }

    /// A sender for the outbox through `client`.
    pub fn sender(
        &self,
        client: TelegramClient,
        unreachable: Option<UnreachableHook>,
    ) -> OutboxSender {
        OutboxSender::new(
            self.inner.storage.clone(),
            client,
            self.inner.settings.clone(),
            Arc::clone(&self.inner.wake),
            unreachable,
        )
    }

    /// Starts the scheduler and, given a Telegram client, the outbox
    /// sender, each under its lease, competing with other instances; and
    /// this process's report queue ([`Background::reports`]), which needs
    /// no lease: every instance evaluates the reports it stores.
    /// `holder` names this process in the `leases` table (unique per
    /// process, e.g. [`crate::web::instance_id`]). They stop, giving their
    /// leases up, when `shutdown` is cancelled or [`Background::stop`] is
    /// called.
    pub fn start(
        &self,
        telegram: Option<TelegramClient>,
        unreachable: Option<UnreachableHook>,
        holder: String,
        shutdown: &CancellationToken,
    ) -> Background {
        let stop = shutdown.child_token();
        let lease_time = self.inner.settings.lease_time;
        let storage = &self.inner.storage;
        let (reports, worker) = self.start_report_queue(&stop);
        let mut tasks = vec![worker];
        let (lease, renew) = lease::hold(
            storage.clone(),
            SCHEDULER_LEASE,
            holder.clone(),
            lease_time,
            stop.clone(),
        );
        tasks.push(renew);
        let scheduler = self.clone().schedule(lease);
        let until = stop.clone();
        tasks.push(tokio::spawn(async move {
            until.run_until_cancelled(scheduler).await;
        }));
        if let Some(client) = telegram {
            let (lease, renew) = lease::hold(
                storage.clone(),
                SENDER_LEASE,
                holder,
                lease_time,
                stop.clone(),
            );
            tasks.push(renew);
            let sending = self.sender(client, unreachable).run(lease);
            let until = stop.clone();
            tasks.push(tokio::spawn(async move {
                until.run_until_cancelled(sending).await;
            }));
        }
        Background {
            stop,
            tasks,
            reports,
        }
    }

    /// Ticks every `tick_interval` while `lease` is held.
    async fn schedule(self, lease: lease::LeaseHandle) {
        loop {
            lease.acquired().await;
            while lease.is_held() {
                if let Err(e) = self.tick().await {
                    tracing::warn!("alert tick failed: {e}");
                }
                tokio::time::sleep(self.inner.settings.tick_interval).await;
            }
        }
    }
}

/// The running scheduler, sender and report queue.
pub struct Background {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    reports: ReportQueue,
}

impl Background {
    /// The queue ingest feeds stored reports to.
    pub fn reports(&self) -> ReportQueue {
        self.reports.clone()
    }

    /// Stops them all, after the reports already queued are evaluated,
    /// and gives up the leases so another instance takes over at once.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Ends the tasks without releasing the leases, as a crash would (for
    /// tests of takeover).
    pub fn abort(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One kind of a tick's work, in rounds: `find` names up to [`TICK_BATCH`]
/// servers after a cursor, as `(sort key, server id)` pairs in its order,
/// and `plan` runs on each (see `store::in_server_batches`). Another round
/// starts after the last server found while the last round was full and
/// the tick has run for less than [`TICK_BUDGET`]: so a mass outage of
/// many thousand servers is announced within a tick or two rather than
/// [`TICK_BATCH`] servers a tick, and no round reads again what an earlier
/// one found. The values of the servers handled; a server whose work
/// failed (logged) has none.
async fn rounds<T, Find, Found>(
    storage: &Storage,
    started: Instant,
    now: i64,
    find: Find,
    plan: impl Fn(&store::ServerCtx, BTreeMap<Subject, Track>) -> store::Plan<T>,
) -> Result<Vec<T>, AlertError>
where
    Find: Fn((i64, i64)) -> Found,
    Found: Future<Output = store::Result<Vec<(i64, i64)>>>,
{
    let mut after = (i64::MIN, i64::MIN);
    let mut values = Vec::new();
    loop {
        let found = find(after).await?;
        let Some(&last) = found.last() else {
            break;
        };
        after = last;
        let ids: Vec<i64> = found.iter().map(|(_, id)| *id).collect();
        let done = store::in_server_batches(storage, &ids, now, &plan).await;
        values.extend(done.into_iter().flatten());
        if found.len() < TICK_BATCH as usize || started.elapsed() >= TICK_BUDGET {
            break;
        }
    }
    Ok(values)
}

/// A duration in whole seconds, as stored.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
