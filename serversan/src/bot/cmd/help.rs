//! `/help`: every command with one line of usage, from the same list that
//! feeds Telegram's command menu, so the two never disagree.

use super::{Command, CommandError, CommandResult, Context, Run, Usage};
use crate::bot::html::escape;
use crate::bot::reply::{Output, Reply};

#[derive(Debug)]
pub struct Help;

impl Run for Help {
    const USAGE: Usage = Usage {
        name: "help",
        args: "",
        about: "list the commands",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        match args {
            [] => Ok(Help),
            _ => Err(Self::USAGE.error()),
        }
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        Ok(vec![Output::Send(Reply::html(text(cx.is_admin())))])
    }
}

/// The help text; administrators also see their commands.
pub fn text(admin: bool) -> String {
    let line = |u: &Usage| format!("{} - {}", escape(&u.synopsis()), escape(u.about));
    let mut out = String::from("<b>Commands</b>\n");
    for usage in Command::USAGE.iter().filter(|u| !u.admin) {
        out.push_str(&line(usage));
        out.push('\n');
    }
    if admin {
        out.push_str("\n<b>Administrators</b>\n");
        for usage in Command::USAGE.iter().filter(|u| u.admin) {
            out.push_str(&line(usage));
            out.push('\n');
        }
    }
    out.push_str("\nNAME is a server name as /list shows it.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_command_admins_see_theirs() {
        let user = text(false);
        let admin = text(true);
        for usage in Command::USAGE {
            let shown = format!("/{}", usage.name);
            assert!(admin.contains(&shown), "{shown}");
            assert_eq!(user.contains(&format!("{shown} ")), !usage.admin, "{shown}");
        }
    }
}
