//! From what a bot sends (`text` + `parse_mode`) to what the recipient sees,
//! with Telegram's trimming and limits.

use crate::entity::{Entity, utf16_len};
use crate::html::{self, BareAmpersand};
use crate::reply::ApiError;

/// Longest message text, in UTF-16 code units after entity parsing.
pub const MAX_TEXT_UTF16: usize = 4096;
/// Longest media caption, in UTF-16 code units after entity parsing.
pub const MAX_CAPTION_UTF16: usize = 1024;

/// A message's text as stored and rendered.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Formatted {
    /// Exactly what the bot sent.
    pub source: String,
    /// The `parse_mode` it was sent with, as given.
    pub parse_mode: Option<String>,
    /// What the recipient sees.
    pub text: String,
    pub entities: Vec<Entity>,
}

/// Which limit applies and how Telegram words a breach of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    SendText,
    EditText,
    Caption,
}

/// Parses and checks `source` the way the Bot API does for `purpose`.
pub fn format(
    source: &str,
    parse_mode: Option<&str>,
    purpose: Purpose,
    ampersand: BareAmpersand,
) -> Result<Formatted, ApiError> {
    let is_caption = purpose == Purpose::Caption;
    if source.is_empty() && !is_caption {
        return Err(ApiError::bad_request("message text is empty"));
    }
    let mode = parse_mode.map(str::trim).filter(|m| !m.is_empty());
    let (text, entities) = match mode.map(str::to_ascii_lowercase).as_deref() {
        None => (source.to_owned(), Vec::new()),
        Some("html") => {
            let parsed = html::parse(source, ampersand)
                .map_err(|e| ApiError::bad_request(format!("can't parse entities: {e}")))?;
            (parsed.text, parsed.entities)
        }
        Some("markdown" | "markdownv2") => {
            return Err(ApiError::bad_request(
                "can't parse entities: the test double implements only the HTML parse mode",
            ));
        }
        Some(_) => return Err(ApiError::bad_request("unsupported parse_mode")),
    };
    let (text, entities) = match trim(text, entities) {
        Some(t) => t,
        None if is_caption => (String::new(), Vec::new()),
        None => return Err(ApiError::bad_request("message must be non-empty")),
    };
    let len = utf16_len(&text);
    match purpose {
        Purpose::SendText if len > MAX_TEXT_UTF16 => {
            return Err(ApiError::bad_request("message is too long"));
        }
        Purpose::EditText if len > MAX_TEXT_UTF16 => {
            return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
        }
        Purpose::Caption if len > MAX_CAPTION_UTF16 => {
            return Err(ApiError::bad_request("message caption is too long"));
        }
        _ => {}
    }
    Ok(Formatted {
        source: source.to_owned(),
        parse_mode: parse_mode.map(str::to_owned),
        text,
        entities,
    })
}

fn is_trailing_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}')
}

/// Telegram's trimming: trailing whitespace goes, entities are cut to the
/// text that is left; leading spaces and newlines go up to the first entity.
/// `None` when nothing but whitespace remains.
fn trim(text: String, mut entities: Vec<Entity>) -> Option<(String, Vec<Entity>)> {
    let kept = text.trim_end_matches(is_trailing_space);
    if kept.is_empty() {
        return None;
    }
    let end = utf16_len(kept);
    entities.retain(|e| e.offset < end);
    for e in &mut entities {
        e.length = e.length.min(end - e.offset);
    }
    let first_entity = entities.iter().map(|e| e.offset).min().unwrap_or(end);
    let lead = kept
        .chars()
        .take_while(|c| matches!(c, ' ' | '\n'))
        .count()
        .min(first_entity);
    for e in &mut entities {
        e.offset -= lead;
    }
    entities.retain(|e| e.length > 0);
    Some((kept[lead..].to_owned(), entities))
}
