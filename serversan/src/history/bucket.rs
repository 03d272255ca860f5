//! Averages and peaks over time buckets, computed one way for everything:
//! the rollup job, the tail of a long chart that is not rolled up yet, and
//! the merging of 10-minute rollups into a chart's 20-minute buckets.
//!
//! A bucket keeps, per figure, how many reports had it, their sum and their
//! maximum. Sums (not averages) are what merge exactly: the mean of two
//! buckets is their summed sums over their summed counts, the same as the
//! mean of all their reports.

use crate::charts::{Point, Sample};

/// One figure over a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Reports that had the figure.
    pub count: i64,
    pub sum: f64,
    /// Highest value; meaningless when `count` is 0.
    pub max: f64,
}

impl Default for Stat {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Stat {
    /// Rebuilds a stored figure from its mean and maximum.
    pub fn from_avg(count: i64, avg: Option<f64>, max: Option<f64>) -> Self {
        match (avg, max) {
            (Some(avg), Some(max)) if count > 0 => Self {
                count,
                sum: avg * count as f64,
                max,
            },
            _ => Self::default(),
        }
    }

    /// Counts a value; non-finite values count as missing.
    fn add(&mut self, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.count += 1;
            self.sum += v;
            self.max = self.max.max(v);
        }
    }

    fn merge(&mut self, other: &Stat) {
        if other.count > 0 {
            self.count += other.count;
            self.sum += other.sum;
            self.max = self.max.max(other.max);
        }
    }

    /// The mean, or `None` when no report had the figure.
    pub fn avg(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The maximum, or `None` when no report had the figure.
    pub fn peak(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// The chart point for a bucket starting at `at`: mean and peak, or an
    /// explicit gap when no report of the bucket had the figure.
    pub fn point(&self, at: i64) -> Point {
        match (self.avg(), self.peak()) {
            (Some(avg), Some(max)) => Point::bucket(at, avg, max),
            _ => Point::raw(at, None),
        }
    }
}

/// Every charted figure over one bucket of one server.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bucket {
    /// Start, unix seconds, a multiple of the width.
    pub start: i64,
    /// Reports in the bucket.
    pub samples: i64,
    /// Logical cores of the bucket's last report.
    pub cores: i64,
    pub cpu: Stat,
    pub mem: Stat,
    pub disk: Stat,
    pub net_rx: Stat,
    pub net_tx: Stat,
    pub load1: Stat,
    pub load5: Stat,
    pub load15: Stat,
}

impl Bucket {
    fn new(start: i64) -> Self {
        Self {
            start,
            ..Self::default()
        }
    }

    fn add(&mut self, s: &Sample) {
        self.samples += 1;
        if let Some(cores) = s.cores {
            self.cores = i64::from(cores);
        }
        self.cpu.add(s.cpu);
        self.mem.add(s.mem);
        self.disk.add(s.disk);
        self.net_rx.add(s.net_rx);
        self.net_tx.add(s.net_tx);
        self.load1.add(s.load1);
        self.load5.add(s.load5);
        self.load15.add(s.load15);
    }

    fn merge(&mut self, other: &Bucket) {
        self.samples += other.samples;
        if other.samples > 0 {
            self.cores = other.cores;
        }
        let pairs = [
            (&mut self.cpu, &other.cpu),
            (&mut self.mem, &other.mem),
            (&mut self.disk, &other.disk),
            (&mut self.net_rx, &other.net_rx),
            (&mut self.net_tx, &other.net_tx),
            (&mut self.load1, &other.load1),
            (&mut self.load5, &other.load5),
            (&mut self.load15, &other.load15),
        ];
        for (mine, theirs) in pairs {
            mine.merge(theirs);
        }
    }
}

/// Start of the bucket of `width` seconds holding `at` (aligned to the unix
/// epoch, like [`crate::charts::Period::bucket_seconds`] buckets).
pub fn bucket_start(at: i64, width: i64) -> i64 {
    at.div_euclid(width) * width
}

/// Groups samples, sorted by time, into buckets of `width` seconds; only
/// buckets holding a sample appear.
pub fn aggregate(samples: &[Sample], width: i64) -> Vec<Bucket> {
    group(samples, width, |s| s.at, Bucket::add)
}

/// Combines buckets, sorted by start, into wider ones of `width` seconds (a
/// multiple of theirs).
pub fn merge(buckets: &[Bucket], width: i64) -> Vec<Bucket> {
    group(buckets, width, |b| b.start, Bucket::merge)
}

/// Adds items, sorted by time, to the bucket of `width` seconds each falls in.
fn group<T>(items: &[T], width: i64, at: fn(&T) -> i64, add: fn(&mut Bucket, &T)) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = Vec::new();
    for item in items {
        let start = bucket_start(at(item), width);
        if buckets.last().is_none_or(|b| b.start != start) {
            buckets.push(Bucket::new(start));
        }
        if let Some(b) = buckets.last_mut() {
            add(b, item);
        }
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, cpu: f64, load: Option<f64>) -> Sample {
        Sample {
            at,
            cpu: Some(cpu),
            mem: Some(50.0),
            disk: Some(10.0),
            load1: load,
            cores: Some(2),
            ..Sample::default()
        }
    }

    #[test]
    fn buckets_keep_means_peaks_and_counts() {
        let samples = [
            sample(-30, 1.0, None),
            sample(0, 10.0, Some(1.0)),
            sample(300, 30.0, None),
            sample(600, 5.0, Some(f64::NAN)),
        ];
        let b = aggregate(&samples, 600);
        assert_eq!(
            b.iter().map(|b| (b.start, b.samples)).collect::<Vec<_>>(),
            [(-600, 1), (0, 2), (600, 1)]
        );
        assert_eq!(b[1].cpu.avg(), Some(20.0));
        assert_eq!(b[1].cpu.peak(), Some(30.0));
        assert_eq!(b[1].load1.count, 1);
        assert_eq!(b[1].load1.avg(), Some(1.0));
        // A bucket whose reports all lack a figure is a gap for that line.
        assert_eq!(b[2].load1.point(600), Point::raw(600, None));
        assert_eq!(b[2].cpu.point(600), Point::bucket(600, 5.0, 5.0));
    }

    #[test]
    fn merging_equals_aggregating_at_the_wider_width() {
        let samples: Vec<Sample> = (0..500)
            .map(|i| {
                let load = (i % 7 != 0).then_some(f64::from(i % 13));
                sample(i64::from(i) * 37, f64::from(i * 7919 % 101), load)
            })
            .collect();
        let direct = aggregate(&samples, 3600);
        let merged = merge(&aggregate(&samples, 600), 3600);
        assert_eq!(direct.len(), merged.len());
        for (d, m) in direct.iter().zip(&merged) {
            assert_eq!((d.start, d.samples, d.cores), (m.start, m.samples, m.cores));
            for (x, y) in [(d.cpu, m.cpu), (d.load1, m.load1), (d.net_rx, m.net_rx)] {
                assert_eq!(x.count, y.count);
                assert_eq!(x.peak(), y.peak());
                match (x.avg(), y.avg()) {
                    (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{a} {b}"),
                    (a, b) => assert_eq!(a, b),
                }
            }
        }
    }

    #[test]
    fn stored_means_round_trip() {
        let s = Stat::from_avg(4, Some(2.5), Some(7.0));
        assert_eq!((s.count, s.sum, s.max), (4, 10.0, 7.0));
        assert_eq!(Stat::from_avg(0, Some(1.0), Some(1.0)), Stat::default());
        assert_eq!(Stat::from_avg(3, None, None).avg(), None);
    }
}
