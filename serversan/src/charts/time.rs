//! Clock faces for the time axis: a fixed offset from UTC, tick positions
//! on round local times, and their labels. Civil dates are computed here
//! (Howard Hinnant's algorithm) so no date library is needed for a few
//! labels.

use super::choice::Period;

const DAY: i64 = 86_400;
/// The farthest any real zone is from UTC.
const MAX_OFFSET_MINUTES: i32 = 18 * 60;
/// Longest zone name printed on a chart.
const MAX_NAME_CHARS: usize = 12;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The zone a chart's times are printed in: UTC unless configured. A fixed
/// offset (no daylight-saving rules) is what a chart of the last days needs
/// and keeps every label unambiguous, since the offset is printed too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeZone {
    offset_minutes: i32,
    name: Option<String>,
}

impl TimeZone {
    pub fn utc() -> Self {
        Self::default()
    }

    /// A fixed offset east of UTC, such as `180` for UTC+03:00. `None` when
    /// it is more than 18 hours either way.
    pub fn from_offset_minutes(offset_minutes: i32) -> Option<Self> {
        (offset_minutes.abs() <= MAX_OFFSET_MINUTES).then_some(Self {
            offset_minutes,
            name: None,
        })
    }

    /// Adds a short name printed before the offset, such as `MSK`. Control
    /// characters are dropped and the name is cut to 12 characters.
    pub fn with_name(mut self, name: &str) -> Self {
        let name: String = name
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME_CHARS)
            .collect();
        let name = name.trim();
        self.name = (!name.is_empty()).then(|| name.to_owned());
        self
    }

    pub fn offset_minutes(&self) -> i32 {
        self.offset_minutes
    }

    /// How the zone is stated on a chart: `UTC`, `UTC+03:00` or
    /// `MSK (UTC+03:00)`.
    pub fn label(&self) -> String {
        let offset = if self.offset_minutes == 0 {
            "UTC".to_owned()
        } else {
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            let minutes = self.offset_minutes.unsigned_abs();
            format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
        };
        match &self.name {
            Some(name) => format!("{name} ({offset})"),
            None => offset,
        }
    }

    fn local(&self, unix: i64) -> Civil {
        Civil::from_unix(unix.saturating_add(i64::from(self.offset_minutes) * 60))
    }

    /// `2026-11-05 14:32`, in this zone.
    pub(crate) fn format_minute(&self, unix: i64) -> String {
        let c = self.local(unix);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute
        )
    }

    /// Tick positions between `start` and `end` on round local times for the
    /// period: every 10 minutes for an hour, 1 h for 6 h, 3 h for a day,
    /// midnight for a week, Monday midnight for 30 days.
    pub(crate) fn ticks(&self, period: Period, start: i64, end: i64) -> Vec<i64> {
        let (every, phase) = match period {
            Period::H1 => (600, 0),
            Period::H6 => (3600, 0),
            Period::H24 => (3 * 3600, 0),
            Period::D7 => (DAY, 0),
            // 1970-01-05 was a Monday.
            Period::D30 => (7 * DAY, 4 * DAY),
        };
        let offset = i64::from(self.offset_minutes) * 60;
        // Local time t + offset ≡ phase (mod every).
        let first_local = (start + offset - phase).div_euclid(every) * every + phase;
        let mut t = first_local - offset;
        let mut ticks = Vec::new();
        while t <= end {
            if t >= start {
                ticks.push(t);
            }
            t += every;
        }
        ticks
    }

    /// The label of a tick from [`TimeZone::ticks`]: `14:30`, or the date at
    /// local midnight in hour-scale charts, `Tue 4` in a week, `Nov 3` in a
    /// month.
    pub(crate) fn tick_label(&self, period: Period, unix: i64) -> String {
        let c = self.local(unix);
        let date = || format!("{} {}", MONTHS[usize::from(c.month - 1)], c.day);
        match period {
            Period::H1 | Period::H6 | Period::H24 if c.hour == 0 && c.minute == 0 => date(),
            Period::H1 | Period::H6 | Period::H24 => format!("{:02}:{:02}", c.hour, c.minute),
            Period::D7 => format!("{} {}", WEEKDAYS[c.weekday], c.day),
            Period::D30 => date(),
        }
    }
}

/// A local calendar time, to the minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    /// 0 = Monday.
    weekday: usize,
}

impl Civil {
    fn from_unix(unix: i64) -> Self {
        let days = unix.div_euclid(DAY);
        let secs = unix.rem_euclid(DAY);
        // Hinnant, "chrono-Compatible Low-Level Date Algorithms": civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            // The ranges are fixed by the algorithm: month 1..=12, day 1..=31,
            // hour < 24, minute < 60, weekday < 7.
            month: month as u8,
            day: day as u8,
            hour: (secs / 3600) as u8,
            minute: (secs % 3600 / 60) as u8,
            weekday: (days + 3).rem_euclid(7) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        // 2026-11-05 14:32:10 UTC, a Thursday.
        let c = Civil::from_unix(1_793_889_130);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute),
            (2026, 11, 5, 14, 32)
        );
        assert_eq!(WEEKDAYS[c.weekday], "Thu");
        // Leap day and a date before the epoch.
        let c = Civil::from_unix(951_782_400);
        assert_eq!((c.year, c.month, c.day), (2000, 2, 29));
        let c = Civil::from_unix(-1);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute),
            (1969, 12, 31, 23, 59)
        );
    }

    #[test]
    fn zones_are_labelled_with_their_offset() {
        assert_eq!(TimeZone::utc().label(), "UTC");
        let msk = TimeZone::from_offset_minutes(180).unwrap().with_name("MSK");
        assert_eq!(msk.label(), "MSK (UTC+03:00)");
        let nf = TimeZone::from_offset_minutes(-210).unwrap();
        assert_eq!(nf.label(), "UTC-03:30");
        assert!(TimeZone::from_offset_minutes(19 * 60).is_none());
        let long = TimeZone::utc().with_name("A\u{1b}VeryLongZoneNameIndeed");
        assert_eq!(long.label(), "AVeryLongZon (UTC)");
    }

    #[test]
    fn ticks_fall_on_round_local_times() {
        let end = 1_793_889_130; // Thu 2026-11-05 14:32:10 UTC
        let utc = TimeZone::utc();
        let ticks = utc.ticks(Period::H24, end - Period::H24.seconds(), end);
        assert_eq!(ticks.len(), 8);
        assert!(ticks.iter().all(|t| t % (3 * 3600) == 0));
        let labels: Vec<String> = ticks
            .iter()
            .map(|t| utc.tick_label(Period::H24, *t))
            .collect();
        assert_eq!(labels[0], "15:00");
        assert!(labels.contains(&"Nov 5".to_owned()));

        let msk = TimeZone::from_offset_minutes(180).unwrap();
        let ticks = msk.ticks(Period::D7, end - Period::D7.seconds(), end);
        assert_eq!(ticks.len(), 7);
        assert_eq!(msk.tick_label(Period::D7, ticks[6]), "Thu 5");
        assert_eq!(msk.format_minute(ticks[6]), "2026-11-05 00:00");

        let ticks = utc.ticks(Period::D30, end - Period::D30.seconds(), end);
        assert!(
            ticks
                .iter()
                .all(|t| WEEKDAYS[Civil::from_unix(*t).weekday] == "Mon")
        );
        assert_eq!(ticks.len(), 4);
        assert_eq!(utc.tick_label(Period::D30, ticks[3]), "Nov 2");
    }
}
