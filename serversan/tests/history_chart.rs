//! Chart data on SQLite and on a real MariaDB: what `chart_history` returns
//! for each period is what the stored reports say (recomputed here the
//! naive way), offline stretches are gaps, rolled-up and not yet rolled-up
//! history read the same, and the PNG has the promised size.

mod common;
mod history_support;

use common::Backend;
use history_support::*;
use serversan::charts::{ChartRequest, History, Metric, Period, Point, TimeZone, render_png};
use serversan::history::{self, Resolution};
use serversan_protocol::Report;

on_both_backends!(
    short_charts_show_every_stored_report,
    long_charts_show_the_buckets_of_the_stored_reports,
    offline_stretches_are_gaps,
    charts_render_to_pngs_of_the_promised_size,
);

/// 26 hours of one report every 3 minutes, with a reboot, a stretch
/// without load averages and a 4-hour outage (hours 10 to 14).
async fn day_of_reports(f: &Fixture) -> Vec<Report> {
    let id = f.server.id;
    let mut host = Host::default();
    let mut reports = store_series(&f.storage, id, &mut host, times(T0 + 17, 180, 200)).await;
    host.reboot();
    host.load = false;
    reports.extend(
        store_series(
            &f.storage,
            id,
            &mut host,
            times(T0 + 14 * 3600 + 17, 180, 40),
        )
        .await,
    );
    host.load = true;
    reports.extend(
        store_series(
            &f.storage,
            id,
            &mut host,
            times(T0 + 16 * 3600 + 17, 180, 200),
        )
        .await,
    );
    reports
}

/// [`day_of_reports`], all rolled up.
async fn rolled_up_day(f: &Fixture) {
    day_of_reports(f).await;
    history::maintain(&f.storage, &settings(), END + 7200)
        .await
        .expect("maintain");
}

/// The end of the charts: 26 h after [`T0`], not on a bucket edge.
const END: i64 = T0 + 26 * 3600 - 100;

fn in_window(reports: &[Expected], period: Period, end: i64) -> Vec<Expected> {
    let start = end - period.seconds();
    reports
        .iter()
        .copied()
        .filter(|e| e.at > start && e.at <= end)
        .collect()
}

fn assert_every_line(what: &str, h: &History, want: &[Expected]) {
    assert_line(&format!("{what} cpu"), &h.cpu, want, |e| Some(e.cpu));
    assert_line(&format!("{what} mem"), &h.mem, want, |e| Some(e.mem));
    assert_line(&format!("{what} disk"), &h.disk, want, |e| Some(e.disk));
    assert_line(&format!("{what} rx"), &h.net_rx, want, |e| {
        e.net.map(|n| n.0)
    });
    assert_line(&format!("{what} tx"), &h.net_tx, want, |e| {
        e.net.map(|n| n.1)
    });
    assert_line(&format!("{what} load1"), &h.load1, want, |e| {
        e.load.map(|l| l.0)
    });
    assert_line(&format!("{what} load5"), &h.load5, want, |e| {
        e.load.map(|l| l.1)
    });
    assert_line(&format!("{what} load15"), &h.load15, want, |e| {
        e.load.map(|l| l.2)
    });
    assert_eq!(h.cores, Some(4), "{what}");
}

async fn short_charts_show_every_stored_report(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let expected = expected(&day_of_reports(&f).await);
    for period in [Period::H1, Period::H6, Period::H24] {
        let h = history::chart_history(&f.storage, f.server.id, period, END)
            .await
            .expect("chart");
        let want = in_window(&expected, period, END);
        assert!(want.len() > 10, "{period}: {}", want.len());
        assert_every_line(&period.to_string(), &h, &want);
        assert_eq!(h.step, 180, "{period}");
    }
    // Another server's chart shows nothing of this one.
    let other = add_server(&f.storage, OWNER, "other").await;
    let h = history::chart_history(&f.storage, other.id, Period::H24, END)
        .await
        .expect("chart");
    assert!(h.cpu.is_empty() && h.net_rx.is_empty());
}

/// The naive buckets of `period`'s width for the reports in its window,
/// as chart points of one figure.
fn naive_points(expected: &[Expected], period: Period, figure: usize) -> Vec<Point> {
    naive_buckets(&in_window(expected, period, END), period.bucket_seconds())
        .into_iter()
        .map(|(at, (_, n))| {
            let n = n[figure];
            if n.count == 0 {
                Point::raw(at, None)
            } else {
                Point::bucket(at, n.sum / n.count as f64, n.max)
            }
        })
        .collect()
}

