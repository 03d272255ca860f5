//! `/list`: every server of the user at a glance.

use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::format;
use crate::bot::html::escape;
use crate::bot::reply::{Output, Reply};
use crate::storage::{Figures, Server};

#[derive(Debug)]
pub struct List;

impl Run for List {
    const USAGE: Usage = Usage {
        name: "list",
        args: "",
        about: "your servers: online or not, CPU, RAM, disk",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        match args {
            [] => Ok(List),
            _ => Err(Self::USAGE.error()),
        }
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let servers = cx.storage.list_servers(cx.user.user_id).await?;
        if servers.is_empty() {
            return Err(CommandError::NoServers);
        }
        let ids: Vec<i64> = servers.iter().map(|s| s.id).collect();
        let figures = cx.storage.latest_figures(&ids).await?;
        let mut blocks = vec![format!("<b>Your servers</b> ({})", servers.len())];
        for server in &servers {
            blocks.push(line(cx, server, figures.get(&server.id)));
        }
        blocks.push("/stat NAME shows one in detail.".to_owned());
        Ok(vec![Output::Send(Reply {
            blocks,
            keyboard: Vec::new(),
        })])
    }
}

/// Whether a server reported recently enough to count as online.
pub fn is_online(server: &Server, cx: &Context<'_>) -> bool {
    let limit = i64::try_from(cx.settings.offline_after.as_secs()).unwrap_or(i64::MAX);
    server
        .last_seen_at
        .is_some_and(|seen| cx.now.saturating_sub(seen) <= limit)
}

/// A dot that says online (green), offline (red) or never reported (white).
pub fn state_mark(server: &Server, cx: &Context<'_>) -> &'static str {
    match server.last_seen_at {
        None => "⚪",
        Some(_) if is_online(server, cx) => "🟢",
        Some(_) => "🔴",
    }
}

/// One server's line; `figures` from its newest report.
fn line(cx: &Context<'_>, server: &Server, figures: Option<&Figures>) -> String {
    let mark = state_mark(server, cx);
    let name = escape(&server.name);
    let Some(seen) = server.last_seen_at else {
        return format!("{mark} <b>{name}</b> · waiting for the first report");
    };
    let state = if is_online(server, cx) {
        "online".to_owned()
    } else {
        format!("offline, last seen {}", format::ago(seen, cx.now))
    };
    let figures = match figures {
        Some(f) => {
            // The fullest filesystem: the one that stops the host first.
            format!(
                " · CPU {} · RAM {} · disk {}",
                format::percent(f.cpu_percent),
                format::percent(f.mem_percent()),
                format::percent(f.disk_max_percent)
            )
        }
        None => String::new(),
    };
    format!("{mark} <b>{name}</b> · {state}{figures}")
}
