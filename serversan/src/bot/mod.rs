//! The Telegram bot: commands, buttons and the front ends that carry them.
//!
//! Handlers take a [`Sender`] and an [`Input`] and return [`reply::Output`]s;
//! they never know whether Telegram ([`telegram`]) or the demo's console
//! carries the conversation.
//!
//! - [`cmd`]: one file per command, and the enum that dispatches them;
//! - [`Dispatcher`]: the [`ChatHandler`] of every front end (rate limit,
//!   group chats, registration, roles, then the command);
//! - [`start`]: the bot inside `serve` (long polling under a lease, or a
//!   webhook), configured by [`BotSettings`];
//! - [`run_pending_expiry`]: removes servers whose code was never used.

pub mod args;
pub mod callback;
pub mod cmd;
pub mod console;
mod dispatch;
mod expiry;
pub mod format;
pub mod html;
pub mod reply;
mod runtime;
mod settings;
pub mod telegram;

pub use dispatch::{Dispatcher, UserHook};
pub use expiry::{EXPIRY_LEASE, expire_pending_servers, run_pending_expiry};
pub use runtime::{BotError, RunningBot, start, start_with};
pub use settings::{BotSettings, TelegramSettings, WebhookSettings};

/// Who sent an update, as Telegram vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The Telegram user id (also our `users.user_id`).
    pub user_id: i64,
    pub username: Option<String>,
    /// First and last name, for greetings.
    pub display_name: String,
    /// Whether the update came from a private chat with the bot. Server
    /// management happens only there: in a group every member would see
    /// install codes and could press the buttons.
    pub private_chat: bool,
}

/// What the user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A text message (a command or anything else).
    Text(String),
    /// A button press with its raw, untrusted callback data.
    Button(String),
}

/// Something that answers users; implemented by the command dispatcher and
/// driven by each front end.
pub trait ChatHandler: Send + Sync + 'static {
    fn handle(
        &self,
        from: &Sender,
        input: Input,
    ) -> impl std::future::Future<Output = Vec<reply::Output>> + Send;

    /// Telegram said the user cannot be reached (blocked the bot, deleted
    /// the account): stop queueing messages for them.
    fn unreachable(&self, user_id: i64) -> impl std::future::Future<Output = ()> + Send;
}
