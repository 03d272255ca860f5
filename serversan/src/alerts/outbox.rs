//! The durable outbox and its sender.
//!
//! Alert messages are rows of `outbox`, written in the same transaction as
//! the state change they announce, so a crash can never lose one. The
//! sender, run by one instance at a time under a lease, sends them in
//! order through [`TelegramClient`] (which waits out 429s and retries 5xx
//! and network errors with backoff) and marks a row sent only after
//! Telegram accepted it: a crash between the two sends it again, at worst
//! twice, never zero times. A permanent refusal (the user blocked the bot)
//! drops that message with a log line and never holds up the others; a
//! message Telegram kept failing on is tried again later, and later
//! messages to the same chat wait for it so they arrive in order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use super::lease::LeaseHandle;
use super::settings::AlertSettings;
use crate::bot::telegram::{SendError, TelegramClient};
use crate::storage::db::{Columns, WritePool, retry_conflicts, with_pool};
use crate::storage::{Storage, StorageError, unix_now};

/// Rows read per round.
const BATCH: i64 = 100;

const PENDING: i16 = 0;
const SENT: i16 = 1;
const DROPPED: i16 = 2;

/// Longest error text kept with a row.
const MAX_ERROR_CHARS: usize = 200;

/// Called with a user id when Telegram says the user cannot be reached.
pub type UnreachableHook = Arc<dyn Fn(i64) + Send + Sync>;

/// A queued message.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub id: i64,
    pub chat_id: i64,
    pub text: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
}

/// What one round of sending did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    pub sent: usize,
    pub dropped: usize,
    pub deferred: usize,
}

/// Sends queued messages.
#[derive(Clone)]
pub struct OutboxSender {
    storage: Storage,
    client: TelegramClient,
    settings: AlertSettings,
    wake: Arc<Notify>,
    unreachable: Option<UnreachableHook>,
}

impl OutboxSender {
    pub(super) fn new(
        storage: Storage,
        client: TelegramClient,
        settings: AlertSettings,
        wake: Arc<Notify>,
        unreachable: Option<UnreachableHook>,
    ) -> Self {
        Self {
            storage,
            client,
            settings,
            wake,
            unreachable,
        }
    }

    /// Sends what is due, oldest first, while `lease` (if any) is held.
    pub async fn drain(&self, lease: Option<&LeaseHandle>) -> Result<Drained, StorageError> {
        let now = unix_now();
        let mut done = Drained::default();
        let mut waiting_chats = HashSet::new();
        for message in pending(&self.storage, now).await? {
            if waiting_chats.contains(&message.chat_id) {
                continue;
            }
            if message.next_attempt_at > now {
                waiting_chats.insert(message.chat_id);
                continue;
            }
            if lease.is_some_and(|l| !l.is_held()) {
                break;
            }
            match self.send(&message).await {
                Ok(()) => {
                    record_try(&self.storage, message.id, SENT, None, None).await?;
                    done.sent += 1;
                }
                Err(refusal @ SendError::Refused { .. }) => {
                    tracing::warn!(
                        outbox_id = message.id,
                        chat_id = message.chat_id,
                        error = %refusal,
                        "Telegram refused an alert message; dropped"
                    );
                    record_try(
                        &self.storage,
                        message.id,
                        DROPPED,
                        None,
                        Some(&refusal.to_string()),
                    )
                    .await?;
                    done.dropped += 1;
                    if refusal.user_unreachable() {
                        let gone = mark_unreachable(&self.storage, message.chat_id).await?;
                        done.dropped += gone;
                        waiting_chats.insert(message.chat_id);
                        if let Some(hook) = &self.unreachable {
                            hook(message.chat_id);
                        }
                    }
                }
                Err(SendError::GaveUp(reason)) => {
                    let wait = self.backoff(message.attempts);
                    let next =
                        unix_now() + i64::try_from(wait.as_secs().max(1)).unwrap_or(i64::MAX);
                    tracing::warn!(
                        outbox_id = message.id,
                        retry_in_secs = wait.as_secs(),
                        "Telegram kept failing; the alert message will be tried again"
                    );
                    record_try(
                        &self.storage,
                        message.id,
                        PENDING,
                        Some(next),
                        Some(&reason),
                    )
                    .await?;
                    waiting_chats.insert(message.chat_id);
                    done.deferred += 1;
                }
            }
        }
        Ok(done)
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
        self.settings
            .outbox_retry_backoff
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.settings.outbox_retry_max)
    }

    async fn send(&self, message: &Queued) -> Result<(), SendError> {
        let params = json!({
            "chat_id": message.chat_id,
            "text": message.text,
            "parse_mode": "HTML",
            "link_preview_options": { "is_disabled": true },
        });
        self.client
            .call::<Value>("sendMessage", &params)
            .await
            .map(|_| ())
    }

    /// Sends whenever `lease` is held; runs until dropped.
    pub(super) async fn run(self, lease: LeaseHandle) {
        loop {
            lease.acquired().await;
            while lease.is_held() {
                let more = match self.drain(Some(&lease)).await {
                    Ok(d) => d.sent + d.dropped >= BATCH as usize,
                    Err(e) => {
                        tracing::warn!("cannot read the outbox: {e}");
                        false
                    }
                };
                if more {
                    continue;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.outbox_poll_interval) => {}
                }
            }
        }
    }
}

