//! One plot of a chart, decided before anything is drawn: which lines, in
//! which unit, on which axis, and where each line breaks.

use plotters::style::RGBColor;

use super::axis::{ValueAxis, byte_rate_unit};
use super::choice::Metric;
use super::series::{History, Point};

/// Lines are split where consecutive points are farther apart than this
/// many expected intervals: the server was offline in between.
const GAP_FACTOR: f64 = 2.5;

const BLUE: RGBColor = RGBColor(31, 119, 180);
const PURPLE: RGBColor = RGBColor(128, 77, 178);
const ORANGE: RGBColor = RGBColor(222, 110, 0);
const GREEN: RGBColor = RGBColor(30, 150, 60);
const RED: RGBColor = RGBColor(214, 39, 40);
const AMBER: RGBColor = RGBColor(235, 150, 0);
const TEAL: RGBColor = RGBColor(0, 140, 150);

/// A point ready to draw: scaled to the axis unit and clamped into it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Drawn {
    pub at: i64,
    pub avg: f64,
    pub max: f64,
}

/// One line: unbroken runs of points, and whether any bucket's maximum
/// differs from its mean (then a band shows the peaks).
pub(crate) struct Line {
    pub label: &'static str,
    pub colour: RGBColor,
    /// Stroke width in pixels: secondary lines are thinner.
    pub width: u32,
    pub runs: Vec<Vec<Drawn>>,
    pub has_peaks: bool,
}

/// A horizontal reference line, such as the core count on a load chart.
pub(crate) struct Reference {
    pub value: f64,
    pub label: String,
}

pub(crate) struct Panel {
    /// The value axis title, with its unit.
    pub y_desc: String,
    pub axis: ValueAxis,
    pub lines: Vec<Line>,
    pub reference: Option<Reference>,
}

/// Where a line's figures come from, and how it is drawn.
struct Source<'a> {
    label: &'static str,
    colour: RGBColor,
    /// A primary line is thick and shows its peaks; a secondary one is
    /// thinner and bandless, since three overlapping load bands are mud.
    primary: bool,
    points: &'a [Point],
}

impl<'a> Source<'a> {
    fn primary(label: &'static str, colour: RGBColor, points: &'a [Point]) -> Self {
        Self {
            label,
            colour,
            primary: true,
            points,
        }
    }

    fn secondary(label: &'static str, colour: RGBColor, points: &'a [Point]) -> Self {
        Self {
            primary: false,
            ..Self::primary(label, colour, points)
        }
    }
}

impl Panel {
    /// The panel of one metric (not `All`) over `start..=end`. A compact
    /// panel (one of the overview's five) gets fewer value steps and a
    /// shorter axis title.
    pub fn new(metric: Metric, history: &History, start: i64, end: i64, compact: bool) -> Self {
        let window = Window {
            start,
            end,
            max_gap: (history.step.max(1) as f64 * GAP_FACTOR) as i64,
        };
        let ticks = if compact { 2 } else { 4 };
        let desc = |full: &str, short: &str| if compact { short } else { full }.to_owned();
        let percent = |y_desc: String, source: Source<'_>| Panel {
            y_desc,
            axis: ValueAxis::percent(ticks),
            lines: vec![window.line(&source, 1.0, 100.0)],
            reference: None,
        };
        match metric {
            Metric::Cpu | Metric::All => percent(
                desc("CPU busy (%)", "CPU %"),
                Source::primary("CPU", BLUE, &history.cpu),
            ),
            Metric::Mem => percent(
                desc("Memory used (%)", "Mem used %"),
                Source::primary("memory", PURPLE, &history.mem),
            ),
            Metric::Disk => percent(
                desc("Disk used (%)", "Disk used %"),
                Source::primary("disk", ORANGE, &history.disk),
            ),
            Metric::Net => {
                let sources = [
                    Source::primary("in (rx)", GREEN, &history.net_rx),
                    Source::primary("out (tx)", BLUE, &history.net_tx),
                ];
                let highest = window.highest(&sources);
                let (factor, unit) = byte_rate_unit(highest);
                let axis = ValueAxis::fitting(highest / factor, ticks);
                Panel {
                    y_desc: if compact {
                        format!("Net {unit}")
                    } else {
                        format!("Network ({unit})")
                    },
                    lines: window.lines(&sources, factor, axis.top),
                    axis,
                    reference: None,
                }
            }
            Metric::Load => {
                let sources = [
                    Source::primary("1 min", RED, &history.load1),
                    Source::secondary("5 min", AMBER, &history.load5),
                    Source::secondary("15 min", TEAL, &history.load15),
                ];
                let cores = history.cores.map(f64::from).unwrap_or(0.0);
                let axis = ValueAxis::fitting(window.highest(&sources).max(cores), ticks);
                Panel {
                    y_desc: desc("Load average", "Load"),
                    lines: window.lines(&sources, 1.0, axis.top),
                    axis,
                    reference: history.cores.map(|n| Reference {
                        value: f64::from(n),
                        label: format!("{n} cores"),
                    }),
                }
            }
        }
    }

    /// Whether the lines need naming: more than one, or a reference line.
    pub fn has_legend(&self) -> bool {
        self.lines.len() > 1 || self.reference.is_some()
    }

    /// True when no line has a single point to draw in the period.
    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|l| l.runs.is_empty())
    }
}

/// The period shown, and the widest spacing still drawn as one line.
struct Window {
    start: i64,
    end: i64,
    max_gap: i64,
}

