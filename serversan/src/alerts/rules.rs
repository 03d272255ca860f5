//! What is watched and when it counts as trouble: the metrics, their
//! thresholds and durations, the defaults a sysadmin would accept, and how
//! a value typed in the chat becomes a rule.
//!
//! A rule is looked up in three places, the first found winning: the
//! server's own override, the owner's default for all their servers, the
//! built-in default below. Any of the first two may also say "off".

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::bot::args::format_duration;

/// Something a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Cpu,
    Mem,
    Swap,
    /// Each filesystem's usage, watched one by one.
    Disk,
    /// The one-minute load average divided by the logical cores.
    Load,
    /// No report for a while.
    Offline,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Cpu,
        Metric::Mem,
        Metric::Swap,
        Metric::Disk,
        Metric::Load,
        Metric::Offline,
    ];

    /// The word used in commands and stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Mem => "mem",
            Metric::Swap => "swap",
            Metric::Disk => "disk",
            Metric::Load => "load",
            Metric::Offline => "offline",
        }
    }

    /// The metric named by a command word, in any case.
    pub fn parse(word: &str) -> Option<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(word))
    }

    /// How the metric is named in messages.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Cpu => "CPU",
            Metric::Mem => "Memory",
            Metric::Swap => "Swap",
            Metric::Disk => "Disk",
            Metric::Load => "Load",
            Metric::Offline => "Offline",
        }
    }

    /// Whether the value is a percentage (hysteresis in points).
    pub fn is_percent(self) -> bool {
        matches!(
            self,
            Metric::Cpu | Metric::Mem | Metric::Swap | Metric::Disk
        )
    }

    /// The built-in rule: CPU and memory 90 % for 5 min, swap 80 % for
    /// 10 min, disk 90 % at once, load 2 per core for 10 min, offline after
    /// 3 min without a report.
    pub fn default_rule(self) -> Rule {
        let (threshold, minutes) = match self {
            Metric::Cpu | Metric::Mem => (90.0, 5),
            Metric::Swap => (80.0, 10),
            Metric::Disk => (90.0, 0),
            Metric::Load => (2.0, 10),
            Metric::Offline => (3.0, 0),
        };
        Rule {
            threshold,
            for_secs: minutes * 60,
        }
    }

    /// Largest value a threshold may have.
    fn max_value(self) -> f64 {
        match self {
            Metric::Cpu | Metric::Mem | Metric::Swap | Metric::Disk => 100.0,
            Metric::Load => 1000.0,
            // Thirty days of silence.
            Metric::Offline => 43_200.0,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule that is on: the value at or above which a report breaches, and
/// how long every report must breach before the rule fires. For offline,
/// `threshold` is the minutes without a report and `for_secs` is unused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub threshold: f64,
    pub for_secs: i64,
}

/// Longest duration window a rule may have.
pub const MAX_FOR_MINUTES: i64 = 24 * 60;

/// A stored choice: `Some(rule)` or `None` for off.
pub type Setting = Option<Rule>;

/// The rules that apply to one server: the owner's defaults and the
/// server's overrides, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub defaults: BTreeMap<Metric, Setting>,
    pub overrides: BTreeMap<Metric, Setting>,
}

impl RuleSet {
    /// The rule in force for `metric` (`None` when it is off).
    pub fn effective(&self, metric: Metric) -> Setting {
        self.overrides
            .get(&metric)
            .or_else(|| self.defaults.get(&metric))
            .copied()
            .unwrap_or(Some(metric.default_rule()))
    }

    /// The owner's default for `metric`, falling back to the built-in one.
    pub fn default_for(&self, metric: Metric) -> Setting {
        self.defaults
            .get(&metric)
            .copied()
            .unwrap_or(Some(metric.default_rule()))
    }
}

/// How far below the threshold a value must fall before a firing rule
/// clears, so a value hovering at the line does not flap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hysteresis {
    /// For percentages, in percentage points.
    pub percent_points: f64,
    /// For load, as a fraction of the threshold.
    pub load_fraction: f64,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Self {
            percent_points: 5.0,
            load_fraction: 0.1,
        }
    }
}

impl Hysteresis {
    /// The value a firing rule must fall below to clear. Never below half
    /// the threshold, so a low threshold still clears.
    pub fn clear_level(&self, metric: Metric, threshold: f64) -> f64 {
        let level = if metric.is_percent() {
            threshold - self.percent_points
        } else {
            threshold * (1.0 - self.load_fraction)
        };
        level.max(threshold / 2.0)
    }
}

/// Why a value or duration typed in the chat is not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("{metric} takes a percentage from 0 to 100, such as 90 or 92.5")]
    Percent { metric: Metric },
    #[error("load takes a load average per core above 0, such as 2 or 1.5")]
    Load,
    #[error("offline takes the minutes without a report, such as 3 or 10")]
    Offline,
    #[error("the duration is whole minutes from 0 to {MAX_FOR_MINUTES}, such as 5")]
    Minutes,
}

/// Parses a threshold typed for `metric`: a plain decimal number (a `%`
/// may follow a percentage), above 0 and at most the metric's maximum.
pub fn parse_value(metric: Metric, text: &str) -> Result<f64, ValueError> {
    let error = || match metric {
        Metric::Load => ValueError::Load,
        Metric::Offline => ValueError::Offline,
        m => ValueError::Percent { metric: m },
    };
    let digits = match text.strip_suffix('%') {
        Some(d) if metric.is_percent() => d,
        Some(_) => return Err(error()),
        None => text,
    };
    let value = parse_decimal(digits).ok_or_else(error)?;
    if value > 0.0 && value <= metric.max_value() {
        Ok(value)
    } else {
        Err(error())
    }
}