/// The oldest queued messages of chats that are not waiting for a retry
/// (so one chat's trouble never holds up the others).
async fn pending(storage: &Storage, now: i64) -> Result<Vec<Queued>, StorageError> {
    with_pool!(storage.db(), pool => {
        let rows = sqlx::query(
            "SELECT id, chat_id, text, attempts, next_attempt_at FROM outbox \
             WHERE status = ? AND chat_id NOT IN (SELECT w.chat_id FROM outbox w \
               WHERE w.status = ? AND w.next_attempt_at > ?) \
             ORDER BY id LIMIT ?",
        )
        .bind(PENDING)
        .bind(PENDING)
        .bind(now)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(Queued {
                    id: r.int("id")?,
                    chat_id: r.int("chat_id")?,
                    text: r.text("text")?,
                    attempts: r.int("attempts")?,
                    next_attempt_at: r.int("next_attempt_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    })
}

fn bounded(reason: &str) -> String {
    reason.chars().take(MAX_ERROR_CHARS).collect()
}

/// Records one try of a message: sent or dropped (`status`), or still
/// queued until `retry_at`.
async fn record_try(
    storage: &Storage,
    id: i64,
    status: i16,
    retry_at: Option<i64>,
    reason: Option<&str>,
) -> Result<(), StorageError> {
    let reason = reason.map(bounded);
    let done_at = (status != PENDING).then(unix_now);
    // Taken for each message sent: on SQLite, wait for the batch writer
    // here rather than in SQLite's busy handler (under ingest load 15 ms
    // at the median, over 100 ms at the p99, between two messages).
    retry_conflicts(|| async {
        let turn = storage.write_turn().await;
        with_pool!(turn.db, pool => {
            sqlx::query(
                "UPDATE outbox SET status = ?, done_at = ?, attempts = attempts + 1, \
                 next_attempt_at = COALESCE(?, next_attempt_at), last_error = ? \
                 WHERE id = ? AND status = ?",
            )
            .bind(status)
            .bind(done_at)
            .bind(retry_at)
            .bind(reason.as_deref())
            .bind(id)
            .bind(PENDING)
            .execute(pool)
            .await
            .map(|_| ())
        })
    })
    .await?;
    Ok(())
}

/// Records that Telegram cannot reach `chat_id` (until the user talks to
/// the bot again, which updates their `users` row) and drops what is
/// queued for them. Returns how many queued messages were dropped.
pub(super) async fn mark_unreachable(
    storage: &Storage,
    chat_id: i64,
) -> Result<usize, StorageError> {
    let record = storage.db().sql(
        "INSERT INTO unreachable_chats (chat_id, since) VALUES (?, ?) \
         ON CONFLICT (chat_id) DO UPDATE SET since = excluded.since",
        "INSERT INTO unreachable_chats (chat_id, since) VALUES (?, ?) \
         ON DUPLICATE KEY UPDATE since = VALUES(since)",
    );
    let now = unix_now();
    let dropped = retry_conflicts(|| async {
        let turn = storage.write_turn().await;
        with_pool!(turn.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(record).bind(chat_id).bind(now).execute(&mut *tx).await?;
            let n = sqlx::query(
                "UPDATE outbox SET status = ?, done_at = ?, last_error = ? \
                 WHERE chat_id = ? AND status = ?",
            )
            .bind(DROPPED)
            .bind(now)
            .bind("the user cannot be reached")
            .bind(chat_id)
            .bind(PENDING)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    })
    .await?;
    tracing::info!(
        chat_id,
        dropped,
        "user cannot be reached; their queued alerts are dropped"
    );
    Ok(usize::try_from(dropped).unwrap_or(usize::MAX))
}

/// Removes sent and dropped messages finished before `before`.
pub(super) async fn prune(storage: &Storage, before: i64) -> Result<u64, StorageError> {
    let n = with_pool!(storage.db(), pool => {
        sqlx::query("DELETE FROM outbox WHERE status <> ? AND done_at < ?")
            .bind(PENDING)
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(n)
}

/// Where a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Sent,
    /// Telegram refused it for good.
    Dropped,
}

impl Status {
    fn from_column(v: i64) -> Self {
        match v {
            1 => Status::Sent,
            2 => Status::Dropped,
            _ => Status::Queued,
        }
    }
}

/// The messages queued for a chat, oldest first, with where they stand:
/// for tests and troubleshooting.
pub async fn messages_for(
    storage: &Storage,
    chat_id: i64,
) -> Result<Vec<(String, Status)>, StorageError> {
    with_pool!(storage.db(), pool => {
        let rows = sqlx::query("SELECT text, status FROM outbox WHERE chat_id = ? ORDER BY id")
            .bind(chat_id)
            .fetch_all(pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.text("text")?, Status::from_column(r.int("status")?))))
            .collect::<Result<_, sqlx::Error>>()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db::InsertedId;
    use crate::storage::test_support::{sqlite_with_busy_timeout, waits_for_the_write_turn};

    async fn queue(storage: &Storage, chat_id: i64, text: &str) -> i64 {
        with_pool!(storage.db(), pool => {
            sqlx::query(
                "INSERT INTO outbox (chat_id, text, created_at, next_attempt_at) VALUES (?, ?, ?, 0)",
            )
            .bind(chat_id)
            .bind(text)
            .bind(unix_now())
            .execute(pool)
            .await
            .expect("queued")
            .inserted_id()
        })
    }

    /// The sender's writes, while ingest's batch writer holds SQLite's
    /// lock: each waits for its turn, not in SQLite's busy handler.
    #[tokio::test]
    async fn the_senders_writes_wait_for_the_write_turn() {
        let (_dir, storage) = sqlite_with_busy_timeout().await;
        let sent = queue(&storage, 5, "sent").await;
        queue(&storage, 6, "dropped").await;
        let s = storage.clone();
        waits_for_the_write_turn(&storage, async move {
            record_try(&s, sent, SENT, None, None).await
        })
        .await
        .expect("recorded");
        let s = storage.clone();
        let dropped =
            waits_for_the_write_turn(&storage, async move { mark_unreachable(&s, 6).await })
                .await
                .expect("marked");
        assert_eq!(dropped, 1);
        assert_eq!(
            messages_for(&storage, 5).await.expect("read"),
            [("sent".to_owned(), Status::Sent)]
        );
        assert_eq!(
            messages_for(&storage, 6).await.expect("read"),
            [("dropped".to_owned(), Status::Dropped)]
        );
        storage.close().await;
    }
}
