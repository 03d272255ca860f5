//! What a command produces, independent of the front end that shows it.
//!
//! The Telegram front end turns these into Bot API calls; the demo's console
//! prints them. Handlers never know which one they serve.

use super::callback::Callback;

/// One inline button: a label that says what it does and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub label: String,
    pub action: Callback,
}

impl Button {
    pub fn new(label: impl Into<String>, action: Callback) -> Self {
        Self {
            label: label.into(),
            action,
        }
    }
}

/// Rows of inline buttons under a message.
pub type Keyboard = Vec<Vec<Button>>;

/// A text message in Telegram HTML, possibly with buttons.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// HTML; user-controlled parts already escaped. Longer than Telegram's
    /// limit only when made of blocks the front end may split (see
    /// [`super::html::split_blocks`]).
    pub blocks: Vec<String>,
    pub keyboard: Keyboard,
}

impl Reply {
    /// A reply of a single HTML block.
    pub fn html(text: impl Into<String>) -> Self {
        Self {
            blocks: vec![text.into()],
            keyboard: Vec::new(),
        }
    }

    pub fn with_keyboard(mut self, keyboard: Keyboard) -> Self {
        self.keyboard = keyboard;
        self
    }

    /// The whole text, blocks joined by newlines.
    pub fn text(&self) -> String {
        self.blocks.join("\n")
    }
}

/// A chart image with its caption and buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub png: Vec<u8>,
    /// HTML caption (Telegram allows 1024 characters).
    pub caption: String,
    pub keyboard: Keyboard,
    /// A file name for front ends that save the image.
    pub file_name: String,
}

/// One thing to show the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A new message in the chat.
    Send(Reply),
    /// Replace the text and buttons of the message the button was on.
    Edit(Reply),
    /// A new photo message.
    Photo(Photo),
    /// Replace the photo (and caption, buttons) of the message the button was on.
    EditPhoto(Photo),
    /// A short notice shown over the chat (the answer to a button press).
    Notice(String),
}
