//! Used nonces: each accepted request's nonce is a row until its timestamp
//! has left the accepted window, so a captured request cannot be replayed
//! to this or any other instance sharing the database.

use super::db::{retry_conflicts, with_pool};
use super::{Result, Storage};

/// Records a nonce; a unique-key violation means it was used before.
/// Binds: server id, nonce, expires_at.
pub(super) const INSERT: &str =
    "INSERT INTO used_nonces (server_id, nonce, expires_at) VALUES (?, ?, ?)";

/// Forgets one nonce again (its report was refused in the same
/// transaction). Binds: server id, nonce.
pub(super) const DELETE: &str = "DELETE FROM used_nonces WHERE server_id = ? AND nonce = ?";

/// Rows removed per statement, to keep each transaction short.
const PRUNE_BATCH: u64 = 10_000;

impl Storage {
    /// Forgets nonces that expired before `now`; returns how many.
    pub async fn prune_nonces(&self, now: i64) -> Result<u64> {
        let sql = self.db.sql(
            // SQLite has a single writer and no DELETE … LIMIT by default.
            "DELETE FROM used_nonces WHERE expires_at < ?",
            "DELETE FROM used_nonces WHERE expires_at < ? LIMIT 10000",
        );
        let mut total = 0;
        loop {
            let n = retry_conflicts(|| async {
                with_pool!(&self.db, pool => {
                    sqlx::query(sql)
                        .bind(now)
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected())
                })
            })
            .await?;
            total += n;
            if n < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// How many nonces are remembered (for tests and operators).
    pub async fn count_nonces(&self) -> Result<i64> {
        with_pool!(&self.db, pool => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM used_nonces")
                .fetch_one(pool)
                .await?;
            Ok(n)
        })
    }
}
