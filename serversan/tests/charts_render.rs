//! Rendered charts, checked pixel by pixel: sizes, where lines land, gaps
//! for offline periods, the empty state.

use std::ops::Range;

use serversan::charts::{
    ChartRequest, History, Metric, Period, Point, Sample, TimeZone, render_png,
};

/// Thu 2026-11-05 14:32:10 UTC.
const END: i64 = 1_793_889_130;

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn decode(png_bytes: &[u8]) -> Image {
        let decoder = png::Decoder::new(png_bytes);
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut rgb = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut rgb).expect("PNG image data");
        assert_eq!(frame.color_type, png::ColorType::Rgb);
        assert_eq!(frame.bit_depth, png::BitDepth::Eight);
        rgb.truncate(frame.buffer_size());
        Image {
            width: frame.width,
            height: frame.height,
            rgb,
        }
    }

    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Series colours are saturated; text, axes, grid and background are grey.
    fn is_coloured(&self, x: u32, y: u32) -> bool {
        let [r, g, b] = self.pixel(x, y);
        r.max(g).max(b) - r.min(g).min(b) > 60
    }

    fn is_dark(&self, x: u32, y: u32) -> bool {
        self.pixel(x, y).iter().all(|c| *c < 128)
    }

    fn coloured_in_column(&self, x: u32, rows: Range<u32>) -> usize {
        rows.filter(|y| self.is_coloured(x, *y)).count()
    }

    /// Columns holding at least one series pixel within `rows`.
    fn coloured_columns(&self, rows: Range<u32>) -> Vec<u32> {
        (0..self.width)
            .filter(|x| self.coloured_in_column(*x, rows.clone()) > 0)
            .collect()
    }

    /// The pixels of a rectangle that pass `test`.
    fn pixels_where(
        &self,
        xs: Range<u32>,
        ys: Range<u32>,
        test: fn(&Image, u32, u32) -> bool,
    ) -> Vec<(u32, u32)> {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .filter(|(x, y)| test(self, *x, *y))
            .collect()
    }

    fn count_where(
        &self,
        xs: Range<u32>,
        ys: Range<u32>,
        test: fn(&Image, u32, u32) -> bool,
    ) -> usize {
        self.pixels_where(xs, ys, test).len()
    }

    fn coloured_count(&self) -> usize {
        self.count_where(0..self.width, 0..self.height, Image::is_coloured)
    }

    /// Mean row of the series pixels.
    fn mean_coloured_row(&self) -> f64 {
        let rows: Vec<u32> = self
            .pixels_where(0..self.width, 0..self.height, Image::is_coloured)
            .into_iter()
            .map(|(_, y)| y)
            .collect();
        assert!(!rows.is_empty(), "no series pixels at all");
        rows.iter().map(|y| f64::from(*y)).sum::<f64>() / rows.len() as f64
    }
}

fn request(metric: Metric, period: Period, history: History) -> ChartRequest {
    ChartRequest {
        server: "web-1".to_owned(),
        metric,
        period,
        end: END,
        zone: TimeZone::utc(),
        history,
    }
}

fn render(request: &ChartRequest) -> Image {
    Image::decode(&render_png(request).expect("render"))
}

/// Reports every `every` seconds over the whole period, with every figure.
fn steady_samples(period: Period, every: i64, cpu: impl Fn(i64) -> Option<f64>) -> Vec<Sample> {
    let count = period.seconds() / every;
    (0..count)
        .map(|i| {
            let at = END - i * every;
            Sample {
                at,
                cpu: cpu(at),
                mem: Some(55.0),
                disk: Some(70.0),
                net_rx: Some(2_500_000.0 + (i % 7) as f64 * 100_000.0),
                net_tx: Some(300_000.0),
                load1: Some(1.5),
                load5: Some(1.2),
                load15: Some(1.0),
                cores: Some(4),
            }
        })
        .collect()
}

/// The history of [`steady_samples`] with a constant CPU figure.
fn steady_history(period: Period, every: i64, cpu: f64) -> History {
    History::from_samples(&steady_samples(period, every, |_| Some(cpu)), period, END)
}

#[test]
fn every_metric_and_period_renders_at_the_phone_friendly_size() {
    for period in Period::CHOICES {
        let every = (period.seconds() / 600).max(10);
        let history = steady_history(period, every, 35.0);
        for metric in Metric::CHOICES {
            let image = render(&request(metric, period, history.clone()));
            let expected = if metric == Metric::All {
                (1000, 1100)
            } else {
                (1000, 500)
            };
            assert_eq!((image.width, image.height), expected, "{metric} {period}");
            // A full-width line is hundreds of series pixels at least.
            assert!(
                image.coloured_count() > 1500,
                "{metric} {period}: {} series pixels",
                image.coloured_count()
            );
        }
    }
}

