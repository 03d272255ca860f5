//! `/start`: the first thing a new user sends. The dispatcher has already
//! recorded them; this greets and says how to begin.

use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::format;
use crate::bot::reply::{Output, Reply};

#[derive(Debug)]
pub struct Start;

impl Run for Start {
    const USAGE: Usage = Usage {
        name: "start",
        args: "",
        about: "welcome and first steps",
        admin: false,
    };

    /// Telegram deep links add a payload (`/start xyz`); it is ignored.
    fn parse(_args: &[&str]) -> Result<Self, CommandError> {
        Ok(Start)
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let name = cx.sender.display_name.trim();
        let greeting = if name.is_empty() {
            "Welcome to ServerSan!".to_owned()
        } else {
            format!("Welcome to ServerSan, {}!", format::text(name, 64))
        };
        let servers = cx.storage.count_servers(cx.user.user_id).await?;
        let next = if servers == 0 {
            "Send /add to add your first server: I answer with a one-line install \
             command for it. Once its agent reports, /stat shows how it is doing."
                .to_owned()
        } else {
            format!(
                "You have {servers} server{}. /list shows them, /stat shows one in detail.",
                if servers == 1 { "" } else { "s" }
            )
        };
        let admin = if cx.is_admin() {
            "\nYou are an administrator: /users and /role manage who may use this bot."
        } else {
            ""
        };
        let text = format!(
            "<b>{greeting}</b>\nI watch your servers and tell you how they are doing.\n\n\
             {next}{admin}\n\n/help lists every command."
        );
        Ok(vec![Output::Send(Reply::html(text))])
    }
}
