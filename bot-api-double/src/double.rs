//! [`BotApiDouble`]: starts the server and is the test's remote control.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::entity::{Entity, EntityKind, utf16_len};
use crate::model::{
    BotCommand, CallRecord, CallbackAnswer, CallbackPress, Failure, Injected, MessageVersion,
    SentMessage, TestGroup, TestUser,
};
use crate::options::Options;
use crate::world::{CallbackQuery, Chat, Sender, Shared, World, to_sent};
use crate::{http, webhook};

/// A refusal of a test control (not of a Bot API call).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("chat {chat_id} has no message {message_id}")]
    MessageNotFound { chat_id: i64, message_id: i64 },
    #[error(
        "message {message_id} in chat {chat_id} has no callback button labelled {label:?}; \
         its buttons are {available:?}"
    )]
    ButtonNotFound {
        chat_id: i64,
        message_id: i64,
        label: String,
        available: Vec<String>,
    },
}

/// A waiting helper gave up.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}; {seen}")]
pub struct WaitError {
    pub what: String,
    pub waited: Duration,
    /// What the double had instead, to make the test failure readable.
    pub seen: String,
}

/// A running Bot API double. Dropping it stops the server and closes every
/// connection.
pub struct BotApiDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for BotApiDouble {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A random token of Telegram's shape: `<bot id>:<35 characters>`.
fn random_token(bot_id: i64) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut bytes = [0u8; 35];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = nanos.to_le_bytes()[i % 4].wrapping_add(u8::try_from(i).unwrap_or(0));
        }
    }
    let secret: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 64)]))
        .collect();
    format!("{bot_id}:{secret}")
}

/// The `/command` (with an optional `@bot` suffix) a text starts with, as
/// Telegram detects it: its length in bytes.
fn leading_command(text: &str) -> Option<usize> {
    let rest = text.strip_prefix('/')?;
    let word = |s: &str| {
        s.bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count()
    };
    let name = word(rest);
    if !(1..=64).contains(&name) {
        return None;
    }
    let mut end = 1 + name;
    if let Some(after) = text[end..].strip_prefix('@') {
        let bot = word(after);
        if (3..=32).contains(&bot) {
            end += 1 + bot;
        }
    }
    let next = text[end..].chars().next();
    let boundary =
        next.is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '_' | '/' | '<' | '>')));
    boundary.then_some(end)
}

