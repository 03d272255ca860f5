//! The text of alert messages, in Telegram HTML.
//!
//! One message per server and event: everything that fired, still fires or
//! recovered on that server at that moment goes in one message, so a
//! server in trouble produces one notification, not a burst. Server names,
//! mount points and process names come from users and agents: all are
//! escaped.

use std::fmt::Write as _;
use std::time::Duration;

use super::eval::{Notice, NoticeKind, Process, Sample};
use super::rules::{Metric, format_number, format_value};
use crate::bot::args::format_duration;
use crate::bot::html::{MESSAGE_LIMIT, escape, telegram_len};
use crate::charts::TimeZone;

/// Longest process name shown.
const MAX_PROCESS_CHARS: usize = 40;

/// Composes the message telling the owner of `server_name` about
/// `notices`; `sample` is the report that caused them, whose top processes
/// are shown when CPU or memory fired. Lines that would not fit in one
/// Telegram message (a server with hundreds of full filesystems) are
/// counted instead of shown.
pub fn compose(server_name: &str, notices: &[Notice], sample: Option<&Sample>) -> String {
    let name = escape(server_name);
    let trouble: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.kind != NoticeKind::Recovered)
        .collect();
    let only_reminders = notices.iter().all(|n| n.kind == NoticeKind::Firing);
    let header = match trouble.len() {
        0 => format!("✅ <b>{name}</b>: recovered"),
        _ if only_reminders => format!("🔴 <b>{name}</b>: still in trouble"),
        1 => format!("🔴 <b>{name}</b>: alert"),
        n => format!("🔴 <b>{name}</b>: {n} alerts"),
    };
    let mut lines: Vec<String> = trouble.iter().map(|n| trouble_line(n)).collect();
    let fired = |m: Metric| {
        notices
            .iter()
            .any(|n| n.kind == NoticeKind::Fired && n.subject.metric == m)
    };
    if let Some(sample) = sample {
        if fired(Metric::Cpu) && !sample.top_cpu.is_empty() {
            let list = process_list(&sample.top_cpu, |p| {
                format!("{}%", format_number(p.cpu_percent))
            });
            lines.push(format!("Top CPU: {list}"));
        }
        if fired(Metric::Mem) && !sample.top_memory.is_empty() {
            let list = process_list(&sample.top_memory, |p| format_bytes(p.memory_bytes));
            lines.push(format!("Top memory: {list}"));
        }
    }
    lines.extend(
        notices
            .iter()
            .filter(|n| n.kind == NoticeKind::Recovered)
            .map(recovery_line),
    );
    fit(header, &lines)
}

/// The header and as many lines as fit in one message, then how many more.
fn fit(header: String, lines: &[String]) -> String {
    // Room for the "… and N more" line.
    const BUDGET: usize = MESSAGE_LIMIT - 40;
    let mut text = header;
    for (shown, line) in lines.iter().enumerate() {
        if telegram_len(&text) + 1 + telegram_len(line) > BUDGET {
            let _ = write!(text, "\n… and {} more", lines.len() - shown);
            break;
        }
        text.push('\n');
        text.push_str(line);
    }
    text
}

/// `⚠️ CPU 97.5% ≥ 90% for 5m, since 2026-11-25 12:00 UTC`
fn trouble_line(n: &Notice) -> String {
    let what = subject_label(n);
    if n.subject.metric == Metric::Offline {
        return format!("⚠️ {what}: no report since {}", time(n.since));
    }
    let value = n.value.map_or_else(
        || "no data".to_owned(),
        |v| format_value(n.subject.metric, v),
    );
    let window = if n.kind == NoticeKind::Fired && n.for_secs > 0 {
        format!(" for {}", span(n.for_secs))
    } else {
        String::new()
    };
    let verb = if n.kind == NoticeKind::Fired {
        ""
    } else {
        "still "
    };
    format!(
        "⚠️ {what} {verb}{value} ≥ {}{window}, since {}",
        format_value(n.subject.metric, n.threshold),
        time(n.since)
    )
}

