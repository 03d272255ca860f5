//! Finding the server a command is about: by name, the only one, or a
//! keyboard to pick one. Every lookup is by owner, so a name or an id of
//! someone else's server finds nothing.

use super::{CommandError, CommandResult, Context, Usage};
use crate::bot::callback::Callback;
use crate::bot::reply::{Button, Keyboard, Output, Reply};
use crate::storage::Server;

/// Buttons per keyboard row: short server names fit three on a phone.
const PER_ROW: usize = 3;

/// What `/stat`, `/delete` and `/reinstall` act on.
pub enum Target {
    One(Server),
    /// No name given and several servers: ask.
    Choose(Vec<Server>),
}

/// The server named `name`, else the user's only server, else all of them
/// to choose from.
pub async fn target(cx: &Context<'_>, name: Option<&str>) -> Result<Target, CommandError> {
    let owner = cx.user.user_id;
    if let Some(name) = name {
        return match cx.storage.find_server(owner, name).await? {
            Some(server) => Ok(Target::One(server)),
            None => Err(CommandError::no_such_server(name)),
        };
    }
    let mut servers = cx.storage.list_servers(owner).await?;
    match servers.len() {
        0 => Err(CommandError::NoServers),
        1 => Ok(Target::One(servers.remove(0))),
        _ => Ok(Target::Choose(servers)),
    }
}

/// The server with this id if the user owns it; [`CommandError::Gone`]
/// otherwise, the same answer whether it was deleted or is someone else's.
pub async fn owned(cx: &Context<'_>, id: i64) -> Result<Server, CommandError> {
    cx.storage
        .get_server(id, cx.user.user_id)
        .await?
        .ok_or(CommandError::Gone)
}

/// One button per server, labelled with its name.
pub fn keyboard(servers: &[Server], action: impl Fn(i64) -> Callback) -> Keyboard {
    servers
        .chunks(PER_ROW)
        .map(|row| {
            row.iter()
                .map(|s| Button::new(s.name.clone(), action(s.id)))
                .collect()
        })
        .collect()
}

/// The `[NAME]` argument of `/stat`, `/delete` and `/reinstall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameArg(pub Option<String>);

impl NameArg {
    pub fn parse(args: &[&str], usage: &Usage) -> Result<Self, CommandError> {
        match args {
            [] => Ok(NameArg(None)),
            [name] => Ok(NameArg(Some((*name).to_owned()))),
            _ => Err(usage.error()),
        }
    }
}

/// Commands that ask before acting on a server: the named (or only)
/// server gets the `question` at once; with several, a keyboard to pick
/// one, whose buttons (`pick`) lead to the question.
pub async fn ask_first(
    cx: &Context<'_>,
    name: &NameArg,
    prompt: &str,
    pick: impl Fn(i64) -> Callback,
    question: impl Fn(&Server) -> Reply,
) -> CommandResult {
    let reply = match target(cx, name.0.as_deref()).await? {
        Target::One(server) => question(&server),
        Target::Choose(servers) => Reply::html(prompt).with_keyboard(keyboard(&servers, pick)),
    };
    Ok(vec![Output::Send(reply)])
}

/// A button that leads to a question about one server (picked from a
/// keyboard, or Delete under a status): the question replaces the message.
pub async fn ask(
    cx: &Context<'_>,
    server: i64,
    question: impl Fn(&Server) -> Reply,
) -> CommandResult {
    let server = owned(cx, server).await?;
    Ok(vec![Output::Edit(question(&server))])
}