#[test]
fn lines_sit_at_their_value_on_a_linear_axis() {
    let row_at = |value: f64| {
        let history = steady_history(Period::H6, 60, value);
        render(&request(Metric::Cpu, Period::H6, history)).mean_coloured_row()
    };
    let (low, mid, high) = (row_at(20.0), row_at(50.0), row_at(80.0));
    assert!(high < mid && mid < low, "rows {high} {mid} {low}");
    assert!(
        low - high > 150.0,
        "20% and 80% only {} rows apart",
        low - high
    );
    assert!(
        (mid - (low + high) / 2.0).abs() < 2.0,
        "50% at row {mid}, halfway is {}",
        (low + high) / 2.0
    );
}

#[test]
fn a_full_period_of_data_draws_across_the_whole_plot() {
    let samples = steady_samples(Period::H24, 60, |at| Some(30.0 + (at % 600) as f64 / 20.0));
    let history = History::from_samples(&samples, Period::H24, END);
    let image = render(&request(Metric::Cpu, Period::H24, history));
    let columns = image.coloured_columns(0..image.height);
    let (first, last) = (columns[0], columns[columns.len() - 1]);
    assert!(last - first > 800, "line spans columns {first}..{last}");
    // No holes: every column between holds the line.
    assert_eq!(columns.len() as u32, last - first + 1);
}

/// Renders a 24 h CPU chart of one-minute reports with the reports in
/// `hole` (seconds before END) taken away or blanked, and returns the image
/// and the pixel columns that hold the line.
fn chart_with_hole(hole: Range<i64>, blank_instead: bool) -> (Image, Vec<u32>) {
    let samples: Vec<Sample> = steady_samples(Period::H24, 60, |_| Some(50.0))
        .into_iter()
        .filter_map(|mut s| {
            if hole.contains(&(END - s.at)) {
                if !blank_instead {
                    return None;
                }
                s.cpu = None;
            }
            Some(s)
        })
        .collect();
    let history = History::from_samples(&samples, Period::H24, END);
    let image = render(&request(Metric::Cpu, Period::H24, history));
    let columns = image.coloured_columns(0..image.height);
    (image, columns)
}

/// Asserts that no series pixel lies in the columns where the hole is,
/// and that the line resumes on either side of it.
fn assert_gap_at(columns: &[u32], hole: Range<i64>) {
    let (first, last) = (columns[0], columns[columns.len() - 1]);
    // Data runs from END - 24 h + 60 s (first column) to END (last column).
    let span = (Period::H24.seconds() - 60) as f64;
    let x_of = |before_end: i64| {
        let share = (span - before_end as f64) / span;
        f64::from(first) + share * f64::from(last - first)
    };
    // The hole's newest missing report is `hole.start`, its oldest
    // `hole.end - 60`; the line stops at the reports beside them.
    let gap_left = x_of(hole.end).ceil() as u32 + 4;
    let gap_right = x_of(hole.start - 60).floor() as u32 - 4;
    assert!(gap_right > gap_left + 20, "test hole too narrow");
    let inside: Vec<&u32> = columns
        .iter()
        .filter(|x| (gap_left..=gap_right).contains(*x))
        .collect();
    assert!(inside.is_empty(), "line drawn across the gap at {inside:?}");
    assert!(columns.contains(&(gap_left - 8)), "no line left of the gap");
    assert!(
        columns.contains(&(gap_right + 8)),
        "no line right of the gap"
    );
}

#[test]
fn an_offline_period_leaves_an_uncoloured_gap_where_it_was() {
    // Offline for an hour, from 10 h to 9 h before the end.
    let hole = 9 * 3600..10 * 3600;
    let (_, columns) = chart_with_hole(hole.clone(), false);
    assert_gap_at(&columns, hole);
}

#[test]
fn reports_without_the_figure_leave_a_gap_too() {
    let hole = 3 * 3600..5 * 3600;
    let (_, columns) = chart_with_hole(hole.clone(), true);
    assert_gap_at(&columns, hole);
}

#[test]
fn only_silences_longer_than_two_and_a_half_intervals_break_the_line() {
    // Bucketing would blur this; the 1 h chart keeps one-minute reports raw.
    let line_columns = |missing: i64| {
        let samples: Vec<Sample> = steady_samples(Period::H1, 60, |_| Some(50.0))
            .into_iter()
            .filter(|s| !(1800..1800 + 60 * missing).contains(&(END - s.at)))
            .collect();
        let history = History::from_samples(&samples, Period::H1, END);
        assert_eq!(history.step, 60);
        let image = render(&request(Metric::Cpu, Period::H1, history));
        let columns = image.coloured_columns(0..image.height);
        let (first, last) = (columns[0], columns[columns.len() - 1]);
        (last - first + 1) as usize - columns.len()
    };
    assert_eq!(
        line_columns(1),
        0,
        "one missed report (120 s) must not break the line"
    );
    assert!(
        line_columns(2) > 5,
        "two missed reports (180 s) must break it"
    );
}