/// `✅ CPU back to 40% after 12m`
fn recovery_line(n: &Notice) -> String {
    let what = subject_label(n);
    let lasted = n.until.map(|u| span(u - n.since));
    let after = lasted.map(|l| format!(" after {l}")).unwrap_or_default();
    match (n.subject.metric, n.value) {
        (Metric::Offline, _) => format!("✅ reporting again{after}"),
        (m, Some(v)) => format!("✅ {what} back to {}{after}", format_value(m, v)),
        (_, None) => format!("✅ {what} no longer reported{after}"),
    }
}

fn subject_label(n: &Notice) -> String {
    match n.subject.metric {
        Metric::Disk => format!("Disk <code>{}</code>", escape(&n.subject.target)),
        m => m.label().to_owned(),
    }
}

fn process_list(processes: &[Process], figure: impl Fn(&Process) -> String) -> String {
    processes
        .iter()
        .map(|p| {
            let name: String = p.name.chars().take(MAX_PROCESS_CHARS).collect();
            format!("<code>{}</code> {}", escape(&name), figure(p))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A time as `2026-11-25 12:00 UTC`.
pub fn time(unix: i64) -> String {
    format!("{} UTC", TimeZone::utc().format_minute(unix))
}

fn span(secs: i64) -> String {
    format_duration(Duration::from_secs(secs.max(0).unsigned_abs()))
}

/// A size as `512 MiB`, `2.1 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::eval::Subject;

    fn notice(subject: Subject, kind: NoticeKind, value: f64) -> Notice {
        Notice {
            subject,
            kind,
            value: Some(value),
            threshold: 90.0,
            for_secs: 300,
            since: 1_764_072_000,
            until: Some(1_764_072_000 + 720),
        }
    }

    #[test]
    fn one_message_groups_what_fired_and_recovered_with_top_processes() {
        let sample = Sample {
            top_cpu: vec![Process {
                name: "<evil>".into(),
                cpu_percent: 45.0,
                memory_bytes: 3 << 30,
            }],
            ..Sample::default()
        };
        let notices = [
            notice(Subject::of(Metric::Cpu), NoticeKind::Fired, 97.5),
            notice(Subject::disk("/var&log"), NoticeKind::Fired, 95.0),
            notice(Subject::of(Metric::Swap), NoticeKind::Recovered, 10.0),
        ];
        let text = compose("web<1>", &notices, Some(&sample));
        assert!(
            text.starts_with("🔴 <b>web&lt;1&gt;</b>: 2 alerts"),
            "{text}"
        );
        assert!(
            text.contains("CPU 97.5% ≥ 90% for 5m, since 2025-11-25 12:00 UTC"),
            "{text}"
        );
        assert!(
            text.contains("Disk <code>/var&amp;log</code> 95%"),
            "{text}"
        );
        assert!(text.contains("✅ Swap back to 10% after 12m"), "{text}");
        assert!(
            text.contains("Top CPU: <code>&lt;evil&gt;</code> 45%"),
            "{text}"
        );
        assert!(!text.contains("Top memory"), "{text}");
    }

    #[test]
    fn recoveries_alone_read_as_good_news() {
        let text = compose(
            "db",
            &[notice(
                Subject::of(Metric::Offline),
                NoticeKind::Recovered,
                4.0,
            )],
            None,
        );
        assert_eq!(
            text,
            "✅ <b>db</b>: recovered\n✅ reporting again after 12m"
        );
    }

    #[test]
    fn a_flood_of_lines_still_fits_one_message() {
        let notices: Vec<Notice> = (0..500)
            .map(|i| {
                let mount = format!("/srv/volume-with-a-long-name/{i}");
                notice(Subject::disk(&mount), NoticeKind::Fired, 99.0)
            })
            .collect();
        let text = compose("db", &notices, None);
        assert!(telegram_len(&text) <= MESSAGE_LIMIT);
        assert!(text.starts_with("🔴 <b>db</b>: 500 alerts"), "{text}");
        let shown = text.matches("⚠️").count();
        assert!(shown > 10, "{shown}");
        assert!(
            text.ends_with(&format!("… and {} more", 500 - shown)),
            "{text}"
        );
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(200 << 20), "200 MiB");
    }
}
