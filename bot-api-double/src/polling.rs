//! getUpdates with Telegram's long-polling semantics: offsets confirm
//! updates, a request with nothing to return waits up to `timeout`, and a
//! newer long poll terminates the one already waiting with 409 Conflict.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::args::Args;
use crate::reply::{ApiError, ApiResult, Success};
use crate::world::{Shared, World};

/// Telegram's longest long poll.
const MAX_TIMEOUT_SECS: i64 = 50;

pub(crate) const TERMINATED_BY_GET_UPDATES: &str =
    "terminated by other getUpdates request; make sure that only one bot instance is running";
pub(crate) const TERMINATED_BY_SET_WEBHOOK: &str = "terminated by setWebhook request";
const WEBHOOK_ACTIVE: &str = "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

/// The long poll currently waiting, and what Telegram remembers about
/// previous calls.
#[derive(Default)]
pub(crate) struct PollState {
    waiter: Option<Waiter>,
    next_waiter_id: u64,
    previous_offset: Option<i64>,
    previous_start: Option<Instant>,
    next_conflict_at: Option<Instant>,
}

struct Waiter {
    id: u64,
    wake: oneshot::Sender<Wake>,
}

enum Wake {
    Updates,
    Conflict {
        message: &'static str,
        delay: Duration,
    },
}

impl World {
    /// Telegram's update selection: updates below the offset are confirmed
    /// and forgotten; a negative offset counts from the end.
    fn take_updates(&mut self, offset: i64, limit: usize) -> (i64, Vec<Value>) {
        let tail = self.next_update_id;
        let head = self.updates.front().map_or(tail, |u| u.id);
        let mut from = offset;
        if from < 0 && !self.updates.is_empty() {
            from += tail;
        }
        if from < head || from > tail {
            // Older updates are gone, and ids from the future are not
            // accepted: Telegram answers from the oldest pending update.
            from = head;
        }
        while self.updates.front().is_some_and(|u| u.id < from) {
            self.updates.pop_front();
        }
        let updates = self
            .updates
            .iter()
            .take(limit)
            .map(|u| u.body.clone())
            .collect();
        (from, updates)
    }

    /// Wakes the waiting long poll because updates arrived.
    pub(crate) fn wake_poller(&mut self) {
        if let Some(waiter) = self.poll.waiter.take() {
            // A poll that went away meanwhile needs no answer.
            let _ = waiter.wake.send(Wake::Updates);
        }
    }

    /// Ends the waiting long poll with 409; a second conflict soon after
    /// the previous one is answered only after `repeat_delay`.
    pub(crate) fn abort_long_poll(&mut self, message: &'static str, repeat_delay: Duration) {
        let Some(waiter) = self.poll.waiter.take() else {
            return;
        };
        let now = Instant::now();
        let delay = if self.poll.next_conflict_at.is_none_or(|at| now >= at) {
            self.poll.next_conflict_at = Some(now + repeat_delay);
            Duration::ZERO
        } else {
            repeat_delay
        };
        // A poll that went away meanwhile needs no answer.
        let _ = waiter.wake.send(Wake::Conflict { message, delay });
    }
}

/// Removes this request's waiter when the request ends for any reason,
/// including the client hanging up.
struct WaiterGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let mut world = self.shared.lock();
        if world.poll.waiter.as_ref().is_some_and(|w| w.id == self.id) {
            world.poll.waiter = None;
        }
    }
}

pub(crate) async fn get_updates(shared: &Arc<Shared>, args: &Args) -> ApiResult {
    let offset = args.int("offset").unwrap_or(0);
    let limit = usize::try_from(args.int("limit").unwrap_or(100).clamp(1, 100)).unwrap_or(100);
    let seconds = args.int("timeout").unwrap_or(0).clamp(0, MAX_TIMEOUT_SECS);
    let mut timeout = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    let (id, from, wake) = {
        let mut world = shared.lock();
        if world.webhook.url.is_some() {
            return Err(ApiError::conflict(WEBHOOK_ACTIVE));
        }
        world.set_allowed_updates(args.get("allowed_updates"));
        let now = Instant::now();
        let min = shared.options.repeated_poll_min_timeout;
        let repeated = world.poll.previous_offset == Some(offset)
            && world.poll.previous_start.is_some_and(|t| now < t + min);
        if repeated && timeout < min {
            timeout = min;
        }
        world.poll.previous_offset = Some(offset);
        world.poll.previous_start = Some(now);
        let (from, updates) = world.take_updates(offset, limit);
        if !updates.is_empty() || timeout.is_zero() {
            if !updates.is_empty() {
                world.last_activity = now;
            }
            return Ok(Success::of(json!(updates)));
        }
        world.abort_long_poll(
            TERMINATED_BY_GET_UPDATES,
            shared.options.conflict_repeat_delay,
        );
        let (tx, rx) = oneshot::channel();
        world.poll.next_waiter_id += 1;
        let id = world.poll.next_waiter_id;
        world.poll.waiter = Some(Waiter { id, wake: tx });
        (id, from, rx)
    };
    let guard = WaiterGuard { shared, id };
    if let Ok(Ok(Wake::Conflict { message, delay })) = tokio::time::timeout(timeout, wake).await {
        drop(guard);
        tokio::time::sleep(delay).await;
        return Err(ApiError::conflict(message));
    }
    drop(guard);
    let mut world = shared.lock();
    let (_, updates) = world.take_updates(from, limit);
    if !updates.is_empty() {
        world.last_activity = Instant::now();
    }
    Ok(Success::of(json!(updates)))
}
