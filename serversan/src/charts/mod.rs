//! Charts: history rendered as PNG.
