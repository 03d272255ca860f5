//! Bot commands, one file each, after mini-redis's `cmd` module.
//!
//! Each command is a struct that parses its own arguments
//! ([`Run::parse`]) and applies itself ([`Run::apply`]) against a
//! [`Context`]; [`Command`] is the one enum that dispatches. Adding a
//! command is one new file implementing [`Run`] and one line in the
//! [`commands!`] list below (which also puts it in `/help` and Telegram's
//! command menu).
//!
//! Buttons come back as [`Callback`]s and go to the function of the command
//! that owns them ([`press`]). Every command and every press re-checks that
//! the user owns the server it names: an id from a button is only a
//! question, never a proof.

mod add;
mod chart;
mod delete;
mod help;
mod list;
mod mute;
mod pick;
mod reinstall;
mod rename;
mod role;
mod start;
mod stat;
mod threshold;
mod unmute;
mod users;

use std::future::Future;

use super::Sender;
use super::callback::Callback;
use super::html::escape;
use super::reply::{Output, Reply};
use super::settings::BotSettings;
use crate::storage::{NameError, Storage, StorageError, User};

pub use add::install_lines;

/// What a command may use: the database, the settings, and who asks.
pub struct Context<'a> {
    pub storage: &'a Storage,
    pub settings: &'a BotSettings,
    /// The user as stored, with their role (already allowed to use the bot).
    pub user: &'a User,
    /// What Telegram says about the user right now.
    pub sender: &'a Sender,
    /// The current time (unix seconds).
    pub now: i64,
}

impl Context<'_> {
    pub fn is_admin(&self) -> bool {
        self.user.role.permission.is_admin()
    }
}

/// A command's entry in `/help` and in Telegram's command menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The command word without the slash.
    pub name: &'static str,
    /// Its arguments as `/help` shows them, e.g. `[NAME]`.
    pub args: &'static str,
    /// One line saying what it does.
    pub about: &'static str,
    /// Only administrators may use it (and see it in `/help`).
    pub admin: bool,
}

impl Usage {
    /// `/rename NAME NEW`.
    pub fn synopsis(&self) -> String {
        if self.args.is_empty() {
            format!("/{}", self.name)
        } else {
            format!("/{} {}", self.name, self.args)
        }
    }

    /// The error for arguments this command does not take.
    pub fn error(&self) -> CommandError {
        CommandError::Usage(self.synopsis())
    }
}

/// One command: parses its own arguments and applies itself.
pub trait Run: Sized {
    const USAGE: Usage;

    /// Checks the arguments (the words after the command); touches nothing.
    fn parse(args: &[&str]) -> Result<Self, CommandError>;

    fn apply(self, cx: &Context<'_>) -> impl Future<Output = CommandResult> + Send;
}

pub type CommandResult = Result<Vec<Output>, CommandError>;

/// Why a command did nothing. Every message says what to do instead; none
/// reveals whether someone else's server exists.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("Usage: {0}")]
    Usage(String),
    #[error("I don't know /{0}. /help lists what I can do.")]
    Unknown(String),
    #[error("You have no servers yet. /add creates one.")]
    NoServers,
    #[error("You have no server named {0}. /list shows yours.")]
    NoSuchServer(String),
    /// A button named a server the user does not own (or no longer has).
    #[error("That server no longer exists.")]
    Gone,
    #[error("{0}")]
    BadName(#[from] NameError),
    #[error("You already have a server named {0}.")]
    NameTaken(String),
    #[error("You have reached your limit of {0} servers. /delete one first.")]
    TooManyServers(i64),
    #[error("Only administrators can use /{0}.")]
    AdminOnly(&'static str),
    /// A rule refused the request; the message says which.
    #[error("{0}")]
    Refused(String),
    #[error(
        "Something went wrong on our side and nothing was changed. Please try again in a minute."
    )]
    Storage(#[from] StorageError),
}

impl CommandError {
    /// The error as the reply to a message.
    pub fn to_reply(&self) -> Reply {
        if let CommandError::Storage(e) = self {
            tracing::error!(error = %e, "a bot command failed on storage");
        }
        Reply::html(escape(&self.to_string()))
    }

