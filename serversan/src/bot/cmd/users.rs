//! `/users` (administrators): who uses the bot, with roles and server
//! counts. Long lists are split over several messages.

use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::format;
use crate::bot::reply::{Output, Reply};
use crate::storage::User;

#[derive(Debug)]
pub struct Users;

impl Run for Users {
    const USAGE: Usage = Usage {
        name: "users",
        args: "",
        about: "every user with role and server count",
        admin: true,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        match args {
            [] => Ok(Users),
            _ => Err(Self::USAGE.error()),
        }
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let users = cx.storage.list_users().await?;
        let counts = cx.storage.server_counts().await?;
        let shown = users.len().min(cx.settings.users_list_max);
        let mut blocks = vec![format!("<b>Users</b> ({})", users.len())];
        for user in &users[..shown] {
            let servers = counts.get(&user.user_id).copied().unwrap_or(0);
            blocks.push(line(user, servers));
        }
        if users.len() > shown {
            blocks.push(format!("… and {} more", users.len() - shown));
        }
        blocks.push("/role USER ROLE changes a role (USER: id or @username).".to_owned());
        Ok(vec![Output::Send(Reply {
            blocks,
            keyboard: Vec::new(),
        })])
    }
}

/// `<code>42</code> @alice (Alice) · admin · 3 servers`
fn line(user: &User, servers: i64) -> String {
    let mut out = format!("<code>{}</code>", user.user_id);
    if let Some(name) = user.username.as_deref().filter(|n| !n.is_empty()) {
        out.push_str(&format!(" @{}", format::text(name, 40)));
    }
    if let Some(nick) = user.nickname.as_deref().filter(|n| !n.is_empty()) {
        out.push_str(&format!(" ({})", format::text(nick, 40)));
    }
    out.push_str(&format!(
        " · {} · {servers} server{}",
        format::text(&user.role.name, 16),
        if servers == 1 { "" } else { "s" }
    ));
    out
}
