//! Everything the double knows: chats, messages, pending updates, answers
//! and the call log. One mutex guards it; it is never held across an await.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::args::Args;
use crate::markup::ReplyMarkup;
use crate::model::{
    BotCommand, CallRecord, CallbackAnswer, Failure, MessageVersion, Photo, SentMessage, TestUser,
};
use crate::options::Options;
use crate::polling::PollState;
use crate::reply::ApiError;
use crate::text::Formatted;
use crate::webhook::WebhookState;

/// State shared by the HTTP server, the webhook sender and the test handle.
pub(crate) struct Shared {
    world: Mutex<World>,
    /// Bumped on every change, so waiting helpers wake up.
    changed: watch::Sender<u64>,
    /// Wakes the webhook sender when there is something to deliver.
    pub webhook_wake: Notify,
    pub options: Options,
    pub token: String,
}

impl Shared {
    pub fn new(options: Options, token: String) -> Self {
        let world = World::new(&options);
        Self {
            world: Mutex::new(world),
            changed: watch::channel(0).0,
            webhook_wake: Notify::new(),
            options,
            token,
        }
    }

    /// The state; a panic elsewhere while it was held does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Announces a change to waiting helpers.
    pub fn touch(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The bot's own user object.
    pub fn bot_user_json(&self) -> Value {
        json!({
            "id": self.options.bot_id,
            "is_bot": true,
            "first_name": self.options.bot_first_name,
            "username": self.options.bot_username,
        })
    }
}

/// A chat the bot knows, because someone in it talked to the bot.
#[derive(Clone, Debug)]
pub(crate) enum Chat {
    Private { user_id: i64 },
    Group { title: String, supergroup: bool },
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sender {
    Bot,
    User(i64),
}

/// A message in a chat, from either side.
#[derive(Clone, Debug)]
pub(crate) struct StoredMessage {
    pub chat_id: i64,
    pub message_id: i64,
    pub date: i64,
    pub edit_date: Option<i64>,
    pub sender: Sender,
    /// Every version; the last is current.
    pub versions: Vec<MessageVersion>,
    pub deleted: bool,
}

impl StoredMessage {
    pub fn current(&self) -> &MessageVersion {
        // A message is created with its first version and versions are only appended.
        &self.versions[self.versions.len() - 1]
    }
}

/// An update waiting to be fetched or delivered.
#[derive(Clone, Debug)]
pub(crate) struct QueuedUpdate {
    pub id: i64,
    /// The full update object, `update_id` included.
    pub body: Value,
}

/// A callback query a user made.
#[derive(Clone, Debug)]
pub(crate) struct CallbackQuery {
    pub id: String,
    pub created: Instant,
    pub answer: Option<CallbackAnswer>,
}

/// Update types delivered when the bot names none (Telegram's default).
const DEFAULT_EXCLUDED_UPDATES: [&str; 3] =
    ["chat_member", "message_reaction", "message_reaction_count"];

/// Every update type the Bot API knows.
pub(crate) const UPDATE_TYPES: [&str; 23] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
];

pub(crate) struct World {
    pub users: HashMap<i64, TestUser>,
    pub chats: HashMap<i64, Chat>,
    pub blocked: HashSet<i64>,
    pub messages: BTreeMap<(i64, i64), StoredMessage>,
    last_message_id: HashMap<i64, i64>,
    pub updates: VecDeque<QueuedUpdate>,
    pub next_update_id: i64,
    /// Update types Telegram creates for this bot.
    pub allowed_updates: Vec<&'static str>,
    pub poll: PollState,
    pub webhook: WebhookState,
    pub callbacks: Vec<CallbackQuery>,
    next_callback: u64,
    /// Registered commands by (scope, language code).
    pub commands: BTreeMap<(String, String), Vec<BotCommand>>,
    pub chat_actions: Vec<(i64, String)>,
    pub calls: Vec<CallRecord>,
    pub failures: HashMap<String, VecDeque<Failure>>,
    /// Requests being answered, long polls excluded.
    pub in_flight: usize,
    /// Last time a request, an injection or a delivery happened.
    pub last_activity: Instant,
    /// Uploaded files by file_id, for resending by id.
    pub files: HashMap<String, Photo>,
    next_file: u64,
}

/// Seconds since the epoch, as Telegram dates messages.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl World {
    fn new(options: &Options) -> Self {
        Self {
            users: HashMap::new(),
            chats: HashMap::new(),
            blocked: HashSet::new(),
            messages: BTreeMap::new(),
            last_message_id: HashMap::new(),
            updates: VecDeque::new(),
            next_update_id: options.first_update_id,
            allowed_updates: default_allowed_updates(),
            poll: PollState::default(),
            webhook: WebhookState::default(),
            callbacks: Vec::new(),
            next_callback: 0,
            commands: BTreeMap::new(),
            chat_actions: Vec::new(),
            calls: Vec::new(),
            failures: HashMap::new(),
            in_flight: 0,
            last_activity: Instant::now(),
            files: HashMap::new(),
            next_file: 0,
        }
    }

