//! The queue between ingest and rule evaluation.
//!
//! Ingest hands each report to [`ReportQueue::report_stored`] after its
//! commit; one worker per process takes everything queued (up to
//! [`MAX_BATCH`]) and evaluates it in one transaction with a few statements
//! for all its servers, instead of a transaction of its own per report.
//! Reports of one server are evaluated in the order they arrived, each
//! seeing the state the one before left.
//!
//! The queue is bounded: when evaluation falls behind, ingest waits for a
//! place (back-pressure) rather than dropping a report, since a dropped
//! good report could make a duration window look all-breaching. A batch
//! that fails on the database after its conflict retries is logged and
//! its reports stay unevaluated (the next report of each server, or the
//! scheduler, catches up, as after a failed evaluation before batching);
//! the worker goes on with the rest of the queue.

use std::time::Duration;

use serversan_protocol::Report;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Alerts;
use super::eval::Sample;

/// Most reports evaluated in one transaction: enough to share it widely,
/// few enough to keep it short.
const MAX_BATCH: usize = 256;

/// Reports waiting for evaluation; when full, ingest waits.
const CAPACITY: usize = 4 * MAX_BATCH;

/// How long a batch may wait for more reports before it is evaluated.
///
/// Why wait at all: a batch's transaction costs a few statements (and, on
/// SQLite, the one write lock that ingest's batches need too) whatever its
/// size. Taken as soon as the worker was free, batches held about 20
/// reports at saturation, and evaluating them took a quarter of SQLite's
/// ingest throughput. Rules count in minutes, so a few more milliseconds
/// before a report is evaluated change nothing anyone sees.
const LINGER: Duration = Duration::from_millis(50);

/// A stored report, reduced to what its rules need.
#[derive(Debug, Clone)]
pub(super) struct StoredReport {
    pub server_id: i64,
    /// When it arrived, on the alert clock.
    pub arrived_at: i64,
    /// Collected recently enough to be evaluated against thresholds (not
    /// a spool flushed after an outage).
    pub fresh: bool,
    pub sample: Sample,
}

enum Item {
    Report(StoredReport),
    /// Answered once everything queued before it was evaluated.
    Flush(oneshot::Sender<()>),
}

/// The queue's worker has stopped (the server is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "alert evaluation has stopped (the server is shutting down): the report is stored, \
     its alert rules were not evaluated"
)]
pub struct QueueStopped;

/// Where ingest queues stored reports for alert evaluation; cheap to
/// clone. Made by [`Alerts::start_report_queue`].
#[derive(Clone)]
pub struct ReportQueue {
    alerts: Alerts,
    items: mpsc::Sender<Item>,
}

impl ReportQueue {
    /// Queues a report that was just committed, waiting while the queue is
    /// full. Fails only when the worker has stopped (shutdown).
    pub async fn report_stored(&self, server_id: i64, report: &Report) -> Result<(), QueueStopped> {
        let report = self.alerts.stored_report(server_id, report);
        self.items
            .send(Item::Report(report))
            .await
            .map_err(|_| QueueStopped)
    }

    /// Waits until every report queued before has been evaluated (or its
    /// batch failed): for tests and an orderly shutdown.
    pub async fn flush(&self) -> Result<(), QueueStopped> {
        let (done, evaluated) = oneshot::channel();
        self.items
            .send(Item::Flush(done))
            .await
            .map_err(|_| QueueStopped)?;
        evaluated.await.map_err(|_| QueueStopped)
    }
}

/// Starts the worker; see [`Alerts::start_report_queue`].
pub(super) fn start(alerts: Alerts, stop: CancellationToken) -> (ReportQueue, JoinHandle<()>) {
    let (items, queued) = mpsc::channel(CAPACITY);
    let worker = tokio::spawn(evaluate_queued(alerts.clone(), queued, stop));
    (ReportQueue { alerts, items }, worker)
}

/// Evaluates what is queued, a batch at a time, until `stop` is cancelled
/// (then what was queued before is still evaluated) or every queue handle
/// is gone.
async fn evaluate_queued(
    alerts: Alerts,
    mut queued: mpsc::Receiver<Item>,
    stop: CancellationToken,
) {
    let mut items = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        let taken = tokio::select! {
            taken = queued.recv_many(&mut items, MAX_BATCH) => taken,
            () = stop.cancelled(), if !stopping => {
                queued.close();
                stopping = true;
                continue;
            }
        };
        if taken == 0 {
            break;
        }
        if !stopping {
            linger(&mut queued, &mut items, &stop).await;
        }
        let mut reports = Vec::with_capacity(items.len());
        let mut flushes = Vec::new();
        for item in items.drain(..) {
            match item {
                Item::Report(report) => reports.push(report),
                Item::Flush(done) => flushes.push(done),
            }
        }
        if !reports.is_empty() {
            match alerts.evaluate(&reports).await {
                Ok(()) => tracing::debug!(reports = reports.len(), "alert batch evaluated"),
                Err(e) => {
                    metrics::counter!("serversan_alert_reports_unevaluated_total")
                        .increment(reports.len() as u64);
                    tracing::warn!(
                        reports = reports.len(),
                        "alert evaluation of a batch of reports failed; each server's next \
                         report or the scheduler catches up: {e}"
                    );
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Adds what arrives to `items` for up to [`LINGER`], until the batch is
/// full, a flush is waiting for it, or the server is stopping.
async fn linger(
    queued: &mut mpsc::Receiver<Item>,
    items: &mut Vec<Item>,
    stop: &CancellationToken,
) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let waited_for = |items: &[Item]| items.iter().any(|i| matches!(i, Item::Flush(_)));
    while items.len() < MAX_BATCH && !waited_for(items) {
        let room = MAX_BATCH - items.len();
        tokio::select! {
            taken = queued.recv_many(items, room) => if taken == 0 { return },
            () = tokio::time::sleep_until(deadline) => return,
            () = stop.cancelled() => return,
        }
    }
}
