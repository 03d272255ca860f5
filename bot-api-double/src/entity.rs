//! Message entities: the formatting Telegram extracts from a message's text.
//!
//! Offsets and lengths are in UTF-16 code units, as in the Bot API, so a test
//! can compare them with what a real client would render.

use serde_json::{Value, json};

/// What kind of formatting an [`Entity`] applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntityKind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    Code,
    /// A `<pre>` block, with the language of a nested `<code class="language-x">`.
    Pre {
        language: Option<String>,
    },
    TextLink {
        url: String,
    },
    /// A `tg://user?id=` link: Telegram turns it into a mention of that user.
    TextMention {
        user_id: i64,
    },
    CustomEmoji {
        custom_emoji_id: String,
    },
    Blockquote,
    ExpandableBlockquote,
    /// Found by Telegram in incoming messages (`/start`), never parsed from HTML.
    BotCommand,
}

/// One formatted span of a message's text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entity {
    pub kind: EntityKind,
    /// Start, in UTF-16 code units.
    pub offset: usize,
    /// Length, in UTF-16 code units.
    pub length: usize,
}

impl EntityKind {
    /// The Bot API's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            EntityKind::Bold => "bold",
            EntityKind::Italic => "italic",
            EntityKind::Underline => "underline",
            EntityKind::Strikethrough => "strikethrough",
            EntityKind::Spoiler => "spoiler",
            EntityKind::Code => "code",
            EntityKind::Pre { .. } => "pre",
            EntityKind::TextLink { .. } => "text_link",
            EntityKind::TextMention { .. } => "text_mention",
            EntityKind::CustomEmoji { .. } => "custom_emoji",
            EntityKind::Blockquote => "blockquote",
            EntityKind::ExpandableBlockquote => "expandable_blockquote",
            EntityKind::BotCommand => "bot_command",
        }
    }

    /// Telegram's ordering among entities that start and end together
    /// (tdlib's type priorities), so the output order matches Telegram's.
    pub(crate) fn priority(&self) -> u8 {
        match self {
            EntityKind::Blockquote | EntityKind::ExpandableBlockquote => 0,
            EntityKind::Pre { language: Some(_) } => 10,
            EntityKind::Pre { language: None } => 11,
            EntityKind::Code => 20,
            EntityKind::TextLink { .. } | EntityKind::TextMention { .. } => 49,
            EntityKind::BotCommand => 50,
            EntityKind::Bold => 90,
            EntityKind::Italic => 91,
            EntityKind::Underline => 92,
            EntityKind::Strikethrough => 93,
            EntityKind::Spoiler => 94,
            EntityKind::CustomEmoji { .. } => 99,
        }
    }
}

impl Entity {
    /// The entity as the Bot API serialises it. `user` renders a mentioned
    /// user's object for `text_mention`.
    pub(crate) fn to_json(&self, user: impl Fn(i64) -> Value) -> Value {
        let mut v = json!({
            "offset": self.offset,
            "length": self.length,
            "type": self.kind.type_name(),
        });
        match &self.kind {
            EntityKind::Pre { language: Some(l) } => v["language"] = json!(l),
            EntityKind::TextLink { url } => v["url"] = json!(url),
            EntityKind::TextMention { user_id } => v["user"] = user(*user_id),
            EntityKind::CustomEmoji { custom_emoji_id } => {
                v["custom_emoji_id"] = json!(custom_emoji_id)
            }
            _ => {}
        }
        v
    }

    /// The part of `text` this entity covers.
    pub fn slice<'t>(&self, text: &'t str) -> &'t str {
        let start = byte_index(text, self.offset);
        let end = byte_index(text, self.offset + self.length);
        &text[start..end]
    }
}

/// Sorts entities the way Telegram returns them: by offset, longer first,
/// then by type priority.
pub(crate) fn sort_entities(entities: &mut [Entity]) {
    entities.sort_by(|a, b| {
        a.offset
            .cmp(&b.offset)
            .then(b.length.cmp(&a.length))
            .then(a.kind.priority().cmp(&b.kind.priority()))
    });
}

/// Length of `s` in UTF-16 code units: what Telegram's limits count.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Byte index in `s` of the UTF-16 offset `utf16` (clamped to the end).
pub(crate) fn byte_index(s: &str, utf16: usize) -> usize {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        if units >= utf16 {
            return i;
        }
        units += c.len_utf16();
    }
    s.len()
}