impl BotApiDouble {
    /// Starts a double with default [`Options`] on `127.0.0.1:0`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts a double with `options`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start_with(options: Options) -> Self {
        match Self::try_start_with(options).await {
            Ok(double) => double,
            Err(e) => panic!("the Bot API double cannot listen on 127.0.0.1: {e}"),
        }
    }

    /// Starts a double with `options`, reporting a bind failure.
    pub async fn try_start_with(options: Options) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let token = options
            .token
            .clone()
            .unwrap_or_else(|| random_token(options.bot_id));
        let shared = Arc::new(Shared::new(options, token));
        let tasks = vec![
            tokio::spawn(http::serve(listener, shared.clone())),
            tokio::spawn(webhook::deliver(shared.clone())),
        ];
        Ok(Self {
            shared,
            addr,
            tasks,
        })
    }

    /// The base URL to give the bot (e.g. as `SERVERSAN_TELEGRAM_API_URL`);
    /// requests go to `{api_url}/bot{token}/{method}`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The only token the double accepts; others get 401 Unauthorized.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    // ---- injecting what users do ----

    /// A user sends `text` to the bot in their private chat. The chat
    /// becomes known to the bot; a user who blocked the bot unblocks it by
    /// writing (as restarting the bot does in Telegram).
    pub fn send_text(&self, user: &TestUser, text: &str) -> Injected {
        let injected = {
            let mut world = self.shared.lock();
            world.users.insert(user.id, user.clone());
            world
                .chats
                .insert(user.id, Chat::Private { user_id: user.id });
            world.blocked.remove(&user.id);
            self.push_message(&mut world, user.id, user.id, text, true)
        };
        self.announce();
        injected
    }

    /// A user writes `text` in a group the bot is in. In privacy mode (the
    /// default) Telegram delivers only commands and mentions of the bot;
    /// the group becomes known either way.
    pub fn send_group_text(&self, group: &TestGroup, user: &TestUser, text: &str) -> Injected {
        let delivered = !self.shared.options.privacy_mode || self.addresses_bot(text);
        let injected = {
            let mut world = self.shared.lock();
            world.users.insert(user.id, user.clone());
            world.chats.insert(
                group.id,
                Chat::Group {
                    title: group.title.clone(),
                    supergroup: group.supergroup,
                },
            );
            self.push_message(&mut world, group.id, user.id, text, delivered)
        };
        self.announce();
        injected
    }

    fn addresses_bot(&self, text: &str) -> bool {
        let username = &self.shared.options.bot_username;
        match leading_command(text) {
            Some(end) => text[..end]
                .split_once('@')
                .is_none_or(|(_, to)| to.eq_ignore_ascii_case(username)),
            None => text
                .to_lowercase()
                .contains(&format!("@{}", username.to_lowercase())),
        }
    }

    fn push_message(
        &self,
        world: &mut World,
        chat_id: i64,
        user_id: i64,
        text: &str,
        delivered: bool,
    ) -> Injected {
        let entities = leading_command(text)
            .map(|end| Entity {
                kind: EntityKind::BotCommand,
                offset: 0,
                length: utf16_len(&text[..end]),
            })
            .into_iter()
            .collect();
        let version = MessageVersion {
            text: text.to_owned(),
            source: text.to_owned(),
            parse_mode: None,
            entities,
            reply_markup: None,
            photo: None,
            method: "user",
            at: Instant::now(),
        };
        let message_id = world.add_message(chat_id, Sender::User(user_id), version);
        let update_id = if delivered {
            let json = world
                .message(chat_id, message_id)
                .map(|m| world.message_json(m, &self.shared.bot_user_json()))
                .unwrap_or(Value::Null);
            let id = world.push_update("message", json);
            world.wake_poller();
            id
        } else {
            None
        };
        world.last_activity = Instant::now();
        Injected {
            chat_id,
            message_id,
            update_id,
        }
    }

    /// Wakes the webhook sender and the waiting helpers.
    fn announce(&self) {
        self.shared.webhook_wake.notify_one();
        self.shared.touch();
    }

    /// A user presses a callback button with `data` under a message. The
    /// data is not checked against the message's keyboard, so a test can
    /// forge presses as a hostile client can.
    pub fn press_button(
        &self,
        user: &TestUser,
        chat_id: i64,
        message_id: i64,
        data: &str,
    ) -> Result<CallbackPress, ControlError> {
        let press = {
            let mut world = self.shared.lock();
            let message = world
                .message(chat_id, message_id)
                .map(|m| world.message_json(m, &self.shared.bot_user_json()))
                .ok_or(ControlError::MessageNotFound {
                    chat_id,
                    message_id,
                })?;
            world.users.insert(user.id, user.clone());
            let id = world.new_callback_id();
            let payload = json!({
                "id": id,
                "from": user.to_json(),
                "message": message,
                "chat_instance": format!("{}", chat_id.unsigned_abs().wrapping_mul(2_654_435_761)),
                "data": data,
            });
            let update_id = world.push_update("callback_query", payload);
            world.callbacks.push(CallbackQuery {
                id: id.clone(),
                created: Instant::now(),
                answer: None,
            });
            world.wake_poller();
            CallbackPress {
                query_id: id,
                update_id,
            }
        };
        self.announce();
        Ok(press)
    }

    /// A user presses the callback button labelled `label` on the bot's
    /// message, as shown now.
    pub fn click_button(
        &self,
        user: &TestUser,
        chat_id: i64,
        message_id: i64,
        label: &str,
    ) -> Result<CallbackPress, ControlError> {
        let message = self
            .message(chat_id, message_id)
            .filter(|m| !m.deleted)
            .ok_or(ControlError::MessageNotFound {
                chat_id,
                message_id,
            })?;
        let data = message
            .button(label)
            .and_then(|b| b.callback_data())
            .map(str::to_owned);
        match data {
            Some(data) => self.press_button(user, chat_id, message_id, &data),
            None => Err(ControlError::ButtonNotFound {
                chat_id,
                message_id,
                label: label.to_owned(),
                available: message.buttons().iter().map(|b| b.text.clone()).collect(),
            }),
        }
    }

    /// From now on, sending to this user fails with 403 "bot was blocked by
    /// the user".
    pub fn user_blocks_bot(&self, user_id: i64) {
        self.shared.lock().blocked.insert(user_id);
        self.shared.touch();
    }

    pub fn user_unblocks_bot(&self, user_id: i64) {
        self.shared.lock().blocked.remove(&user_id);
        self.shared.touch();
    }

    /// The next `n` calls of `method` (any spelling) fail with `failure`,
    /// before anything else is checked or changed.
    pub fn fail_next(&self, method: &str, n: usize, failure: Failure) {
        let mut world = self.shared.lock();
        let queue = world
            .failures
            .entry(method.to_ascii_lowercase())
            .or_default();
        queue.extend(std::iter::repeat_n(failure, n));
    }

    // ---- inspecting what the bot did ----

    /// The bot's messages in a chat, oldest first (deleted ones included,
    /// flagged).
    pub fn messages(&self, chat_id: i64) -> Vec<SentMessage> {
        self.shared.lock().sent_messages(chat_id)
    }

    /// One of the bot's messages.
    pub fn message(&self, chat_id: i64, message_id: i64) -> Option<SentMessage> {
        let world = self.shared.lock();
        world
            .messages
            .get(&(chat_id, message_id))
            .filter(|m| m.sender == Sender::Bot)
            .map(to_sent)
    }

    /// The bot's latest message in a chat.
    pub fn last_message(&self, chat_id: i64) -> Option<SentMessage> {
        self.messages(chat_id).pop()
    }

    /// The bot's photo messages in a chat, oldest first.
    pub fn photos(&self, chat_id: i64) -> Vec<SentMessage> {
        let mut messages = self.messages(chat_id);
        messages.retain(|m| m.photo.is_some());
        messages
    }

    /// Every answer to a callback query, in order.
    pub fn callback_answers(&self) -> Vec<CallbackAnswer> {
        let world = self.shared.lock();
        let mut answers: Vec<CallbackAnswer> = world
            .callbacks
            .iter()
            .filter_map(|q| q.answer.clone())
            .collect();
        answers.sort_by_key(|a| a.at);
        answers
    }

    pub fn callback_answer(&self, query_id: &str) -> Option<CallbackAnswer> {
        let world = self.shared.lock();
        world
            .callbacks
            .iter()
            .find(|q| q.id == query_id)
            .and_then(|q| q.answer.clone())
    }

    /// Commands registered for the default scope and all languages.
    pub fn commands(&self) -> Vec<BotCommand> {
        self.commands_for(&json!({ "type": "default" }), "")
    }

    /// Commands registered for a scope (`{"type":"all_private_chats"}`…)
    /// and language code (`""` for all).
    pub fn commands_for(&self, scope: &Value, language_code: &str) -> Vec<BotCommand> {
        let key = (scope.to_string(), language_code.to_owned());
        self.shared
            .lock()
            .commands
            .get(&key)
            .cloned()
            .unwrap_or_default()
    }

    /// Chat actions (`typing`…) the bot sent to a chat, in order.
    pub fn chat_actions(&self, chat_id: i64) -> Vec<String> {
        let world = self.shared.lock();
        world
            .chat_actions
            .iter()
            .filter(|(chat, _)| *chat == chat_id)
            .map(|(_, action)| action.clone())
            .collect()
    }

    /// Every request the bot made (with a valid token), in arrival order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.lock().calls.clone()
    }

    /// Requests of one method (any spelling), in arrival order.
    pub fn calls_to(&self, method: &str) -> Vec<CallRecord> {
        let mut calls = self.calls();
        calls.retain(|c| c.method.eq_ignore_ascii_case(method));
        calls
    }

    /// Updates not yet confirmed by getUpdates or accepted by the webhook.
    pub fn pending_updates(&self) -> usize {
        self.shared.lock().updates.len()
    }

    pub fn webhook_url(&self) -> Option<String> {
        self.shared.lock().webhook.url.clone()
    }

    // ---- waiting ----

    async fn wait<T>(
        &self,
        what: impl Fn() -> String,
        seen: impl Fn(&World) -> String,
        mut check: impl FnMut(&World) -> Option<T>,
    ) -> Result<T, WaitError> {
        let timeout = self.shared.options.wait_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.subscribe();
        loop {
            if let Some(found) = check(&self.shared.lock()) {
                return Ok(found);
            }
            let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                let world = self.shared.lock();
                if let Some(found) = check(&world) {
                    return Ok(found);
                }
                return Err(WaitError {
                    what: what(),
                    waited: timeout,
                    seen: seen(&world),
                });
            }
        }
    }

    /// Waits until one of the bot's messages in the chat, in its current
    /// state, satisfies `matches`.
    pub async fn wait_for_message(
        &self,
        chat_id: i64,
        matches: impl Fn(&SentMessage) -> bool,
    ) -> Result<SentMessage, WaitError> {
        self.wait(
            || format!("a matching message in chat {chat_id}"),
            |w| describe_chat(w, chat_id),
            |w| w.sent_messages(chat_id).into_iter().find(|m| matches(m)),
        )
        .await
    }

    /// Waits until the bot has sent at least `count` messages to the chat.
    pub async fn wait_for_message_count(
        &self,
        chat_id: i64,
        count: usize,
    ) -> Result<Vec<SentMessage>, WaitError> {
        self.wait(
            || format!("{count} messages in chat {chat_id}"),
            |w| describe_chat(w, chat_id),
            |w| {
                let messages = w.sent_messages(chat_id);
                (messages.len() >= count).then_some(messages)
            },
        )
        .await
    }

    /// Waits until the bot answers the callback query.
    pub async fn wait_for_callback_answer(
        &self,
        query_id: &str,
    ) -> Result<CallbackAnswer, WaitError> {
        self.wait(
            || format!("an answer to callback query {query_id}"),
            |w| {
                let answered = w.callbacks.iter().filter(|q| q.answer.is_some()).count();
                format!(
                    "{answered} of {} callback queries answered",
                    w.callbacks.len()
                )
            },
            |w| {
                w.callbacks
                    .iter()
                    .find(|q| q.id == query_id)
                    .and_then(|q| q.answer.clone())
            },
        )
        .await
    }

    /// Waits until `method` was called at least `count` times and all those
    /// calls were answered.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        count: usize,
    ) -> Result<Vec<CallRecord>, WaitError> {
        let of_method = |w: &World| -> Vec<CallRecord> {
            w.calls
                .iter()
                .filter(|c| c.method.eq_ignore_ascii_case(method))
                .cloned()
                .collect()
        };
        self.wait(
            || format!("{count} answered calls to {method}"),
            |w| {
                format!(
                    "calls: {:?}",
                    w.calls.iter().map(|c| &c.method).collect::<Vec<_>>()
                )
            },
            |w| {
                let calls = of_method(w);
                let answered = calls.iter().filter(|c| c.status.is_some()).count();
                (calls.len() >= count && answered >= count).then_some(calls)
            },
        )
        .await
    }

    /// Waits until the bot has taken every update (confirmed by getUpdates
    /// or accepted by the webhook).
    pub async fn wait_for_updates_consumed(&self) -> Result<(), WaitError> {
        self.wait(
            || "every update to be consumed".to_owned(),
            |w| format!("{} updates pending", w.updates.len()),
            |w| w.updates.is_empty().then_some(()),
        )
        .await
    }

    /// Waits until the bot looks done: every update consumed, no request in
    /// progress (long polls aside) and nothing happening for `quiet`. A
    /// heuristic for "nothing more will come"; prefer waiting for a
    /// specific message when there is one.
    pub async fn wait_until_idle(&self, quiet: Duration) -> Result<(), WaitError> {
        let timeout = self.shared.options.wait_timeout;
        let deadline = Instant::now() + timeout;
        let step = (quiet / 4).clamp(Duration::from_millis(1), Duration::from_millis(20));
        loop {
            let state = {
                let world = self.shared.lock();
                let idle = world.in_flight == 0
                    && world.updates.is_empty()
                    && world.last_activity.elapsed() >= quiet;
                (!idle).then(|| {
                    format!(
                        "{} requests in progress, {} updates pending, last activity {:?} ago",
                        world.in_flight,
                        world.updates.len(),
                        world.last_activity.elapsed()
                    )
                })
            };
            let Some(seen) = state else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(WaitError {
                    what: format!("the bot to be idle for {quiet:?}"),
                    waited: timeout,
                    seen,
                });
            }
            tokio::time::sleep(step).await;
        }
    }
}

/// The bot's messages in a chat, for a wait's failure message.
fn describe_chat(world: &World, chat_id: i64) -> String {
    let messages = world.sent_messages(chat_id);
    if messages.is_empty() {
        return format!("the bot sent nothing to chat {chat_id}");
    }
    let lines: Vec<String> = messages
        .iter()
        .map(|m| {
            let text: String = m.text.chars().take(200).collect();
            let buttons: Vec<&str> = m.buttons().iter().map(|b| b.text.as_str()).collect();
            format!("#{} {text:?} buttons {buttons:?}", m.message_id)
        })
        .collect();
    format!("chat {chat_id} has: {}", lines.join("; "))
}
