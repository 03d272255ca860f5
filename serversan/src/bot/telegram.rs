//! The Telegram front end: long polling (or webhook updates) in, Bot API
//! calls out, with Telegram's error rules applied.
//!
//! - 429 waits exactly `retry_after`.
//! - 5xx, network and malformed answers retry with backoff (about 1 s,
//!   doubling, capped at 30 s by default).
//! - A permanent refusal (403 blocked, 400 chat not found or bad request)
//!   drops that one message with a log line; it never blocks anything else.
//!
//! Updates from one chat are handled in order by that chat's worker; chats
//! do not wait for each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{
    BotCommand, CallbackQueryId, ChatId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile,
    InputMedia, InputMediaPhoto, MessageId, ParseMode, UpdateKind,
};
use teloxide::{ApiError, RequestError};
use tokio::sync::mpsc;

use super::html::{MESSAGE_LIMIT, split_blocks};
use super::reply::{Keyboard, Output, Photo};
use super::{ChatHandler, Input, Sender};

/// Timings of the Telegram client; every one is a setting so tests run fast.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    /// Base URL of the Bot API (`https://api.telegram.org` or a local one).
    pub api_url: String,
    pub token: String,
    /// How long one getUpdates call waits for updates.
    pub poll_timeout: Duration,
    /// First delay after a 5xx or network error; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long a reply is retried before it is given up with a log line.
    pub give_up_after: Duration,
}

/// Why a Bot API call finally failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Telegram refused for good (blocked, chat not found, bad request).
    #[error("Telegram refused the request: {0}")]
    Refused(String),
    /// Transient failures went on for longer than the give-up time.
    #[error("Telegram kept failing: {0}")]
    GaveUp(String),
}

impl SendError {
    /// Whether the user can no longer be reached (blocked the bot, deleted).
    pub fn user_unreachable(&self) -> bool {
        matches!(self, SendError::Refused(d) if d.starts_with("Forbidden") || d.contains("chat not found"))
    }
}

/// How to react to one failed call.
enum Verdict {
    Wait(Duration),
    Backoff,
    Permanent(String),
}

fn classify(err: &RequestError) -> Verdict {
    match err {
        RequestError::RetryAfter(s) => Verdict::Wait(s.duration()),
        RequestError::Network(_) | RequestError::InvalidJson { .. } | RequestError::Io(_) => {
            Verdict::Backoff
        }
        RequestError::MigrateToChatId(_) => Verdict::Permanent(err.to_string()),
        RequestError::Api(api) => match api {
            // Telegram's 5xx answers carry descriptions outside the known
            // 4xx set ("Internal Server Error", "Bad Gateway", ...).
            ApiError::Unknown(d)
                if !(d.starts_with("Bad Request")
                    || d.starts_with("Forbidden")
                    || d.starts_with("Unauthorized")
                    || d.starts_with("Not Found")) =>
            {
                Verdict::Backoff
            }
            other => Verdict::Permanent(describe_api_error(other)),
        },
    }
}

fn describe_api_error(e: &ApiError) -> String {
    match e {
        ApiError::Unknown(d) => d.clone(),
        other => other.to_string(),
    }
}

/// A Bot API client that applies Telegram's retry rules to every call.
#[derive(Clone)]
pub struct TelegramClient {
    bot: Bot,
    settings: Arc<TelegramSettings>,
}

impl TelegramClient {
    pub fn new(settings: TelegramSettings) -> Result<Self, String> {
        let url = reqwest_url(&settings.api_url)?;
        let client = teloxide::net::default_reqwest_settings()
            .timeout(settings.poll_timeout + Duration::from_secs(15))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let bot = Bot::with_client(settings.token.clone(), client).set_api_url(url);
        Ok(Self {
            bot,
            settings: Arc::new(settings),
        })
    }

    pub fn settings(&self) -> &TelegramSettings {
        &self.settings
    }