/// Parses a duration window in whole minutes (0 to a day), as seconds.
pub fn parse_minutes(text: &str) -> Result<i64, ValueError> {
    let all_digits =
        !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| b.is_ascii_digit());
    let minutes: i64 = all_digits
        .then(|| text.parse().ok())
        .flatten()
        .ok_or(ValueError::Minutes)?;
    if minutes <= MAX_FOR_MINUTES {
        Ok(minutes * 60)
    } else {
        Err(ValueError::Minutes)
    }
}

/// `12`, `12.5`, `0.25`: digits with at most one point and three decimals.
/// Stricter than `f64::from_str`, which also takes `inf`, `NaN` and `1e9`.
fn parse_decimal(text: &str) -> Option<f64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(whole, 6) || fraction.is_some_and(|f| !digits(f, 3)) {
        return None;
    }
    text.parse().ok()
}

/// A number as people write it: `90`, `92.5`, `1.25`.
pub fn format_number(v: f64) -> String {
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

/// A value with its unit: `93.5%`, `2.1 per core`, `4m`.
pub fn format_value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::Load => format!("{} per core", format_number(v)),
        Metric::Offline => format_minutes(v),
        _ => format!("{}%", format_number(v)),
    }
}

/// Minutes as a duration: `3m`, `1h 30m`, `30s`.
fn format_minutes(minutes: f64) -> String {
    format_duration(Duration::from_secs((minutes * 60.0).round().max(0.0) as u64))
}

/// A rule in words: `≥ 90% for 5m`, `≥ 90% (any report)`, `after 3m
/// without a report`, `off`.
pub fn describe(metric: Metric, setting: Setting) -> String {
    let Some(rule) = setting else {
        return "off".to_owned();
    };
    if metric == Metric::Offline {
        return format!("after {} without a report", format_minutes(rule.threshold));
    }
    let window = if rule.for_secs == 0 {
        "at once".to_owned()
    } else {
        format!(
            "for {}",
            format_duration(Duration::from_secs(rule.for_secs.unsigned_abs()))
        )
    };
    format!("≥ {} {window}", format_value(metric, rule.threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_what_a_sysadmin_expects() {
        let expected = [
            (Metric::Cpu, 90.0, 5),
            (Metric::Mem, 90.0, 5),
            (Metric::Swap, 80.0, 10),
            (Metric::Disk, 90.0, 0),
            (Metric::Load, 2.0, 10),
            (Metric::Offline, 3.0, 0),
        ];
        for (metric, threshold, minutes) in expected {
            let rule = Rule {
                threshold,
                for_secs: minutes * 60,
            };
            assert_eq!(metric.default_rule(), rule, "{metric}");
        }
    }

    #[test]
    fn overrides_win_over_defaults_which_win_over_built_ins() {
        let mut set = RuleSet::default();
        assert_eq!(set.effective(Metric::Cpu), Some(Metric::Cpu.default_rule()));
        let user = Rule {
            threshold: 80.0,
            for_secs: 60,
        };
        set.defaults.insert(Metric::Cpu, Some(user));
        assert_eq!(set.effective(Metric::Cpu), Some(user));
        set.overrides.insert(Metric::Cpu, None);
        assert_eq!(set.effective(Metric::Cpu), None);
        assert_eq!(set.default_for(Metric::Cpu), Some(user));
        set.defaults.insert(Metric::Mem, None);
        assert_eq!(set.effective(Metric::Mem), None);
    }

    #[test]
    fn values_are_checked_strictly() {
        assert_eq!(parse_value(Metric::Cpu, "95"), Ok(95.0));
        assert_eq!(parse_value(Metric::Disk, "92.5%"), Ok(92.5));
        assert_eq!(parse_value(Metric::Load, "1.5"), Ok(1.5));
        assert_eq!(parse_value(Metric::Offline, "10"), Ok(10.0));
        for bad in [
            "0", "101", "-5", "abc", "", "inf", "NaN", "1e2", "9.", ".5", "5..0", "50%%", "0.0001",
        ] {
            assert!(parse_value(Metric::Cpu, bad).is_err(), "{bad}");
        }
        assert!(parse_value(Metric::Load, "2%").is_err());
        assert!(parse_value(Metric::Offline, "50000").is_err());
        assert_eq!(parse_minutes("0"), Ok(0));
        assert_eq!(parse_minutes("15"), Ok(900));
        for bad in ["", "-1", "1.5", "1441", "99999", "5m", "x"] {
            assert!(parse_minutes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hysteresis_sits_below_the_threshold() {
        let h = Hysteresis::default();
        assert_eq!(h.clear_level(Metric::Cpu, 90.0), 85.0);
        assert!((h.clear_level(Metric::Load, 2.0) - 1.8).abs() < 1e-9);
        assert_eq!(h.clear_level(Metric::Disk, 4.0), 2.0);
    }

    #[test]
    fn rules_read_naturally() {
        assert_eq!(
            describe(Metric::Cpu, Some(Metric::Cpu.default_rule())),
            "≥ 90% for 5m"
        );
        assert_eq!(
            describe(Metric::Disk, Some(Metric::Disk.default_rule())),
            "≥ 90% at once"
        );
        assert_eq!(
            describe(Metric::Load, Some(Metric::Load.default_rule())),
            "≥ 2 per core for 10m"
        );
        assert_eq!(
            describe(Metric::Offline, Some(Metric::Offline.default_rule())),
            "after 3m without a report"
        );
        assert_eq!(describe(Metric::Swap, None), "off");
        assert_eq!(format_number(92.5), "92.5");
        assert_eq!(format_number(1.25), "1.25");
    }
}
