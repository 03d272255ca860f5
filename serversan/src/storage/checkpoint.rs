//! SQLite's WAL checkpoints, off the batch writer's path.
//!
//! By default the connection whose commit takes the write-ahead log past
//! 1,000 pages copies the log back into the database file and syncs both,
//! inside that commit. For ingest that connection is the batch writer, so
//! every few batches the one thread all reports wait for spent its time
//! copying pages instead of writing the next batch: about a third of
//! SQLite's work at saturation (BENCHMARKS.md, "Ingest"). Here a pool
//! connection, on another thread, checkpoints shortly after batches are
//! written, and the writer's own automatic checkpoint is only a backstop
//! (see [`WRITER_AUTOCHECKPOINT`]).
//!
//! A passive checkpoint never blocks the writer or readers, and each page
//! written several times since the last one is copied once. Durability is
//! as before: with `synchronous = NORMAL` a commit is safe from a crash of
//! the process at once, and from a power loss once a checkpoint has synced
//! the log. That now happens a moment after a batch even when little is
//! written, where before a quiet server could wait hours for its log to
//! reach 1,000 pages.

use std::time::Duration;

use tokio::sync::mpsc;

use super::db::Db;

/// The writer's own automatic checkpoint, in pages (40 MB at 4 KiB): it
/// only runs should the background checkpoints fall this far behind, so
/// the log cannot grow without bound.
pub(super) const WRITER_AUTOCHECKPOINT: u32 = 10_000;

/// How long after a batch the checkpoint runs: batches written meanwhile
/// share it, and a page they all touch (a server's index page) is copied
/// once.
const PAUSE: Duration = Duration::from_millis(100);

/// Tells the checkpointer a batch was written; never waits.
#[derive(Debug, Clone)]
pub(super) struct Wrote(mpsc::Sender<()>);

impl Wrote {
    pub(super) fn batch_committed(&self) {
        // Full means a checkpoint is already due.
        let _ = self.0.try_send(());
    }
}

/// Starts the checkpointer on the current runtime, with connections from
/// `pool`. It ends when every [`Wrote`] is dropped (the writer ended).
pub(super) fn start(pool: Db) -> Wrote {
    let (wrote, batches) = mpsc::channel(1);
    tokio::spawn(run(pool, batches));
    Wrote(wrote)
}

async fn run(pool: Db, mut batches: mpsc::Receiver<()>) {
    let Db::Sqlite(pool) = pool else {
        return;
    };
    while batches.recv().await.is_some() {
        tokio::time::sleep(PAUSE).await;
        // Batches written during the pause are covered by this checkpoint.
        while batches.try_recv().is_ok() {}
        let done: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await;
        match done {
            Ok((_, log, copied)) => tracing::trace!(log, copied, "checkpoint"),
            // The writer's automatic checkpoint still bounds the log.
            Err(e) => tracing::debug!("background checkpoint failed: {e}"),
        }
    }
}
