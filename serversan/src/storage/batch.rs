//! Group commit for accepted reports. Requests that arrive while a batch
//! is being written wait in a queue; the next batch takes them all (up to
//! a bound) and writes them in one transaction (see `reports::record_batch`:
//! a few multi-row statements for the whole batch in the common case).
//! Each request is answered only after its batch has committed, so a 200
//! still means the row is stored; the commit's cost (the lock, the WAL
//! write, the InnoDB log flush) is shared by the whole batch instead of
//! paid per report.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::WriteTurn;
use super::checkpoint::{self, Wrote};
use super::db::Db;
use super::reports::{PacingCache, Prepared, RecordOutcome, SqliteWriter, record_batch};
use super::{Result, StorageError};
use crate::config::DatabaseKind;

/// Most reports written in one transaction: large enough to share a commit
/// widely, small enough to keep the transaction short.
const MAX_BATCH: usize = 256;

/// Reports waiting for a batch; a full queue makes callers wait, which is
/// the back-pressure ingest needs.
const QUEUE: usize = 4 * MAX_BATCH;

/// How many of `waiting` reports the next batch takes: the largest power
/// of two that fits (at most [`MAX_BATCH`]). Why: a batch's statements
/// are cut into chunks of power-of-two lengths (`reports::bulk`), one
/// round trip each, and a round trip to sqlx's SQLite thread costs two
/// context switches; a batch of 20 took eight statements where 16 take
/// four. The rest, which arrived later, lead the next batch.
fn batch_len(waiting: usize) -> usize {
    match waiting.min(MAX_BATCH) {
        0 => 0,
        n => 1 << n.ilog2(),
    }
}

/// Batches written at once on MariaDB. Its commits run in parallel and
/// each waits for its own log flush: with one writer a request could wait
/// for two commits in a row (measured at a steady 1,000/s: p99 12.6 ms
/// per-request, 34 ms with one writer, 4.9 ms with four), so a few writers
/// take turns (see `write_batches`). SQLite has one writer.
const MYSQL_WRITERS: usize = 4;

struct Job {
    report: Prepared,
    reply: oneshot::Sender<Result<RecordOutcome>>,
}

/// What the writers take batches from, one writer at a time.
struct Waiting<T = Job> {
    queue: mpsc::Receiver<T>,
    /// Reports left over by the last batch taken (see [`batch_len`]), in
    /// arrival order, all older than any still in `queue`.
    left: Vec<T>,
}

impl<T> Waiting<T> {
    fn new(queue: mpsc::Receiver<T>) -> Self {
        Self {
            queue,
            left: Vec::with_capacity(MAX_BATCH),
        }
    }

    /// The next batch, in arrival order; empty once the queue is closed
    /// and nothing is left. Waits only when nothing is waiting at all.
    async fn next_batch(&mut self) -> Vec<T> {
        if self.left.is_empty() {
            self.queue.recv_many(&mut self.left, MAX_BATCH).await;
        }
        while self.left.len() < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(job) => self.left.push(job),
                Err(_) => break,
            }
        }
        let rest = self.left.split_off(batch_len(self.left.len()));
        std::mem::replace(&mut self.left, rest)
    }
}

/// The queue in front of the batch writer; cheap to clone.
#[derive(Clone)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Job>,
    /// The SQLite writer's own connection, shared with the writer's
    /// thread so that [`Batcher::close`] can close it.
    own: Option<Own>,
}

