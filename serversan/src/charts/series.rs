//! What a chart draws: one time series per line, built from plain samples so
//! the storage layer can feed raw reports or rollups without knowing how
//! charts are drawn.

use super::choice::Period;

/// The most points a line keeps for one chart: about the width in pixels of
/// a plot. A period holding more samples is averaged into buckets.
pub const MAX_POINTS: usize = 880;

/// One report's figures, as charts need them. `None` means the report did
/// not carry the figure (a Windows host has no load average, say); the line
/// breaks there.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// When the figures were collected, unix seconds.
    pub at: i64,
    /// CPU busy, percent of all cores.
    pub cpu: Option<f64>,
    /// Memory used, percent of total.
    pub mem: Option<f64>,
    /// Disk used, percent of total.
    pub disk: Option<f64>,
    /// Bytes received per second (see [`counter_rate`]).
    pub net_rx: Option<f64>,
    /// Bytes sent per second.
    pub net_tx: Option<f64>,
    /// Load averages over 1, 5 and 15 minutes.
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    /// Logical cores, drawn as the reference line of the load chart.
    pub cores: Option<u32>,
}

/// One point of a line. A raw report gives `avg == max`; a bucket gives the
/// mean and the highest of the reports in it, so short peaks stay visible
/// after down-sampling. `avg: None` is an explicit gap: the line breaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix seconds: the report's time, or the start of its bucket.
    pub at: i64,
    pub avg: Option<f64>,
    /// Highest figure in the bucket; `None` means "same as `avg`".
    pub max: Option<f64>,
}

impl Point {
    /// A single report's figure.
    pub fn raw(at: i64, value: Option<f64>) -> Self {
        Self {
            at,
            avg: value,
            max: value,
        }
    }

    /// A bucket's mean and maximum, as rollups store them.
    pub fn bucket(at: i64, avg: f64, max: f64) -> Self {
        Self {
            at,
            avg: Some(avg),
            max: Some(max),
        }
    }
}

/// Everything a chart of one server can draw, each line sorted by time.
///
/// Lines a chart does not show may be left empty. `step` is the expected
/// spacing of points in seconds: consecutive points farther apart than
/// 2.5 × `step` are drawn as a gap (the server was offline).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub step: i64,
    pub cpu: Vec<Point>,
    pub mem: Vec<Point>,
    pub disk: Vec<Point>,
    pub net_rx: Vec<Point>,
    pub net_tx: Vec<Point>,
    pub load1: Vec<Point>,
    pub load5: Vec<Point>,
    pub load15: Vec<Point>,
    pub cores: Option<u32>,
}

/// How to read each line's figure from a sample, in the order of
/// [`History::lines_mut`].
const LINES: [fn(&Sample) -> Option<f64>; 8] = [
    |s| s.cpu,
    |s| s.mem,
    |s| s.disk,
    |s| s.net_rx,
    |s| s.net_tx,
    |s| s.load1,
    |s| s.load5,
    |s| s.load15,
];

impl History {
    /// The lines of the period `(end - period, end]` from raw samples, in
    /// any order. When the period holds more than [`MAX_POINTS`] samples they
    /// are grouped into buckets of [`Period::bucket_seconds`], aligned to
    /// the unix epoch so they line up with stored rollups; each bucket keeps
    /// the mean and the maximum of its samples. Non-finite figures count as
    /// missing.
    pub fn from_samples(samples: &[Sample], period: Period, end: i64) -> History {
        let start = end.saturating_sub(period.seconds());
        let mut window: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at > start && s.at <= end)
            .collect();
        window.sort_by_key(|s| s.at);

        let spacing = median_spacing(&window).unwrap_or(period.bucket_seconds());
        let mut history = History {
            step: spacing,
            cores: window.iter().rev().find_map(|s| s.cores),
            ..History::default()
        };
        if window.len() <= MAX_POINTS {
            for (line, read) in history.lines_mut().into_iter().zip(LINES) {
                line.extend(window.iter().map(|s| Point::raw(s.at, finite(read(s)))));
            }
        } else {
            let bucket = period.bucket_seconds();
            history.step = spacing.max(bucket);
            for (line, read) in history.lines_mut().into_iter().zip(LINES) {
                *line = bucketed(&window, bucket, read);
            }
        }
        history
    }

    fn lines_mut(&mut self) -> [&mut Vec<Point>; 8] {
        [
            &mut self.cpu,
            &mut self.mem,
            &mut self.disk,
            &mut self.net_rx,
            &mut self.net_tx,
            &mut self.load1,
            &mut self.load5,
            &mut self.load15,
        ]
    }
}

/// Bytes per second between two readings of a cumulative counter, such as
/// a report's `rx_bytes`. `None` when time did not advance or the counter
/// went backwards (the host rebooted or the counter wrapped): no honest rate
/// exists for that interval.
pub fn counter_rate(earlier: (i64, u64), later: (i64, u64)) -> Option<f64> {
    let seconds = later.0.checked_sub(earlier.0).filter(|s| *s > 0)?;
    let bytes = later.1.checked_sub(earlier.1)?;
    Some(bytes as f64 / seconds as f64)
}

fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

/// The usual distance between consecutive samples: the median, so that an
/// outage (a few long distances) does not count as the normal spacing.
fn median_spacing(window: &[&Sample]) -> Option<i64> {
    let mut deltas: Vec<i64> = window
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .filter(|d| *d > 0)
        .collect();
    if deltas.is_empty() {
        return None;
    }
    let middle = deltas.len() / 2;
    Some(*deltas.select_nth_unstable(middle).1)
}

/// One point per epoch-aligned bucket that holds at least one sample; a
/// bucket whose samples all lack the figure becomes an explicit gap.
fn bucketed(window: &[&Sample], bucket: i64, read: fn(&Sample) -> Option<f64>) -> Vec<Point> {
    let mut points = Vec::with_capacity(window.len().min(MAX_POINTS));
    for group in window.chunk_by(|a, b| a.at.div_euclid(bucket) == b.at.div_euclid(bucket)) {
        let at = group[0].at.div_euclid(bucket) * bucket;
        let (mut sum, mut count, mut max) = (0.0, 0u32, f64::NEG_INFINITY);
        for value in group.iter().filter_map(|s| finite(read(s))) {
            sum += value;
            count += 1;
            max = max.max(value);
        }
        points.push(if count == 0 {
            Point::raw(at, None)
        } else {
            Point::bucket(at, sum / f64::from(count), max)
        });
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_rate_refuses_resets_and_stalled_clocks() {
        assert_eq!(counter_rate((100, 1_000), (110, 6_000)), Some(500.0));
        assert_eq!(counter_rate((100, 6_000), (110, 1_000)), None);
        assert_eq!(counter_rate((110, 1_000), (110, 2_000)), None);
        assert_eq!(counter_rate((120, 1_000), (110, 2_000)), None);
    }

    #[test]
    fn the_median_spacing_ignores_an_outage() {
        let samples: Vec<Sample> = [0, 60, 120, 180, 5000, 5060]
            .into_iter()
            .map(|at| Sample {
                at,
                ..Sample::default()
            })
            .collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        assert_eq!(median_spacing(&refs), Some(60));
        assert_eq!(median_spacing(&refs[..1]), None);
    }
}