    /// A server name echoed in a message, cut so it cannot flood the reply.
    pub fn no_such_server(name: &str) -> Self {
        CommandError::NoSuchServer(cut(name, 40))
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// Declares the [`Command`] enum from the list of command structs: the
/// variants, [`Command::USAGE`], parsing by name and dispatch.
macro_rules! commands {
    ($( $variant:ident => $ty:ty ),+ $(,)?) => {
        /// A parsed command, ready to apply.
        #[derive(Debug)]
        pub enum Command {
            $( $variant($ty), )+
        }

        impl Command {
            /// Every command, in the order `/help` lists them.
            pub const USAGE: &[Usage] = &[ $( <$ty as Run>::USAGE, )+ ];

            /// Parses a command word and its arguments.
            pub fn parse(name: &str, args: &[&str]) -> Result<Self, CommandError> {
                $( if name == <$ty as Run>::USAGE.name {
                    return <$ty as Run>::parse(args).map(Command::$variant);
                } )+
                Err(CommandError::Unknown(cut(name, 32)))
            }

            pub fn usage(&self) -> &'static Usage {
                match self {
                    $( Command::$variant(_) => &<$ty as Run>::USAGE, )+
                }
            }

            pub async fn apply(self, cx: &Context<'_>) -> CommandResult {
                if self.usage().admin && !cx.is_admin() {
                    return Err(CommandError::AdminOnly(self.usage().name));
                }
                match self {
                    $( Command::$variant(c) => c.apply(cx).await, )+
                }
            }
        }
    };
}

commands! {
    Start => start::Start,
    Help => help::Help,
    Add => add::Add,
    List => list::List,
    Stat => stat::Stat,
    Chart => chart::Chart,
    Delete => delete::Delete,
    Reinstall => reinstall::Reinstall,
    Rename => rename::Rename,
    Threshold => threshold::Threshold,
    Mute => mute::Mute,
    Unmute => unmute::Unmute,
    Users => users::Users,
    Role => role::Role,
}

/// Answers a button press: each callback goes to the command that made the
/// button. `Edit` outputs replace the message the button was on.
pub async fn press(cb: Callback, cx: &Context<'_>) -> CommandResult {
    match cb {
        Callback::Stat { server } => stat::show(cx, server).await,
        Callback::Delete { server } => pick::ask(cx, server, delete::question).await,
        Callback::DeleteConfirm { server } => delete::confirm(cx, server).await,
        Callback::Reinstall { server } => pick::ask(cx, server, reinstall::question).await,
        Callback::ReinstallConfirm { server } => reinstall::confirm(cx, server).await,
        Callback::Chart {
            server,
            metric,
            period,
        } => chart::switch(cx, server, metric, period).await,
        Callback::OpenChart {
            server,
            metric,
            period,
        } => chart::open(cx, server, metric, period).await,
        Callback::Cancel => Ok(vec![
            Output::Edit(Reply::html("Cancelled; nothing was changed.")),
            Output::Notice("Cancelled".to_owned()),
        ]),
    }
}

/// The commands for Telegram's menu (setMyCommands): everyone's commands,
/// as `(name, description)`.
pub fn menu() -> Vec<(&'static str, &'static str)> {
    Command::USAGE
        .iter()
        .filter(|u| !u.admin)
        .map(|u| (u.name, u.about))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses_by_its_own_name() {
        for usage in Command::USAGE {
            // Commands without required arguments parse bare; the others
            // answer with their usage.
            match Command::parse(usage.name, &[]) {
                Ok(c) => assert_eq!(c.usage(), usage),
                Err(CommandError::Usage(s)) => assert_eq!(s, usage.synopsis()),
                Err(e) => panic!("/{}: {e}", usage.name),
            }
        }
        assert!(matches!(
            Command::parse("nope", &[]),
            Err(CommandError::Unknown(n)) if n == "nope"
        ));
    }

    #[test]
    fn menu_fits_telegram_rules() {
        let menu = menu();
        assert!(!menu.is_empty());
        for (name, about) in menu {
            assert!((1..=32).contains(&name.len()));
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!((1..=256).contains(&about.len()));
        }
        assert!(
            !super::menu()
                .iter()
                .any(|(n, _)| *n == "users" || *n == "role")
        );
    }

    #[test]
    fn surplus_arguments_are_refused() {
        assert!(matches!(
            Command::parse("list", &["x"]),
            Err(CommandError::Usage(_))
        ));
        assert!(matches!(
            Command::parse("rename", &["a"]),
            Err(CommandError::Usage(_))
        ));
    }

    #[test]
    fn echoed_names_are_cut() {
        let e = CommandError::no_such_server(&"x".repeat(500));
        assert!(e.to_string().len() < 150);
    }
}
