//! editMessageText, editMessageCaption, editMessageReplyMarkup and
//! deleteMessage: changes to messages already in a chat.

use serde_json::json;

use super::send::sent_json;
use super::{caption_arg, formatted_arg, keep_known_mentions, message_id_arg};
use crate::args::Args;
use crate::markup::{self, ReplyMarkup};
use crate::model::MessageVersion;
use crate::reply::{ApiError, ApiResult, Success};
use crate::text::{Formatted, Purpose};
use crate::world::{Sender, Shared, StoredMessage, World, unix_now, version};

pub(super) const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply \
                            markup are exactly the same as a current content and reply markup \
                            of the message";

/// Edits take inline keyboards only.
pub(super) fn inline_markup(args: &Args) -> Result<Option<ReplyMarkup>, ApiError> {
    match markup::parse(args.get("reply_markup"))? {
        Some(ReplyMarkup::Other(_)) => Err(ApiError::bad_request("inline keyboard expected")),
        inline => Ok(inline),
    }
}

/// The inline keyboard a message shows (other markups are not shown).
pub(super) fn shown(markup: Option<&ReplyMarkup>) -> Option<&ReplyMarkup> {
    markup.filter(|m| matches!(m, ReplyMarkup::InlineKeyboard(_)))
}

/// Whether an edit would leave the message as it is (Telegram refuses that).
pub(super) fn unchanged(
    current: &MessageVersion,
    new: &Formatted,
    reply_markup: Option<&ReplyMarkup>,
) -> bool {
    current.text == new.text
        && current.entities == new.entities
        && shown(current.reply_markup.as_ref()) == reply_markup
}

/// The bot's own live message named by `chat_id` and `message_id`.
pub(super) fn editable<'w>(world: &'w World, args: &Args) -> Result<&'w StoredMessage, ApiError> {
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

pub(super) fn apply(world: &mut World, chat_id: i64, message_id: i64, version: MessageVersion) {
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
    if message.current().photo.is_some() {
        return Err(ApiError::bad_request(
            "there is no text in the message to edit",
        ));
    }
    markup::check_buttons(reply_markup.as_ref())?;
    let formatted = keep_known_mentions(&world, formatted);
    let current = message.current();
    if unchanged(current, &formatted, reply_markup.as_ref()) {
        return Err(ApiError::bad_request(NOT_MODIFIED));
    }
    let (chat_id, message_id) = (message.chat_id, message.message_id);
    let edited = version(formatted, reply_markup, "editMessageText");
    apply(&mut world, chat_id, message_id, edited);
    Ok(Success::of(sent_json(shared, &world, chat_id, message_id)))
}

pub(crate) fn edit_message_caption(shared: &Shared, args: &Args) -> ApiResult {
    let caption = caption_arg(shared, args)?;
    let reply_markup = inline_markup(args)?;
    let mut world = shared.lock();
    let message = editable(&world, args)?;
    let current = message.current();
    let Some(photo) = current.photo.clone() else {
        return Err(ApiError::bad_request(
            "there is no caption in the message to edit",
        ));
    };
    markup::check_buttons(reply_markup.as_ref())?;
    let caption = keep_known_mentions(&world, caption);
    if unchanged(current, &caption, reply_markup.as_ref()) {
        return Err(ApiError::bad_request(NOT_MODIFIED));
    }
    let (chat_id, message_id) = (message.chat_id, message.message_id);
    let mut edited = version(caption, reply_markup, "editMessageCaption");
    edited.photo = Some(photo);
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
