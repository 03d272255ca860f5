//! Telegram's HTML parse mode, reimplemented from its documented and
//! observed behaviour (the parser in tdlib that the Bot API server uses).
//!
//! The parser works on bytes the way Telegram's does, so the byte offsets in
//! its error messages are the ones Telegram reports. What it accepts:
//! `b strong i em u ins s strike del tg-spoiler span(class="tg-spoiler") a(href)
//! code(class="language-x") pre blockquote(expandable) tg-emoji(emoji-id)`,
//! the entities `&lt; &gt; &amp; &quot;` and numeric references.

use crate::entity::{Entity, EntityKind, sort_entities};

/// Text after parsing, as the recipient sees it, with its formatting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub text: String,
    pub entities: Vec<Entity>,
}

/// What to do with an `&` that starts no recognised entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BareAmpersand {
    /// Refuse it, as if Telegram did: catches text that was not escaped.
    /// Telegram itself shows such an `&` literally; this is the double's
    /// stricter default because a bot must escape every `&` anyway.
    #[default]
    Refuse,
    /// Keep it as a literal `&`, exactly as Telegram does.
    Literal,
}

const TAGS: [&str; 16] = [
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "tg-spoiler",
    "tg-emoji",
    "span",
    "pre",
    "code",
    "blockquote",
];

struct Open {
    tag: String,
    argument: String,
    expandable: bool,
    utf16_offset: usize,
    out_pos: usize,
}

/// Parses `src` as Telegram HTML. The error is the part of Telegram's
/// description after `Bad Request: can't parse entities: `.
pub fn parse(src: &str, ampersand: BareAmpersand) -> Result<Parsed, String> {
    Parser {
        src: src.as_bytes(),
        out: Vec::with_capacity(src.len()),
        utf16: 0,
        ampersand,
        entities: Vec::new(),
        open: Vec::new(),
    }
    .run()
}

struct Parser<'a> {
    src: &'a [u8],
    out: Vec<u8>,
    utf16: usize,
    ampersand: BareAmpersand,
    /// Entities so far, each with the language a `<code>` declared.
    entities: Vec<(Entity, String)>,
    open: Vec<Open>,
}

/// Telegram's notion of a space; the end of the text counts as one.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0 | 0x0b | 0x0c)
}

fn lower(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_lowercase()
}

