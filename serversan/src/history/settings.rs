//! How long history is kept and how the job that maintains it paces itself.

use std::time::Duration;

use crate::config::Config;

/// Settings of the history job. Every duration is a setting so tests run in
/// seconds; a zero retention keeps that kind of history forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    /// How long raw reports are kept (`SERVERSAN_HISTORY_RAW_RETENTION`).
    /// Never less than [`HistorySettings::max_report_age`] plus an hour, so
    /// a report spooled during an outage never lands in an hour whose other
    /// reports are already gone (its rollup would then forget them).
    pub raw_retention: Duration,
    /// How long 10-minute and hourly rollups are kept
    /// (`SERVERSAN_HISTORY_ROLLUP_RETENTION`).
    pub rollup_retention: Duration,
    /// How often rollups are brought up to date and old history pruned
    /// (`SERVERSAN_HISTORY_INTERVAL`).
    pub interval: Duration,
    /// Rows read or deleted per statement, so no transaction holds up
    /// ingest for long (`SERVERSAN_HISTORY_BATCH`).
    pub batch: u32,
    /// Pause between two batches when there is a backlog, so ingest gets
    /// the database in between.
    pub batch_pause: Duration,
    /// A bucket is rolled up once it ended this long ago and its reports
    /// arrived this long ago: enough for reports in flight to land and for
    /// any transaction still inserting an earlier report id to finish.
    pub settle: Duration,
    /// The oldest report ingest accepts (`SERVERSAN_MAX_REPORT_AGE`).
    pub max_report_age: Duration,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

impl HistorySettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            raw_retention: config.history_raw_retention,
            rollup_retention: config.history_rollup_retention,
            interval: config.history_interval,
            batch: config.history_batch,
            batch_pause: Duration::from_millis(20),
            settle: Duration::from_secs(60),
            max_report_age: config.max_report_age,
        }
    }

    /// Raw reports collected before this time may be pruned (`None`: keep
    /// all). Whole hours only, so every hour has all its reports or none.
    pub(crate) fn raw_cutoff(&self, now: i64) -> Option<i64> {
        if self.raw_retention.is_zero() {
            return None;
        }
        let keep = self
            .raw_retention
            .max(self.max_report_age + Duration::from_secs(3600));
        Some(hour_floor(now.saturating_sub(secs(keep))))
    }

    /// Rollups of buckets starting before this time may be pruned.
    pub(crate) fn rollup_cutoff(&self, now: i64) -> Option<i64> {
        if self.rollup_retention.is_zero() {
            return None;
        }
        Some(hour_floor(now.saturating_sub(secs(self.rollup_retention))))
    }

    pub(crate) fn settle_secs(&self) -> i64 {
        secs(self.settle)
    }
}

fn hour_floor(t: i64) -> i64 {
    t.div_euclid(3600) * 3600
}

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_keep_whole_hours_and_late_reports() {
        let s = HistorySettings {
            raw_retention: Duration::from_secs(86_400),
            rollup_retention: Duration::from_secs(10 * 86_400),
            max_report_age: Duration::from_secs(600),
            ..HistorySettings::default()
        };
        let now = 1_000_000_000;
        assert_eq!(s.raw_cutoff(now), Some(hour_floor(now - 86_400)));
        assert_eq!(s.rollup_cutoff(now), Some(hour_floor(now - 864_000)));
        let short = HistorySettings {
            raw_retention: Duration::from_secs(60),
            ..s.clone()
        };
        assert_eq!(short.raw_cutoff(now), Some(hour_floor(now - 4200)));
        let forever = HistorySettings {
            raw_retention: Duration::ZERO,
            rollup_retention: Duration::ZERO,
            ..s
        };
        assert_eq!(forever.raw_cutoff(now), None);
        assert_eq!(forever.rollup_cutoff(now), None);
    }

    #[test]
    fn defaults_keep_a_month_of_reports_and_a_year_of_rollups() {
        let s = HistorySettings::default();
        assert_eq!(s.raw_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(s.rollup_retention, Duration::from_secs(365 * 86_400));
        assert!(s.batch > 0);
    }
}