/// The SQLite writer's own connection; `None` once closed.
type Own = Arc<std::sync::Mutex<Option<SqliteWriter>>>;

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the writers. They end when the last handle (every clone of
    /// the storage) is dropped.
    ///
    /// MariaDB's writers are tasks on the current runtime. SQLite's one
    /// writer gets a thread of its own, and on an SQLite file a connection
    /// of its own that this thread drives ([`SqliteWriter`]): a batch is a
    /// handful of statements, and as a task the writer waited behind every
    /// request in the runtime's queue after each of them; through sqlx
    /// each was a hand-off to sqlx's SQLite thread and back, each waiting
    /// for a core under load. On its own thread, running its statements
    /// itself, it waits for neither (BENCHMARKS.md).
    ///
    /// `checkpoints`: on an SQLite file, the pool whose connections
    /// checkpoint the log after batches (see `checkpoint`). `turn`: on
    /// SQLite, taken around each batch (see `Storage::write_turn`).
    /// `own`: on an SQLite file, the file and the busy timeout for the
    /// writer's own connection; when it cannot be opened, batches go
    /// through `db` (logged).
    pub(super) fn start(
        db: Db,
        checkpoints: Option<Db>,
        turn: Option<WriteTurn>,
        own: Option<(PathBuf, Duration)>,
    ) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(Waiting::new(jobs)));
        let own = own.and_then(|(file, busy_timeout)| {
            SqliteWriter::open(&file, busy_timeout)
                .inspect_err(|e| {
                    tracing::warn!(
                        "cannot open the report writer's connection, writing through the pool instead: {e}"
                    );
                })
                .ok()
                .map(|writer| Arc::new(std::sync::Mutex::new(Some(writer))))
        });
        match db.kind() {
            DatabaseKind::Sqlite => {
                let thread = spawn_writer_thread(
                    db.clone(),
                    jobs.clone(),
                    checkpoints.clone(),
                    turn.clone(),
                    own.clone(),
                );
                if let Err(e) = thread {
                    tracing::warn!(
                        "cannot start the report writer's thread, writing from the runtime instead: {e}"
                    );
                    let wrote = checkpoints.map(checkpoint::start);
                    tokio::spawn(write_batches(db, None, jobs, wrote, turn, None));
                }
            }
            DatabaseKind::MySql => {
                let cache = Arc::new(PacingCache::new());
                for _ in 0..MYSQL_WRITERS {
                    let cache = Some(cache.clone());
                    let writer = write_batches(db.clone(), cache, jobs.clone(), None, None, None);
                    tokio::spawn(writer);
                }
            }
        }
        Self { queue, own }
    }

    /// Closes the writer's own connection, if it has one: batches still
    /// queued or submitted later go to the pool, which the caller closes
    /// too. Waits for a batch being written to commit.
    pub(super) fn close(&self) {
        if let Some(own) = &self.own {
            own.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
    }

    /// Queues a report and waits until its batch has committed (or failed).
    pub(super) async fn submit(&self, report: Prepared) -> Result<RecordOutcome> {
        let (reply, answer) = oneshot::channel();
        let closed = || StorageError::Database(sqlx::Error::PoolClosed);
        self.queue
            .send(Job { report, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Runs [`write_batches`] on a new thread with a runtime of its own, and
/// the checkpointer beside it (it ends with the writer).
fn spawn_writer_thread(
    db: Db,
    jobs: Arc<Mutex<Waiting>>,
    checkpoints: Option<Db>,
    turn: Option<WriteTurn>,
    own: Option<Own>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("report-writer".into())
        .spawn(move || {
            runtime.block_on(async move {
                let wrote = checkpoints.map(checkpoint::start);
                write_batches(db, None, jobs, wrote, turn, own).await;
            });
        })?;
    Ok(())
}

/// `cache`: the servers' pacing rows as these writers last wrote them,
/// shared by all of them (see `reports::record_batch`). MariaDB only: there
/// it saves a statement that was a fifth of its time per batch; SQLite's
/// read is a cheap lookup on its own thread, and with the cache its
/// ceiling did not rise (direct runs, five alternated pairs: median 11,507
/// against 11,160 reports/s, lower in four pairs of five), so it reads.
/// `wrote`: told after each batch, on an SQLite file (see `checkpoint`).
/// `write_turn`: on SQLite, taken around each batch (`Storage::write_turn`).
/// `own`: on an SQLite file, the connection batches are written on while
/// it is open (run on the caller's thread: meant for a thread of the
/// writer's own); a batch it gives up on goes the plain way through `db`.
async fn write_batches(
    db: Db,
    cache: Option<Arc<PacingCache>>,
    queue: Arc<Mutex<Waiting>>,
    wrote: Option<Wrote>,
    write_turn: Option<WriteTurn>,
    own: Option<Own>,
) {
    loop {
        // The writer's turn: the queue stays locked while this writer takes
        // a batch and runs its statements, and is passed on right before
        // the commit. So one batch at a time runs statements (the database
        // works through them either way) while earlier ones wait for their
        // log flush, and reports that arrive meanwhile make the next batch
        // larger instead of starting more small ones: measured on MariaDB
        // at saturation, batches taken as soon as a writer was free held
        // about 4 reports, each paying a whole batch's statements; taken
        // this way they hold about 9, and mariadbd's CPU per report fell
        // from 207 to 151 µs.
        let mut queued = queue.clone().lock_owned().await;
        let mut jobs = queued.next_batch().await;
        if jobs.is_empty() {
            break;
        }
        let turn = std::sync::Mutex::new(Some(queued));
        let pass_turn = || {
            if let Ok(mut turn) = turn.lock() {
                turn.take();
            }
        };
        // By server, keeping arrival order within one server: concurrent
        // batches (other instances) then lock `servers` rows in one order.
        jobs.sort_by_key(|j| j.report.server_id());
        let (reports, replies): (Vec<Prepared>, Vec<_>) =
            jobs.drain(..).map(|j| (j.report, j.reply)).unzip();
        // SQLite's turn to write in this process (`Storage::write_turn`).
        let writing = WriteTurn::take_any(write_turn.as_ref()).await;
        let on_own = own.as_ref().and_then(|own| {
            let mut own = own.lock().unwrap_or_else(PoisonError::into_inner);
            own.as_mut().map(|own| own.write(&reports, &pass_turn))
        });
        let written = match on_own {
            Some(Ok(Some(outcomes))) => {
                metrics::counter!("serversan_report_batches_total", "path" => "bulk").increment(1);
                Ok(outcomes)
            }
            Some(Err(e)) => Err(StorageError::Sqlite(e)),
            // Another process wrote under the batch, or no connection of
            // its own: through the pool, which writes it report by report
            // if it must.
            Some(Ok(None)) | None => {
                record_batch(&db, cache.as_deref(), &reports, &pass_turn).await
            }
        };
        drop(writing);
        pass_turn();
        match written {
            Ok(outcomes) => {
                if let Some(wrote) = &wrote {
                    wrote.batch_committed();
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The caller may have given up (a timeout); the report
                    // is stored all the same.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!(reports = reports.len(), "a batch of reports failed: {e}");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(StorageError::Batch(e.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_take_the_largest_power_of_two_that_fits() {
        let lens: Vec<usize> = [0, 1, 2, 3, 20, 255, 256, 257, 5000]
            .into_iter()
            .map(batch_len)
            .collect();
        assert_eq!(lens, [0, 1, 2, 2, 16, 128, 256, 256, 256]);
    }

    #[tokio::test]
    async fn reports_left_over_lead_the_next_batch_in_arrival_order() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut waiting = Waiting::new(rx);
        for i in 0..20 {
            tx.send(i).await.unwrap();
        }
        assert_eq!(waiting.next_batch().await, (0..16).collect::<Vec<_>>());
        for i in 20..23 {
            tx.send(i).await.unwrap();
        }
        // 16..23 are waiting: the oldest four go, three are left.
        assert_eq!(waiting.next_batch().await, [16, 17, 18, 19]);
        drop(tx);
        // Closed: what is left still goes, then batches are empty.
        assert_eq!(waiting.next_batch().await, [20, 21]);
        assert_eq!(waiting.next_batch().await, [22]);
        assert!(waiting.next_batch().await.is_empty());
    }

    #[tokio::test]
    async fn an_empty_queue_is_waited_for() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut waiting = Waiting::new(rx);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            tx.send(7).await.unwrap();
        });
        assert_eq!(waiting.next_batch().await, [7]);
        sender.await.unwrap();
    }
}