fn assert_points(what: &str, got: &[Point], want: &[Point]) {
    assert_eq!(
        got.iter().map(|p| p.at).collect::<Vec<_>>(),
        want.iter().map(|p| p.at).collect::<Vec<_>>(),
        "{what}: bucket starts"
    );
    for (g, w) in got.iter().zip(want) {
        for (a, b) in [(g.avg, w.avg), (g.max, w.max)] {
            match (a, b) {
                (Some(a), Some(b)) => assert!(close(a, b), "{what} @ {}: {a} vs {b}", g.at),
                (a, b) => assert_eq!(a, b, "{what} @ {}", g.at),
            }
        }
    }
}

fn assert_long_chart(what: &str, h: &History, expected: &[Expected], period: Period) {
    let lines = [
        &h.cpu, &h.mem, &h.disk, &h.net_rx, &h.net_tx, &h.load1, &h.load5, &h.load15,
    ];
    for (figure, line) in lines.into_iter().enumerate() {
        let want = naive_points(expected, period, figure);
        assert_points(&format!("{what} {period} figure {figure}"), line, &want);
    }
    assert_eq!(h.step, period.bucket_seconds(), "{what} {period}");
    assert_eq!(h.cores, Some(4));
}

async fn long_charts_show_the_buckets_of_the_stored_reports(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let expected = expected(&day_of_reports(&f).await);
    let charts = |label: &'static str| {
        let f = &f;
        let expected = &expected;
        async move {
            for period in [Period::D7, Period::D30] {
                let h = history::chart_history(&f.storage, f.server.id, period, END)
                    .await
                    .expect("chart");
                assert_long_chart(label, &h, expected, period);
            }
        }
    };
    // Before any rollup exists the raw reports are read…
    charts("no rollups yet").await;
    // …with rollups up to 19:00, the rest from the raw reports…
    history::maintain(&f.storage, &settings(), T0 + 19 * 3600)
        .await
        .expect("maintain");
    let rolled = stored_rollups(&f.storage, f.server.id, Resolution::Hour).await;
    assert_eq!(rolled.last().map(|b| b.start), Some(T0 + 17 * 3600));
    charts("partly rolled up").await;
    // …and with everything rolled up, the same.
    history::maintain(&f.storage, &settings(), END + 7200)
        .await
        .expect("maintain");
    charts("rolled up").await;
}

/// Consecutive points farther apart than the renderer's gap distance
/// (2.5 steps): where the line breaks.
fn breaks(h: &History) -> Vec<(i64, i64)> {
    h.cpu
        .windows(2)
        .filter(|w| (w[1].at - w[0].at) * 2 > 5 * h.step)
        .map(|w| (w[0].at, w[1].at))
        .collect()
}

async fn offline_stretches_are_gaps(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    rolled_up_day(&f).await;
    let outage = (T0 + 10 * 3600, T0 + 14 * 3600);
    for period in [Period::H24, Period::D7, Period::D30] {
        let h = history::chart_history(&f.storage, f.server.id, period, END)
            .await
            .expect("chart");
        let gaps = breaks(&h);
        assert_eq!(gaps.len(), 1, "{period}: {gaps:?}");
        let (before, after) = gaps[0];
        assert!(
            before < outage.0 && after >= outage.1 - period.bucket_seconds(),
            "{period}: {gaps:?}"
        );
        // Nothing is drawn inside the outage.
        assert!(
            h.cpu.iter().all(|p| p.at < outage.0 || p.at >= after),
            "{period}"
        );
    }
}

async fn charts_render_to_pngs_of_the_promised_size(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    rolled_up_day(&f).await;
    for (metric, period, size) in [
        (Metric::Cpu, Period::H24, (1000, 500)),
        (Metric::Net, Period::D7, (1000, 500)),
        (Metric::All, Period::D30, (1000, 1100)),
    ] {
        let history = history::chart_history(&f.storage, f.server.id, period, END)
            .await
            .expect("chart");
        let png = render_png(&ChartRequest {
            server: f.server.name.clone(),
            metric,
            period,
            end: END,
            zone: TimeZone::utc(),
            history,
        })
        .expect("render");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().expect("a PNG");
        let info = reader.info();
        assert_eq!((info.width, info.height), size, "{metric} {period}");
    }
}