    /// The chat named by the `chat_id` argument, if the bot knows it.
    pub fn resolve_chat(&self, args: &Args) -> Result<i64, ApiError> {
        let raw = args.get("chat_id").map(str::trim).unwrap_or("");
        if raw.is_empty() {
            return Err(ApiError::bad_request("chat_id is empty"));
        }
        match raw.parse::<i64>() {
            Ok(id) if self.chats.contains_key(&id) => Ok(id),
            // Seen in a group, but never started the bot.
            Ok(id) if self.users.contains_key(&id) => Err(ApiError::new(
                403,
                "Forbidden: bot can't initiate conversation with a user",
            )),
            _ => Err(ApiError::chat_not_found()),
        }
    }

    /// Refuses sending into a private chat whose user blocked the bot.
    pub fn check_not_blocked(&self, chat_id: i64) -> Result<(), ApiError> {
        match self.chats.get(&chat_id) {
            Some(Chat::Private { user_id }) if self.blocked.contains(user_id) => {
                Err(ApiError::blocked())
            }
            _ => Ok(()),
        }
    }

    pub fn chat_json(&self, chat_id: i64) -> Value {
        match self.chats.get(&chat_id) {
            Some(Chat::Private { user_id }) => {
                let mut v = json!({ "id": chat_id, "type": "private" });
                if let Some(u) = self.users.get(user_id) {
                    v["first_name"] = json!(u.first_name);
                    if let Some(l) = &u.last_name {
                        v["last_name"] = json!(l);
                    }
                    if let Some(n) = &u.username {
                        v["username"] = json!(n);
                    }
                }
                v
            }
            Some(Chat::Group { title, supergroup }) => {
                let kind = if *supergroup { "supergroup" } else { "group" };
                json!({ "id": chat_id, "type": kind, "title": title })
            }
            None => json!({ "id": chat_id, "type": "private" }),
        }
    }

    pub fn user_json(&self, user_id: i64) -> Value {
        self.users.get(&user_id).map_or_else(
            || json!({ "id": user_id, "is_bot": false, "first_name": "" }),
            TestUser::to_json,
        )
    }

    /// Whether a `tg://user?id=` mention can name this user.
    pub fn knows_user(&self, user_id: i64) -> bool {
        self.users.contains_key(&user_id)
    }

    /// Stores a new message and returns its id.
    pub fn add_message(&mut self, chat_id: i64, sender: Sender, version: MessageVersion) -> i64 {
        let id = self.last_message_id.entry(chat_id).or_insert(0);
        *id += 1;
        let message_id = *id;
        let message = StoredMessage {
            chat_id,
            message_id,
            date: unix_now(),
            edit_date: None,
            sender,
            versions: vec![version],
            deleted: false,
        };
        self.messages.insert((chat_id, message_id), message);
        message_id
    }

    /// A live (not deleted) message.
    pub fn message(&self, chat_id: i64, message_id: i64) -> Option<&StoredMessage> {
        self.messages
            .get(&(chat_id, message_id))
            .filter(|m| !m.deleted)
    }

