//! One function per Bot API method, dispatched by the method's name
//! (case-insensitive, as Telegram treats it).

mod callback;
mod chat_action;
mod commands;
mod edit;
mod me;
mod photo;
mod send;

use std::sync::Arc;

use crate::args::Args;
use crate::entity::EntityKind;
use crate::reply::{ApiError, ApiResult};
use crate::text::{self, Formatted, Purpose};
use crate::world::{Shared, World};
use crate::{polling, webhook};

/// Runs `method` (already lowercased). Methods the double does not
/// implement answer 404 like unknown ones, so a bot relying on one fails
/// loudly instead of retrying.
pub(crate) async fn dispatch(shared: &Arc<Shared>, method: &str, args: &Args) -> ApiResult {
    match method {
        "getme" => me::get_me(shared),
        "getupdates" => polling::get_updates(shared, args).await,
        "sendmessage" => send::send_message(shared, args),
        "sendphoto" => photo::send_photo(shared, args),
        "editmessagetext" => edit::edit_message_text(shared, args),
        "editmessagecaption" => edit::edit_message_caption(shared, args),
        "editmessagemedia" => photo::edit_message_media(shared, args),
        "editmessagereplymarkup" => edit::edit_message_reply_markup(shared, args),
        "deletemessage" => edit::delete_message(shared, args),
        "answercallbackquery" => callback::answer_callback_query(shared, args),
        "sendchataction" => chat_action::send_chat_action(shared, args),
        "setmycommands" => commands::set_my_commands(shared, args),
        "getmycommands" => commands::get_my_commands(shared, args),
        "deletemycommands" => commands::delete_my_commands(shared, args),
        "setwebhook" => webhook::set_webhook(shared, args),
        "deletewebhook" => webhook::delete_webhook(shared, args),
        "getwebhookinfo" => webhook::get_webhook_info(shared),
        _ => {
            tracing::warn!(method, "Bot API method not implemented by the test double");
            Err(ApiError::not_found())
        }
    }
}

/// Reads a text argument (`text` or `caption`) with `parse_mode`.
fn formatted_arg(
    shared: &Shared,
    args: &Args,
    field: &str,
    entities_field: &str,
    purpose: Purpose,
) -> Result<Formatted, ApiError> {
    if args.get(entities_field).is_some_and(|e| !e.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "the test double does not implement explicit {entities_field}; use parse_mode HTML"
        )));
    }
    let source = args.get(field).unwrap_or("");
    text::format(
        source,
        args.get("parse_mode"),
        purpose,
        shared.options.bare_ampersand,
    )
}

/// Reads a photo caption (`caption` with `parse_mode`).
fn caption_arg(shared: &Shared, args: &Args) -> Result<Formatted, ApiError> {
    formatted_arg(
        shared,
        args,
        "caption",
        "caption_entities",
        Purpose::Caption,
    )
}

/// Drops mentions of users Telegram would not know, as it drops them.
fn keep_known_mentions(world: &World, mut formatted: Formatted) -> Formatted {
    formatted.entities.retain(|e| match e.kind {
        EntityKind::TextMention { user_id } => world.knows_user(user_id),
        _ => true,
    });
    formatted
}

/// The `message_id` argument, required by edits and deletions.
fn message_id_arg(args: &Args) -> Result<i64, ApiError> {
    args.int("message_id")
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("message identifier is not specified"))
}