#[test]
fn a_lone_report_between_gaps_is_still_visible() {
    let history = History {
        step: 60,
        cpu: vec![Point::raw(END - 1800, Some(40.0))],
        ..History::default()
    };
    let image = render(&request(Metric::Cpu, Period::H1, history));
    let columns = image.coloured_columns(0..image.height);
    assert!(
        (4..=20).contains(&columns.len()),
        "dot covers {} columns",
        columns.len()
    );
}

#[test]
fn no_data_renders_the_empty_state() {
    let old = steady_samples(Period::H24, 60, |_| Some(50.0))
        .into_iter()
        .map(|s| Sample {
            at: s.at - Period::H24.seconds(),
            ..s
        })
        .collect::<Vec<_>>();
    for (metric, history) in [
        (Metric::Cpu, History::default()),
        // Reports exist, but all before this period.
        (Metric::Net, History::from_samples(&old, Period::H1, END)),
        (Metric::All, History::default()),
    ] {
        let image = render(&request(metric, Period::H1, history));
        assert_eq!(image.coloured_count(), 0, "{metric}: series pixels drawn");
        // The note sits in the middle of the (first) plot.
        let (w, h) = (image.width, image.height);
        let rows = if metric == Metric::All {
            h * 14 / 100..h * 24 / 100
        } else {
            h * 45 / 100..h * 65 / 100
        };
        let dark = image.count_where(w * 4 / 10..w * 6 / 10, rows, Image::is_dark);
        assert!(
            dark > 200,
            "{metric}: {dark} dark pixels where the note should be"
        );
    }
}

#[test]
fn the_same_plot_without_the_note_has_no_text_in_its_middle() {
    // Guards the empty-state test: the middle of a plot is free of text
    // when there is data.
    let history = steady_history(Period::H1, 60, 95.0);
    let image = render(&request(Metric::Cpu, Period::H1, history));
    let (w, h) = (image.width, image.height);
    let dark = image.count_where(
        w * 4 / 10..w * 6 / 10,
        h * 45 / 100..h * 65 / 100,
        Image::is_dark,
    );
    assert_eq!(dark, 0);
}

#[test]
fn the_overview_shows_each_metric_in_its_own_band() {
    let history = steady_history(Period::H24, 60, 50.0);
    let image = render(&request(Metric::All, Period::H24, history));
    // Below the header, five panels share about 1000 rows.
    let band = (image.height - 100) / 5;
    for i in 0..5 {
        let rows = 100 + i * band..100 + (i + 1) * band;
        let count: usize = (0..image.width)
            .map(|x| image.coloured_in_column(x, rows.clone()))
            .sum();
        assert!(count > 1500, "panel {i} has {count} series pixels");
    }
}

#[test]
fn hostile_server_names_stay_inside_the_title() {
    let history = steady_history(Period::H1, 60, 10.0);
    for name in [
        "W".repeat(500),
        "\u{202e}evil\u{0}\u{7}\n\r\tname".to_owned(),
        String::new(),
        "名前".repeat(40),
    ] {
        let mut req = request(Metric::Cpu, Period::H1, history.clone());
        req.server = name;
        let image = render(&req);
        assert_eq!((image.width, image.height), (1000, 500));
        // Nothing dark in the right margin of the title row.
        let overflow = image.count_where(985..1000, 0..50, Image::is_dark);
        assert_eq!(overflow, 0, "title ran off the picture");
        let title_ink = image.count_where(0..985, 0..50, Image::is_dark);
        assert!(title_ink > 300, "no title drawn");
    }
}

#[test]
fn a_configured_zone_moves_the_time_labels() {
    let history = steady_history(Period::H24, 60, 10.0);
    let utc = render(&request(Metric::Cpu, Period::H24, history.clone()));
    let mut req = request(Metric::Cpu, Period::H24, history);
    req.zone = TimeZone::from_offset_minutes(90).unwrap().with_name("XST");
    let shifted = render(&req);
    // Same data, same lines; only the labels (ticks on round local hours)
    // and the zone statement differ.
    let label_rows = 430..500;
    let differs = label_rows
        .flat_map(|y| (0..1000).map(move |x| (x, y)))
        .any(|(x, y)| utc.pixel(x, y) != shifted.pixel(x, y));
    assert!(differs);
    assert_eq!(utc.coloured_count(), shifted.coloured_count());
}
