//! What a chart shows: the raw reports for the short periods, the rollups
//! (plus the newest minutes not rolled up yet) for the long ones.

use super::bucket::{Bucket, aggregate, merge};
use super::raw;
use super::rollup::{Resolution, rollups};
use crate::charts::{History, Period};
use crate::storage::{Storage, StorageError};

/// The history of a server over `period` ending at `end` (unix seconds),
/// ready for [`crate::charts::render_png`]. The caller checks that the
/// asking user owns the server.
///
/// 1h, 6h and 24h read the raw reports (at most 1,440 rows at one report a
/// minute). 7d reads 10-minute rollups merged into 20-minute buckets, 30d
/// hourly rollups: about a thousand and 720 rows. Both add the reports
/// after the last rollup, averaged the same way, so the right edge of the
/// chart is now, not the last rollup.
pub async fn chart_history(
    storage: &Storage,
    server_id: i64,
    period: Period,
    end: i64,
) -> Result<History, StorageError> {
    let start = end.saturating_sub(period.seconds());
    let resolution = match period {
        Period::H1 | Period::H6 | Period::H24 => {
            let samples = raw::samples(storage, server_id, start + 1, end + 1).await?;
            return Ok(History::from_samples(&samples, period, end));
        }
        Period::D7 => Resolution::TenMinutes,
        Period::D30 => Resolution::Hour,
    };
    let width = resolution.seconds();
    // The bucket the window starts inside is drawn whole, as charts do with
    // raw samples.
    let mut buckets = rollups(storage, server_id, resolution, start - width + 1, end + 1).await?;
    let tail_from = buckets.last().map_or(start + 1, |b| b.start + width);
    if tail_from <= end {
        let tail = raw::samples(storage, server_id, tail_from, end + 1).await?;
        buckets.extend(aggregate(&tail, width));
    }
    Ok(history_from_buckets(&buckets, period))
}

/// The lines of a chart from buckets sorted by time, merged to the
/// period's bucket width.
fn history_from_buckets(buckets: &[Bucket], period: Period) -> History {
    let width = period.bucket_seconds();
    let merged = merge(buckets, width);
    let line = |stat: fn(&Bucket) -> super::bucket::Stat| -> Vec<_> {
        merged.iter().map(|b| stat(b).point(b.start)).collect()
    };
    History {
        step: width.max(median_spacing(&merged).unwrap_or(width)),
        cpu: line(|b| b.cpu),
        mem: line(|b| b.mem),
        disk: line(|b| b.disk),
        net_rx: line(|b| b.net_rx),
        net_tx: line(|b| b.net_tx),
        load1: line(|b| b.load1),
        load5: line(|b| b.load5),
        load15: line(|b| b.load15),
        cores: merged.last().and_then(|b| u32::try_from(b.cores).ok()),
    }
}

/// The usual distance between buckets that hold reports, so a server that
/// reports less often than the bucket width is not drawn as all gaps.
fn median_spacing(buckets: &[Bucket]) -> Option<i64> {
    let mut deltas: Vec<i64> = buckets
        .windows(2)
        .map(|w| w[1].start - w[0].start)
        .collect();
    if deltas.is_empty() {
        return None;
    }
    let middle = deltas.len() / 2;
    Some(*deltas.select_nth_unstable(middle).1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charts::{Point, Sample};

    fn samples(times: impl Iterator<Item = i64>) -> Vec<Sample> {
        times
            .map(|at| Sample {
                at,
                cpu: Some((at % 97) as f64),
                mem: Some(40.0),
                disk: Some(60.0),
                cores: Some(4),
                ..Sample::default()
            })
            .collect()
    }

    #[test]
    fn rollups_draw_what_raw_samples_would() {
        let end = 1_800_000_000 - 13;
        let raw = samples((0..10_080).map(|i| end - 60 * i));
        let mut sorted = raw.clone();
        sorted.sort_by_key(|s| s.at);
        for (period, width) in [(Period::D7, 600), (Period::D30, 3600)] {
            let expected = History::from_samples(&sorted, period, end);
            let start = end - period.seconds();
            let window: Vec<Sample> = sorted.iter().copied().filter(|s| s.at > start).collect();
            let got = history_from_buckets(&aggregate(&window, width), period);
            assert_eq!(got.step, expected.step, "{period}");
            assert_eq!(got.cores, Some(4));
            assert_eq!(got.cpu.len(), expected.cpu.len(), "{period}");
            for (g, e) in got.cpu.iter().zip(&expected.cpu) {
                assert_eq!(g.at, e.at);
                assert_eq!(g.max, e.max);
                let (g, e) = (g.avg.unwrap_or(f64::NAN), e.avg.unwrap_or(f64::NAN));
                assert!((g - e).abs() < 1e-9, "{period}: {g} vs {e}");
            }
            // No network rates in these samples: every point is a gap.
            assert!(got.net_rx.iter().all(|p| *p == Point::raw(p.at, None)));
        }
    }

    #[test]
    fn sparse_reporters_are_not_drawn_as_gaps() {
        let hourly = samples((0..100).map(|i| 1_800_000_000 + 3600 * i));
        let h = history_from_buckets(&aggregate(&hourly, 600), Period::D7);
        assert_eq!(h.step, 3600);
    }
}
