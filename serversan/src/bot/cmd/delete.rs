//! `/delete [NAME]`: pick a server, confirm with a button, then the server
//! and its history are gone and its code is refused at once.

use super::pick::{NameArg, ask_first, owned};
use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::callback::Callback;
use crate::bot::html::escape;
use crate::bot::reply::{Button, Output, Reply};
use crate::storage::Server;

#[derive(Debug)]
pub struct Delete(NameArg);

impl Run for Delete {
    const USAGE: Usage = Usage {
        name: "delete",
        args: "[NAME]",
        about: "delete a server and its history",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        NameArg::parse(args, &Self::USAGE).map(Delete)
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let pick = |server| Callback::Delete { server };
        ask_first(
            cx,
            &self.0,
            "Which server do you want to delete?",
            pick,
            question,
        )
        .await
    }
}

/// Confirmed: delete, and say how to remove the agent too.
pub async fn confirm(cx: &Context<'_>, server: i64) -> CommandResult {
    let server = owned(cx, server).await?;
    if !cx.storage.delete_server(server.id, cx.user.user_id).await? {
        return Err(CommandError::Gone);
    }
    tracing::info!(
        server_id = server.id,
        owner = cx.user.user_id,
        "server deleted"
    );
    let url = escape(cx.settings.public_url.trim_end_matches('/'));
    let text = format!(
        "Deleted <b>{}</b> and its history. Its code no longer works.\n\n\
         To remove the agent from the host, run there:\n\
         <pre>curl -fsSL {url}/install.sh | sudo bash -s -- --uninstall</pre>",
        escape(&server.name)
    );
    Ok(vec![
        Output::Edit(Reply::html(text)),
        Output::Notice("Deleted".to_owned()),
    ])
}

/// The question, with the button that confirms and one that cancels.
pub fn question(server: &Server) -> Reply {
    Reply::html(format!(
        "Delete <b>{}</b>? Its history goes too, and its agent is refused from then on. \
         This cannot be undone.",
        escape(&server.name)
    ))
    .with_keyboard(vec![vec![
        Button::new("Delete", Callback::DeleteConfirm { server: server.id }),
        Button::new("Cancel", Callback::Cancel),
    ]])
}
