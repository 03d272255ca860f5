//! What to chart and over which period: the words users type after `/chart`
//! and see on the buttons.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::error::ParseChoiceError;

/// Which figures a chart shows. `All` is the compact multi-panel overview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Cpu,
    Mem,
    Disk,
    Net,
    Load,
    All,
}

impl Metric {
    /// Every choice, in the order the buttons show them.
    pub const CHOICES: [Metric; 6] = [
        Metric::Cpu,
        Metric::Mem,
        Metric::Disk,
        Metric::Net,
        Metric::Load,
        Metric::All,
    ];

    /// The word a user types or taps: `cpu mem disk net load all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Mem => "mem",
            Metric::Disk => "disk",
            Metric::Net => "net",
            Metric::Load => "load",
            Metric::All => "all",
        }
    }

    /// The name printed in a chart's title.
    pub fn title(self) -> &'static str {
        match self {
            Metric::Cpu => "CPU",
            Metric::Mem => "Memory",
            Metric::Disk => "Disk",
            Metric::Net => "Network",
            Metric::Load => "Load",
            Metric::All => "Overview",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = ParseChoiceError;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        let list = "cpu, mem, disk, net, load, all";
        find_word(&Metric::CHOICES, Metric::as_str, word)
            .ok_or_else(|| ParseChoiceError::new("metric", word, list))
    }
}

/// How far back a chart looks; it always ends at the request's `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    H1,
    H6,
    H24,
    D7,
    D30,
}

impl Period {
    /// Every choice, in the order the buttons show them.
    pub const CHOICES: [Period; 5] = [Period::H1, Period::H6, Period::H24, Period::D7, Period::D30];

    /// The word a user types or taps: `1h 6h 24h 7d 30d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::H1 => "1h",
            Period::H6 => "6h",
            Period::H24 => "24h",
            Period::D7 => "7d",
            Period::D30 => "30d",
        }
    }

    /// The period in words, for titles.
    pub fn label(self) -> &'static str {
        match self {
            Period::H1 => "last hour",
            Period::H6 => "last 6 hours",
            Period::H24 => "last 24 hours",
            Period::D7 => "last 7 days",
            Period::D30 => "last 30 days",
        }
    }

    /// Length of the period in seconds.
    pub fn seconds(self) -> i64 {
        const HOUR: i64 = 3600;
        match self {
            Period::H1 => HOUR,
            Period::H6 => 6 * HOUR,
            Period::H24 => 24 * HOUR,
            Period::D7 => 7 * 24 * HOUR,
            Period::D30 => 30 * 24 * HOUR,
        }
    }

    /// Length of the period.
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.seconds().unsigned_abs())
    }

    /// Width in seconds of the buckets that raw reports are averaged into
    /// when a period holds more reports than the chart has pixels.
    ///
    /// Each period gets at most 720 buckets, and the long periods use whole
    /// multiples of the 10-minute and 1-hour rollups so those can feed them.
    pub fn bucket_seconds(self) -> i64 {
        match self {
            Period::H1 => 10,
            Period::H6 => 60,
            Period::H24 => 120,
            Period::D7 => 1200,
            Period::D30 => 3600,
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = ParseChoiceError;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        let list = "1h, 6h, 24h, 7d, 30d";
        find_word(&Period::CHOICES, Period::as_str, word)
            .ok_or_else(|| ParseChoiceError::new("period", word, list))
    }
}

/// The choice whose word is `word`, ignoring ASCII case because phone
/// keyboards capitalise the first letter.
fn find_word<T: Copy>(choices: &[T], as_str: fn(T) -> &'static str, word: &str) -> Option<T> {
    choices
        .iter()
        .copied()
        .find(|c| as_str(*c).eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for m in Metric::CHOICES {
            assert_eq!(m.as_str().parse::<Metric>(), Ok(m));
            assert_eq!(m.to_string().to_uppercase().parse::<Metric>(), Ok(m));
        }
        for p in Period::CHOICES {
            assert_eq!(p.as_str().parse::<Period>(), Ok(p));
        }
    }

    #[test]
    fn unknown_words_are_refused_with_a_bounded_echo() {
        let err = "cpuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu\u{7}"
            .parse::<Metric>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("use one of cpu, mem, disk, net, load, all"),
            "{err}"
        );
        assert!(err.contains("\"cpuuuuuuuuuuuuuu\""), "{err}");
        assert!(!err.contains('\u{7}'));
        assert!("2h".parse::<Period>().is_err());
        assert!("".parse::<Period>().is_err());
        assert!("swap".parse::<Metric>().is_err());
    }

    #[test]
    fn buckets_fit_the_pixels_and_the_rollups() {
        for p in Period::CHOICES {
            assert!(p.seconds() / p.bucket_seconds() <= 720, "{p}");
            assert_eq!(p.duration().as_secs() as i64, p.seconds());
        }
        assert_eq!(Period::D7.bucket_seconds() % 600, 0);
        assert_eq!(Period::D30.bucket_seconds() % 3600, 0);
    }
}
