//! sendPhoto and editMessageMedia: a multipart upload (or the file_id of an
//! earlier upload), decoded and checked as a PNG, with an optional caption.

use std::sync::Arc;

use serde_json::Value;

use super::edit::{NOT_MODIFIED, apply, editable, inline_markup, unchanged};
use super::send::{destination, sent_json};
use super::{caption_arg, keep_known_mentions};
use crate::args::Args;
use crate::markup;
use crate::model::Photo;
use crate::png_check::check_png;
use crate::reply::{ApiError, ApiResult, Success};
use crate::text::{self, Purpose};
use crate::world::{Sender, Shared, World, version};

/// Where the photo comes from.
enum Source {
    Upload(Vec<u8>),
    FileId(String),
}

fn no_photo() -> ApiError {
    ApiError::bad_request("there is no photo in the request")
}

/// Follows a file argument: `attach://<part>` names a multipart part, a URL
/// would be fetched, anything else is a file_id; without one, the part
/// named `default_part` (if any) is the upload.
fn file_source(
    args: &Args,
    spec: Option<&str>,
    default_part: Option<&str>,
) -> Result<Source, ApiError> {
    let upload = |part: &str| {
        args.part(part)
            .map(|p| Source::Upload(p.bytes.clone()))
            .ok_or_else(no_photo)
    };
    match spec.map(str::trim).filter(|p| !p.is_empty()) {
        Some(spec) => match spec.strip_prefix("attach://") {
            Some(part) => upload(part),
            None if spec.starts_with("http://") || spec.starts_with("https://") => {
                Err(ApiError::bad_request(
                    "failed to get HTTP URL content (the test double does not fetch URLs)",
                ))
            }
            None => Ok(Source::FileId(spec.to_owned())),
        },
        None => default_part.map_or_else(|| Err(no_photo()), upload),
    }
}

fn load(world: &mut World, source: Source) -> Result<Photo, ApiError> {
    match source {
        Source::FileId(id) => world
            .files
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::bad_request("wrong file identifier/HTTP URL specified")),
        Source::Upload(bytes) => {
            let size = check_png(&bytes)?;
            let photo = Photo {
                file_id: world.new_file_id(),
                width: size.width,
                height: size.height,
                bytes: Arc::from(bytes),
            };
            world.files.insert(photo.file_id.clone(), photo.clone());
            Ok(photo)
        }
    }
}

pub(crate) fn send_photo(shared: &Shared, args: &Args) -> ApiResult {
    let source = file_source(args, args.get("photo"), Some("photo"))?;
    let caption = caption_arg(shared, args)?;
    let reply_markup = markup::parse(args.get("reply_markup"))?;
    let mut world = shared.lock();
    let chat_id = destination(&world, args, reply_markup.as_ref())?;
    let photo = load(&mut world, source)?;
    let caption = keep_known_mentions(&world, caption);
    let mut sent = version(caption, reply_markup, "sendPhoto");
    sent.photo = Some(photo);
    let message_id = world.add_message(chat_id, Sender::Bot, sent);
    Ok(Success::of(sent_json(shared, &world, chat_id, message_id)))
}

/// The `media` argument: an InputMediaPhoto.
struct InputPhoto {
    media: Option<String>,
    caption: String,
    parse_mode: Option<String>,
}

fn input_photo(args: &Args) -> Result<InputPhoto, ApiError> {
    let unreadable = || ApiError::bad_request("can't parse InputMedia JSON object");
    let raw = args
        .get("media")
        .filter(|m| !m.is_empty())
        .ok_or_else(unreadable)?;
    let Ok(Value::Object(media)) = serde_json::from_str::<Value>(raw) else {
        return Err(unreadable());
    };
    let text = |name: &str| media.get(name).and_then(Value::as_str).map(str::to_owned);
    match text("type").as_deref() {
        Some("photo") => {}
        Some("video" | "animation" | "audio" | "document") => {
            return Err(ApiError::bad_request(
                "the test double implements only photo media",
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "unsupported input media type specified",
            ));
        }
    }
    if media.contains_key("caption_entities") {
        return Err(ApiError::bad_request(
            "the test double does not implement explicit caption_entities; use parse_mode HTML",
        ));
    }
    Ok(InputPhoto {
        media: text("media"),
        caption: text("caption").unwrap_or_default(),
        parse_mode: text("parse_mode"),
    })
}

pub(crate) fn edit_message_media(shared: &Shared, args: &Args) -> ApiResult {
    let input = input_photo(args)?;
    let source = file_source(args, input.media.as_deref(), None)?;
    let caption = text::format(
        &input.caption,
        input.parse_mode.as_deref(),
        Purpose::Caption,
        shared.options.bare_ampersand,
    )?;
    let reply_markup = inline_markup(args)?;
    let mut world = shared.lock();
    let message = editable(&world, args)?;
    if message.current().photo.is_none() {
        return Err(ApiError::bad_request(
            "there is no media in the message to edit",
        ));
    }
    markup::check_buttons(reply_markup.as_ref())?;
    let (chat_id, message_id) = (message.chat_id, message.message_id);
    let photo = load(&mut world, source)?;
    let caption = keep_known_mentions(&world, caption);
    let unchanged = world.message(chat_id, message_id).is_some_and(|m| {
        let current = m.current();
        current.photo.as_ref().map(|p| &p.file_id) == Some(&photo.file_id)
            && unchanged(current, &caption, reply_markup.as_ref())
    });
    if unchanged {
        return Err(ApiError::bad_request(NOT_MODIFIED));
    }
    let mut edited = version(caption, reply_markup, "editMessageMedia");
    edited.photo = Some(photo);
    apply(&mut world, chat_id, message_id, edited);
    Ok(Success::of(sent_json(shared, &world, chat_id, message_id)))
}
