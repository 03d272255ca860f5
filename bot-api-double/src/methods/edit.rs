//! editMessageText, editMessageReplyMarkup and deleteMessage: changes to
//! messages already in a chat.

use serde_json::json;

use super::send::sent_json;
use super::{formatted_arg, keep_known_mentions, message_id_arg};
use crate::args::Args;
use crate::markup::{self, ReplyMarkup};
use crate::model::MessageVersion;
use crate::reply::{ApiError, ApiResult, Success};
use crate::text::Purpose;
use crate::world::{Sender, Shared, StoredMessage, World, unix_now, version};

const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply \
                            markup are exactly the same as a current content and reply markup \
                            of the message";

/// Edits take inline keyboards only.
fn inline_markup(args: &Args) -> Result<Option<ReplyMarkup>, ApiError> {
    match markup::parse(args.get("reply_markup"))? {
        Some(ReplyMarkup::Other(_)) => Err(ApiError::bad_request("inline keyboard expected")),
        inline => Ok(inline),
    }
}

/// The inline keyboard a message shows (other markups are not shown).
fn shown(markup: Option<&ReplyMarkup>) -> Option<&ReplyMarkup> {
    markup.filter(|m| matches!(m, ReplyMarkup::InlineKeyboard(_)))
}

/// The bot's own live message named by `chat_id` and `message_id`.
fn editable<'w>(world: &'w World, args: &Args) -> Result<&'w StoredMessage, ApiError> {
    if args
        .get("inline_message_id")
        .is_some_and(|id| !id.is_empty())
    {
        return Err(ApiError::bad_request("MESSAGE_ID_INVALID"));
    }
    let chat_id = world.resolve_chat(args)?;
    let message_id = message_id_arg(args)?;
    let message = world
        .message(chat_id, message_id)
        .ok_or_else(|| ApiError::bad_request("message to edit not found"))?;
    if message.sender != Sender::Bot {
        return Err(ApiError::bad_request("message can't be edited"));
    }
    Ok(message)
}

fn apply(world: &mut World, chat_id: i64, message_id: i64, version: MessageVersion) {
    if let Some(m) = world.messages.get_mut(&(chat_id, message_id)) {
        m.versions.push(version);
        m.edit_date = Some(unix_now());
    }
}

pub(crate) fn edit_message_text(shared: &Shared, args: &Args) -> ApiResult {
    let formatted = formatted_arg(shared, args, "text", "entities", Purpose::EditText)?;
    let reply_markup = inline_markup(args)?;
    let mut world = shared.lock();
    let message = editable(&world, args)?;
    if message.photo.is_some() {
        return Err(ApiError::bad_request(
            "there is no text in the message to edit",
        ));
    }
    markup::check_buttons(reply_markup.as_ref())?;
    let formatted = keep_known_mentions(&world, formatted);
    let current = message.current();
    if current.text == formatted.text
        && current.entities == formatted.entities
        && shown(current.reply_markup.as_ref()) == reply_markup.as_ref()
    {
        return Err(ApiError::bad_request(NOT_MODIFIED));
    }
    let (chat_id, message_id) = (message.chat_id, message.message_id);
    let edited = version(formatted, reply_markup, "editMessageText");
    apply(&mut world, chat_id, message_id, edited);
    Ok(Success::of(sent_json(shared, &world, chat_id, message_id)))
}

pub(crate) fn edit_message_reply_markup(shared: &Shared, args: &Args) -> ApiResult {
    let reply_markup = inline_markup(args)?;
    let mut world = shared.lock();
    let message = editable(&world, args)?;
    markup::check_buttons(reply_markup.as_ref())?;
    let current = message.current();
    if shown(current.reply_markup.as_ref()) == reply_markup.as_ref() {
        return Err(ApiError::bad_request(NOT_MODIFIED));
    }
    let mut edited = current.clone();
    edited.reply_markup = reply_markup;
    edited.method = "editMessageReplyMarkup";
    edited.at = std::time::Instant::now();
    let (chat_id, message_id) = (message.chat_id, message.message_id);
    apply(&mut world, chat_id, message_id, edited);
    Ok(Success::of(sent_json(shared, &world, chat_id, message_id)))
}

pub(crate) fn delete_message(shared: &Shared, args: &Args) -> ApiResult {
    let mut world = shared.lock();
    let chat_id = world.resolve_chat(args)?;
    let message_id = message_id_arg(args)?;
    match world.messages.get_mut(&(chat_id, message_id)) {
        Some(m) if !m.deleted => {
            m.deleted = true;
            Ok(Success::of(json!(true)))
        }
        _ => Err(ApiError::bad_request("message to delete not found")),
    }
}
