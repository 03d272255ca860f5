//! `reply_markup`: parsed and checked the way the Bot API server and
//! Telegram check it, in the same order and with the same words.

use serde_json::{Map, Value, json};

use crate::html::checked_link;
use crate::reply::ApiError;

/// Longest `callback_data`, in bytes.
pub const MAX_CALLBACK_DATA_BYTES: usize = 64;
/// Telegram keeps at most this many buttons per row and drops the rest.
const MAX_ROW_BUTTONS: usize = 12;
/// Telegram keeps at most this many buttons per keyboard.
const MAX_BUTTONS: usize = 300;

/// A message's reply markup as Telegram stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyMarkup {
    /// Rows of inline buttons, shown under the message.
    InlineKeyboard(Vec<Vec<InlineButton>>),
    /// A reply keyboard, keyboard removal or force-reply: accepted as sent,
    /// and (as with Telegram) not part of the message object.
    Other(Value),
}

/// One inline button.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineButton {
    pub text: String,
    pub action: ButtonAction,
}

/// What pressing an inline button does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ButtonAction {
    /// Sends a callback query carrying this data to the bot.
    Callback(String),
    Url(String),
    /// Any other kind (login_url, web_app, switch_inline_query…), as sent.
    Other(Value),
}

impl ReplyMarkup {
    /// All inline buttons, row by row.
    pub fn buttons(&self) -> impl Iterator<Item = &InlineButton> {
        let rows: &[Vec<InlineButton>] = match self {
            ReplyMarkup::InlineKeyboard(rows) => rows,
            ReplyMarkup::Other(_) => &[],
        };
        rows.iter().flatten()
    }

    /// The markup as it appears in a Message object (inline keyboards only).
    pub(crate) fn message_json(&self) -> Option<Value> {
        match self {
            ReplyMarkup::InlineKeyboard(rows) => {
                let rows: Vec<Vec<Value>> = rows
                    .iter()
                    .map(|row| row.iter().map(InlineButton::to_json).collect())
                    .collect();
                Some(json!({ "inline_keyboard": rows }))
            }
            ReplyMarkup::Other(_) => None,
        }
    }
}

impl InlineButton {
    /// The button's callback data, if it is a callback button.
    pub fn callback_data(&self) -> Option<&str> {
        match &self.action {
            ButtonAction::Callback(d) => Some(d),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        match &self.action {
            ButtonAction::Callback(data) => json!({ "text": self.text, "callback_data": data }),
            ButtonAction::Url(url) => json!({ "text": self.text, "url": url }),
            ButtonAction::Other(v) => v.clone(),
        }
    }
}

fn button_error(message: &str) -> ApiError {
    ApiError::bad_request(format!("can't parse inline keyboard button: {message}"))
}

fn field_type(name: &str, kind: &str) -> String {
    format!("field \"{name}\" of the {kind}")
}

/// Parses the `reply_markup` argument (JSON text); `None` when absent or
/// when Telegram would ignore it.
pub fn parse(raw: Option<&str>) -> Result<Option<ReplyMarkup>, ApiError> {
    let raw = match raw {
        Some(r) if !r.is_empty() => r,
        _ => return Ok(None),
    };
    let value: Value = serde_json::from_str(raw)
        .map_err(|_| ApiError::bad_request("can't parse reply keyboard markup JSON object"))?;
    let Value::Object(object) = &value else {
        return Err(ApiError::bad_request("object expected as reply markup"));
    };
    let mut has_keyboard = false;
    let mut inline_rows: Vec<Vec<InlineButton>> = Vec::new();
    let mut flags = Flags::default();
    for (name, field) in object {
        match name.as_str() {
            "keyboard" => has_keyboard = check_reply_keyboard(field)?,
            "inline_keyboard" => inline_rows = parse_inline_keyboard(field)?,
            "resize_keyboard" | "one_time_keyboard" | "is_persistent" => {
                bool_field(field, &field_type(name, "ReplyKeyboardMarkup"))?;
            }
            "hide_keyboard" | "remove_keyboard" => {
                flags.remove =
                    bool_field(field, &field_type("remove_keyboard", "ReplyKeyboardRemove"))?;
            }
            "personal_keyboard" | "selective" => {
                bool_field(field, &field_type("selective", "reply markup"))?;
            }
            "force_reply_keyboard" | "force_reply" => {
                flags.force_reply = bool_field(field, &field_type("force_reply", "reply markup"))?;
            }
            _ => {}
        }
    }
    if has_keyboard || (inline_rows.is_empty() && (flags.remove || flags.force_reply)) {
        return Ok(Some(ReplyMarkup::Other(value)));
    }
    let rows = keep_visible_buttons(inline_rows);
    Ok((!rows.is_empty()).then_some(ReplyMarkup::InlineKeyboard(rows)))
}

#[derive(Default)]
struct Flags {
    remove: bool,
    force_reply: bool,
}

fn bool_field(field: &Value, what: &str) -> Result<bool, ApiError> {
    field
        .as_bool()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be of the type Boolean")))
}

/// Checks a reply keyboard's structure; true when it has buttons.
fn check_reply_keyboard(field: &Value) -> Result<bool, ApiError> {
    let what = field_type("keyboard", "ReplyKeyboardMarkup");
    let Value::Array(rows) = field else {
        return Err(ApiError::bad_request(format!("{what} must be an Array")));
    };
    let mut any = false;
    for row in rows {
        let Value::Array(buttons) = row else {
            return Err(ApiError::bad_request(format!(
                "{what} must be an Array of Arrays"
            )));
        };
        for button in buttons {
            let text = match button {
                Value::String(s) => s.as_str(),
                Value::Object(o) => o.get("text").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::bad_request("can't parse keyboard button: Can't find field \"text\"")
                })?,
                _ => {
                    return Err(ApiError::bad_request(
                        "can't parse keyboard button: KeyboardButton must be a String or an Object",
                    ));
                }
            };
            any |= !text.is_empty();
        }
    }
    Ok(any)
}

