//! Numbers and times the way people read them on a phone.

use std::time::Duration;

use super::args::format_duration;
use super::html::escape;

/// Bytes in binary units: `512 B`, `1.5 KiB`, `12.3 GiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{} B", n.max(0));
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Like [`bytes`] for an unsigned count.
pub fn ubytes(n: u64) -> String {
    bytes(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A throughput: `1.5 KiB/s`.
pub fn rate(bytes_per_sec: f64) -> String {
    let n = if bytes_per_sec.is_finite() && bytes_per_sec > 0.0 {
        bytes_per_sec.round().min(i64::MAX as f64) as i64
    } else {
        0
    };
    format!("{}/s", bytes(n))
}

/// A percentage without false precision: `7%`, `0.4%`, `100%`.
pub fn percent(p: f64) -> String {
    if !p.is_finite() {
        return "?".to_owned();
    }
    let p = p.clamp(0.0, 1000.0);
    if p > 0.0 && p < 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// `used / total (p%)` in bytes.
pub fn usage(used: i64, total: i64) -> String {
    let p = if total > 0 {
        used as f64 * 100.0 / total as f64
    } else {
        0.0
    };
    format!("{} / {} ({})", bytes(used), bytes(total), percent(p))
}

/// How long ago `then` was, seen at `now` (unix seconds): `just now`,
/// `45s ago`, `3h 5m ago`. A time in the future (a fast host clock) reads
/// as `just now`.
pub fn ago(then: i64, now: i64) -> String {
    let secs = now.saturating_sub(then);
    if secs < 1 {
        return "just now".to_owned();
    }
    format!(
        "{} ago",
        format_duration(Duration::from_secs(secs.unsigned_abs()))
    )
}

/// A span of seconds: `3d 4h`.
pub fn span(secs: i64) -> String {
    format_duration(Duration::from_secs(secs.max(0).unsigned_abs()))
}

/// User-controlled text cut to `max` characters (with an ellipsis) and
/// escaped for HTML, so one long process name cannot push a reply past
/// Telegram's limit.
pub fn text(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return escape(s);
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    escape(&format!("{cut}…"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(-5), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(4 << 30), "4.0 GiB");
        assert_eq!(bytes(500 << 30), "500 GiB");
        assert_eq!(bytes(i64::MAX), "8.0 EiB");
        assert_eq!(rate(1536.0), "1.5 KiB/s");
        assert_eq!(rate(f64::NAN), "0 B/s");
    }

    #[test]
    fn percents_and_usage() {
        assert_eq!(percent(12.345), "12%");
        assert_eq!(percent(0.42), "0.4%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(f64::NAN), "?");
        assert_eq!(usage(1 << 30, 4 << 30), "1.0 GiB / 4.0 GiB (25%)");
        assert_eq!(usage(0, 0), "0 B / 0 B (0%)");
    }

    #[test]
    fn times() {
        assert_eq!(ago(100, 100), "just now");
        assert_eq!(ago(200, 100), "just now");
        assert_eq!(ago(55, 100), "45s ago");
        assert_eq!(ago(0, 3 * 3600 + 300), "3h 5m ago");
        assert_eq!(span(90_000), "1d 1h");
    }

    #[test]
    fn user_text_is_cut_and_escaped() {
        assert_eq!(text("<b>x&y</b>", 64), "&lt;b&gt;x&amp;y&lt;/b&gt;");
        assert_eq!(text("abcdef", 4), "abc…");
        assert_eq!(text("<<<<<<", 3), "&lt;&lt;…");
    }
}
