//! `/add [NAME]`: creates a server and hands over its install command,
//! the only message that ever shows its code.

use serversan_protocol::AuthCode;

use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::args::format_duration;
use crate::bot::html::escape;
use crate::bot::reply::{Output, Reply};
use crate::storage::{Server, ServerName, StorageError};

/// Default names are `server-1`, `server-2`…; tries this many free numbers
/// when another request takes the same one at the same moment.
const DEFAULT_NAME_ATTEMPTS: usize = 3;

#[derive(Debug)]
pub struct Add {
    name: Option<ServerName>,
}

impl Run for Add {
    const USAGE: Usage = Usage {
        name: "add",
        args: "[NAME]",
        about: "add a server and get its install command",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        match args {
            [] => Ok(Add { name: None }),
            [name] => Ok(Add {
                name: Some(ServerName::parse(name)?),
            }),
            _ => Err(Self::USAGE.error()),
        }
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let owner = cx.user.user_id;
        if let Some(max) = cx.user.role.max_servers
            && cx.storage.count_servers(owner).await? >= max
        {
            return Err(CommandError::TooManyServers(max));
        }
        let (server, code) = match self.name {
            Some(name) => match cx.storage.create_server(owner, &name).await {
                Ok(created) => created,
                Err(StorageError::NameTaken(n)) => return Err(CommandError::NameTaken(n)),
                Err(e) => return Err(e.into()),
            },
            None => create_with_default_name(cx).await?,
        };
        Ok(vec![Output::Send(Reply::html(added_text(
            cx, &server, &code,
        )))])
    }
}

async fn create_with_default_name(cx: &Context<'_>) -> Result<(Server, AuthCode), CommandError> {
    let owner = cx.user.user_id;
    for _ in 0..DEFAULT_NAME_ATTEMPTS {
        let taken: Vec<String> = cx
            .storage
            .list_servers(owner)
            .await?
            .into_iter()
            .map(|s| s.name.to_ascii_lowercase())
            .collect();
        let name = default_name(&taken);
        match cx.storage.create_server(owner, &name).await {
            Ok(created) => return Ok(created),
            Err(StorageError::NameTaken(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CommandError::Refused(
        "Could not pick a free name; try /add NAME.".to_owned(),
    ))
}

/// The first `server-N` not among `taken` (lower-case names).
fn default_name(taken: &[String]) -> ServerName {
    let n = (1..)
        .find(|n| !taken.iter().any(|t| *t == format!("server-{n}")))
        .unwrap_or(1);
    ServerName::parse(&format!("server-{n}"))
        .unwrap_or_else(|_| unreachable!("server-N is a valid name"))
}

fn added_text(cx: &Context<'_>, server: &Server, code: &AuthCode) -> String {
    format!(
        "Server <b>{}</b> added. Install its agent with one line:\n\n{}\n\n\
         The code in it is shown only this once; keep it to yourself. If no agent uses it \
         within {}, the server is removed again. Then /stat {} shows the host.",
        escape(&server.name),
        install_lines(&cx.settings.public_url, code),
        expiry_text(cx.settings.code_expiry),
        escape(&server.name),
    )
}

/// `24 hours` rather than `1d`: how long people expect a code to live.
fn expiry_text(expiry: std::time::Duration) -> String {
    let secs = expiry.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) && secs <= 72 * 3600 {
        let hours = secs / 3600;
        format!("{hours} hour{}", if hours == 1 { "" } else { "s" })
    } else {
        format_duration(expiry)
    }
}

/// The Linux and Windows install commands for `code`, each in its own
/// code block so a tap copies it.
pub fn install_lines(public_url: &str, code: &AuthCode) -> String {
    let url = public_url.trim_end_matches('/');
    let linux = format!("curl -fsSL {url}/install.sh | sudo bash -s -- {code}");
    let windows = format!("& ([scriptblock]::Create((irm {url}/install.ps1))) {code}");
    format!(
        "Linux (as root):\n<pre>{}</pre>\nWindows (PowerShell as administrator):\n<pre>{}</pre>",
        escape(&linux),
        escape(&windows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_naturally() {
        use std::time::Duration;
        assert_eq!(expiry_text(Duration::from_secs(24 * 3600)), "24 hours");
        assert_eq!(expiry_text(Duration::from_secs(3600)), "1 hour");
        assert_eq!(expiry_text(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(expiry_text(Duration::from_secs(90)), "1m");
    }

    #[test]
    fn default_names_fill_gaps() {
        assert_eq!(default_name(&[]).as_str(), "server-1");
        let taken = vec![
            "server-1".to_owned(),
            "server-3".to_owned(),
            "web".to_owned(),
        ];
        assert_eq!(default_name(&taken).as_str(), "server-2");
    }

    #[test]
    fn install_lines_carry_url_and_code() {
        let code = AuthCode::generate().expect("random");
        let text = install_lines("https://mon.example/", &code);
        let code = code.to_string();
        assert!(text.contains(&format!(
            "<pre>curl -fsSL https://mon.example/install.sh | sudo bash -s -- {code}</pre>"
        )));
        assert!(text.contains(&format!(
            "<pre>&amp; ([scriptblock]::Create((irm https://mon.example/install.ps1))) {code}</pre>"
        )));
    }

    #[test]
    fn names_are_checked_before_anything_happens() {
        assert!(matches!(
            Add::parse(&["all"]),
            Err(CommandError::BadName(_))
        ));
        assert!(matches!(
            Add::parse(&["<b>"]),
            Err(CommandError::BadName(_))
        ));
        assert!(matches!(
            Add::parse(&["a", "b"]),
            Err(CommandError::Usage(_))
        ));
        assert!(Add::parse(&["web-1"]).is_ok());
    }
}
