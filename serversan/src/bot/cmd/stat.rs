//! `/stat [NAME]`: one server in detail, from its latest report, with
//! buttons to refresh in place, open its chart or delete it.

use serversan_protocol::Report;
use serversan_protocol::report::ProcessInfo;

use super::list::state_mark;
use super::pick::{NameArg, Target, keyboard, owned, target};
use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::callback::Callback;
use crate::bot::format::{self, ago, percent, rate, span, ubytes, usage};
use crate::bot::html::escape;
use crate::bot::reply::{Button, Output, Reply};
use crate::storage::{ReportRow, Server, network_rates};

/// Longest user-controlled string shown (host, mount, process names).
const NAME_CHARS: usize = 40;
const MAX_FILESYSTEMS: usize = 12;
const MAX_INTERFACES: usize = 6;
const MAX_SESSIONS: usize = 5;
const MAX_PROCESSES: usize = 5;

#[derive(Debug)]
pub struct Stat(NameArg);

impl Run for Stat {
    const USAGE: Usage = Usage {
        name: "stat",
        args: "[NAME]",
        about: "a server in detail",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        NameArg::parse(args, &Self::USAGE).map(Stat)
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let reply = match target(cx, self.0.0.as_deref()).await? {
            Target::One(server) => view(cx, &server).await?,
            Target::Choose(servers) => Reply::html("Which server?")
                .with_keyboard(keyboard(&servers, |server| Callback::Stat { server })),
        };
        Ok(vec![Output::Send(reply)])
    }
}

/// The Refresh button (and a pick from the keyboard): the status replaces
/// the message it was pressed on.
pub async fn show(cx: &Context<'_>, server: i64) -> CommandResult {
    let server = owned(cx, server).await?;
    Ok(vec![
        Output::Edit(view(cx, &server).await?),
        Output::Notice("Updated".to_owned()),
    ])
}

async fn view(cx: &Context<'_>, server: &Server) -> Result<Reply, CommandError> {
    let buttons = vec![vec![
        Button::new("Refresh", Callback::Stat { server: server.id }),
        super::chart::open_button(server.id),
        Button::new("Delete", Callback::Delete { server: server.id }),
    ]];
    let rows = cx.storage.last_two_reports(server.id).await?;
    // One block per line: a status too long for one message (many
    // filesystems with long escaped names) splits between lines.
    let blocks = match rows.first() {
        None => vec![waiting(server)],
        Some(latest) => {
            let report = latest.report()?;
            let mut blocks = vec![heading(cx, server, latest)];
            blocks.extend(details(&report, &rows));
            blocks
        }
    };
    Ok(Reply {
        blocks,
        keyboard: buttons,
    })
}

fn waiting(server: &Server) -> String {
    let name = escape(&server.name);
    format!(
        "⚪ <b>{name}</b> · waiting for the first report\n\n\
         Run the install line /add gave you on the host; its first report \
         arrives within a minute. Lost the line? /reinstall {name} makes a new one."
    )
}

fn heading(cx: &Context<'_>, server: &Server, latest: &ReportRow) -> String {
    let mark = state_mark(server, cx);
    let state = if super::list::is_online(server, cx) {
        "online".to_owned()
    } else {
        let seen = server.last_seen_at.unwrap_or(latest.received_at);
        format!("offline, last seen {}", ago(seen, cx.now))
    };
    format!(
        "{mark} <b>{}</b> · {state}\nReport collected {}\n",
        escape(&server.name),
        ago(latest.collected_at, cx.now)
    )
}

