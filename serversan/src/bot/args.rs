//! Splitting and checking command arguments.

use std::time::Duration;

/// The command word and its arguments, from a message such as
/// `/stat@MyServerSanBot web-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine<'a> {
    /// Lower-case command without the slash or the bot's @name.
    pub name: String,
    pub args: Vec<&'a str>,
}

/// Parses a command message. `None` when the text is not a command, or is
/// addressed to another bot (`/stat@OtherBot` in a group).
pub fn parse_command_line<'a>(
    text: &'a str,
    bot_username: Option<&str>,
) -> Option<CommandLine<'a>> {
    let text = text.trim();
    let rest = text.strip_prefix('/')?;
    let mut words = rest.split_whitespace();
    let head = words.next()?;
    let (name, target) = match head.split_once('@') {
        Some((name, target)) => (name, Some(target)),
        None => (head, None),
    };
    if let (Some(target), Some(me)) = (target, bot_username)
        && !target.eq_ignore_ascii_case(me)
    {
        return None;
    }
    if name.is_empty()
        || name.len() > 32
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    Some(CommandLine {
        name: name.to_ascii_lowercase(),
        args: words.collect(),
    })
}

/// Longest mute or similar duration accepted (a year).
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses durations like `30m`, `2h`, `1d`, `1w` (and `90s` for tests).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(unit_at);
    if digits.is_empty() || digits.len() > 6 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        _ => return None,
    };
    let d = Duration::from_secs(secs);
    (secs > 0 && d <= MAX_DURATION).then_some(d)
}

/// Formats a duration the way people say it: `2h 5m`, `3d 4h`, `45s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let c = parse_command_line("/Stat@SanBot  web-1 ", Some("sanbot")).expect("command");
        assert_eq!(c.name, "stat");
        assert_eq!(c.args, vec!["web-1"]);
        assert!(parse_command_line("/stat@OtherBot", Some("sanbot")).is_none());
        assert!(parse_command_line("hello", None).is_none());
        assert!(parse_command_line("/", None).is_none());
        assert!(parse_command_line("/<b>", None).is_none());
        let c = parse_command_line("/help", None).expect("command");
        assert!(c.args.is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1w"), Some(Duration::from_secs(604_800)));
        for bad in ["", "m", "0m", "-5m", "5", "5y", "1.5h", "9999999h", "400d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(
            format_duration(Duration::from_secs(86_400 * 3 + 3600 * 4)),
            "3d 4h"
        );
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
    }
}
