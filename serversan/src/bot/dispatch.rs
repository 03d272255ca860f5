//! The [`ChatHandler`] every front end drives: rate limit, chat kind,
//! registration, role, then the command or button.
//!
//! The order is the point: a flood is answered from memory before anything
//! touches the database, group chats are answered without it, and only a
//! registered user who may use the bot reaches a command.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::args::parse_command_line;
use super::callback::Callback;
use super::cmd::{self, Command, CommandError, Context};
use super::reply::{Output, Reply};
use super::settings::BotSettings;
use super::{ChatHandler, Input, Sender};
use crate::storage::{RoleName, Storage, User, UserProfile, unix_now};

/// How often the rate limiters forget users who went quiet.
const PRUNE_EVERY: u64 = 4096;

const FLOOD: &str = "You are sending commands faster than I can answer. Please wait a moment.";
const PRIVATE_ONLY: &str = "I manage servers only in a private chat, where install codes \
                            and buttons stay yours. Open a chat with me and send /start.";
const BANNED: &str = "Sorry, you cannot use this bot. If you think this is a mistake, ask its \
                      administrator.";
const OLD_BUTTON: &str = "This button no longer works. Send the command again.";

/// Answers every user, whichever front end carries the chat.
pub struct Dispatcher {
    storage: Storage,
    settings: Arc<BotSettings>,
    /// Commands and presses per user.
    limiter: DefaultKeyedRateLimiter<i64>,
    /// One "slow down" answer per user per minute: a flood costs no
    /// messages either.
    warnings: DefaultKeyedRateLimiter<i64>,
    checks: AtomicU64,
    /// The bot's @username, so `/cmd@OtherBot` in a group is left alone.
    bot_username: OnceLock<String>,
    on_contact: Option<UserHook>,
    on_unreachable: Option<UserHook>,
}

/// Told a Telegram user id; must return quickly (spawn for slow work).
pub type UserHook = Arc<dyn Fn(i64) + Send + Sync>;

impl Dispatcher {
    pub fn new(storage: Storage, settings: Arc<BotSettings>) -> Self {
        let per_minute = NonZeroU32::new(settings.commands_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.command_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            storage,
            settings,
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            warnings: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
            checks: AtomicU64::new(0),
            bot_username: OnceLock::new(),
            on_contact: None,
            on_unreachable: None,
        }
    }

    /// Called with each user who writes or presses a button in a private
    /// chat, after they are recorded (e.g. to resume their alerts).
    pub fn on_contact(mut self, hook: UserHook) -> Self {
        self.on_contact = Some(hook);
        self
    }

    /// Called when Telegram says a user cannot be reached (they blocked
    /// the bot or deleted their account).
    pub fn on_unreachable(mut self, hook: UserHook) -> Self {
        self.on_unreachable = Some(hook);
        self
    }

    /// Records the bot's @username (from getMe) once known.
    pub fn set_bot_username(&self, name: &str) {
        let _ = self
            .bot_username
            .set(name.trim_start_matches('@').to_owned());
    }

    pub fn settings(&self) -> &BotSettings {
        &self.settings
    }

    pub(super) fn shared_settings(&self) -> Arc<BotSettings> {
        Arc::clone(&self.settings)
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Whether `user` may go on; forgets quiet users now and then.
    fn allowed(&self, user: i64) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.warnings.retain_recent();
        }
        self.limiter.check_key(&user).is_ok()
    }

    async fn answer(&self, from: &Sender, input: Input) -> Vec<Output> {
        if !self.allowed(from.user_id) {
            return match input {
                Input::Button(_) => vec![Output::Notice(FLOOD.to_owned())],
                Input::Text(_) if self.warnings.check_key(&from.user_id).is_ok() => {
                    vec![send(FLOOD)]
                }
                Input::Text(_) => Vec::new(),
            };
        }
        match input {
            Input::Text(text) => self.text(from, &text).await,
            Input::Button(data) => self.button(from, &data).await,
        }
    }

    async fn text(&self, from: &Sender, text: &str) -> Vec<Output> {
        let line = parse_command_line(text, self.bot_username.get().map(String::as_str));
        if !from.private_chat {
            // Groups hear only commands meant for us (privacy mode).
            return match line {
                Some(_) => vec![send(PRIVATE_ONLY)],
                None => Vec::new(),
            };
        }
        let user = match self.register(from).await {
            Ok(Some(user)) => user,
            Ok(None) => return vec![send(BANNED)],
            Err(e) => return vec![Output::Send(e.to_reply())],
        };
        let Some(line) = line else {
            return vec![send("Send /help to see what I can do.")];
        };
        let cx = self.context(&user, from);
        let result = match Command::parse(&line.name, &line.args) {
            Ok(command) => command.apply(&cx).await,
            Err(e) => Err(e),
        };
        result.unwrap_or_else(|e| vec![Output::Send(e.to_reply())])
    }

    async fn button(&self, from: &Sender, data: &str) -> Vec<Output> {
        let Some(callback) = Callback::decode(data) else {
            return vec![Output::Notice(OLD_BUTTON.to_owned())];
        };
        if !from.private_chat {
            return vec![Output::Notice(PRIVATE_ONLY.to_owned())];
        }
        let user = match self.register(from).await {
            Ok(Some(user)) => user,
            Ok(None) => return vec![Output::Notice(BANNED.to_owned())],
            Err(e) => return vec![Output::Notice(e.to_string())],
        };
        let cx = self.context(&user, from);
        match cmd::press(callback, &cx).await {
            Ok(outputs) => outputs,
            Err(e) => {
                if let CommandError::Storage(inner) = &e {
                    tracing::error!(error = %inner, "a bot button failed on storage");
                }
                vec![Output::Notice(e.to_string())]
            }
        }
    }

    fn context<'a>(&'a self, user: &'a User, from: &'a Sender) -> Context<'a> {
        Context {
            storage: &self.storage,
            settings: &self.settings,
            user,
            sender: from,
            now: unix_now(),
        }
    }

    /// Records the user on every contact (new users get the `user` role,
    /// configured administrators the `admin` role). `None` when their role
    /// does not allow using the bot.
    async fn register(&self, from: &Sender) -> Result<Option<User>, CommandError> {
        let profile = UserProfile {
            user_id: from.user_id,
            username: from.username.clone(),
            nickname: Some(from.display_name.clone()).filter(|n| !n.trim().is_empty()),
        };
        let mut user = self.storage.upsert_user(&profile).await?;
        if let Some(hook) = &self.on_contact {
            hook(user.user_id);
        }
        if self.settings.is_admin_by_config(user.user_id) && !user.role.permission.is_admin() {
            self.storage.set_role(user.user_id, RoleName::Admin).await?;
            user = self
                .storage
                .get_user(user.user_id)
                .await?
                .ok_or(CommandError::Gone)?;
            tracing::info!(user = user.user_id, "administrator by configuration");
        }
        Ok(user.role.permission.can_use().then_some(user))
    }
}

fn send(text: &str) -> Output {
    Output::Send(Reply::html(super::html::escape(text)))
}

impl ChatHandler for Dispatcher {
    async fn handle(&self, from: &Sender, input: Input) -> Vec<Output> {
        self.answer(from, input).await
    }

    async fn unreachable(&self, user_id: i64) {
        tracing::info!(
            user = user_id,
            "user cannot be reached (blocked the bot or gone)"
        );
        if let Some(hook) = &self.on_unreachable {
            hook(user_id);
        }
    }
}
