//! History for charts: reading a server's past for a chart, keeping
//! 10-minute and hourly rollups of the raw reports, and deleting history
//! past its retention.
//!
//! - [`chart_history`] answers "what does the chart of this server over
//!   this period show": raw reports for 1h, 6h and 24h, rollups for 7d and
//!   30d, as a [`crate::charts::History`].
//! - [`run`] is the scheduled job (one instance at a time, under a database
//!   lease) that rolls reports up once their bucket has ended and prunes in
//!   small batches; [`maintain`] is one pass of it.
//! - Deleting a server deletes its rollups with its reports (the storage
//!   purge list names `history_rollups`).
//!
//! This module owns the `history_rollups` and `history_progress` tables.

mod bucket;
mod job;
mod query;
mod raw;
mod retention;
mod rollup;
mod settings;

pub use bucket::{Bucket, Stat, aggregate, bucket_start, merge};
pub use job::{HISTORY_LEASE, Maintenance, maintain, run};
pub use query::chart_history;
pub use raw::samples;
pub use retention::{PrunePass, prune};
pub use rollup::{Resolution, RollupPass, roll_up, rollups};
pub use settings::HistorySettings;
