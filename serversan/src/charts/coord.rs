//! A plotters axis whose ticks are chosen by us (round local times, round
//! values) rather than by plotters' own tick heuristics.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

/// A linear axis over `range` with grid lines and labels exactly at `ticks`.
#[derive(Debug, Clone)]
pub(crate) struct Ticked {
    pub range: Range<f64>,
    pub ticks: Vec<f64>,
}

impl Ranged for Ticked {
    // Labels always come from a formatter of ours; this only satisfies
    // plotters' mesh bounds.
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span == 0.0 {
            return (limit.0 + limit.1) / 2;
        }
        let share = (value - self.range.start) / span;
        let pixels = f64::from(limit.1 - limit.0) * share;
        limit.0 + pixels.round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_map_linearly_onto_pixels_either_way_up() {
        let axis = Ticked {
            range: 0.0..100.0,
            ticks: vec![0.0, 50.0, 100.0],
        };
        assert_eq!(axis.map(&50.0, (100, 300)), 200);
        assert_eq!(axis.map(&25.0, (400, 0)), 300);
        assert_eq!(axis.map(&0.0, (400, 0)), 400);
        let flat = Ticked {
            range: 5.0..5.0,
            ticks: vec![],
        };
        assert_eq!(flat.map(&5.0, (0, 10)), 5);
    }
}
