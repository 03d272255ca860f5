//! `/role USER ROLE` (administrators): make someone admin, user or banned.
//! USER is a Telegram id or an @username of someone who talked to the bot.

use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::format;
use crate::bot::reply::{Output, Reply};
use crate::storage::{RoleName, User};

#[derive(Debug)]
pub struct Role {
    who: Who,
    role: RoleName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Id(i64),
    Username(String),
}

impl Run for Role {
    const USAGE: Usage = Usage {
        name: "role",
        args: "USER ROLE",
        about: "set a user's role: admin, user or banned",
        admin: true,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        let [who, role] = args else {
            return Err(Self::USAGE.error());
        };
        let who = match who.strip_prefix('@') {
            Some(name) if valid_username(name) => Who::Username(name.to_owned()),
            Some(_) => return Err(Self::USAGE.error()),
            None => match who.parse::<i64>() {
                Ok(id) if id > 0 => Who::Id(id),
                _ => return Err(Self::USAGE.error()),
            },
        };
        let role = role.parse::<RoleName>().map_err(CommandError::Refused)?;
        Ok(Role { who, role })
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let target = match &self.who {
            Who::Id(id) => cx.storage.get_user(*id).await?,
            Who::Username(name) => cx.storage.find_user_by_username(name).await?,
        };
        let Some(target) = target else {
            return Err(CommandError::Refused(format!(
                "{} has not talked to this bot yet; they must send /start first.",
                self.who.shown()
            )));
        };
        let is_admin = target.role.permission.is_admin();
        if self.role != RoleName::Admin && is_admin {
            if cx.settings.is_admin_by_config(target.user_id) {
                return Err(CommandError::Refused(format!(
                    "{} is an administrator by configuration (SERVERSAN_ADMINS); \
                     change it there.",
                    self.who.shown()
                )));
            }
            if target.user_id == cx.user.user_id && admin_count(cx).await? <= 1 {
                return Err(CommandError::Refused(
                    "You are the last administrator; make someone else admin first.".to_owned(),
                ));
            }
        }
        if !cx.storage.set_role(target.user_id, self.role).await? {
            return Err(CommandError::Refused(format!(
                "{} has not talked to this bot yet; they must send /start first.",
                self.who.shown()
            )));
        }
        tracing::info!(
            by = cx.user.user_id,
            user = target.user_id,
            role = self.role.as_str(),
            "role changed"
        );
        Ok(vec![Output::Send(Reply::html(format!(
            "{} is now <b>{}</b>.",
            describe(&target),
            self.role
        )))])
    }
}

impl Who {
    /// As the admin typed it, safe to show (ids are digits, usernames were
    /// checked to be word characters).
    fn shown(&self) -> String {
        match self {
            Who::Id(id) => id.to_string(),
            Who::Username(name) => format!("@{name}"),
        }
    }
}

/// Telegram usernames: 4–32 of letters, digits and underscores (we accept
/// from 1 so old or short ones still resolve).
fn valid_username(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn describe(user: &User) -> String {
    match user.username.as_deref().filter(|u| !u.is_empty()) {
        Some(name) => format!("@{} ({})", format::text(name, 40), user.user_id),
        None => user.user_id.to_string(),
    }
}

async fn admin_count(cx: &Context<'_>) -> Result<usize, CommandError> {
    Ok(cx
        .storage
        .list_users()
        .await?
        .iter()
        .filter(|u| u.role.permission.is_admin())
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let r = Role::parse(&["@alice_1", "Banned"]).expect("parses");
        assert_eq!(r.who, Who::Username("alice_1".into()));
        assert_eq!(r.role, RoleName::Banned);
        let r = Role::parse(&["42", "admin"]).expect("parses");
        assert_eq!(r.who, Who::Id(42));
        for bad in [
            &["42"][..],
            &["42", "admin", "x"],
            &["-1", "user"],
            &["@", "user"],
            &["@a<b>", "user"],
            &["bob", "user"],
        ] {
            assert!(
                matches!(Role::parse(bad), Err(CommandError::Usage(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Role::parse(&["42", "king"]),
            Err(CommandError::Refused(_))
        ));
    }
}