/// Everything the report says, one topic per line.
fn details(r: &Report, rows: &[ReportRow]) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = |s: String| out.push(s);
    line(format!(
        "<b>Host</b> {}",
        format::text(&r.hostname, NAME_CHARS)
    ));
    line(format!(
        "<b>OS</b> {} {} · kernel {} · {}",
        format::text(&r.os.name, NAME_CHARS),
        format::text(&r.os.version, NAME_CHARS),
        format::text(&r.os.kernel, NAME_CHARS),
        format::text(&r.os.arch, 16)
    ));
    line(format!("<b>Up</b> {}", span(r.collected_at - r.boot_time)));
    line(format!(
        "<b>CPU</b> {} · {} cores · {}",
        format::text(&r.cpu.model, 48),
        r.cpu.logical_cores,
        percent(r.cpu.usage_percent)
    ));
    if let Some(load) = &r.load {
        line(format!(
            "<b>Load</b> {:.2} {:.2} {:.2}",
            load.one, load.five, load.fifteen
        ));
    }
    line(format!(
        "<b>RAM</b> {}",
        usage(clamp(r.memory.used), clamp(r.memory.total))
    ));
    if r.swap.total > 0 {
        line(format!(
            "<b>Swap</b> {}",
            usage(clamp(r.swap.used), clamp(r.swap.total))
        ));
    } else {
        line("<b>Swap</b> none".to_owned());
    }
    if !r.filesystems.is_empty() {
        line("<b>Disks</b>".to_owned());
        for fs in r.filesystems.iter().take(MAX_FILESYSTEMS) {
            line(format!(
                "  {} ({}) {}",
                format::text(&fs.mount_point, NAME_CHARS),
                format::text(&fs.fs_type, 16),
                usage(clamp(fs.used), clamp(fs.total))
            ));
        }
        more(&mut line, r.filesystems.len(), MAX_FILESYSTEMS);
    }
    line(network(r, rows));
    line(format!(
        "<b>Processes</b> {} · <b>sessions</b> {}",
        r.process_count,
        r.sessions.len()
    ));
    for s in r.sessions.iter().take(MAX_SESSIONS) {
        let from = s
            .from
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(|f| format!(" from {}", format::text(f, NAME_CHARS)))
            .unwrap_or_default();
        let since = s
            .since
            .map(|t| format!(", {}", ago(t, r.collected_at)))
            .unwrap_or_default();
        line(format!(
            "  {} on {}{from}{since}",
            format::text(&s.user, 32),
            format::text(&s.terminal, 16)
        ));
    }
    more(&mut line, r.sessions.len(), MAX_SESSIONS);
    processes(&mut line, "Top CPU", &r.top_cpu);
    processes(&mut line, "Top memory", &r.top_memory);
    if let Some(hottest) = r
        .temperatures
        .iter()
        .filter(|t| t.celsius.is_finite())
        .max_by(|a, b| a.celsius.total_cmp(&b.celsius))
    {
        line(format!(
            "<b>Hottest sensor</b> {} {:.0} °C",
            format::text(&hottest.label, NAME_CHARS),
            hottest.celsius
        ));
    }
    out
}

fn processes(line: &mut impl FnMut(String), title: &str, list: &[ProcessInfo]) {
    if list.is_empty() {
        return;
    }
    line(format!("<b>{title}</b>"));
    for p in list.iter().take(MAX_PROCESSES) {
        line(format!(
            "  {} {} · {} · {}",
            p.pid,
            format::text(&p.name, NAME_CHARS),
            percent(p.cpu_percent),
            ubytes(p.memory_bytes)
        ));
    }
}

fn more(line: &mut impl FnMut(String), total: usize, shown: usize) {
    if total > shown {
        line(format!("  … and {} more", total - shown));
    }
}

/// Throughput from the counters of the last two reports.
fn network(r: &Report, rows: &[ReportRow]) -> String {
    let (Some(newer), Some(older)) = (rows.first(), rows.get(1)) else {
        return "<b>Network</b> rates appear after the next report".to_owned();
    };
    let Some((rx, tx)) = network_rates(newer, older) else {
        return "<b>Network</b> counters restarted; rates appear after the next report".to_owned();
    };
    let secs = newer.collected_at - older.collected_at;
    let mut out = format!(
        "<b>Network</b> ↓ {} ↑ {} (over {})",
        rate(rx),
        rate(tx),
        span(secs)
    );
    let Ok(previous) = older.report() else {
        return out;
    };
    if r.network.len() > 1 {
        for iface in r.network.iter().take(MAX_INTERFACES) {
            let Some(old) = previous
                .network
                .iter()
                .find(|o| o.interface == iface.interface)
            else {
                continue;
            };
            let (Some(drx), Some(dtx)) = (
                iface.rx_bytes.checked_sub(old.rx_bytes),
                iface.tx_bytes.checked_sub(old.tx_bytes),
            ) else {
                continue;
            };
            out.push_str(&format!(
                "\n  {} ↓ {} ↑ {}",
                format::text(&iface.interface, 24),
                rate(drx as f64 / secs as f64),
                rate(dtx as f64 / secs as f64)
            ));
        }
    }
    out
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
