//! `/rename NAME NEW`: a server's name is only a label; its code, history
//! and settings stay.

use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::html::escape;
use crate::bot::reply::{Output, Reply};
use crate::storage::{ServerName, StorageError};

#[derive(Debug)]
pub struct Rename {
    name: String,
    new_name: ServerName,
}

impl Run for Rename {
    const USAGE: Usage = Usage {
        name: "rename",
        args: "NAME NEW",
        about: "rename a server",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        match args {
            [name, new_name] => Ok(Rename {
                name: (*name).to_owned(),
                new_name: ServerName::parse(new_name)?,
            }),
            _ => Err(Self::USAGE.error()),
        }
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let owner = cx.user.user_id;
        let Some(server) = cx.storage.find_server(owner, &self.name).await? else {
            return Err(CommandError::no_such_server(&self.name));
        };
        match cx
            .storage
            .rename_server(server.id, owner, &self.new_name)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(CommandError::Gone),
            Err(StorageError::NameTaken(n)) => return Err(CommandError::NameTaken(n)),
            Err(e) => return Err(e.into()),
        }
        Ok(vec![Output::Send(Reply::html(format!(
            "Renamed <b>{}</b> to <b>{}</b>.",
            escape(&server.name),
            escape(self.new_name.as_str())
        )))])
    }
}
