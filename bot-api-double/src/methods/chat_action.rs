//! sendChatAction.

use serde_json::json;

use crate::args::Args;
use crate::reply::{ApiError, ApiResult, Success};
use crate::world::Shared;

const ACTIONS: [&str; 14] = [
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "record_audio",
    "upload_audio",
    "upload_document",
    "choose_sticker",
    "find_location",
    "pick_up_location",
    "record_video_note",
    "upload_video_note",
];

pub(crate) fn send_chat_action(shared: &Shared, args: &Args) -> ApiResult {
    let action = args.get("action").unwrap_or("").trim().to_ascii_lowercase();
    if !ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::bad_request("wrong parameter action in request"));
    }
    let mut world = shared.lock();
    let chat_id = world.resolve_chat(args)?;
    world.check_not_blocked(chat_id)?;
    world.chat_actions.push((chat_id, action));
    Ok(Success::of(json!(true)))
}