impl Window {
    fn shown<'p>(&self, points: &'p [Point]) -> impl Iterator<Item = &'p Point> + use<'p> {
        let (start, end) = (self.start, self.end);
        points.iter().filter(move |p| p.at >= start && p.at <= end)
    }

    /// The highest figure (bucket maxima included) of the lines in view.
    fn highest(&self, sources: &[Source<'_>]) -> f64 {
        sources
            .iter()
            .flat_map(|s| self.shown(s.points))
            .filter_map(|p| match (p.avg, p.max) {
                (Some(avg), Some(max)) => Some(avg.max(max)),
                (avg, _) => avg,
            })
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    }

    fn lines(&self, sources: &[Source<'_>], factor: f64, top: f64) -> Vec<Line> {
        sources.iter().map(|s| self.line(s, factor, top)).collect()
    }

    /// Splits a line into runs at explicit gaps and at spacing wider than
    /// `max_gap`, scaling figures by `1 / factor` and clamping them to
    /// `0..=top` so nothing is drawn outside the plot.
    fn line(&self, source: &Source<'_>, factor: f64, top: f64) -> Line {
        let mut sorted;
        let points = if source.points.is_sorted_by_key(|p| p.at) {
            source.points
        } else {
            sorted = source.points.to_vec();
            sorted.sort_by_key(|p| p.at);
            &sorted
        };
        let scale = |v: f64| (v / factor).clamp(0.0, top);
        let mut runs: Vec<Vec<Drawn>> = Vec::new();
        let mut current: Vec<Drawn> = Vec::new();
        let mut has_peaks = false;
        for p in self.shown(points) {
            let Some(avg) = p.avg.filter(|v| v.is_finite()) else {
                flush(&mut runs, &mut current);
                continue;
            };
            if current
                .last()
                .is_some_and(|last| p.at - last.at > self.max_gap)
            {
                flush(&mut runs, &mut current);
            }
            let max = p.max.filter(|v| v.is_finite()).map_or(avg, |m| m.max(avg));
            has_peaks |= source.primary && max > avg;
            current.push(Drawn {
                at: p.at,
                avg: scale(avg),
                max: scale(max),
            });
        }
        flush(&mut runs, &mut current);
        Line {
            label: source.label,
            colour: source.colour,
            width: if source.primary { 3 } else { 2 },
            runs,
            has_peaks,
        }
    }
}

fn flush(runs: &mut Vec<Vec<Drawn>>, current: &mut Vec<Drawn>) {
    if !current.is_empty() {
        runs.push(std::mem::take(current));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(points: &[(i64, Option<f64>)], step: i64) -> History {
        History {
            step,
            cpu: points.iter().map(|(at, v)| Point::raw(*at, *v)).collect(),
            ..History::default()
        }
    }

    #[test]
    fn lines_break_at_missing_values_and_long_silences() {
        let h = history(
            &[
                (0, Some(1.0)),
                (60, Some(2.0)),
                (120, None),
                (180, Some(3.0)),
                (240, Some(4.0)),
                // 151 s later: more than 2.5 × 60 s.
                (391, Some(5.0)),
                (450, Some(6.0)),
            ],
            60,
        );
        let panel = Panel::new(Metric::Cpu, &h, 0, 1000, false);
        let runs: Vec<Vec<i64>> = panel.lines[0]
            .runs
            .iter()
            .map(|r| r.iter().map(|d| d.at).collect())
            .collect();
        assert_eq!(runs, vec![vec![0, 60], vec![180, 240], vec![391, 450]]);
        assert!(!panel.lines[0].has_peaks);
    }

    #[test]
    fn figures_are_clamped_into_the_axis_and_unsorted_input_is_sorted() {
        let h = history(
            &[(120, Some(250.0)), (0, Some(-5.0)), (60, Some(f64::NAN))],
            60,
        );
        let panel = Panel::new(Metric::Cpu, &h, 0, 1000, false);
        let runs = &panel.lines[0].runs;
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0][0].avg, 0.0);
        assert_eq!(runs[1][0].avg, 100.0);
    }

    #[test]
    fn network_axis_uses_the_unit_of_the_peak() {
        let h = History {
            step: 60,
            net_rx: vec![Point::bucket(0, 1_000_000.0, 2_400_000.0)],
            net_tx: vec![Point::raw(60, Some(500_000.0))],
            ..History::default()
        };
        let panel = Panel::new(Metric::Net, &h, 0, 100, false);
        assert_eq!(panel.y_desc, "Network (MB/s)");
        assert_eq!(panel.axis.top, 3.0);
        assert_eq!(panel.lines[0].runs[0][0].max, 2.4);
        assert!(panel.lines[0].has_peaks);
        assert_eq!(panel.lines[1].runs[0][0].avg, 0.5);
    }

    #[test]
    fn load_axis_leaves_room_for_the_core_line() {
        let h = History {
            step: 60,
            load1: vec![Point::raw(0, Some(0.5))],
            cores: Some(8),
            ..History::default()
        };
        let panel = Panel::new(Metric::Load, &h, 0, 100, false);
        assert!(panel.axis.top >= 8.0);
        assert_eq!(panel.reference.as_ref().map(|r| r.value), Some(8.0));
        assert!(!panel.is_empty());
        assert!(Panel::new(Metric::Mem, &h, 0, 100, false).is_empty());
    }
}
