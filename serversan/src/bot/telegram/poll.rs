//! Long polling: getUpdates in a loop, every update to the chat router.
//!
//! Telegram allows one getUpdates consumer per token (a second gets 409),
//! so with several `serve` instances only the holder of the poller lease
//! polls; another takes over once the lease expires.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::ChatHandler;
use super::router::ChatRouter;
use super::updates::{incoming, update_id};
use crate::storage::{Storage, unix_now};

/// The lease row that elects the poller.
pub const POLLER_LEASE: &str = "telegram-poller";

/// Polls until `stop` is cancelled. Errors (network, 5xx, 409 from a
/// competing poller) are retried with backoff, so the loop never dies on
/// one. On the way out it confirms the updates it handled, so the next
/// poller does not receive them again.
pub async fn poll<H: ChatHandler>(router: Arc<ChatRouter<H>>, stop: CancellationToken) {
    let client = router.client().clone();
    let settings = client.settings().clone();
    let mut offset: i64 = 0;
    // A getUpdates that Telegram answered confirmed every update below its
    // offset; the last batch is confirmed only by the next call.
    let mut confirmed: i64 = 0;
    let mut backoff = settings.backoff_initial;
    loop {
        let sent = offset;
        let answer = tokio::select! {
            _ = stop.cancelled() => break,
            r = client.get_updates(sent, settings.poll_timeout) => r,
        };
        match answer {
            Ok(updates) => {
                confirmed = sent;
                backoff = settings.backoff_initial;
                for raw in updates {
                    if let Some(id) = update_id(&raw) {
                        offset = offset.max(id.saturating_add(1));
                    }
                    if let Some(item) = incoming(raw) {
                        router.dispatch(item);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "getUpdates failed; polling again shortly");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(settings.backoff_max);
            }
        }
    }
    if offset > confirmed {
        let confirm = client.get_updates(offset, Duration::ZERO);
        let _ = tokio::time::timeout(settings.request_timeout, confirm).await;
    }
}

/// Polls while holding the poller lease, until `shutdown` is cancelled.
/// `holder` names this instance (unique per process).
pub async fn poll_under_lease<H: ChatHandler>(
    storage: Storage,
    router: Arc<ChatRouter<H>>,
    lease: Duration,
    holder: String,
    shutdown: CancellationToken,
) {
    let lease = lease.max(Duration::from_secs(3));
    let tick = lease / 3;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        match storage
            .try_lease(POLLER_LEASE, &holder, unix_now(), lease)
            .await
        {
            Ok(true) => {
                tracing::info!("polling Telegram for updates");
                let lost = shutdown.child_token();
                let renewer = tokio::spawn(keep_lease(
                    storage.clone(),
                    holder.clone(),
                    lease,
                    lost.clone(),
                ));
                poll(Arc::clone(&router), lost.clone()).await;
                lost.cancel();
                let _ = renewer.await;
                if shutdown.is_cancelled() {
                    if let Err(e) = storage.release_lease(POLLER_LEASE, &holder).await {
                        tracing::warn!(error = %e, "could not release the poller lease");
                    }
                    break;
                }
                tracing::warn!("lost the poller lease; another instance polls now");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take the poller lease"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

/// Renews the lease every third of its time; cancels `lost` when another
/// instance holds it or the database stayed unreachable until it expired.
async fn keep_lease(storage: Storage, holder: String, lease: Duration, lost: CancellationToken) {
    let tick = lease / 3;
    let secs = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX);
    let mut held_until = unix_now().saturating_add(secs);
    loop {
        tokio::select! {
            _ = lost.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let now = unix_now();
        match storage.try_lease(POLLER_LEASE, &holder, now, lease).await {
            Ok(true) => held_until = now.saturating_add(secs),
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the poller lease");
                let margin = i64::try_from(tick.as_secs()).unwrap_or(1);
                if now.saturating_add(margin) >= held_until {
                    break;
                }
            }
        }
    }
    lost.cancel();
}