impl Parser<'_> {
    /// The byte at `i`, or 0 past the end (Telegram parses a C string).
    fn at(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    fn run(mut self) -> Result<Parsed, String> {
        let mut i = 0;
        while i < self.src.len() {
            let c = self.src[i];
            if c == b'&' {
                match self.decode_entity(i) {
                    Some((code, next)) => {
                        let ch = char_of(code)?;
                        self.utf16 += ch.len_utf16();
                        let mut buf = [0; 4];
                        self.out
                            .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        i = next;
                        continue;
                    }
                    None => self.bare_ampersand(i)?,
                }
            }
            if c != b'<' {
                if c & 0xc0 != 0x80 {
                    // first byte of a character: 4-byte characters are surrogate pairs
                    self.utf16 += if c >= 0xf0 { 2 } else { 1 };
                }
                self.out.push(c);
                i += 1;
                continue;
            }
            i = if self.at(i + 1) == b'/' {
                self.end_tag(i)?
            } else {
                self.start_tag(i)?
            };
        }
        if let Some(open) = self.open.last() {
            return Err(format!(
                "Can't find end tag corresponding to start tag {}",
                open.tag
            ));
        }
        let mut entities: Vec<Entity> = self.entities.into_iter().map(|(e, _)| e).collect();
        sort_entities(&mut entities);
        let text = String::from_utf8(self.out)
            .map_err(|_| "Text contains invalid Unicode characters".to_owned())?;
        Ok(Parsed { text, entities })
    }

    fn bare_ampersand(&self, pos: usize) -> Result<(), String> {
        match self.ampersand {
            BareAmpersand::Literal => Ok(()),
            BareAmpersand::Refuse => Err(format!(
                "Unescaped \"&\" at byte offset {pos}: only &lt; &gt; &amp; &quot; and numeric \
                 entities are recognised (Telegram would show it literally; the test double \
                 refuses it so unescaped text is caught)"
            )),
        }
    }

    /// Decodes the HTML entity at `pos` (which holds `&`): the code point and
    /// the position after it, or `None` when it is not one Telegram knows.
    fn decode_entity(&self, pos: usize) -> Option<(u32, usize)> {
        let mut end = pos + 1;
        let code: u32;
        if self.at(pos + 1) == b'#' {
            end += 1;
            let mut res: u32 = 0;
            if self.at(pos + 2) == b'x' {
                end += 1;
                while let Some(d) = (self.at(end) as char).to_digit(16) {
                    res = res.wrapping_mul(16).wrapping_add(d);
                    end += 1;
                }
            } else {
                while let Some(d) = (self.at(end) as char).to_digit(10) {
                    res = res.wrapping_mul(10).wrapping_add(d);
                    end += 1;
                }
            }
            if res == 0 || res >= 0x10ffff || end - pos >= 10 {
                return None;
            }
            code = res;
        } else {
            while self.at(end).is_ascii_alphabetic() {
                end += 1;
            }
            code = match &self.src[pos + 1..end] {
                b"lt" => u32::from(b'<'),
                b"gt" => u32::from(b'>'),
                b"amp" => u32::from(b'&'),
                b"quot" => u32::from(b'"'),
                _ => return None,
            };
        }
        if self.at(end) == b';' {
            end += 1;
        }
        Some((code, end))
    }

    /// Parses a start tag at `begin`; returns the position after its `>`.
    fn start_tag(&mut self, begin: usize) -> Result<usize, String> {
        let mut i = begin + 1;
        while !is_space(self.at(i)) && self.at(i) != b'>' {
            i += 1;
        }
        if self.at(i) == 0 {
            return Err(format!("Unclosed start tag at byte offset {begin}"));
        }
        let tag = lower(&self.src[begin + 1..i]);
        if !TAGS.contains(&tag.as_str()) {
            return Err(format!(
                "Unsupported start tag \"{tag}\" at byte offset {begin}"
            ));
        }
        let mut argument = String::new();
        let mut expandable = false;
        while self.at(i) != b'>' {
            while self.at(i) != 0 && is_space(self.at(i)) {
                i += 1;
            }
            if self.at(i) == b'>' {
                break;
            }
            let name_begin = i;
            while !is_space(self.at(i)) && self.at(i) != b'=' && self.at(i) != b'>' {
                i += 1;
            }
            let name = &self.src[name_begin..i];
            if name.is_empty() {
                return Err(format!(
                    "Empty attribute name in the tag \"{tag}\" at byte offset {begin}"
                ));
            }
            while self.at(i) != 0 && is_space(self.at(i)) {
                i += 1;
            }
            if self.at(i) != b'=' {
                if tag == "blockquote" && name == b"expandable" {
                    if self.at(i) == 0 {
                        return Err(format!("Unclosed start tag at byte offset {begin}"));
                    }
                    expandable = true;
                    continue;
                }
                return Err(format!(
                    "Expected equal sign in declaration of an attribute of the tag \"{tag}\" at \
                     byte offset {begin}"
                ));
            }
            i += 1;
            while self.at(i) != 0 && is_space(self.at(i)) {
                i += 1;
            }
            if self.at(i) == 0 {
                return Err(format!(
                    "Unclosed start tag \"{tag}\" at byte offset {begin}"
                ));
            }
            let value;
            (value, i) = self.attribute_value(i)?;
            if self.at(i) == 0 {
                return Err(format!("Unclosed start tag at byte offset {begin}"));
            }
            match (tag.as_str(), name) {
                ("a", b"href") | ("tg-emoji", b"emoji-id") => argument = value,
                ("code", b"class") => {
                    if let Some(lang) = value.strip_prefix("language-") {
                        argument = lang.to_owned();
                    }
                }
                ("span", b"class") => {
                    if let Some(class) = value.strip_prefix("tg-") {
                        argument = class.to_owned();
                    }
                }
                _ => {}
            }
        }
        if tag == "span" && argument != "spoiler" {
            return Err(format!(
                "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
            ));
        }
        self.open.push(Open {
            tag,
            argument,
            expandable,
            utf16_offset: self.utf16,
            out_pos: self.out.len(),
        });
        Ok(i + 1)
    }

    /// Reads an attribute value (a name token or a quoted string) at `i`.
    fn attribute_value(&self, mut i: usize) -> Result<(String, usize), String> {
        let quote = self.at(i);
        if quote != b'\'' && quote != b'"' {
            let token_begin = i;
            while self.at(i).is_ascii_alphanumeric() || self.at(i) == b'.' || self.at(i) == b'-' {
                i += 1;
            }
            if !is_space(self.at(i)) && self.at(i) != b'>' {
                return Err(format!(
                    "Unexpected end of name token at byte offset {token_begin}"
                ));
            }
            return Ok((lower(&self.src[token_begin..i]), i));
        }
        i += 1;
        let mut value = Vec::new();
        while self.at(i) != quote && self.at(i) != 0 {
            if self.at(i) == b'&' {
                match self.decode_entity(i) {
                    Some((code, next)) => {
                        let mut buf = [0; 4];
                        value.extend_from_slice(char_of(code)?.encode_utf8(&mut buf).as_bytes());
                        i = next;
                        continue;
                    }
                    None => self.bare_ampersand(i)?,
                }
            }
            value.push(self.at(i));
            i += 1;
        }
        if self.at(i) == quote {
            i += 1;
        }
        Ok((String::from_utf8_lossy(&value).into_owned(), i))
    }

    /// Parses an end tag at `begin`; returns the position after its `>`.
    fn end_tag(&mut self, begin: usize) -> Result<usize, String> {
        if self.open.is_empty() {
            return Err(format!("Unexpected end tag at byte offset {begin}"));
        }
        let mut i = begin + 1;
        while !is_space(self.at(i)) && self.at(i) != b'>' {
            i += 1;
        }
        let end_name = lower(&self.src[begin + 2..i]);
        while is_space(self.at(i)) && self.at(i) != 0 {
            i += 1;
        }
        if self.at(i) != b'>' {
            return Err(format!("Unclosed end tag at byte offset {begin}"));
        }
        let Some(open) = self.open.pop() else {
            return Err(format!("Unexpected end tag at byte offset {begin}"));
        };
        if !end_name.is_empty() && end_name != open.tag {
            return Err(format!(
                "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{end_name}>\"",
                open.tag
            ));
        }
        if self.utf16 > open.utf16_offset {
            self.close(open)?;
        }
        Ok(i + 1)
    }

    /// Turns a closed, non-empty tag into its entity.
    fn close(&mut self, open: Open) -> Result<(), String> {
        let offset = open.utf16_offset;
        let length = self.utf16 - offset;
        let kind = match open.tag.as_str() {
            "i" | "em" => EntityKind::Italic,
            "b" | "strong" => EntityKind::Bold,
            "s" | "strike" | "del" => EntityKind::Strikethrough,
            "u" | "ins" => EntityKind::Underline,
            "tg-spoiler" | "span" => EntityKind::Spoiler,
            "tg-emoji" => match open.argument.parse::<i64>() {
                Ok(id) if id != 0 => EntityKind::CustomEmoji {
                    custom_emoji_id: id.to_string(),
                },
                _ => return Err("Invalid custom emoji identifier specified".to_owned()),
            },
            "a" => {
                let url = if open.argument.is_empty() {
                    String::from_utf8_lossy(&self.out[open.out_pos..]).into_owned()
                } else {
                    open.argument
                };
                match link_target(&url) {
                    Some(kind) => kind,
                    None => return Ok(()),
                }
            }
            "pre" => {
                if let Some((last, language)) = self.entities.last_mut()
                    && last.kind == EntityKind::Code
                    && last.offset == offset
                    && last.length == length
                    && !language.is_empty()
                {
                    // <pre><code class="language-x">…</code></pre>
                    last.kind = EntityKind::Pre {
                        language: Some(std::mem::take(language)),
                    };
                    return Ok(());
                }
                EntityKind::Pre { language: None }
            }
            "code" => {
                if let Some((last, _)) = self.entities.last_mut()
                    && matches!(last.kind, EntityKind::Pre { .. })
                    && last.offset == offset
                    && last.length == length
                    && !open.argument.is_empty()
                {
                    last.kind = EntityKind::Pre {
                        language: Some(open.argument),
                    };
                    return Ok(());
                }
                // The language is kept until a matching </pre> may claim it.
                let entity = Entity {
                    kind: EntityKind::Code,
                    offset,
                    length,
                };
                self.entities.push((entity, open.argument));
                return Ok(());
            }
            "blockquote" if open.expandable => EntityKind::ExpandableBlockquote,
            "blockquote" => EntityKind::Blockquote,
            other => return Err(format!("Unsupported start tag \"{other}\"")),
        };
        let entity = Entity {
            kind,
            offset,
            length,
        };
        self.entities.push((entity, String::new()));
        Ok(())
    }
}

