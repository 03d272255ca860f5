//! Collecting a [`Report`] about this host, without spawning any process.
//!
//! Rates need two readings. Rather than sleeping inside every run, the
//! [`Collector`] keeps the previous run's counters (in memory, or in a small
//! file in the state directory for one-shot cron runs), so a run costs a few
//! file reads. Only when no usable previous reading exists (first run, after a
//! reboot, or a reading older than [`MAX_COUNTER_AGE_SECS`]) does it sample
//! briefly.

mod counters;
mod text;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

#[cfg(not(any(target_os = "linux", windows)))]
compile_error!("serversan-agent collects figures on Linux and Windows only");

use std::path::{Path, PathBuf};
use std::time::Duration;

use serversan_protocol::Report;
use serversan_protocol::report::ProcessInfo;

pub(crate) use counters::{Counters, ProcSample};
pub use text::clean_text;

/// How many processes each top list holds.
pub const TOP_PROCESSES: usize = 5;

/// Previous counters older than this are not used for rates: a figure
/// averaged over hours (cron stopped, host suspended) would mislead more than
/// a short fresh sample.
pub const MAX_COUNTER_AGE_SECS: i64 = 900;

/// Name of the counters file inside the state directory.
pub const COUNTERS_FILE: &str = "counters.json";

/// Collects reports, remembering the counters of the previous one.
#[derive(Debug)]
pub struct Collector {
    state_file: Option<PathBuf>,
    persist: bool,
    previous: Option<Counters>,
    sample: Duration,
}

impl Collector {
    /// A collector that keeps the previous counters in memory only (the
    /// in-process agent of `serversan demo`, or a daemon).
    pub fn in_memory() -> Self {
        Self {
            state_file: None,
            persist: false,
            previous: None,
            sample: Duration::from_millis(200),
        }
    }

    /// A collector that loads and saves the previous counters in `state_dir`,
    /// so one-shot runs compute CPU usage since the previous run.
    pub fn with_state_dir(state_dir: &Path) -> Self {
        let state_file = state_dir.join(COUNTERS_FILE);
        let previous = Counters::load(&state_file);
        Self {
            state_file: Some(state_file),
            persist: true,
            previous,
            sample: Duration::from_millis(200),
        }
    }

    /// Like [`Collector::with_state_dir`] but never writes: `print` must not
    /// shorten the interval the next real report measures. A missing or
    /// unreadable state directory is fine.
    pub fn read_only(state_dir: &Path) -> Self {
        Self {
            persist: false,
            ..Self::with_state_dir(state_dir)
        }
    }

    /// How long to sample when no previous counters are usable.
    pub fn sample_duration(mut self, sample: Duration) -> Self {
        self.sample = sample;
        self
    }

    /// Collects a report of this moment. Never fails: a figure the
    /// host does not expose is left out or zero, so one unreadable file cannot
    /// cost the whole report.
    pub fn collect(&mut self) -> Report {
        let mut current = platform::read_counters();
        let usable = self
            .previous
            .take()
            .filter(|prev| prev.usable_before(&current, MAX_COUNTER_AGE_SECS));
        let previous = match usable {
            Some(prev) => prev,
            None => {
                let first = current;
                std::thread::sleep(self.sample);
                current = platform::read_counters();
                first
            }
        };
        let mut report = platform::collect_static(&current);
        report.cpu.usage_percent = current.cpu_usage_since(&previous);
        let elapsed = current.elapsed_secs_since(&previous);
        let (top_cpu, top_memory) = top_processes(&current, &previous, elapsed);
        report.top_cpu = top_cpu;
        report.top_memory = top_memory;
        self.previous = Some(current);
        report
    }

    /// Saves the latest counters to the state directory (atomically), when
    /// this collector persists them.
    pub fn save(&self) -> std::io::Result<()> {
        match (&self.state_file, &self.previous, self.persist) {
            (Some(path), Some(counters), true) => counters.save(path),
            _ => Ok(()),
        }
    }
}

/// The top processes by CPU since `previous` and by resident memory.
fn top_processes(
    current: &Counters,
    previous: &Counters,
    elapsed_secs: f64,
) -> (Vec<ProcessInfo>, Vec<ProcessInfo>) {
    let max_percent = 100.0 * f64::from(current.cores.max(1));
    let infos: Vec<ProcessInfo> = current
        .processes
        .iter()
        .map(|p| {
            let ticks = previous
                .ticks_of(p)
                .map_or(p.ticks, |before| p.ticks.saturating_sub(before));
            let percent = if elapsed_secs > 0.0 && current.ticks_per_sec > 0 {
                ticks as f64 / current.ticks_per_sec as f64 / elapsed_secs * 100.0
            } else {
                0.0
            };
            ProcessInfo {
                pid: p.pid,
                name: p.name.clone(),
                cpu_percent: round2(percent.clamp(0.0, max_percent)),
                memory_bytes: p.memory_bytes,
            }
        })
        .collect();
    rank_processes(infos, TOP_PROCESSES)
}

/// The `top` busiest processes of `infos` by CPU, then the `top` largest
/// by resident memory, as reports list them (ties broken by the other).
/// Public so that tools simulating reports pick them the same way.
pub fn rank_processes(
    mut infos: Vec<ProcessInfo>,
    top: usize,
) -> (Vec<ProcessInfo>, Vec<ProcessInfo>) {
    infos.sort_by(|a, b| {
        b.cpu_percent
            .total_cmp(&a.cpu_percent)
            .then(b.memory_bytes.cmp(&a.memory_bytes))
    });
    // An idle process is not a "top CPU" process, however few are busy.
    let top_cpu = infos
        .iter()
        .filter(|p| p.cpu_percent > 0.0)
        .take(top)
        .cloned()
        .collect();
    infos.sort_by(|a, b| {
        b.memory_bytes
            .cmp(&a.memory_bytes)
            .then(b.cpu_percent.total_cmp(&a.cpu_percent))
    });
    infos.truncate(top);
    (top_cpu, infos)
}

/// Two decimals are plenty for a percentage and keep the JSON short.
pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
