//! The counters a rate is computed from, and their small on-disk form.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One process as read this run. Only pid, start and ticks are persisted:
/// name and memory are reported as read, never differenced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcSample {
    pub pid: u32,
    /// Start time in the platform's ticks since boot; a reused pid has a
    /// different one, so its ticks are never differenced against a stranger's.
    pub start: u64,
    /// CPU time used so far, in ticks.
    pub ticks: u64,
    pub name: String,
    pub memory_bytes: u64,
}

/// Cumulative counters at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Counters {
    /// Boot time (unix seconds): counters of another boot are meaningless.
    pub boot_time: i64,
    /// When these were read (unix seconds).
    pub taken_at: i64,
    /// Busy and total CPU time over all cores, in ticks.
    pub cpu_busy: u64,
    pub cpu_total: u64,
    pub ticks_per_sec: u64,
    /// Logical CPUs the totals are summed over.
    #[serde(default)]
    pub cores: u32,
    /// Sorted by pid.
    #[serde(with = "compact")]
    pub processes: Vec<ProcSample>,
}

impl Counters {
    /// Loads counters saved by a previous run; anything unreadable is
    /// treated as "no previous run" (the next collect samples instead).
    pub fn load(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Saves atomically: a crash leaves either the old file or the new one.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_replace(path, &bytes)
    }

    /// Whether `self` (an earlier reading) can serve as the start of the
    /// interval ending at `current`.
    pub fn usable_before(&self, current: &Counters, max_age_secs: i64) -> bool {
        let age = current.taken_at - self.taken_at;
        (self.boot_time - current.boot_time).abs() <= 2
            && self.ticks_per_sec == current.ticks_per_sec
            && self.cores == current.cores
            && (0..=max_age_secs).contains(&age)
            // At least a tenth of a core-second: shorter intervals are noise.
            && current.cpu_total >= self.cpu_total + current.ticks_per_sec / 10
            && current.cpu_busy >= self.cpu_busy
    }

    /// Busy share of all cores between `previous` and `self`, 0 to 100.
    pub fn cpu_usage_since(&self, previous: &Counters) -> f64 {
        let total = self.cpu_total.saturating_sub(previous.cpu_total);
        let busy = self.cpu_busy.saturating_sub(previous.cpu_busy);
        if total == 0 {
            return 0.0;
        }
        super::round2((busy as f64 * 100.0 / total as f64).clamp(0.0, 100.0))
    }

    /// Wall-clock seconds between the readings, derived from the CPU time
    /// counters (immune to the wall clock being set in between).
    pub fn elapsed_secs_since(&self, previous: &Counters) -> f64 {
        if self.ticks_per_sec == 0 {
            return 0.0;
        }
        let total = self.cpu_total.saturating_sub(previous.cpu_total) as f64;
        total / self.ticks_per_sec as f64 / f64::from(self.cores.max(1))
    }

    /// The CPU ticks `p` had in this reading, if it is the same process.
    pub fn ticks_of(&self, p: &ProcSample) -> Option<u64> {
        let i = self
            .processes
            .binary_search_by_key(&p.pid, |q| q.pid)
            .ok()?;
        let q = &self.processes[i];
        (q.start == p.start).then_some(q.ticks)
    }
}

/// Processes persisted as `[[pid, start, ticks], ...]`: a few kilobytes for
/// hundreds of processes.
mod compact {
    use super::ProcSample;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[ProcSample], s: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<(u32, u64, u64)> = v.iter().map(|p| (p.pid, p.start, p.ticks)).collect();
        rows.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ProcSample>, D::Error> {
        let rows = Vec::<(u32, u64, u64)>::deserialize(d)?;
        let mut v: Vec<ProcSample> = rows
            .into_iter()
            .map(|(pid, start, ticks)| ProcSample {
                pid,
                start,
                ticks,
                name: String::new(),
                memory_bytes: 0,
            })
            .collect();
        v.sort_by_key(|p| p.pid);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(taken_at: i64, busy: u64, total: u64, procs: &[(u32, u64, u64)]) -> Counters {
        Counters {
            boot_time: 1_000,
            taken_at,
            cpu_busy: busy,
            cpu_total: total,
            ticks_per_sec: 100,
            cores: 2,
            processes: procs
                .iter()
                .map(|&(pid, start, ticks)| ProcSample {
                    pid,
                    start,
                    ticks,
                    name: format!("p{pid}"),
                    memory_bytes: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn usage_is_busy_over_total() {
        let a = counters(100, 1_000, 10_000, &[]);
        let b = counters(160, 1_300, 22_000, &[]);
        assert!(a.usable_before(&b, 900));
        assert!((b.cpu_usage_since(&a) - 2.5).abs() < 1e-9);
        // 12,000 ticks over 2 cores at 100 Hz: 60 seconds.
        assert!((b.elapsed_secs_since(&a) - 60.0).abs() < 1e-9);
    }

    #[test]
    fn stale_rebooted_or_reversed_readings_are_not_used() {
        let a = counters(100, 1_000, 10_000, &[]);
        assert!(!a.usable_before(&counters(1_100, 1_300, 22_000, &[]), 900));
        assert!(!a.usable_before(&counters(160, 900, 22_000, &[]), 900));
        assert!(!a.usable_before(&counters(160, 1_000, 10_005, &[]), 900));
        let mut rebooted = counters(160, 1_300, 22_000, &[]);
        rebooted.boot_time = 5_000;
        assert!(!a.usable_before(&rebooted, 900));
    }

    #[test]
    fn round_trip_keeps_process_ticks_and_matches_by_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.json");
        let a = counters(100, 1, 2, &[(7, 50, 300), (3, 10, 100)]);
        a.save(&path).expect("save");
        let back = Counters::load(&path).expect("load");
        assert_eq!(back.processes.len(), 2);
        assert_eq!(back.processes[0].pid, 3, "sorted by pid");
        let same = ProcSample {
            pid: 7,
            start: 50,
            ticks: 0,
            name: String::new(),
            memory_bytes: 0,
        };
        assert_eq!(back.ticks_of(&same), Some(300));
        let reused = ProcSample { start: 51, ..same };
        assert_eq!(back.ticks_of(&reused), None);
    }

    #[test]
    fn garbage_state_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.json");
        std::fs::write(&path, b"{half a fi").expect("write");
        assert!(Counters::load(&path).is_none());
    }
}
