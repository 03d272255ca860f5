//! The on-disk queue of reports that could not be delivered yet.
//!
//! One file per report, named `<collected_at>-<sequence>.json` so that a
//! directory listing sorted by name is the delivery order. Every write goes
//! through a temporary file and a rename, so after a crash or power loss the
//! spool holds whole reports only; leftover temporary files are ignored and
//! cleaned up. Bounds on count and bytes keep a long outage from filling the
//! disk: the oldest reports go first.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil;

/// How much the spool may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolBounds {
    pub max_reports: usize,
    pub max_bytes: u64,
}

/// A report waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    pub path: PathBuf,
    /// When its figures were taken (from the file name).
    pub collected_at: i64,
    pub size: u64,
}

impl SpoolEntry {
    /// The file name, stable across runs (used to recognise the same entry).
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// A directory of spooled reports.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    bounds: SpoolBounds,
}

impl Spool {
    /// Opens (creating, owner-only) the spool directory and clears any
    /// temporary file a crashed write left behind.
    pub fn open(dir: &Path, bounds: SpoolBounds) -> io::Result<Self> {
        fsutil::create_private_dir(dir)?;
        fsutil::remove_stale_temp_files(dir);
        Ok(Self {
            dir: dir.to_owned(),
            bounds,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a report body collected at `collected_at`, then enforces the
    /// bounds. Returns the entries dropped to make room (oldest first); the
    /// report just stored is never among them.
    pub fn push(&self, collected_at: i64, body: &[u8]) -> io::Result<Vec<SpoolEntry>> {
        let name = format!("{:012}-{:020}.json", collected_at.max(0), sequence_number());
        let path = self.dir.join(name);
        fsutil::write_atomic(&path, body)?;
        self.enforce_bounds(&path)
    }

    /// Every spooled report, oldest first.
    pub fn entries(&self) -> io::Result<Vec<SpoolEntry>> {
        let mut entries: Vec<SpoolEntry> = fs::read_dir(&self.dir)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let collected_at = parse_name(name.to_str()?)?;
                let meta = e.metadata().ok().filter(|m| m.is_file())?;
                Some(SpoolEntry {
                    path: e.path(),
                    collected_at,
                    size: meta.len(),
                })
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    pub fn read(&self, entry: &SpoolEntry) -> io::Result<Vec<u8>> {
        fs::read(&entry.path)
    }

    /// Removes a delivered or dropped entry (already gone is fine).
    pub fn remove(&self, entry: &SpoolEntry) -> io::Result<()> {
        match fs::remove_file(&entry.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn enforce_bounds(&self, keep: &Path) -> io::Result<Vec<SpoolEntry>> {
        let entries = self.entries()?;
        let mut count = entries.len();
        let mut bytes: u64 = entries.iter().map(|e| e.size).sum();
        let mut dropped = Vec::new();
        for entry in entries {
            if count <= self.bounds.max_reports.max(1) && bytes <= self.bounds.max_bytes {
                break;
            }
            if entry.path == keep {
                continue;
            }
            self.remove(&entry)?;
            count -= 1;
            bytes = bytes.saturating_sub(entry.size);
            dropped.push(entry);
        }
        Ok(dropped)
    }
}

/// `collected_at` from a spool file name; `None` for anything else
/// (temporary files, strays).
fn parse_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".json")?;
    let (at, seq) = stem.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(at) && digits(seq)).then(|| at.parse().ok())?
}

/// Increases across calls and processes: the wall clock in nanoseconds, made
/// strictly increasing within this process.
fn sequence_number() -> u128 {
    use std::sync::Mutex;
    static LAST: Mutex<u128> = Mutex::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    *last = now.max(*last + 1) % 10u128.pow(20);
    *last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(dir: &Path, max_reports: usize, max_bytes: u64) -> Spool {
        Spool::open(
            &dir.join("spool"),
            SpoolBounds {
                max_reports,
                max_bytes,
            },
        )
        .expect("open")
    }

    #[test]
    fn entries_come_back_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spool(dir.path(), 10, 1 << 20);
        s.push(300, b"c").expect("push");
        s.push(100, b"a").expect("push");
        s.push(200, b"b").expect("push");
        s.push(200, b"b2").expect("push");
        let e = s.entries().expect("list");
        let at: Vec<i64> = e.iter().map(|e| e.collected_at).collect();
        assert_eq!(at, vec![100, 200, 200, 300]);
        assert_eq!(
            s.read(&e[2]).expect("read"),
            b"b2",
            "same second: push order"
        );
    }

    #[test]
    fn count_bound_drops_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spool(dir.path(), 3, 1 << 20);
        for at in 1..=3 {
            assert!(s.push(at, b"x").expect("push").is_empty());
        }
        let dropped = s.push(4, b"x").expect("push");
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].collected_at, 1);
        let at: Vec<i64> = s
            .entries()
            .expect("list")
            .iter()
            .map(|e| e.collected_at)
            .collect();
        assert_eq!(at, vec![2, 3, 4]);
    }

    #[test]
    fn byte_bound_drops_the_oldest_but_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spool(dir.path(), 100, 25);
        s.push(1, &[b'a'; 10]).expect("push");
        s.push(2, &[b'b'; 10]).expect("push");
        let dropped = s.push(3, &[b'c'; 10]).expect("push");
        assert_eq!(
            dropped.iter().map(|e| e.collected_at).collect::<Vec<_>>(),
            vec![1]
        );
        let dropped = s.push(4, &[b'd'; 40]).expect("push");
        assert_eq!(dropped.len(), 2);
        assert_eq!(s.entries().expect("list")[0].collected_at, 4);
    }

    #[test]
    fn temporary_and_stray_files_are_not_reports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spool(dir.path(), 10, 1 << 20);
        s.push(5, b"{}").expect("push");
        let half = s.dir().join(format!(
            "{}123-000000000005-00000000000000000001.json",
            fsutil::TEMP_PREFIX
        ));
        fs::write(&half, b"{\"half").expect("write");
        fs::write(s.dir().join("notes.txt"), b"x").expect("write");
        fs::write(s.dir().join("abc-1.json"), b"x").expect("write");
        assert_eq!(s.entries().expect("list").len(), 1);
        // Reopening (the next run) clears the leftover temporary file.
        let s = spool(dir.path(), 10, 1 << 20);
        assert!(!half.exists());
        assert_eq!(s.entries().expect("list").len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn directory_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spool(dir.path(), 10, 1 << 20);
        let mode = fs::metadata(s.dir()).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
