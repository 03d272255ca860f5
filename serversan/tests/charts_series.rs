//! Turning raw samples into chart lines: the window of a period, raw points
//! kept as they are, and buckets whose mean and maximum equal a
//! recomputation from the samples.

use std::collections::BTreeMap;

use serversan::charts::{History, MAX_POINTS, Period, Point, Sample};

/// Thu 2026-11-05 14:32:10 UTC.
const END: i64 = 1_793_889_130;

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Reports about a minute apart (jittered) from well before the 30-day
/// window to a little after `END`, with missing and non-finite figures and
/// a day-long outage.
fn messy_samples() -> Vec<Sample> {
    let mut rng = Lcg(42);
    let mut samples = Vec::new();
    let mut at = END - Period::D30.seconds() - 7200;
    while at < END + 600 {
        at += 45 + (rng.next() * 30.0) as i64;
        if (END - 12 * 86_400..END - 11 * 86_400).contains(&at) {
            continue;
        }
        let figure = |rng: &mut Lcg, scale: f64| {
            let roll = rng.next();
            if roll < 0.03 {
                None
            } else if roll < 0.04 {
                Some(f64::NAN)
            } else {
                Some(rng.next() * scale)
            }
        };
        samples.push(Sample {
            at,
            cpu: figure(&mut rng, 100.0),
            mem: figure(&mut rng, 100.0),
            disk: figure(&mut rng, 100.0),
            net_rx: figure(&mut rng, 1e8),
            net_tx: figure(&mut rng, 1e7),
            load1: figure(&mut rng, 8.0),
            load5: figure(&mut rng, 6.0),
            load15: figure(&mut rng, 4.0),
            cores: Some(8),
        });
    }
    // Storage may hand rows over in any order.
    samples.reverse();
    samples.swap(10, 5000);
    samples
}

/// Reads one figure of a sample.
type Read = fn(&Sample) -> Option<f64>;

/// The expected (avg, max) per bucket start, straight from the samples.
fn recompute(samples: &[Sample], period: Period, read: Read) -> BTreeMap<i64, Option<(f64, f64)>> {
    let bucket = period.bucket_seconds();
    let start = END - period.seconds();
    let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.at > start && s.at <= END) {
        let values = groups.entry(s.at.div_euclid(bucket) * bucket).or_default();
        if let Some(v) = read(s).filter(|v| v.is_finite()) {
            values.push(v);
        }
    }
    groups
        .into_iter()
        .map(|(at, values)| {
            let stats = (!values.is_empty()).then(|| {
                let avg = values.iter().sum::<f64>() / values.len() as f64;
                (avg, values.iter().copied().fold(f64::MIN, f64::max))
            });
            (at, stats)
        })
        .collect()
}

fn check_buckets(line: &[Point], expected: &BTreeMap<i64, Option<(f64, f64)>>, name: &str) {
    assert_eq!(line.len(), expected.len(), "{name}: bucket count");
    for (point, (at, stats)) in line.iter().zip(expected) {
        assert_eq!(point.at, *at, "{name}: bucket start");
        match stats {
            None => assert_eq!(point.avg, None, "{name} at {at}: expected a gap"),
            Some((avg, max)) => {
                let got = point.avg.expect("an average");
                assert!(
                    (got - avg).abs() <= avg.abs() * 1e-12,
                    "{name} at {at}: avg {got} != {avg}"
                );
                assert_eq!(point.max, Some(*max), "{name} at {at}: max");
            }
        }
    }
}

