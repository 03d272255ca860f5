//! Bot API calls with Telegram's error rules applied to every one.
//!
//! - 429 waits exactly `parameters.retry_after`.
//! - 5xx, network errors and unreadable answers retry with backoff (about
//!   1 s, doubling, capped at 30 s by default).
//! - Any other refusal (403 blocked, 400 chat not found or bad request) is
//!   permanent: that one call is dropped with a log line.
//!
//! The HTTP layer is our own small reqwest client rather than teloxide's
//! `Bot`: teloxide sleeps a fixed 10 s inside every call that gets a 5xx,
//! which would defeat the backoff above. teloxide still parses updates.
//! The token is part of every Bot API URL, so URLs are never logged and
//! transport errors are stripped of theirs.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::super::html::{MESSAGE_LIMIT, split_blocks, telegram_len};
use super::super::reply::{Keyboard, Output, Photo};
use super::super::settings::TelegramSettings;

/// Telegram's limit on a photo caption and on a callback answer's text.
const CAPTION_LIMIT: usize = 1024;
const NOTICE_LIMIT: usize = 200;

/// Why a Bot API call finally failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Telegram refused for good (blocked, chat not found, bad request).
    #[error("Telegram refused the request ({code}): {description}")]
    Refused { code: u16, description: String },
    /// Transient failures went on for longer than the give-up time.
    #[error("Telegram kept failing: {0}")]
    GaveUp(String),
}

impl SendError {
    /// Whether the user can no longer be reached (blocked the bot, deleted
    /// the account, or the chat is gone).
    pub fn user_unreachable(&self) -> bool {
        match self {
            SendError::Refused { code: 403, .. } => true,
            SendError::Refused { description, .. } => description.contains("chat not found"),
            SendError::GaveUp(_) => false,
        }
    }

    /// The message to edit is too old or gone.
    fn not_editable(&self) -> bool {
        matches!(self, SendError::Refused { code: 400, description }
            if description.contains("message can't be edited")
                || description.contains("message to edit not found"))
    }

    fn not_modified(&self) -> bool {
        matches!(self, SendError::Refused { description, .. } if description.contains("message is not modified"))
    }
}

/// What one failed attempt calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// 429: wait this long, then try again.
    Wait(Duration),
    /// 5xx, network, unreadable answer: back off and try again.
    Transient(String),
    Permanent {
        code: u16,
        description: String,
    },
}

/// Telegram's answer envelope.
#[derive(Debug, Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Debug, Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// Decides what an HTTP answer means.
fn classify(status: u16, body: &[u8]) -> Result<Value, Failure> {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return Err(
            if status >= 500 || (200..300).contains(&status) || status == 429 {
                Failure::Transient(format!("unreadable answer (HTTP {status})"))
            } else {
                Failure::Permanent {
                    code: status,
                    description: format!("unreadable answer (HTTP {status})"),
                }
            },
        );
    };
    if envelope.ok && (200..300).contains(&status) {
        return Ok(envelope.result.unwrap_or(Value::Bool(true)));
    }
    let code = envelope.error_code.unwrap_or(status);
    let description = envelope
        .description
        .unwrap_or_else(|| format!("HTTP {status}"));
    if code == 429 || status == 429 {
        let secs = envelope.parameters.and_then(|p| p.retry_after).unwrap_or(1);
        return Err(Failure::Wait(Duration::from_secs(secs)));
    }
    if code >= 500 || status >= 500 {
        return Err(Failure::Transient(description));
    }
    Err(Failure::Permanent { code, description })
}

/// A request body that can be rebuilt for each attempt.
enum Body<'a> {
    Json(&'a Value),
    /// Multipart forms cannot be cloned; this builds a fresh one.
    Form(&'a (dyn Fn() -> reqwest::multipart::Form + Send + Sync)),
}

/// A Bot API client that applies Telegram's retry rules to every call.
#[derive(Clone)]
pub struct TelegramClient {
    http: reqwest::Client,
    /// `<api>/bot<token>/`: contains the token, never logged.
    base: Arc<str>,
    settings: Arc<TelegramSettings>,
}

impl std::fmt::Debug for TelegramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramClient")
            .field("api_url", &self.settings.api_url)
            .finish_non_exhaustive()
    }
}

impl TelegramClient {
    pub fn new(settings: TelegramSettings) -> Result<Self, String> {
        let api = reqwest::Url::parse(&settings.api_url)
            .map_err(|e| format!("bad Telegram API URL: {e}"))?;
        if !matches!(api.scheme(), "http" | "https") {
            return Err("bad Telegram API URL: it must start with http:// or https://".into());
        }
        let token = settings.token.expose();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
            return Err("the bot token is empty or malformed".into());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let base = format!("{}/bot{token}/", settings.api_url.trim_end_matches('/'));
        Ok(Self {
            http,
            base: base.into(),
            settings: Arc::new(settings),
        })
    }

