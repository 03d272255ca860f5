//! Strict report validation.
//!
//! A report is hostile until it passes here: every number in range and
//! finite, every string and list bounded, every size consistent. Errors name
//! the field by its JSON path (`filesystems[2].total`) so whoever writes an
//! agent can fix it from the 400 alone.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::report::{ProcessInfo, Report};

/// Bounds applied to a report. The defaults fit any real host with room to
/// spare while keeping one report's stored size small.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Oldest accepted `collected_at`, in seconds before now (spooled reports).
    pub max_age_secs: i64,
    /// How far `collected_at` may lie in the future (clock skew).
    pub max_future_secs: i64,
    pub max_string_len: usize,
    pub max_path_len: usize,
    pub max_filesystems: usize,
    pub max_interfaces: usize,
    pub max_sessions: usize,
    pub max_top_processes: usize,
    pub max_temperatures: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_age_secs: 7 * 24 * 3600,
            max_future_secs: 300,
            max_string_len: 256,
            max_path_len: 1024,
            max_filesystems: 128,
            max_interfaces: 256,
            max_sessions: 256,
            max_top_processes: 32,
            max_temperatures: 128,
        }
    }
}

/// Why a report was refused: the field's JSON path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() || self.field == "." {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for ValidationError {}

/// Parses a report body, naming the offending field on a type error.
///
/// Accepted bodies, nearly all of them, are parsed once without tracking
/// paths (which costs about a third more); only a refused body is parsed
/// again to name the field.
pub fn parse_report(body: &[u8]) -> Result<Report, ValidationError> {
    let error = match serde_json::from_slice(body) {
        Ok(report) => return Ok(report),
        Err(e) => e,
    };
    let de = &mut serde_json::Deserializer::from_slice(body);
    let (field, inner) = match serde_path_to_error::deserialize::<_, Report>(de) {
        Err(e) => (e.path().to_string(), e.into_inner()),
        // Well-formed up to the end of the report: what follows it is
        // the error (trailing characters).
        Ok(_) => (String::new(), error),
    };
    // serde_json appends " at line L column C"; the path says more.
    let msg = inner.to_string();
    let reason = match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    };
    Err(ValidationError::new(field, reason))
}

/// Parses and validates in one step.
pub fn parse_and_validate(
    body: &[u8],
    now: i64,
    limits: &Limits,
) -> Result<Report, ValidationError> {
    let report = parse_report(body)?;
    validate_report(&report, now, limits)?;
    Ok(report)
}

type Check = Result<(), ValidationError>;