#[test]
fn down_sampled_buckets_equal_a_recomputation_from_the_samples() {
    let samples = messy_samples();
    for period in [Period::H24, Period::D7, Period::D30] {
        let history = History::from_samples(&samples, period, END);
        let lines: [(&str, &[Point], Read); 8] = [
            ("cpu", &history.cpu, |s| s.cpu),
            ("mem", &history.mem, |s| s.mem),
            ("disk", &history.disk, |s| s.disk),
            ("net_rx", &history.net_rx, |s| s.net_rx),
            ("net_tx", &history.net_tx, |s| s.net_tx),
            ("load1", &history.load1, |s| s.load1),
            ("load5", &history.load5, |s| s.load5),
            ("load15", &history.load15, |s| s.load15),
        ];
        for (name, line, read) in lines {
            let expected = recompute(&samples, period, read);
            assert!(expected.len() <= MAX_POINTS);
            check_buckets(line, &expected, &format!("{period} {name}"));
        }
        // The outage (12 to 11 days ago) leaves its buckets out: nothing is
        // invented there.
        // A bucket starting at b holds reports from [b, b + bucket).
        if period == Period::D30 {
            let bucket = period.bucket_seconds();
            let silent = END - 12 * 86_400..END - 11 * 86_400 - bucket + 1;
            assert!(history.cpu.iter().all(|p| !silent.contains(&p.at)));
            let before = history.cpu.iter().filter(|p| p.at < silent.start).count();
            assert!(history.cpu[before].at - history.cpu[before - 1].at >= 86_400 - bucket);
        }
        assert!(history.step >= period.bucket_seconds());
        assert_eq!(history.cores, Some(8));
    }
}

#[test]
fn some_buckets_really_do_average_many_reports() {
    // Guards the test above: with one report per bucket, mean = max and
    // the comparison would prove little.
    let samples = messy_samples();
    let history = History::from_samples(&samples, Period::D30, END);
    let averaged = history
        .cpu
        .iter()
        .filter(|p| matches!((p.avg, p.max), (Some(a), Some(m)) if m > a + 1.0))
        .count();
    assert!(averaged > 600, "{averaged} buckets with peak above mean");
}

#[test]
fn a_period_with_few_reports_keeps_them_raw_and_sorted() {
    let samples = messy_samples();
    let history = History::from_samples(&samples, Period::H1, END);
    let mut expected: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at > END - 3600 && s.at <= END)
        .collect();
    expected.sort_by_key(|s| s.at);
    assert!(expected.len() > 50 && expected.len() <= MAX_POINTS);
    assert_eq!(history.cpu.len(), expected.len());
    for (point, sample) in history.cpu.iter().zip(&expected) {
        assert_eq!(point.at, sample.at);
        let figure = sample.cpu.filter(|v| v.is_finite());
        assert_eq!(point.avg, figure);
        assert_eq!(point.max, figure);
    }
    // About a minute apart: the median spacing, not the mean.
    assert!((55..=65).contains(&history.step), "step {}", history.step);
}

#[test]
fn the_window_is_the_period_ending_at_end() {
    let at = |at| Sample {
        at,
        cpu: Some(1.0),
        ..Sample::default()
    };
    let samples = [at(END - 3600), at(END - 3599), at(END), at(END + 1)];
    let history = History::from_samples(&samples, Period::H1, END);
    let times: Vec<i64> = history.cpu.iter().map(|p| p.at).collect();
    assert_eq!(times, vec![END - 3599, END]);
    assert!(History::from_samples(&[], Period::D30, END).cpu.is_empty());
}

#[test]
fn more_reports_than_pixels_are_averaged_into_period_buckets() {
    let samples: Vec<Sample> = (0..(MAX_POINTS as i64 + 1))
        .map(|i| Sample {
            at: END - i * 10,
            cpu: Some(i as f64),
            ..Sample::default()
        })
        .collect();
    // 881 reports in the last ~2.5 h: bucketed by the 6 h period's minute.
    let history = History::from_samples(&samples, Period::H6, END);
    assert!(history.cpu.len() < 160, "{} points", history.cpu.len());
    assert!(history.cpu.iter().all(|p| p.at % 60 == 0));
    assert_eq!(history.step, 60);
    // 880 reports stay raw.
    let history = History::from_samples(&samples[..MAX_POINTS], Period::H6, END);
    assert_eq!(history.cpu.len(), MAX_POINTS);
    assert_eq!(history.step, 10);
}
