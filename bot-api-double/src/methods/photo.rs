//! sendPhoto: a multipart upload (or the file_id of an earlier upload),
//! decoded and checked as a PNG, with an optional caption.

use std::sync::Arc;

use super::send::{destination, sent_json};
use super::{formatted_arg, keep_known_mentions};
use crate::args::Args;
use crate::markup;
use crate::model::Photo;
use crate::png_check::check_png;
use crate::reply::{ApiError, ApiResult, Success};
use crate::text::Purpose;
use crate::world::{Sender, Shared, World, version};

/// Where the photo comes from.
enum Source {
    Upload(Vec<u8>),
    FileId(String),
}

fn no_photo() -> ApiError {
    ApiError::bad_request("there is no photo in the request")
}

/// Follows the `photo` argument: `attach://<part>`, a file_id or URL, or
/// else a part named `photo`.
fn photo_source(args: &Args) -> Result<Source, ApiError> {
    match args.get("photo").map(str::trim).filter(|p| !p.is_empty()) {
        Some(spec) => match spec.strip_prefix("attach://") {
            Some(part) => args
                .part(part)
                .map(|p| Source::Upload(p.bytes.clone()))
                .ok_or_else(no_photo),
            None if spec.starts_with("http://") || spec.starts_with("https://") => {
                Err(ApiError::bad_request(
                    "failed to get HTTP URL content (the test double does not fetch URLs)",
                ))
            }
            None => Ok(Source::FileId(spec.to_owned())),
        },
        None => args
            .part("photo")
            .map(|p| Source::Upload(p.bytes.clone()))
            .ok_or_else(no_photo),
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
    let source = photo_source(args)?;
    let caption = formatted_arg(
        shared,
        args,
        "caption",
        "caption_entities",
        Purpose::Caption,
    )?;
    let reply_markup = markup::parse(args.get("reply_markup"))?;
    let mut world = shared.lock();
    let chat_id = destination(&world, args, reply_markup.as_ref())?;
    let photo = load(&mut world, source)?;
    let caption = keep_known_mentions(&world, caption);
    let message_id = world.add_message(
        chat_id,
        Sender::Bot,
        version(caption, reply_markup, "sendPhoto"),
        Some(photo),
    );
    Ok(Success::of(sent_json(shared, &world, chat_id, message_id)))
}
