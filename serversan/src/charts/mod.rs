//! Charts: a server's history rendered as a PNG for the bot to send.
//!
//! The storage layer turns its rows into plain [`Sample`]s (or rollup
//! [`Point`]s), [`History::from_samples`] fits them to a [`Period`], and
//! [`render_png`] draws a [`ChartRequest`] in-process with an embedded font:
//! no system fonts, no external programs.
//!
//! ```no_run
//! use serversan::charts::{ChartRequest, History, Metric, Period, Sample, TimeZone, render_png};
//!
//! let end = 1_793_889_130;
//! let samples: Vec<Sample> = (0..1440)
//!     .map(|i| Sample { at: end - 60 * i, cpu: Some(12.5), ..Sample::default() })
//!     .collect();
//! let png = render_png(&ChartRequest {
//!     server: "web-1".into(),
//!     metric: "cpu".parse::<Metric>()?,
//!     period: "24h".parse::<Period>()?,
//!     end,
//!     zone: TimeZone::utc(),
//!     history: History::from_samples(&samples, Period::H24, end),
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod axis;
mod choice;
mod coord;
mod error;
mod panel;
mod render;
mod series;
mod text;
mod time;

pub use choice::{Metric, Period};
pub use error::{ChartError, ParseChoiceError};
pub use render::{ChartRequest, OVERVIEW_SIZE, SINGLE_SIZE, image_size, render_png};
pub use series::{History, MAX_POINTS, Point, Sample, counter_rate};
pub use time::TimeZone;