/// Validates a parsed report against `limits` at time `now` (unix seconds).
pub fn validate_report(r: &Report, now: i64, limits: &Limits) -> Check {
    let l = limits;
    if r.version != crate::REPORT_VERSION {
        return Err(ValidationError::new(
            "version",
            format!(
                "unsupported report version {}; this server speaks {}",
                r.version,
                crate::REPORT_VERSION
            ),
        ));
    }
    if r.collected_at < now.saturating_sub(l.max_age_secs) {
        return Err(ValidationError::new(
            "collected_at",
            format!("older than {} seconds", l.max_age_secs),
        ));
    }
    if r.collected_at > now.saturating_add(l.max_future_secs) {
        return Err(ValidationError::new(
            "collected_at",
            format!(
                "more than {} seconds in the future (check the host's clock)",
                l.max_future_secs
            ),
        ));
    }
    hostname(&r.hostname, l)?;
    if let Some(v) = &r.agent_version {
        text("agent_version", v, l.max_string_len)?;
    }
    text("os.name", &r.os.name, l.max_string_len)?;
    text("os.version", &r.os.version, l.max_string_len)?;
    text("os.kernel", &r.os.kernel, l.max_string_len)?;
    text("os.arch", &r.os.arch, l.max_string_len)?;
    if r.boot_time < 0 || r.boot_time > r.collected_at.saturating_add(l.max_future_secs) {
        return Err(ValidationError::new(
            "boot_time",
            "must be a unix time no later than collected_at",
        ));
    }
    text("cpu.model", &r.cpu.model, l.max_string_len)?;
    if !(1..=65_536).contains(&r.cpu.logical_cores) {
        return Err(ValidationError::new(
            "cpu.logical_cores",
            "must be between 1 and 65536",
        ));
    }
    if let Some(f) = r.cpu.frequency_mhz {
        number("cpu.frequency_mhz", f, 0.0, 1_000_000.0)?;
    }
    number("cpu.usage_percent", r.cpu.usage_percent, 0.0, 100.0)?;
    if let Some(load) = &r.load {
        number("load.one", load.one, 0.0, 1e7)?;
        number("load.five", load.five, 0.0, 1e7)?;
        number("load.fifteen", load.fifteen, 0.0, 1e7)?;
    }
    not_above("memory.used", r.memory.used, "memory.total", r.memory.total)?;
    not_above(
        "memory.available",
        r.memory.available,
        "memory.total",
        r.memory.total,
    )?;
    not_above("swap.used", r.swap.used, "swap.total", r.swap.total)?;

    bounded_list("filesystems", r.filesystems.len(), l.max_filesystems)?;
    for (i, fs) in r.filesystems.iter().enumerate() {
        let mount_point = format_args!("filesystems[{i}].mount_point");
        text(mount_point, &fs.mount_point, l.max_path_len)?;
        non_empty(mount_point, &fs.mount_point)?;
        text(
            format_args!("filesystems[{i}].fs_type"),
            &fs.fs_type,
            l.max_string_len,
        )?;
        not_above(
            format_args!("filesystems[{i}].used"),
            fs.used,
            format_args!("filesystems[{i}].total"),
            fs.total,
        )?;
    }

    bounded_list("network", r.network.len(), l.max_interfaces)?;
    for (i, n) in r.network.iter().enumerate() {
        let field = format_args!("network[{i}].interface");
        text(field, &n.interface, l.max_string_len)?;
        non_empty(field, &n.interface)?;
    }

    if let Some(ip) = &r.ipv4
        && ip.parse::<Ipv4Addr>().is_err()
    {
        return Err(ValidationError::new("ipv4", "not an IPv4 address"));
    }
    if let Some(ip) = &r.ipv6
        && (ip.len() > 64 || ip.parse::<Ipv6Addr>().is_err())
    {
        return Err(ValidationError::new("ipv6", "not an IPv6 address"));
    }
    if r.process_count > 100_000_000 {
        return Err(ValidationError::new("process_count", "implausibly large"));
    }

    bounded_list("sessions", r.sessions.len(), l.max_sessions)?;
    for (i, s) in r.sessions.iter().enumerate() {
        text(
            format_args!("sessions[{i}].user"),
            &s.user,
            l.max_string_len,
        )?;
        text(
            format_args!("sessions[{i}].terminal"),
            &s.terminal,
            l.max_string_len,
        )?;
        if let Some(from) = &s.from {
            text(format_args!("sessions[{i}].from"), from, l.max_string_len)?;
        }
        if s.since.is_some_and(|since| since < 0) {
            return Err(ValidationError::new(
                format!("sessions[{i}].since"),
                "must not be negative",
            ));
        }
    }

    let max_process_cpu = 100.0 * f64::from(r.cpu.logical_cores);
    processes("top_cpu", &r.top_cpu, max_process_cpu, l)?;
    processes("top_memory", &r.top_memory, max_process_cpu, l)?;

    bounded_list("temperatures", r.temperatures.len(), l.max_temperatures)?;
    for (i, t) in r.temperatures.iter().enumerate() {
        text(
            format_args!("temperatures[{i}].label"),
            &t.label,
            l.max_string_len,
        )?;
        number(
            format_args!("temperatures[{i}].celsius"),
            t.celsius,
            -273.15,
            1000.0,
        )?;
    }
    Ok(())
}

fn processes(field: &str, list: &[ProcessInfo], max_cpu: f64, l: &Limits) -> Check {
    bounded_list(field, list.len(), l.max_top_processes)?;
    for (i, p) in list.iter().enumerate() {
        text(format_args!("{field}[{i}].name"), &p.name, l.max_string_len)?;
        number(
            format_args!("{field}[{i}].cpu_percent"),
            p.cpu_percent,
            0.0,
            max_cpu,
        )?;
    }
    Ok(())
}

