//! The scheduled job that keeps history: rollups brought up to date, then
//! old history pruned, on one instance at a time (the holder of a database
//! lease).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::retention::{PrunePass, prune};
use super::rollup::{RollupPass, roll_up};
use super::settings::HistorySettings;
use crate::storage::{Storage, StorageError, unix_now};

/// The lease that keeps several instances from doing the same work.
pub const HISTORY_LEASE: &str = "history";

/// Batches of each kind one [`maintain`] call runs at most; with a backlog
/// (the first start on a database full of reports) the job comes back
/// right after a pause instead of waiting a whole interval.
const BATCHES_PER_PASS: u32 = 20;

/// What one [`maintain`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub rollup: RollupPass,
    pub prune: PrunePass,
}

impl Maintenance {
    /// Whether work is left for another pass right away.
    pub fn more(&self) -> bool {
        self.rollup.more || self.prune.more
    }
}

/// One pass of the job at time `now`: rolls up the reports that are ready,
/// then prunes what is past retention. Safe to call from anywhere, at any
/// time, as often as wanted (tests, the demo); [`run`] calls it under the
/// lease.
pub async fn maintain(
    storage: &Storage,
    settings: &HistorySettings,
    now: i64,
) -> Result<Maintenance, StorageError> {
    let rollup = roll_up(storage, settings, now, BATCHES_PER_PASS).await?;
    let prune = prune(storage, settings, now, BATCHES_PER_PASS).await?;
    if rollup.buckets > 0 || prune.reports > 0 || prune.rollups > 0 {
        tracing::debug!(
            reports_read = rollup.reports,
            buckets = rollup.buckets,
            pruned_reports = prune.reports,
            pruned_rollups = prune.rollups,
            "history maintained"
        );
    }
    Ok(Maintenance { rollup, prune })
}

/// Runs [`maintain`] every `settings.interval` (sooner while a backlog
/// lasts) until `shutdown`, on the instance holding [`HISTORY_LEASE`].
/// `holder` names this instance in the lease table.
pub async fn run(
    storage: Storage,
    settings: HistorySettings,
    holder: String,
    shutdown: CancellationToken,
) {
    let lease = (settings.interval * 3).max(Duration::from_secs(10));
    loop {
        let now = unix_now();
        let mut backlog = false;
        match storage.try_lease(HISTORY_LEASE, &holder, now, lease).await {
            Ok(true) => match maintain(&storage, &settings, now).await {
                Ok(done) => backlog = done.more(),
                Err(e) => {
                    tracing::warn!(error = %e, "could not maintain chart history; trying again later");
                }
            },
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take the history lease"),
        }
        let wait = if backlog {
            settings.batch_pause
        } else {
            settings.interval
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    let _ = storage.release_lease(HISTORY_LEASE, &holder).await;
}
