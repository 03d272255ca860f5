//! Why a chart could not be made, in words a user or operator can act on.

/// Rendering failed. None of these depend on the data: they mean the
/// embedded font or the drawing library misbehaved, so they are worth a log
/// line, not a retry with other data.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the embedded chart font could not be loaded")]
    Font,
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    #[error("encoding the chart as PNG failed: {0}")]
    Encode(#[from] png::EncodingError),
}

/// A word that is not one of the metric or period choices. The word comes
/// from a chat, so only a bounded prefix of it is kept for the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {word:?}: use one of {choices}")]
pub struct ParseChoiceError {
    kind: &'static str,
    word: String,
    choices: &'static str,
}

/// Longest prefix of an unknown word repeated back in an error message.
const ECHO_CHARS: usize = 16;

impl ParseChoiceError {
    pub(crate) fn new(kind: &'static str, word: &str, choices: &'static str) -> Self {
        let word = word
            .chars()
            .filter(|c| !c.is_control())
            .take(ECHO_CHARS)
            .collect();
        Self {
            kind,
            word,
            choices,
        }
    }
}