fn hostname(h: &str, l: &Limits) -> Check {
    non_empty("hostname", h)?;
    text("hostname", h, l.max_string_len)
}

// The checks take the field's name as `Display` (often `format_args!`):
// it is written out only when a check fails, not for every list entry of
// every report.

/// Bounded length and no control characters (they have no place in any of
/// these fields and would garble logs and chat messages).
fn text(field: impl fmt::Display, s: &str, max_len: usize) -> Check {
    if s.len() > max_len {
        return Err(ValidationError::new(
            field.to_string(),
            format!("longer than {max_len} bytes"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field.to_string(),
            "contains control characters",
        ));
    }
    Ok(())
}

fn non_empty(field: impl fmt::Display, s: &str) -> Check {
    if s.trim().is_empty() {
        return Err(ValidationError::new(field.to_string(), "must not be empty"));
    }
    Ok(())
}

fn number(field: impl fmt::Display, v: f64, min: f64, max: f64) -> Check {
    if !v.is_finite() || v < min || v > max {
        return Err(ValidationError::new(
            field.to_string(),
            format!("must be a number from {min} to {max}"),
        ));
    }
    Ok(())
}

fn not_above(
    field: impl fmt::Display,
    v: u64,
    limit_field: impl fmt::Display,
    limit: u64,
) -> Check {
    if v > limit {
        return Err(ValidationError::new(
            field.to_string(),
            format!("larger than {limit_field}"),
        ));
    }
    Ok(())
}

fn bounded_list(field: &str, len: usize, max: usize) -> Check {
    if len > max {
        return Err(ValidationError::new(
            field,
            format!("more than {max} entries"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn check(mutate: impl FnOnce(&mut serde_json::Value)) -> Result<Report, ValidationError> {
        let mut v = serde_json::to_value(Report::example(NOW - 5)).expect("value");
        mutate(&mut v);
        let body = serde_json::to_vec(&v).expect("bytes");
        parse_and_validate(&body, NOW, &Limits::default())
    }

    fn refused_field(mutate: impl FnOnce(&mut serde_json::Value)) -> String {
        check(mutate).expect_err("must be refused").field
    }

    #[test]
    fn the_example_is_valid() {
        check(|_| {}).expect("valid");
    }

    #[test]
    fn type_errors_name_the_field() {
        assert_eq!(
            refused_field(|v| v["filesystems"][1]["total"] = (-1).into()),
            "filesystems[1].total"
        );
        assert_eq!(
            refused_field(|v| v["memory"]["total"] = "lots".into()),
            "memory.total"
        );
        assert_eq!(
            refused_field(|v| {
                v.as_object_mut().expect("object").remove("hostname");
            }),
            "."
        );
        let err = parse_report(b"{not json").expect_err("refused");
        assert!(!err.reason.is_empty());
    }

    #[test]
    fn nothing_may_follow_the_report() {
        let json = serde_json::to_string(&Report::example(NOW)).expect("json");
        assert!(parse_report(json.as_bytes()).is_ok());
        assert!(parse_report(format!("{json}  \n").as_bytes()).is_ok());
        let err = parse_report(format!("{json} {{}}").as_bytes()).expect_err("refused");
        assert!(err.reason.contains("trailing"), "{}", err.reason);
    }

    #[test]
    fn ranges_are_enforced() {
        assert_eq!(
            refused_field(|v| v["cpu"]["usage_percent"] = 100.5.into()),
            "cpu.usage_percent"
        );
        assert_eq!(
            refused_field(|v| v["memory"]["used"] = (16u64 << 30).into()),
            "memory.used"
        );
        assert_eq!(
            refused_field(|v| v["filesystems"][0]["used"] = (81u64 << 30).into()),
            "filesystems[0].used"
        );
        assert_eq!(
            refused_field(|v| v["cpu"]["logical_cores"] = 0.into()),
            "cpu.logical_cores"
        );
        assert_eq!(
            refused_field(|v| v["top_cpu"][0]["cpu_percent"] = 401.0.into()),
            "top_cpu[0].cpu_percent"
        );
        assert_eq!(
            refused_field(|v| v["load"]["one"] = (-0.5).into()),
            "load.one"
        );
        assert_eq!(refused_field(|v| v["ipv4"] = "999.1.1.1".into()), "ipv4");
        assert_eq!(refused_field(|v| v["version"] = 2.into()), "version");
        // 1e999 is not representable: serde_json refuses it while parsing.
        let body = serde_json::to_string(&Report::example(NOW))
            .expect("json")
            .replace("\"usage_percent\":12.5", "\"usage_percent\":1e999");
        assert!(parse_report(body.as_bytes()).is_err());
    }

    #[test]
    fn collection_time_window() {
        assert_eq!(
            refused_field(|v| v["collected_at"] = (NOW + 301).into()),
            "collected_at"
        );
        assert_eq!(
            refused_field(|v| v["collected_at"] = (NOW - 7 * 86400 - 1).into()),
            "collected_at"
        );
        check(|v| {
            v["collected_at"] = (NOW - 7 * 86400 + 10).into();
            v["boot_time"] = (NOW - 8 * 86400).into();
            v["sessions"][0]["since"] = (NOW - 8 * 86400).into();
        })
        .expect("a week-old spooled report is fine");
    }

    #[test]
    fn strings_and_lists_are_bounded() {
        assert_eq!(
            refused_field(|v| v["hostname"] = "a".repeat(257).into()),
            "hostname"
        );
        assert_eq!(refused_field(|v| v["hostname"] = "".into()), "hostname");
        assert_eq!(
            refused_field(|v| v["hostname"] = "a\u{0}b".into()),
            "hostname"
        );
        assert_eq!(
            refused_field(|v| {
                let fs = v["filesystems"][0].clone();
                v["filesystems"] = serde_json::Value::Array(vec![fs; 129]);
            }),
            "filesystems"
        );
        assert_eq!(
            refused_field(|v| v["top_memory"][0]["name"] = "x".repeat(300).into()),
            "top_memory[0].name"
        );
    }

    /// Each list entry's check names its entry and field (the names are
    /// written out only on refusal).
    #[test]
    fn list_entries_are_named_by_their_path() {
        let refusal =
            check(|v| v["filesystems"][0]["used"] = (81u64 << 30).into()).expect_err("refused");
        assert_eq!(refusal.reason, "larger than filesystems[0].total");
        type Mutation = fn(&mut serde_json::Value);
        let cases: [(Mutation, &str); 8] = [
            (
                |v| v["filesystems"][0]["mount_point"] = " ".into(),
                "filesystems[0].mount_point",
            ),
            (
                |v| v["filesystems"][0]["fs_type"] = "a\tb".into(),
                "filesystems[0].fs_type",
            ),
            (
                |v| v["network"][0]["interface"] = "".into(),
                "network[0].interface",
            ),
            (
                |v| v["sessions"][0]["user"] = "a\nb".into(),
                "sessions[0].user",
            ),
            (
                |v| v["sessions"][0]["terminal"] = "x".repeat(300).into(),
                "sessions[0].terminal",
            ),
            (
                |v| v["temperatures"][0]["label"] = "a\u{7}".into(),
                "temperatures[0].label",
            ),
            (
                |v| v["temperatures"][0]["celsius"] = (-300.0).into(),
                "temperatures[0].celsius",
            ),
            (
                |v| v["top_memory"][0]["cpu_percent"] = (-1.0).into(),
                "top_memory[0].cpu_percent",
            ),
        ];
        for (mutate, field) in cases {
            assert_eq!(refused_field(mutate), field);
        }
    }

    #[test]
    fn html_and_sql_in_names_are_just_text() {
        let r =
            check(|v| v["hostname"] = "<b>x&y</b>'; DROP TABLE reports;--".into()).expect("valid");
        assert_eq!(r.hostname, "<b>x&y</b>'; DROP TABLE reports;--");
    }

    #[test]
    fn error_display_reads_well() {
        let e = ValidationError::new("filesystems[2].total", "larger than x");
        assert_eq!(e.to_string(), "filesystems[2].total: larger than x");
    }
}
