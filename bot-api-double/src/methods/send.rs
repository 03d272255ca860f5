//! sendMessage.

use serde_json::Value;

use super::{formatted_arg, keep_known_mentions};
use crate::args::Args;
use crate::markup::{self, ReplyMarkup};
use crate::reply::{ApiError, ApiResult, Success};
use crate::text::Purpose;
use crate::world::{Sender, Shared, World, version};

pub(crate) fn send_message(shared: &Shared, args: &Args) -> ApiResult {
    let formatted = formatted_arg(shared, args, "text", "entities", Purpose::SendText)?;
    let reply_markup = markup::parse(args.get("reply_markup"))?;
    let mut world = shared.lock();
    let chat_id = destination(&world, args, reply_markup.as_ref())?;
    let formatted = keep_known_mentions(&world, formatted);
    let message_id = world.add_message(
        chat_id,
        Sender::Bot,
        version(formatted, reply_markup, "sendMessage"),
    );
    Ok(Success::of(sent_json(shared, &world, chat_id, message_id)))
}

/// The chat a new message goes to, after the checks Telegram makes there:
/// the chat is known, the replied message exists, the buttons are valid and
/// the user has not blocked the bot.
pub(crate) fn destination(
    world: &World,
    args: &Args,
    reply_markup: Option<&ReplyMarkup>,
) -> Result<i64, ApiError> {
    let chat_id = world.resolve_chat(args)?;
    check_reply_target(world, chat_id, args)?;
    markup::check_buttons(reply_markup)?;
    world.check_not_blocked(chat_id)?;
    Ok(chat_id)
}

/// The Message object of a message just stored.
pub(crate) fn sent_json(shared: &Shared, world: &World, chat_id: i64, message_id: i64) -> Value {
    world
        .message(chat_id, message_id)
        .map(|m| world.message_json(m, &shared.bot_user_json()))
        .unwrap_or(Value::Null)
}

/// A reply must name a message of the chat unless the bot allows sending
/// without it.
fn check_reply_target(world: &World, chat_id: i64, args: &Args) -> Result<(), ApiError> {
    let mut target = args.int("reply_to_message_id");
    let mut allow_without = args.flag("allow_sending_without_reply");
    if let Some(Value::Object(params)) = args
        .get("reply_parameters")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
    {
        target = params.get("message_id").and_then(Value::as_i64);
        allow_without |= params
            .get("allow_sending_without_reply")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    match target {
        Some(id) if id > 0 && !allow_without && world.message(chat_id, id).is_none() => {
            Err(ApiError::bad_request("message to be replied not found"))
        }
        _ => Ok(()),
    }
}