/// What an `<a href>` becomes: a user mention, a link, or nothing when
/// Telegram would drop the link as invalid.
fn link_target(url: &str) -> Option<EntityKind> {
    let url = url.trim();
    if let Some(id) = url
        .strip_prefix("tg://user?id=")
        .and_then(|id| id.parse::<i64>().ok())
    {
        return Some(EntityKind::TextMention { user_id: id });
    }
    checked_link(url).map(|url| EntityKind::TextLink { url })
}

/// A link Telegram accepts, normalised the way it normalises them (a bare
/// host gets `http://`), or `None`.
pub(crate) fn checked_link(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || url.chars().any(char::is_whitespace) {
        return None;
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            let known = matches!(
                scheme.as_str(),
                "http" | "https" | "ftp" | "tg" | "ton" | "tonsite"
            );
            (known && !rest.is_empty()).then(|| url.to_owned())
        }
        None if url.starts_with("tg:") => Some(url.to_owned()),
        None => {
            let host = url.split(['/', '?', '#']).next().unwrap_or("");
            let plausible = host.contains('.')
                && host
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
            plausible.then(|| format!("http://{url}"))
        }
    }
}

/// The character for a decoded entity; surrogate halves are refused as
/// Telegram refuses them.
fn char_of(code: u32) -> Result<char, String> {
    char::from_u32(code).ok_or_else(|| {
        "Text contains invalid Unicode characters after decoding HTML entities, check for \
         unmatched surrogate code units"
            .to_owned()
    })
}