    /// The Message object Telegram returns and sends for `message`.
    pub fn message_json(&self, message: &StoredMessage, bot_user: &Value) -> Value {
        let current = message.current();
        let from = match message.sender {
            Sender::Bot => bot_user.clone(),
            Sender::User(id) => self.user_json(id),
        };
        let mut v = json!({
            "message_id": message.message_id,
            "from": from,
            "chat": self.chat_json(message.chat_id),
            "date": message.date,
        });
        if let Some(date) = message.edit_date {
            v["edit_date"] = json!(date);
        }
        let entities: Vec<Value> = current
            .entities
            .iter()
            .map(|e| e.to_json(|id| self.user_json(id)))
            .collect();
        if let Some(photo) = &current.photo {
            v["photo"] = json!([{
                "file_id": photo.file_id,
                "file_unique_id": unique_id(&photo.file_id),
                "width": photo.width,
                "height": photo.height,
                "file_size": photo.bytes.len(),
            }]);
            if !current.text.is_empty() {
                v["caption"] = json!(current.text);
                if !entities.is_empty() {
                    v["caption_entities"] = json!(entities);
                }
            }
        } else {
            v["text"] = json!(current.text);
            if !entities.is_empty() {
                v["entities"] = json!(entities);
            }
        }
        if let Some(markup) = current
            .reply_markup
            .as_ref()
            .and_then(ReplyMarkup::message_json)
        {
            v["reply_markup"] = markup;
        }
        v
    }

    /// Queues an update of `kind` unless the bot's allowed_updates exclude
    /// it; returns its id.
    pub fn push_update(&mut self, kind: &'static str, payload: Value) -> Option<i64> {
        if !self.allowed_updates.contains(&kind) {
            return None;
        }
        let id = self.next_update_id;
        self.next_update_id += 1;
        let body = json!({ "update_id": id, kind: payload });
        self.updates.push_back(QueuedUpdate { id, body });
        self.last_activity = Instant::now();
        Some(id)
    }

    /// Applies an `allowed_updates` argument the way Telegram does: absent
    /// or unreadable keeps the current setting, an empty or unknown list
    /// restores the default.
    pub fn set_allowed_updates(&mut self, raw: Option<&str>) {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return;
        };
        let Ok(Value::Array(names)) = serde_json::from_str::<Value>(raw) else {
            return;
        };
        let mut allowed = Vec::new();
        for name in &names {
            let Some(name) = name.as_str() else {
                return;
            };
            let name = name.to_ascii_lowercase();
            if let Some(known) = UPDATE_TYPES.iter().find(|t| **t == name) {
                allowed.push(*known);
            }
        }
        self.allowed_updates = if allowed.is_empty() {
            default_allowed_updates()
        } else {
            allowed
        };
    }

    pub fn new_callback_id(&mut self) -> String {
        self.next_callback += 1;
        // Telegram's ids are large decimal numbers in a string.
        format!("{}", 4_382_617_000_000_000_000u64 + self.next_callback)
    }

    pub fn new_file_id(&mut self) -> String {
        self.next_file += 1;
        format!("AgACAgIAAxkDAAI{:08}dbl", self.next_file)
    }

    /// The bot's messages in a chat, oldest first, as test records.
    pub fn sent_messages(&self, chat_id: i64) -> Vec<SentMessage> {
        self.messages
            .range((chat_id, i64::MIN)..=(chat_id, i64::MAX))
            .map(|(_, m)| m)
            .filter(|m| m.sender == Sender::Bot)
            .map(to_sent)
            .collect()
    }
}

/// The test's view of a stored message.
pub(crate) fn to_sent(m: &StoredMessage) -> SentMessage {
    let current = m.current().clone();
    SentMessage {
        chat_id: m.chat_id,
        message_id: m.message_id,
        text: current.text,
        source: current.source,
        parse_mode: current.parse_mode,
        entities: current.entities,
        reply_markup: current.reply_markup,
        photo: current.photo,
        sent_at: m.versions[0].at,
        history: m.versions.clone(),
        deleted: m.deleted,
    }
}

fn default_allowed_updates() -> Vec<&'static str> {
    UPDATE_TYPES
        .iter()
        .copied()
        .filter(|t| !DEFAULT_EXCLUDED_UPDATES.contains(t))
        .collect()
}

/// A file's `file_unique_id`: stable and distinct per file.
fn unique_id(file_id: &str) -> String {
    format!("AQAD{}", file_id.trim_start_matches("AgACAgIAAxkDAAI"))
}

/// A message version from formatted text.
pub(crate) fn version(
    formatted: Formatted,
    reply_markup: Option<ReplyMarkup>,
    method: &'static str,
) -> MessageVersion {
    MessageVersion {
        text: formatted.text,
        source: formatted.source,
        parse_mode: formatted.parse_mode,
        entities: formatted.entities,
        reply_markup,
        photo: None,
        method,
        at: Instant::now(),
    }
}
