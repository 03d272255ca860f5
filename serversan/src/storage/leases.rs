//! Leases: work that must run on one instance at a time (pruning now; the
//! alert scheduler, outbox sender and Telegram poller later) is done by
//! whoever holds the named lease. A lease is a row taken and renewed with a
//! compare-and-set, and taken over by another instance once it expires, so a
//! dead holder never blocks the work. No `GET_LOCK` or `SELECT … FOR
//! UPDATE` (both per node on Galera).

use std::time::Duration;

use super::db::{is_unique_violation, retry_conflicts, with_pool};
use super::{Result, Storage};

impl Storage {
    /// Takes or renews the lease `name` for `holder` until `now + ttl`.
    /// `true` when `holder` holds it now.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl: Duration,
    ) -> Result<bool> {
        let expires_at = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let renewed = retry_conflicts(|| async {
            with_pool!(&self.db, pool => {
                sqlx::query(
                    "UPDATE leases SET holder = ?, expires_at = ? \
                     WHERE name = ? AND (holder = ? OR expires_at < ?)",
                )
                .bind(holder)
                .bind(expires_at)
                .bind(name)
                .bind(holder)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })
        })
        .await?;
        if renewed > 0 {
            return Ok(true);
        }
        let inserted = with_pool!(&self.db, pool => {
            sqlx::query("INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)")
                .bind(name)
                .bind(holder)
                .bind(expires_at)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match inserted {
            Ok(_) => Ok(true),
            // Someone else holds it (or took it a moment ago).
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives up a lease early (on shutdown), so another instance can take
    /// over without waiting for it to expire.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
