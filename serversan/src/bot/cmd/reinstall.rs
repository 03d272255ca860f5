//! `/reinstall [NAME]`: a new code for a server (the old one is refused at
//! once), for a reinstalled host or a code that may have leaked.

use super::add::install_lines;
use super::pick::{NameArg, ask_first, owned};
use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::callback::Callback;
use crate::bot::html::escape;
use crate::bot::reply::{Button, Output, Reply};
use crate::storage::Server;

#[derive(Debug)]
pub struct Reinstall(NameArg);

impl Run for Reinstall {
    const USAGE: Usage = Usage {
        name: "reinstall",
        args: "[NAME]",
        about: "new install command for a server (the old code stops working)",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        NameArg::parse(args, &Self::USAGE).map(Reinstall)
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let pick = |server| Callback::Reinstall { server };
        ask_first(
            cx,
            &self.0,
            "Which server do you want to reinstall?",
            pick,
            question,
        )
        .await
    }
}

/// Confirmed: rotate the code and hand over the new install line.
pub async fn confirm(cx: &Context<'_>, server: i64) -> CommandResult {
    let server = owned(cx, server).await?;
    let Some(code) = cx.storage.rotate_code(server.id, cx.user.user_id).await? else {
        return Err(CommandError::Gone);
    };
    tracing::info!(
        server_id = server.id,
        owner = cx.user.user_id,
        "server code rotated"
    );
    let text = format!(
        "New code for <b>{}</b>; the old one no longer works. Run this on the host \
         (it replaces the old code and keeps the history):\n\n{}\n\n\
         The code is shown only this once; keep it to yourself.",
        escape(&server.name),
        install_lines(&cx.settings.public_url, &code)
    );
    Ok(vec![
        Output::Edit(Reply::html(text)),
        Output::Notice("New code made".to_owned()),
    ])
}

/// The question, with the button that confirms and one that cancels.
pub fn question(server: &Server) -> Reply {
    Reply::html(format!(
        "Make a new code for <b>{}</b>? The agent installed with the old code is refused \
         until you run the new install line on the host.",
        escape(&server.name)
    ))
    .with_keyboard(vec![vec![
        Button::new(
            "Reinstall",
            Callback::ReinstallConfirm { server: server.id },
        ),
        Button::new("Cancel", Callback::Cancel),
    ]])
}
