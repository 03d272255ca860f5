//! Making host-provided text fit the report's rules.

/// Replaces control characters (a newline in a mount point, an escape
/// sequence in a process name) with spaces, trims, and cuts to at most
/// `max_bytes` on a character boundary. The server refuses control
/// characters and over-long strings, and one odd name must not cost the
/// whole report.
pub fn clean_text(s: &str, max_bytes: usize) -> String {
    let mapped: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = mapped.trim().to_owned();
    if out.len() > max_bytes {
        let mut end = max_bytes;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clean_text;

    #[test]
    fn controls_become_spaces_and_length_is_bounded() {
        assert_eq!(clean_text(" a\nb\u{1b}[31m ", 256), "a b [31m");
        assert_eq!(clean_text("ééé", 5), "éé");
        assert_eq!(clean_text("abc", 3), "abc");
    }
}