    /// Runs `call` until it succeeds, Telegram refuses for good, or the
    /// give-up time passes.
    pub async fn retrying<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, SendError>
    where
        F: FnMut(Bot) -> Fut,
        Fut: std::future::Future<Output = Result<T, RequestError>>,
    {
        let started = tokio::time::Instant::now();
        let mut backoff = self.settings.backoff_initial;
        loop {
            let err = match call(self.bot.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let wait = match classify(&err) {
                Verdict::Permanent(description) => {
                    tracing::warn!(call = what, error = %description, "Telegram refused; dropping");
                    return Err(SendError::Refused(description));
                }
                Verdict::Wait(d) => {
                    tracing::info!(
                        call = what,
                        retry_after = d.as_secs(),
                        "Telegram asks to wait"
                    );
                    d
                }
                Verdict::Backoff => {
                    let d = backoff;
                    backoff = (backoff * 2).min(self.settings.backoff_max);
                    tracing::warn!(call = what, error = %redact(&err), retry_in_ms = d.as_millis() as u64, "Telegram call failed; retrying");
                    d
                }
            };
            if started.elapsed() + wait > self.settings.give_up_after {
                tracing::error!(call = what, "giving up on a Telegram call");
                return Err(SendError::GaveUp(redact(&err)));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Registers the command list shown in Telegram's menu.
    pub async fn set_commands(&self, commands: &[(&str, &str)]) -> Result<(), SendError> {
        let list: Vec<BotCommand> = commands
            .iter()
            .map(|(c, d)| BotCommand::new(*c, *d))
            .collect();
        self.retrying("setMyCommands", |bot| {
            let list = list.clone();
            async move { bot.set_my_commands(list).await.map(|_| ()) }
        })
        .await
    }

    /// Shows `outputs` in `chat`. `origin` is the message a button was
    /// pressed on (edits apply to it) and `callback_id` the press to answer.
    pub async fn deliver(
        &self,
        chat: i64,
        origin: Option<i32>,
        callback_id: Option<&str>,
        outputs: Vec<Output>,
    ) -> Result<(), SendError> {
        let chat_id = ChatId(chat);
        let mut notice: Option<String> = None;
        let mut result = Ok(());
        for out in outputs {
            let r = match out {
                Output::Send(reply) => {
                    let parts = split_blocks(&reply.blocks, MESSAGE_LIMIT);
                    let last = parts.len().saturating_sub(1);
                    let mut r = Ok(());
                    for (i, text) in parts.into_iter().enumerate() {
                        let kb = (i == last).then(|| markup(&reply.keyboard)).flatten();
                        r = self.send_text(chat_id, text, kb).await;
                        if r.is_err() {
                            break;
                        }
                    }
                    r
                }
                Output::Edit(reply) => match origin {
                    Some(mid) => {
                        let text = split_blocks(&reply.blocks, MESSAGE_LIMIT)
                            .into_iter()
                            .next()
                            .unwrap_or_default();
                        self.edit_text(chat_id, MessageId(mid), text, markup(&reply.keyboard))
                            .await
                    }
                    None => {
                        self.send_text(chat_id, reply.text(), markup(&reply.keyboard))
                            .await
                    }
                },
                Output::Photo(photo) => self.send_photo(chat_id, photo).await,
                Output::EditPhoto(photo) => match origin {
                    Some(mid) => self.edit_photo(chat_id, MessageId(mid), photo).await,
                    None => self.send_photo(chat_id, photo).await,
                },
                Output::Notice(text) => {
                    notice = Some(text);
                    Ok(())
                }
            };
            if let Err(e) = r {
                result = Err(e);
                if result.as_ref().is_err_and(SendError::user_unreachable) {
                    break;
                }
            }
        }
        if let Some(id) = callback_id {
            // Always answer a press, or the client shows a spinner for long.
            let id = id.to_owned();
            let _ = self
                .retrying("answerCallbackQuery", |bot| {
                    let (id, notice) = (id.clone(), notice.clone());
                    async move {
                        let mut req = bot.answer_callback_query(CallbackQueryId(id));
                        if let Some(text) = notice {
                            req = req.text(text);
                        }
                        req.await.map(|_| ())
                    }
                })
                .await;
        }
        result
    }

    async fn send_text(
        &self,
        chat: ChatId,
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<(), SendError> {
        self.retrying("sendMessage", |bot| {
            let (text, keyboard) = (text.clone(), keyboard.clone());
            async move {
                let mut req = bot.send_message(chat, text).parse_mode(ParseMode::Html);
                if let Some(kb) = keyboard {
                    req = req.reply_markup(kb);
                }
                req.await.map(|_| ())
            }
        })
        .await
    }

    async fn edit_text(
        &self,
        chat: ChatId,
        message: MessageId,
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<(), SendError> {
        let r = self
            .retrying("editMessageText", |bot| {
                let (text, keyboard) = (text.clone(), keyboard.clone());
                async move {
                    let mut req = bot
                        .edit_message_text(chat, message, text)
                        .parse_mode(ParseMode::Html);
                    if let Some(kb) = keyboard {
                        req = req.reply_markup(kb);
                    }
                    req.await.map(|_| ())
                }
            })
            .await;
        match r {
            // A refresh with nothing new is not an error for the user.
            Err(SendError::Refused(d)) if d.contains("message is not modified") => Ok(()),
            other => other,
        }
    }

    async fn send_photo(&self, chat: ChatId, photo: Photo) -> Result<(), SendError> {
        let keyboard = markup(&photo.keyboard);
        self.retrying("sendPhoto", |bot| {
            let file = InputFile::memory(photo.png.clone()).file_name(photo.file_name.clone());
            let (caption, keyboard) = (photo.caption.clone(), keyboard.clone());
            async move {
                let mut req = bot
                    .send_photo(chat, file)
                    .caption(caption)
                    .parse_mode(ParseMode::Html);
                if let Some(kb) = keyboard {
                    req = req.reply_markup(kb);
                }
                req.await.map(|_| ())
            }
        })
        .await
    }

    async fn edit_photo(
        &self,
        chat: ChatId,
        message: MessageId,
        photo: Photo,
    ) -> Result<(), SendError> {
        let keyboard = markup(&photo.keyboard);
        let r = self
            .retrying("editMessageMedia", |bot| {
                let file = InputFile::memory(photo.png.clone()).file_name(photo.file_name.clone());
                let media = InputMedia::Photo(
                    InputMediaPhoto::new(file)
                        .caption(photo.caption.clone())
                        .parse_mode(ParseMode::Html),
                );
                let keyboard = keyboard.clone();
                async move {
                    let mut req = bot.edit_message_media(chat, message, media);
                    if let Some(kb) = keyboard {
                        req = req.reply_markup(kb);
                    }
                    req.await.map(|_| ())
                }
            })
            .await;
        match r {
            Err(SendError::Refused(d)) if d.contains("message is not modified") => Ok(()),
            other => other,
        }
    }
}

fn markup(keyboard: &Keyboard) -> Option<InlineKeyboardMarkup> {
    if keyboard.is_empty() {
        return None;
    }
    Some(InlineKeyboardMarkup::new(keyboard.iter().map(|row| {
        row.iter()
            .map(|b| InlineKeyboardButton::callback(b.label.clone(), b.action.encode()))
            .collect::<Vec<_>>()
    })))
}

fn reqwest_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("bad Telegram API URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "bad Telegram API URL: scheme {other} is not http(s)"
        )),
    }
}

/// An error's text without the bot token (reqwest errors include the URL,
/// and the token is part of every Bot API URL).
fn redact(err: &RequestError) -> String {
    let text = err.to_string();
    match text.find("/bot") {
        Some(i) => {
            let rest = &text[i + 4..];
            let end = rest.find('/').map_or(rest.len(), |j| j);
            format!("{}/bot<token>{}", &text[..i], &rest[end..])
        }
        None => text,
    }
}

/// One incoming update, reduced to what a handler needs.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub chat: i64,
    pub from: Sender,
    pub input: Input,
    /// Message a button was pressed on.
    pub origin: Option<i32>,
    pub callback_id: Option<String>,
}

/// Turns a Telegram update into an [`Incoming`]; other kinds are ignored.
pub fn incoming(update: &Update) -> Option<Incoming> {
    match &update.kind {
        UpdateKind::Message(msg) => {
            let user = msg.from.as_ref()?;
            if user.is_bot {
                return None;
            }
            let text = msg.text()?;
            Some(Incoming {
                chat: msg.chat.id.0,
                from: sender(user, msg.chat.is_private()),
                input: Input::Text(text.to_owned()),
                origin: None,
                callback_id: None,
            })
        }
        UpdateKind::CallbackQuery(q) => {
            let message = q.message.as_ref()?;
            Some(Incoming {
                chat: message.chat().id.0,
                from: sender(&q.from, message.chat().is_private()),
                input: Input::Button(q.data.clone().unwrap_or_default()),
                origin: Some(message.id().0),
                callback_id: Some(q.id.0.clone()),
            })
        }
        _ => None,
    }
}

fn sender(user: &teloxide::types::User, private_chat: bool) -> Sender {
    let mut name = user.first_name.clone();
    if let Some(last) = &user.last_name {
        name.push(' ');
        name.push_str(last);
    }
    Sender {
        user_id: i64::try_from(user.id.0).unwrap_or(i64::MAX),
        username: user.username.clone(),
        display_name: name,
        private_chat,
    }
}

/// Routes updates to one worker task per chat so each chat's updates are
/// handled in order and a slow chat never holds up the others.
pub struct ChatRouter<H: ChatHandler> {
    client: TelegramClient,
    handler: Arc<H>,
    workers: Mutex<HashMap<i64, mpsc::UnboundedSender<Incoming>>>,
}

impl<H: ChatHandler> ChatRouter<H> {
    pub fn new(client: TelegramClient, handler: Arc<H>) -> Arc<Self> {
        Arc::new(Self {
            client,
            handler,
            workers: Mutex::new(HashMap::new()),
        })
    }

    pub fn dispatch(self: &Arc<Self>, item: Incoming) {
        let chat = item.chat;
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let item = match workers.get(&chat) {
            Some(tx) => match tx.send(item) {
                Ok(()) => return,
                Err(mpsc::error::SendError(item)) => item,
            },
            None => item,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(item);
        workers.insert(chat, tx);
        let this = Arc::clone(self);
        tokio::spawn(async move { this.work(chat, rx).await });
    }

    async fn work(self: Arc<Self>, chat: i64, mut rx: mpsc::UnboundedReceiver<Incoming>) {
        const IDLE: Duration = Duration::from_secs(60);
        loop {
            let item = match tokio::time::timeout(IDLE, rx.recv()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
                    // Retire only if nothing arrived meanwhile.
                    match rx.try_recv() {
                        Ok(item) => {
                            drop(workers);
                            self.handle(item).await;
                            continue;
                        }
                        Err(_) => {
                            workers.remove(&chat);
                            break;
                        }
                    }
                }
            };
            self.handle(item).await;
        }
    }

    async fn handle(&self, item: Incoming) {
        let outputs = self.handler.handle(&item.from, item.input.clone()).await;
        if let Err(e) = self
            .client
            .deliver(item.chat, item.origin, item.callback_id.as_deref(), outputs)
            .await
            && e.user_unreachable()
        {
            self.handler.unreachable(item.from.user_id).await;
        }
    }
}

/// Long-polls getUpdates until `shutdown` resolves, dispatching every update.
/// Errors are retried (409 from a second poller included, with backoff), so
/// the loop never dies on one.
pub async fn poll<H: ChatHandler>(
    router: Arc<ChatRouter<H>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let client = router.client.clone();
    let timeout = client
        .settings
        .poll_timeout
        .as_secs()
        .min(u64::from(u32::MAX)) as u32;
    let mut offset: i32 = 0;
    tokio::pin!(shutdown);
    loop {
        let fetch = client.retrying("getUpdates", |bot| async move {
            bot.get_updates().offset(offset).timeout(timeout).await
        });
        let updates = tokio::select! {
            _ = &mut shutdown => return,
            r = fetch => r,
        };
        match updates {
            Ok(updates) => {
                for update in updates {
                    offset = offset.max(update.id.0 as i32 + 1);
                    if let Some(item) = incoming(&update) {
                        router.dispatch(item);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "getUpdates failed; polling again shortly");
                tokio::time::sleep(client.settings.backoff_initial).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errors_like_telegram_documents() {
        let wait = classify(&RequestError::RetryAfter(
            teloxide::types::Seconds::from_seconds(3),
        ));
        assert!(matches!(wait, Verdict::Wait(d) if d == Duration::from_secs(3)));
        let five_hundred = RequestError::Api(ApiError::Unknown("Internal Server Error".into()));
        assert!(matches!(classify(&five_hundred), Verdict::Backoff));
        assert!(matches!(
            classify(&RequestError::Api(ApiError::BotBlocked)),
            Verdict::Permanent(_)
        ));
        assert!(matches!(
            classify(&RequestError::Api(ApiError::ChatNotFound)),
            Verdict::Permanent(_)
        ));
        let bad = RequestError::Api(ApiError::Unknown("Bad Request: something".into()));
        assert!(matches!(classify(&bad), Verdict::Permanent(_)));
    }

    #[test]
    fn unreachable_users_are_recognised() {
        assert!(
            SendError::Refused("Forbidden: bot was blocked by the user".into()).user_unreachable()
        );
        assert!(SendError::Refused("Bad Request: chat not found".into()).user_unreachable());
        assert!(!SendError::Refused("Bad Request: can't parse entities".into()).user_unreachable());
        assert!(!SendError::GaveUp("x".into()).user_unreachable());
    }
}