fn parse_inline_keyboard(field: &Value) -> Result<Vec<Vec<InlineButton>>, ApiError> {
    let what = field_type("inline_keyboard", "InlineKeyboardMarkup");
    let Value::Array(rows) = field else {
        return Err(ApiError::bad_request(format!("{what} must be an Array")));
    };
    rows.iter()
        .map(|row| {
            let Value::Array(buttons) = row else {
                return Err(ApiError::bad_request(format!(
                    "{what} must be an Array of Arrays"
                )));
            };
            buttons.iter().map(parse_inline_button).collect()
        })
        .collect()
}

fn string_field<'v>(
    object: &'v Map<String, Value>,
    name: &str,
) -> Result<Option<&'v str>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(button_error(&format!(
            "Field \"{name}\" must be of type String"
        ))),
    }
}

fn parse_inline_button(button: &Value) -> Result<InlineButton, ApiError> {
    let Value::Object(object) = button else {
        return Err(button_error("InlineKeyboardButton must be an Object"));
    };
    let text = string_field(object, "text")?
        .ok_or_else(|| button_error("Can't find field \"text\""))?
        .to_owned();
    if let Some(url) = string_field(object, "url")?.filter(|u| !u.is_empty()) {
        let action = ButtonAction::Url(url.to_owned());
        return Ok(InlineButton { text, action });
    }
    if let Some(data) = string_field(object, "callback_data")?.filter(|d| !d.is_empty()) {
        let action = ButtonAction::Callback(data.to_owned());
        return Ok(InlineButton { text, action });
    }
    const OTHER_KINDS: [&str; 8] = [
        "callback_game",
        "pay",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "login_url",
        "web_app",
        "copy_text",
    ];
    if OTHER_KINDS.iter().any(|k| object.contains_key(*k)) {
        let action = ButtonAction::Other(button.clone());
        return Ok(InlineButton { text, action });
    }
    Err(button_error(
        "Text buttons are unallowed in the inline keyboard",
    ))
}

/// Telegram silently drops buttons without text, empty rows, and buttons
/// past its per-row and per-keyboard limits.
fn keep_visible_buttons(rows: Vec<Vec<InlineButton>>) -> Vec<Vec<InlineButton>> {
    let mut total = 0;
    let mut kept = Vec::new();
    for row in rows {
        let mut kept_row = Vec::new();
        for button in row.into_iter().filter(|b| !b.text.is_empty()) {
            kept_row.push(button);
            total += 1;
            if kept_row.len() >= MAX_ROW_BUTTONS || total >= MAX_BUTTONS {
                break;
            }
        }
        if !kept_row.is_empty() {
            kept.push(kept_row);
        }
        if total >= MAX_BUTTONS {
            break;
        }
    }
    kept
}

/// The checks Telegram's servers make when the message is sent: callback
/// data size and button URLs.
pub fn check_buttons(markup: Option<&ReplyMarkup>) -> Result<(), ApiError> {
    for button in markup.into_iter().flat_map(ReplyMarkup::buttons) {
        match &button.action {
            ButtonAction::Callback(data) if data.len() > MAX_CALLBACK_DATA_BYTES => {
                return Err(ApiError::bad_request("BUTTON_DATA_INVALID"));
            }
            ButtonAction::Url(url) if checked_link(url).is_none() => {
                return Err(ApiError::bad_request("BUTTON_URL_INVALID"));
            }
            _ => {}
        }
    }
    Ok(())
}
