//! Telegram updates reduced to what a handler needs. Parsing is teloxide's
//! (it follows the Bot API's types); everything else is ignored.

use serde_json::Value;
use teloxide::types::{Update, UpdateKind, User};

use super::super::{Input, Sender};

/// One incoming update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub chat: i64,
    pub from: Sender,
    pub input: Input,
    /// The message a button was pressed on.
    pub origin: Option<i64>,
    /// The press to answer.
    pub callback_id: Option<String>,
}

/// The update's id, read even when the rest cannot be parsed, so one
/// malformed update never blocks polling.
pub fn update_id(raw: &Value) -> Option<i64> {
    raw.get("update_id").and_then(Value::as_i64)
}

/// Turns a raw update into an [`Incoming`]; other kinds (edits, channel
/// posts, messages from bots, photos…) are `None`.
pub fn incoming(raw: Value) -> Option<Incoming> {
    // From text, not from the `Value`: teloxide's update parsing only
    // works from a string (from a `Value` every message becomes an error).
    let update: Update = match serde_json::from_str(&raw.to_string()) {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "ignoring an update that cannot be parsed");
            return None;
        }
    };
    match update.kind {
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
            // Presses on inline-mode messages have no chat; we send none.
            let message = q.message.as_ref()?;
            Some(Incoming {
                chat: message.chat().id.0,
                from: sender(&q.from, message.chat().is_private()),
                input: Input::Button(q.data.clone().unwrap_or_default()),
                origin: Some(i64::from(message.id().0)),
                callback_id: Some(q.id.0.clone()),
            })
        }
        _ => None,
    }
}

fn sender(user: &User, private_chat: bool) -> Sender {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({ "id": 42, "is_bot": false, "first_name": "Ann", "last_name": "Lee", "username": "ann" })
    }

    #[test]
    fn private_text_messages() {
        let raw = json!({ "update_id": 7, "message": {
            "message_id": 1, "date": 0, "chat": { "id": 42, "type": "private", "first_name": "Ann" },
            "from": user(), "text": "/stat web"
        }});
        assert_eq!(update_id(&raw), Some(7));
        let got = incoming(raw).expect("a message");
        assert_eq!(got.chat, 42);
        assert_eq!(got.input, Input::Text("/stat web".into()));
        assert!(got.from.private_chat);
        assert_eq!(got.from.display_name, "Ann Lee");
        assert_eq!(got.from.username.as_deref(), Some("ann"));
    }

    #[test]
    fn group_messages_and_button_presses() {
        let raw = json!({ "update_id": 8, "message": {
            "message_id": 1, "date": 0, "chat": { "id": -100, "type": "group", "title": "ops" },
            "from": user(), "text": "/list"
        }});
        assert!(!incoming(raw).expect("a message").from.private_chat);
        let raw = json!({ "update_id": 9, "callback_query": {
            "id": "q1", "from": user(), "chat_instance": "c", "data": "st:5",
            "message": { "message_id": 77, "date": 0,
                "chat": { "id": 42, "type": "private", "first_name": "Ann" }, "text": "x" }
        }});
        let got = incoming(raw).expect("a press");
        assert_eq!(got.input, Input::Button("st:5".into()));
        assert_eq!(got.origin, Some(77));
        assert_eq!(got.callback_id.as_deref(), Some("q1"));
    }

    #[test]
    fn other_updates_are_ignored() {
        assert_eq!(incoming(json!({ "update_id": 1, "poll": {} })), None);
        assert_eq!(incoming(json!({ "garbage": true })), None);
        let from_bot = json!({ "update_id": 2, "message": {
            "message_id": 1, "date": 0, "chat": { "id": 42, "type": "private", "first_name": "B" },
            "from": { "id": 9, "is_bot": true, "first_name": "B" }, "text": "/list"
        }});
        assert_eq!(incoming(from_bot), None);
    }
}