    pub fn settings(&self) -> &TelegramSettings {
        &self.settings
    }

    /// One attempt.
    async fn attempt(
        &self,
        method: &str,
        body: &Body<'_>,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let url = format!("{}{method}", self.base);
        let request = self.http.post(url).timeout(timeout);
        let request = match body {
            Body::Json(value) => request.json(value),
            Body::Form(make) => request.multipart(make()),
        };
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Transient(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transient(e.without_url().to_string()))?;
        classify(status, &bytes)
    }

    /// Runs a call until it succeeds, Telegram refuses for good, or the
    /// give-up time passes.
    async fn retrying(
        &self,
        method: &str,
        body: Body<'_>,
        timeout: Duration,
    ) -> Result<Value, SendError> {
        let started = tokio::time::Instant::now();
        let mut backoff = self.settings.backoff_initial;
        loop {
            let (wait, reason) = match self.attempt(method, &body, timeout).await {
                Ok(v) => return Ok(v),
                Err(Failure::Permanent { code, description }) => {
                    let err = SendError::Refused { code, description };
                    if !err.not_modified() {
                        tracing::warn!(method, error = %err, "Telegram refused; dropping this call");
                    }
                    return Err(err);
                }
                Err(Failure::Wait(d)) => {
                    tracing::info!(method, retry_after_s = d.as_secs(), "Telegram asks to wait");
                    (d, "429 Too Many Requests".to_owned())
                }
                Err(Failure::Transient(reason)) => {
                    let d = backoff;
                    backoff = (backoff * 2).min(self.settings.backoff_max);
                    tracing::warn!(method, error = %reason, retry_in_ms = d.as_millis() as u64, "Telegram call failed; retrying");
                    (d, reason)
                }
            };
            if started.elapsed() + wait > self.settings.give_up_after {
                tracing::error!(method, error = %reason, "giving up on a Telegram call");
                return Err(SendError::GaveUp(reason));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// A JSON call with retries, decoding the result.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &Value,
    ) -> Result<T, SendError> {
        let value = self
            .retrying(method, Body::Json(params), self.settings.request_timeout)
            .await?;
        decode(method, value)
    }

    /// One getUpdates long poll, without retries (the polling loop decides).
    pub(super) async fn get_updates(
        &self,
        offset: i64,
        timeout: Duration,
    ) -> Result<Vec<Value>, SendError> {
        let params = json!({
            "offset": offset,
            "timeout": timeout.as_secs(),
            "allowed_updates": ["message", "callback_query"],
        });
        let wait = timeout + self.settings.request_timeout;
        match self.attempt("getUpdates", &Body::Json(&params), wait).await {
            Ok(v) => decode("getUpdates", v),
            Err(Failure::Permanent { code, description }) => {
                Err(SendError::Refused { code, description })
            }
            Err(Failure::Wait(d)) => {
                // Waited out here; an error still, as nothing was confirmed.
                tokio::time::sleep(d).await;
                Err(SendError::GaveUp("429 Too Many Requests".to_owned()))
            }
            Err(Failure::Transient(reason)) => Err(SendError::GaveUp(reason)),
        }
    }

    /// The bot's own @username (from getMe).
    pub async fn username(&self) -> Result<String, SendError> {
        #[derive(Deserialize)]
        struct Me {
            #[serde(default)]
            username: Option<String>,
        }
        let me: Me = self.call("getMe", &json!({})).await?;
        Ok(me.username.unwrap_or_default())
    }

    /// Registers the command list shown in Telegram's menu.
    pub async fn set_commands(&self, commands: &[(&str, &str)]) -> Result<(), SendError> {
        let list: Vec<Value> = commands
            .iter()
            .map(|(c, d)| json!({ "command": c, "description": d }))
            .collect();
        self.call::<Value>("setMyCommands", &json!({ "commands": list }))
            .await
            .map(|_| ())
    }

    /// Stops webhook delivery so getUpdates works (keeps pending updates).
    pub async fn delete_webhook(&self) -> Result<(), SendError> {
        self.call::<Value>("deleteWebhook", &json!({ "drop_pending_updates": false }))
            .await
            .map(|_| ())
    }

    /// Asks Telegram to POST updates to `url` with `secret` in the
    /// `X-Telegram-Bot-Api-Secret-Token` header.
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), SendError> {
        let params = json!({
            "url": url,
            "secret_token": secret,
            "allowed_updates": ["message", "callback_query"],
        });
        self.call::<Value>("setWebhook", &params).await.map(|_| ())
    }

    /// Shows `outputs` in `chat`. `origin` is the message a button was
    /// pressed on (edits apply to it) and `callback_id` the press to answer,
    /// which is always answered so the client stops its spinner.
    pub async fn deliver(
        &self,
        chat: i64,
        origin: Option<i64>,
        callback_id: Option<&str>,
        outputs: Vec<Output>,
    ) -> Result<(), SendError> {
        let mut notice: Option<String> = None;
        let mut result = Ok(());
        for out in outputs {
            let r = match out {
                Output::Send(reply) => self.send_parts(chat, &reply.blocks, &reply.keyboard).await,
                Output::Edit(reply) => match origin {
                    Some(message) => {
                        let mut parts = split_blocks(&reply.blocks, MESSAGE_LIMIT).into_iter();
                        let first = parts.next().unwrap_or_default();
                        let rest: Vec<String> = parts.collect();
                        // The keyboard stays on the edited message; a
                        // longer text continues in new messages.
                        let edited = self.edit_text(chat, message, first, &reply.keyboard).await;
                        match edited {
                            Ok(()) if !rest.is_empty() => {
                                self.send_parts(chat, &rest, &Vec::new()).await
                            }
                            // Too old to edit (48 h) or deleted by the
                            // user: the answer comes as a new message.
                            Err(e) if e.not_editable() => {
                                self.send_parts(chat, &reply.blocks, &reply.keyboard).await
                            }
                            other => other,
                        }
                    }
                    None => self.send_parts(chat, &reply.blocks, &reply.keyboard).await,
                },
                Output::Photo(photo) => self.send_photo(chat, photo).await,
                Output::EditPhoto(photo) => match origin {
                    Some(message) => self.edit_photo(chat, message, photo).await,
                    None => self.send_photo(chat, photo).await,
                },
                Output::Notice(text) => {
                    notice = Some(text);
                    Ok(())
                }
            };
            if let Err(e) = r {
                let stop = e.user_unreachable();
                result = Err(e);
                if stop {
                    break;
                }
            }
        }
        if let Some(id) = callback_id {
            let mut params = json!({ "callback_query_id": id });
            if let Some(text) = notice {
                params["text"] = json!(cut_chars(&text, NOTICE_LIMIT));
            }
            // A press answered too late is refused for good; nothing to do.
            let _ = self.call::<Value>("answerCallbackQuery", &params).await;
        }
        result
    }

    /// Sends HTML blocks as one message, or several past the length limit
    /// (the keyboard goes under the last).
    async fn send_parts(
        &self,
        chat: i64,
        blocks: &[String],
        keyboard: &Keyboard,
    ) -> Result<(), SendError> {
        let parts = split_blocks(blocks, MESSAGE_LIMIT);
        let last = parts.len().saturating_sub(1);
        for (i, text) in parts.into_iter().enumerate() {
            let mut params = json!({
                "chat_id": chat,
                "text": text,
                "parse_mode": "HTML",
                "link_preview_options": { "is_disabled": true },
            });
            if i == last
                && let Some(kb) = markup(keyboard)
            {
                params["reply_markup"] = kb;
            }
            self.call::<Value>("sendMessage", &params).await?;
        }
        Ok(())
    }

    async fn edit_text(
        &self,
        chat: i64,
        message: i64,
        text: String,
        keyboard: &Keyboard,
    ) -> Result<(), SendError> {
        let mut params = json!({
            "chat_id": chat,
            "message_id": message,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": { "is_disabled": true },
        });
        // An empty keyboard removes the buttons of the edited message.
        params["reply_markup"] =
            markup(keyboard).unwrap_or_else(|| json!({ "inline_keyboard": [] }));
        match self.call::<Value>("editMessageText", &params).await {
            // A refresh with nothing new is not an error for the user.
            Err(e) if e.not_modified() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn send_photo(&self, chat: i64, photo: Photo) -> Result<(), SendError> {
        let keyboard = markup(&photo.keyboard).map(|k| k.to_string());
        let caption = cut_chars(&photo.caption, CAPTION_LIMIT);
        let make = move || {
            let mut form = reqwest::multipart::Form::new()
                .text("chat_id", chat.to_string())
                .text("caption", caption.clone())
                .text("parse_mode", "HTML")
                .part("photo", png_part(&photo));
            if let Some(kb) = &keyboard {
                form = form.text("reply_markup", kb.clone());
            }
            form
        };
        self.retrying(
            "sendPhoto",
            Body::Form(&make),
            self.settings.request_timeout,
        )
        .await
        .map(|_| ())
    }

    async fn edit_photo(&self, chat: i64, message: i64, photo: Photo) -> Result<(), SendError> {
        let keyboard = markup(&photo.keyboard).map(|k| k.to_string());
        let media = json!({
            "type": "photo",
            "media": "attach://chart",
            "caption": cut_chars(&photo.caption, CAPTION_LIMIT),
            "parse_mode": "HTML",
        })
        .to_string();
        let make = move || {
            let mut form = reqwest::multipart::Form::new()
                .text("chat_id", chat.to_string())
                .text("message_id", message.to_string())
                .text("media", media.clone())
                .part("chart", png_part(&photo));
            if let Some(kb) = &keyboard {
                form = form.text("reply_markup", kb.clone());
            }
            form
        };
        match self
            .retrying(
                "editMessageMedia",
                Body::Form(&make),
                self.settings.request_timeout,
            )
            .await
        {
            Err(e) if e.not_modified() => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

fn png_part(photo: &Photo) -> reqwest::multipart::Part {
    let part =
        reqwest::multipart::Part::bytes(photo.png.clone()).file_name(photo.file_name.clone());
    part.mime_str("image/png").unwrap_or_else(|_| {
        reqwest::multipart::Part::bytes(photo.png.clone()).file_name(photo.file_name.clone())
    })
}

fn decode<T: DeserializeOwned>(method: &str, value: Value) -> Result<T, SendError> {
    serde_json::from_value(value).map_err(|e| SendError::Refused {
        code: 0,
        description: format!("unexpected {method} result: {e}"),
    })
}

/// The Bot API form of an inline keyboard.
fn markup(keyboard: &Keyboard) -> Option<Value> {
    if keyboard.is_empty() {
        return None;
    }
    let rows: Vec<Vec<Value>> = keyboard
        .iter()
        .map(|row| {
            row.iter()
                .map(|b| json!({ "text": b.label, "callback_data": b.action.encode() }))
                .collect()
        })
        .collect();
    Some(json!({ "inline_keyboard": rows }))
}

/// Plain text cut to Telegram's limit in UTF-16 units.
fn cut_chars(text: &str, limit: usize) -> String {
    if telegram_len(text) <= limit {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        if telegram_len(&out) + c.len_utf16() + 1 > limit {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_like_telegram_documents() {
        let ok = br#"{"ok":true,"result":{"message_id":5}}"#;
        assert_eq!(classify(200, ok), Ok(json!({"message_id": 5})));
        let flood = br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#;
        assert_eq!(
            classify(429, flood),
            Err(Failure::Wait(Duration::from_secs(3)))
        );
        let down = br#"{"ok":false,"error_code":500,"description":"Internal Server Error"}"#;
        assert!(matches!(classify(500, down), Err(Failure::Transient(_))));
        assert!(matches!(
            classify(502, b"<html>Bad Gateway</html>"),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(
            classify(200, b"garbage"),
            Err(Failure::Transient(_))
        ));
        let blocked = br#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#;
        assert_eq!(
            classify(403, blocked),
            Err(Failure::Permanent {
                code: 403,
                description: "Forbidden: bot was blocked by the user".into()
            })
        );
        let bad =
            br#"{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities"}"#;
        assert!(matches!(
            classify(400, bad),
            Err(Failure::Permanent { code: 400, .. })
        ));
        assert!(matches!(
            classify(404, b"nope"),
            Err(Failure::Permanent { code: 404, .. })
        ));
    }

    #[test]
    fn unreachable_users_are_recognised() {
        let refused = |code, d: &str| SendError::Refused {
            code,
            description: d.into(),
        };
        assert!(refused(403, "Forbidden: bot was blocked by the user").user_unreachable());
        assert!(refused(400, "Bad Request: chat not found").user_unreachable());
        assert!(!refused(400, "Bad Request: can't parse entities").user_unreachable());
        assert!(!SendError::GaveUp("x".into()).user_unreachable());
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let settings = TelegramSettings {
            token: crate::config::Secret::new("123:secret-token"),
            ..TelegramSettings::default()
        };
        let client = TelegramClient::new(settings).expect("client");
        assert!(!format!("{client:?}").contains("secret-token"));
        assert!(TelegramClient::new(TelegramSettings::default()).is_err());
    }

    #[test]
    fn notices_are_cut_to_fit() {
        assert_eq!(cut_chars("short", 200), "short");
        let long = cut_chars(&"é".repeat(300), 200);
        assert!(telegram_len(&long) <= 200);
    }
}
