//! Telegram HTML: escaping user-controlled text and splitting long replies.
//!
//! Every message is sent with `parse_mode=HTML`, so any text that did not
//! come from our own templates (host names, server names, process names,
//! usernames) must pass through [`escape`] before it is put in a message.

/// Telegram's limit on a message's text, in UTF-16 code units after entity
/// parsing. We measure the raw HTML, which is never shorter, so a part that
/// fits here fits there.
pub const MESSAGE_LIMIT: usize = 4096;

/// Escapes the three characters Telegram's HTML parser treats specially, and
/// the double quote so the result is also safe inside an attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Length as Telegram counts it (UTF-16 code units).
pub fn telegram_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Joins self-contained HTML blocks (each with balanced tags) into as few
/// messages as fit under `limit`, separating blocks with a newline.
///
/// Splitting between blocks, never inside one, keeps every part valid HTML.
/// A single block longer than the limit (which our templates never produce)
/// is cut at a line boundary inside `<pre>`-free text or, failing that,
/// replaced by its escaped plain text cut to fit.
pub fn split_blocks(blocks: &[String], limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    for block in blocks {
        let block = if telegram_len(block) > limit {
            shorten(block, limit)
        } else {
            block.clone()
        };
        let needed =
            telegram_len(&current) + usize::from(!current.is_empty()) + telegram_len(&block);
        if !current.is_empty() && needed > limit {
            parts.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&block);
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    parts
}

/// Makes an oversized block fit: its text without tags, escaped and cut.
fn shorten(block: &str, limit: usize) -> String {
    let plain = to_plain(block);
    let mut out = String::new();
    let ellipsis = "…";
    for c in plain.chars() {
        let piece = escape(&c.to_string());
        if telegram_len(&out) + telegram_len(&piece) + 1 > limit {
            out.push_str(ellipsis);
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The visible text of our own HTML: tags removed, the four entities we emit
/// decoded. Also how the console front end shows a message.
pub fn to_plain(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => in_tag = true,
            (true, '>') => in_tag = false,
            (false, c) => out.push(c),
            (true, _) => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<b>x&y</b> \"q\""),
            "&lt;b&gt;x&amp;y&lt;/b&gt; &quot;q&quot;"
        );
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn short_replies_stay_one_message() {
        let parts = split_blocks(&["<b>a</b>".into(), "b".into()], MESSAGE_LIMIT);
        assert_eq!(parts, vec!["<b>a</b>\nb".to_string()]);
    }

    #[test]
    fn long_replies_split_between_blocks() {
        let block = format!("<code>{}</code>", "x".repeat(1000));
        let blocks = vec![block.clone(); 9];
        let parts = split_blocks(&blocks, MESSAGE_LIMIT);
        assert_eq!(parts.len(), 3);
        for p in &parts {
            assert!(telegram_len(p) <= MESSAGE_LIMIT);
            assert_eq!(p.matches("<code>").count(), p.matches("</code>").count());
        }
        let rejoined: Vec<&str> = parts.iter().flat_map(|p| p.split('\n')).collect();
        assert_eq!(rejoined.len(), 9);
    }

    #[test]
    fn oversized_block_is_cut_to_fit_as_plain_text() {
        let block = format!("<pre>{}</pre>", "&lt;".repeat(5000));
        let parts = split_blocks(&[block], 100);
        assert_eq!(parts.len(), 1);
        assert!(telegram_len(&parts[0]) <= 100);
        assert!(!parts[0].contains("<pre>"));
        assert!(parts[0].starts_with("&lt;"));
    }

    #[test]
    fn counts_utf16_units() {
        assert_eq!(telegram_len("é"), 1);
        assert_eq!(telegram_len("😀"), 2);
    }
}
