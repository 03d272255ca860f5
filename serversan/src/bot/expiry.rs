//! Pending servers: a server whose code was never used disappears after the
//! code expiry (24 h by default), so abandoned `/add`s do not pile up and a
//! code pasted nowhere stops being a way in.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::storage::{Server, Storage, StorageError, unix_now};

/// The lease that keeps several instances from doing the same sweep.
pub const EXPIRY_LEASE: &str = "pending-server-expiry";

/// Removes servers created more than `expiry` before `now` whose code was
/// never used. Returns the servers removed.
pub async fn expire_pending_servers(
    storage: &Storage,
    expiry: Duration,
    now: i64,
) -> Result<Vec<Server>, StorageError> {
    let secs = i64::try_from(expiry.as_secs()).unwrap_or(i64::MAX);
    let expired = storage
        .expire_pending_servers(now.saturating_sub(secs))
        .await?;
    for server in &expired {
        tracing::info!(
            server_id = server.id,
            owner = server.owner_id,
            "removed a server whose code was never used"
        );
    }
    Ok(expired)
}

/// Runs [`expire_pending_servers`] every `every` until `shutdown`, on the
/// instance holding the expiry lease. `holder` names this instance.
pub async fn run_pending_expiry(
    storage: Storage,
    expiry: Duration,
    every: Duration,
    holder: String,
    shutdown: CancellationToken,
) {
    let lease = (every * 2).max(Duration::from_secs(2));
    loop {
        let now = unix_now();
        match storage.try_lease(EXPIRY_LEASE, &holder, now, lease).await {
            Ok(true) => {
                if let Err(e) = expire_pending_servers(&storage, expiry, now).await {
                    tracing::warn!(error = %e, "could not expire pending servers; trying again later");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take the pending-server expiry lease"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    let _ = storage.release_lease(EXPIRY_LEASE, &holder).await;
}
