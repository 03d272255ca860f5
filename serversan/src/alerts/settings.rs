//! The alert settings, with the defaults a deployment starts from. Every
//! duration is a setting so tests run in seconds.

use std::time::Duration;

use super::rules::Hysteresis;
use crate::config::Config;

/// How alerts are evaluated and delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// How often the scheduler looks for silent servers, due reminders and
    /// ended mutes (`SERVERSAN_ALERT_TICK_INTERVAL`).
    pub tick_interval: Duration,
    /// How often a still-firing alert is repeated; zero turns reminders off
    /// (`SERVERSAN_ALERT_REMINDER_INTERVAL`).
    pub reminder_interval: Duration,
    /// How far below the threshold a firing rule must fall to clear.
    /// (`SERVERSAN_ALERT_CLEAR_MARGIN`, percentage points; load clears
    /// `SERVERSAN_ALERT_LOAD_CLEAR_MARGIN`, a fraction, below its threshold.)
    pub hysteresis: Hysteresis,
    /// Reports collected longer ago than this (a spool flushed after an
    /// outage) still prove the server is alive but are not evaluated
    /// against thresholds (`SERVERSAN_ALERT_MAX_REPORT_AGE`).
    pub max_report_age: Duration,
    /// How long a lease on the scheduler or the sender lasts without
    /// renewal: the longest another instance waits to take over from a
    /// dead holder (`SERVERSAN_LEASE_TIME`).
    pub lease_time: Duration,
    /// How often the sender looks for queued messages when nothing wakes it
    /// (`SERVERSAN_OUTBOX_POLL_INTERVAL`).
    pub outbox_poll_interval: Duration,
    /// First wait before a message Telegram kept failing on is tried again;
    /// doubles up to `outbox_retry_max` (`SERVERSAN_OUTBOX_RETRY_BACKOFF`).
    pub outbox_retry_backoff: Duration,
    /// Longest wait between tries of one message (`SERVERSAN_OUTBOX_RETRY_MAX`).
    pub outbox_retry_max: Duration,
    /// How long sent and dropped messages stay in the outbox, for
    /// troubleshooting (`SERVERSAN_OUTBOX_KEEP`).
    pub outbox_keep: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            tick_interval: Duration::from_secs(30),
            reminder_interval: Duration::from_secs(6 * 3600),
            hysteresis: Hysteresis::default(),
            max_report_age: Duration::from_secs(600),
            lease_time: Duration::from_secs(30),
            outbox_poll_interval: Duration::from_secs(1),
            outbox_retry_backoff: Duration::from_secs(5),
            outbox_retry_max: Duration::from_secs(600),
            outbox_keep: Duration::from_secs(7 * 86_400),
        }
    }
}

impl AlertSettings {
    /// The alert settings of the server configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            tick_interval: config.alert_tick_interval,
            reminder_interval: config.alert_reminder_interval,
            hysteresis: Hysteresis {
                percent_points: f64::from(config.alert_clear_margin),
                load_fraction: f64::from(config.alert_load_clear_margin) / 100.0,
            },
            max_report_age: config.alert_max_report_age,
            lease_time: config.alert_lease_time,
            outbox_poll_interval: config.outbox_poll_interval,
            outbox_retry_backoff: config.outbox_retry_backoff,
            outbox_retry_max: config.outbox_retry_max,
            outbox_keep: config.outbox_keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_defaults_are_the_alert_defaults() {
        assert_eq!(
            AlertSettings::from_config(&Config::default()),
            AlertSettings::default()
        );
    }
}
