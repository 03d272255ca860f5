//! Inline-button payloads.
//!
//! Callback data comes back from Telegram as a string the client could have
//! forged, so it carries only an action and ids, is parsed strictly, and every
//! handler re-checks that the pressing user owns the server it names. Telegram
//! caps callback data at 64 bytes; [`Callback::encode`] stays far below.

use crate::charts::{Metric, Period};

/// Telegram's limit on `callback_data`, in bytes.
pub const CALLBACK_DATA_LIMIT: usize = 64;

/// What a button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// Show (or refresh in place) a server's status.
    Stat { server: i64 },
    /// Ask to confirm deleting a server.
    Delete { server: i64 },
    /// Confirmed: delete the server and its history.
    DeleteConfirm { server: i64 },
    /// Ask to confirm rotating a server's code.
    Reinstall { server: i64 },
    /// Confirmed: rotate the code and show the new install line.
    ReinstallConfirm { server: i64 },
    /// Switch the chart this button is under (the photo is replaced).
    Chart {
        server: i64,
        metric: Metric,
        period: Period,
    },
    /// Open a chart as a new photo message (from a text message such as
    /// `/stat`, or a server picked from a keyboard).
    OpenChart {
        server: i64,
        metric: Metric,
        period: Period,
    },
    /// Dismiss a question; nothing changes.
    Cancel,
}

impl Callback {
    pub fn encode(&self) -> String {
        let s = match self {
            Callback::Stat { server } => format!("st:{server}"),
            Callback::Delete { server } => format!("dl:{server}"),
            Callback::DeleteConfirm { server } => format!("dy:{server}"),
            Callback::Reinstall { server } => format!("ri:{server}"),
            Callback::ReinstallConfirm { server } => format!("ry:{server}"),
            Callback::Chart {
                server,
                metric,
                period,
            } => format!("ch:{server}:{}:{}", metric.as_str(), period.as_str()),
            Callback::OpenChart {
                server,
                metric,
                period,
            } => format!("co:{server}:{}:{}", metric.as_str(), period.as_str()),
            Callback::Cancel => "x".to_owned(),
        };
        debug_assert!(s.len() <= CALLBACK_DATA_LIMIT);
        s
    }

    /// Parses button data; anything unexpected is `None`.
    pub fn decode(data: &str) -> Option<Self> {
        if data.len() > CALLBACK_DATA_LIMIT {
            return None;
        }
        let mut parts = data.split(':');
        let tag = parts.next()?;
        let cb = match tag {
            "x" => Callback::Cancel,
            "st" | "dl" | "dy" | "ri" | "ry" => {
                let server = parse_id(parts.next()?)?;
                match tag {
                    "st" => Callback::Stat { server },
                    "dl" => Callback::Delete { server },
                    "dy" => Callback::DeleteConfirm { server },
                    "ri" => Callback::Reinstall { server },
                    _ => Callback::ReinstallConfirm { server },
                }
            }
            "ch" => Callback::Chart {
                server: parse_id(parts.next()?)?,
                metric: parts.next()?.parse().ok()?,
                period: parts.next()?.parse().ok()?,
            },
            "co" => Callback::OpenChart {
                server: parse_id(parts.next()?)?,
                metric: parts.next()?.parse().ok()?,
                period: parts.next()?.parse().ok()?,
            },
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(cb)
    }
}

/// A positive decimal id without sign or leading zeros.
fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 19 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fits() {
        let all = [
            Callback::Stat { server: i64::MAX },
            Callback::Delete { server: 1 },
            Callback::DeleteConfirm { server: 42 },
            Callback::Reinstall { server: 7 },
            Callback::ReinstallConfirm { server: 7 },
            Callback::Chart {
                server: i64::MAX,
                metric: Metric::All,
                period: Period::D30,
            },
            Callback::OpenChart {
                server: 3,
                metric: Metric::Net,
                period: Period::H1,
            },
            Callback::Cancel,
        ];
        for cb in all {
            let data = cb.encode();
            assert!(data.len() <= CALLBACK_DATA_LIMIT, "{data}");
            assert_eq!(Callback::decode(&data), Some(cb));
        }
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "st",
            "st:",
            "st:-1",
            "st:0",
            "st:01",
            "st:1:2",
            "st:abc",
            "zz:1",
            "st:99999999999999999999",
            "ch:1:cpu",
            "ch:1:bogus:1h",
            "ch:1:cpu:2y",
            "co:1:cpu",
            "co:0:cpu:1h",
            "co:1:cpu:1h:x",
            "x:1",
            "dy:1 ",
            " dy:1",
        ] {
            assert_eq!(Callback::decode(bad), None, "{bad:?}");
        }
        assert_eq!(Callback::decode(&"st:1".repeat(20)), None);
    }
}
