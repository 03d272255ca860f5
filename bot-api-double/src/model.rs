//! What a test injects and what it inspects: plain records, cloned out of
//! the double so a test can hold them without locking anything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::entity::Entity;
use crate::markup::{InlineButton, ReplyMarkup};
use crate::reply::ApiError;

/// A Telegram user a test plays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestUser {
    pub id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

impl TestUser {
    pub fn new(id: i64, first_name: impl Into<String>) -> Self {
        Self {
            id,
            first_name: first_name.into(),
            last_name: None,
            username: None,
            language_code: None,
        }
    }

    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    pub fn with_last_name(mut self, last_name: impl Into<String>) -> Self {
        self.last_name = Some(last_name.into());
        self
    }

    pub fn with_language_code(mut self, code: impl Into<String>) -> Self {
        self.language_code = Some(code.into());
        self
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({ "id": self.id, "is_bot": false, "first_name": self.first_name });
        if let Some(l) = &self.last_name {
            v["last_name"] = json!(l);
        }
        if let Some(u) = &self.username {
            v["username"] = json!(u);
        }
        if let Some(c) = &self.language_code {
            v["language_code"] = json!(c);
        }
        v
    }
}

/// A group chat the bot is a member of. Group ids are negative; a
/// supergroup's start with -100.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestGroup {
    pub id: i64,
    pub title: String,
    pub supergroup: bool,
}

impl TestGroup {
    pub fn new(id: i64, title: impl Into<String>) -> Self {
        Self {
            id,
            title: title.into(),
            supergroup: false,
        }
    }

    pub fn supergroup(id: i64, title: impl Into<String>) -> Self {
        Self {
            id,
            title: title.into(),
            supergroup: true,
        }
    }
}

/// A message a test made a user send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub chat_id: i64,
    pub message_id: i64,
    /// The update carrying it; `None` when Telegram would not deliver it
    /// (privacy mode in groups, or excluded by `allowed_updates`).
    pub update_id: Option<i64>,
}

/// A button press a test made a user perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackPress {
    /// The id the bot must pass to answerCallbackQuery.
    pub query_id: String,
    pub update_id: Option<i64>,
}

/// An uploaded photo, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Photo {
    pub file_id: String,
    pub width: u32,
    pub height: u32,
    /// The PNG exactly as uploaded.
    pub bytes: Arc<[u8]>,
}

/// One state of a message: as sent, then after each edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageVersion {
    /// What the user sees (text, or caption for a photo).
    pub text: String,
    /// What the bot sent, before entity parsing.
    pub source: String,
    pub parse_mode: Option<String>,
    pub entities: Vec<Entity>,
    pub reply_markup: Option<ReplyMarkup>,
    /// The photo shown, for a photo message.
    pub photo: Option<Photo>,
    /// The Bot API method that produced this version (`sendMessage`,
    /// `editMessageText`…).
    pub method: &'static str,
    pub at: Instant,
}

/// A message the bot sent, in its current state, with its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub message_id: i64,
    /// Current text as the user sees it (caption for a photo).
    pub text: String,
    /// Current text as the bot sent it (the HTML source).
    pub source: String,
    pub parse_mode: Option<String>,
    pub entities: Vec<Entity>,
    pub reply_markup: Option<ReplyMarkup>,
    pub photo: Option<Photo>,
    /// Every version, oldest first; the last one is the current state.
    pub history: Vec<MessageVersion>,
    pub deleted: bool,
    pub sent_at: Instant,
}

impl SentMessage {
    /// Inline buttons, row by row.
    pub fn buttons(&self) -> Vec<&InlineButton> {
        self.reply_markup
            .iter()
            .flat_map(ReplyMarkup::buttons)
            .collect()
    }

    /// The inline button labelled `text`.
    pub fn button(&self, text: &str) -> Option<&InlineButton> {
        self.buttons().into_iter().find(|b| b.text == text)
    }

    /// How many times the message was edited.
    pub fn edit_count(&self) -> usize {
        self.history.len().saturating_sub(1)
    }
}

/// An answer the bot gave to a callback query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackAnswer {
    pub query_id: String,
    pub text: Option<String>,
    pub show_alert: bool,
    pub url: Option<String>,
    pub cache_time: u32,
    pub at: Instant,
}

/// A command registered with setMyCommands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BotCommand {
    pub command: String,
    pub description: String,
}

/// One request the bot made, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The method name as the bot spelled it.
    pub method: String,
    /// When the request arrived: lets a test prove the bot waited.
    pub at: Instant,
    /// Its parameters, normalised to text as the Bot API sees them
    /// (uploaded files appear only in `files`).
    pub params: BTreeMap<String, String>,
    /// Names of multipart parts that carried files.
    pub files: Vec<String>,
    /// The HTTP status answered; `None` while in progress or when the
    /// connection was dropped on purpose.
    pub status: Option<u16>,
}

/// A failure to inject on the next calls of a method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 429 with `parameters.retry_after`, as Telegram's flood control sends.
    TooManyRequests { retry_after: u32 },
    /// 500 Internal Server Error.
    ServerError,
    /// Close the connection without answering.
    Drop,
    /// Any other answer, e.g. `{ code: 502, description: "Bad Gateway" }`.
    Error { code: u16, description: String },
}

impl Failure {
    /// The refusal this failure answers with (`None` for [`Failure::Drop`]).
    pub(crate) fn to_error(&self) -> Option<ApiError> {
        match self {
            Failure::TooManyRequests { retry_after } => {
                Some(ApiError::too_many_requests(*retry_after))
            }
            Failure::ServerError => Some(ApiError::new(500, "Internal Server Error")),
            Failure::Drop => None,
            Failure::Error { code, description } => Some(ApiError::new(*code, description.clone())),
        }
    }
}
