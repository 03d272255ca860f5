//! Checks an uploaded photo the way Telegram's image processing would
//! refuse it. The double accepts PNG only: the product sends PNG charts, and
//! anything else reaching it is a bug worth a loud refusal.

use std::io::Cursor;

use crate::reply::ApiError;

/// Largest photo Telegram accepts.
const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;
/// Largest decoded image the double is willing to hold in memory.
const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

pub(crate) struct Dimensions {
    pub width: u32,
    pub height: u32,
}

fn unprocessable() -> ApiError {
    ApiError::bad_request("IMAGE_PROCESS_FAILED")
}

/// Decodes the whole PNG (signature, chunks, checksums, pixel data) and
/// applies Telegram's photo rules: at most 10 MB, width + height at most
/// 10000, sides in a ratio of at most 20.
pub(crate) fn check_png(bytes: &[u8]) -> Result<Dimensions, ApiError> {
    if bytes.len() > MAX_PHOTO_BYTES {
        return Err(ApiError::bad_request("file is too big"));
    }
    let limits = png::Limits {
        bytes: MAX_DECODED_BYTES,
    };
    let decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    let mut reader = decoder.read_info().map_err(|_| unprocessable())?;
    let (width, height) = (reader.info().width, reader.info().height);
    let (long, short) = (width.max(height), width.min(height).max(1));
    if u64::from(width) + u64::from(height) > 10_000 || long / short > 20 {
        return Err(ApiError::bad_request("PHOTO_INVALID_DIMENSIONS"));
    }
    let size = reader.output_buffer_size();
    if size > MAX_DECODED_BYTES {
        return Err(unprocessable());
    }
    let mut pixels = vec![0; size];
    reader
        .next_frame(&mut pixels)
        .map_err(|_| unprocessable())?;
    reader.finish().map_err(|_| unprocessable())?;
    Ok(Dimensions { width, height })
}
