//! Value axes: round tick steps, and human units for byte rates.

/// A value axis from zero: its top, its ticks and how many decimals the
/// tick labels need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValueAxis {
    pub top: f64,
    pub ticks: Vec<f64>,
    pub decimals: usize,
}

impl ValueAxis {
    /// Fixed 0–100 axis for percentages, so charts of different servers
    /// compare at a glance.
    pub fn percent(tick_count: usize) -> Self {
        let step = 100.0 / tick_count.max(1) as f64;
        Self::with_step(100.0, step)
    }

    /// An axis from zero to a round number a little above `max`, with about
    /// `tick_count` steps of 1, 2, 2.5 or 5 times a power of ten.
    pub fn fitting(max: f64, tick_count: usize) -> Self {
        let max = if max.is_finite() && max > 0.0 {
            max * 1.08
        } else {
            1.0
        };
        let step = round_step(max / tick_count.max(1) as f64);
        Self::with_step((max / step).ceil() * step, step)
    }

    fn with_step(top: f64, step: f64) -> Self {
        let count = (top / step).round() as usize;
        Self {
            top,
            ticks: (0..=count).map(|i| i as f64 * step).collect(),
            decimals: decimals_of(step),
        }
    }

    pub fn label(&self, value: f64) -> String {
        format!("{value:.*}", self.decimals)
    }
}

fn round_step(raw: f64) -> f64 {
    let base = 10f64.powf(raw.log10().floor());
    let fraction = raw / base;
    let nice = [1.0, 2.0, 2.5, 5.0]
        .into_iter()
        .find(|n| fraction <= *n + 1e-9)
        .unwrap_or(10.0);
    nice * base
}

/// Fewest decimals that print `step` exactly (at most 3).
fn decimals_of(step: f64) -> usize {
    (0..3)
        .find(|d| {
            let scaled = step * 10f64.powi(*d as i32);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(3)
}

/// The unit a byte rate axis is printed in, chosen from the largest figure
/// so the labels stay short: decimal multiples, as network speeds are sold.
pub(crate) fn byte_rate_unit(max_bytes_per_second: f64) -> (f64, &'static str) {
    [(1e9, "GB/s"), (1e6, "MB/s"), (1e3, "KB/s")]
        .into_iter()
        .find(|(factor, _)| max_bytes_per_second >= *factor)
        .unwrap_or((1.0, "B/s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_axes_end_on_round_numbers_above_the_data() {
        let axis = ValueAxis::fitting(3.7, 4);
        assert_eq!(axis.top, 4.0);
        assert_eq!(axis.ticks, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(axis.label(2.0), "2");

        let axis = ValueAxis::fitting(0.9, 4);
        assert_eq!(axis.top, 1.0);
        assert_eq!(axis.label(axis.ticks[1]), "0.25");

        let axis = ValueAxis::fitting(0.0, 4);
        assert_eq!(axis.top, 1.0);
        let axis = ValueAxis::fitting(f64::NAN, 4);
        assert_eq!(axis.top, 1.0);

        let axis = ValueAxis::fitting(734.0, 4);
        assert_eq!(axis.top, 800.0);
    }

    #[test]
    fn percent_axes_run_to_one_hundred() {
        let axis = ValueAxis::percent(4);
        assert_eq!(axis.ticks, vec![0.0, 25.0, 50.0, 75.0, 100.0]);
        assert_eq!(axis.label(75.0), "75");
    }

    #[test]
    fn byte_rates_pick_a_readable_unit() {
        assert_eq!(byte_rate_unit(0.0), (1.0, "B/s"));
        assert_eq!(byte_rate_unit(999.0), (1.0, "B/s"));
        assert_eq!(byte_rate_unit(1_500.0), (1e3, "KB/s"));
        assert_eq!(byte_rate_unit(12_000_000.0), (1e6, "MB/s"));
        assert_eq!(byte_rate_unit(3e9), (1e9, "GB/s"));
    }
}
