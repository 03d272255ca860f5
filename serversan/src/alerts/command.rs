//! `/threshold`, `/mute` and `/unmute`: parsing (strict: every bad form gets
//! a usage message and changes nothing) and applying them for the user who
//! sent them. Server names are looked up among that user's servers only.

use std::fmt::Write as _;
use std::time::Duration;

use super::message::time;
use super::rules::{self, Metric, Rule, RuleSet, ValueError, describe};
use super::{AlertError, Alerts};
use crate::bot::args::{format_duration, parse_duration};
use crate::bot::html::escape;
use crate::bot::reply::{Output, Reply};
use crate::storage::Server;

/// How long `/mute` without a duration lasts.
pub const DEFAULT_MUTE: Duration = Duration::from_secs(3600);

/// How `/threshold` is used (plain text).
pub const THRESHOLD_USAGE: &str = "Usage:\n\
/threshold: show all rules (/threshold NAME: one server's)\n\
/threshold [NAME] cpu|mem|swap|disk|load VALUE [MINUTES]\n\
/threshold [NAME] offline MINUTES\n\
/threshold [NAME] METRIC off\n\
/threshold [NAME] METRIC default\n\
VALUE is a percentage, or for load the load average per core. MINUTES is how long \
every report must breach (0: the first one). Without NAME the rule is the default \
for all your servers.";

/// How `/mute` is used (plain text).
pub const MUTE_USAGE: &str = "Usage: /mute [DURATION] for all your servers, \
/mute NAME DURATION for one. DURATION like 30m, 2h, 1d.";

/// How `/unmute` is used (plain text).
pub const UNMUTE_USAGE: &str = "Usage: /unmute for all your servers, /unmute NAME for one.";

/// What a `/threshold` message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdCommand {
    /// Show the rules of all servers, or of one.
    Show { server: Option<String> },
    /// Set a rule; `minutes` (in seconds) keeps the current window when absent.
    Set {
        server: Option<String>,
        metric: Metric,
        value: f64,
        for_secs: Option<i64>,
    },
    Off {
        server: Option<String>,
        metric: Metric,
    },
    /// Back to the default (a server's own rule removed, or the owner's
    /// default back to the built-in one).
    Default {
        server: Option<String>,
        metric: Metric,
    },
}

/// Why a `/threshold` message is not understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    #[error("unknown metric {0:?}; choose cpu, mem, swap, disk, load or offline")]
    UnknownMetric(String),
    #[error("say what to set: a value, off or default")]
    MissingValue,
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("offline takes one number: the minutes without a report")]
    OfflineWindow,
    #[error("too many words")]
    TooMany,
}

/// Parses the words after `/threshold`.
pub fn parse_threshold(args: &[&str]) -> Result<ThresholdCommand, ThresholdError> {
    let (server, rest) = match args.split_first() {
        None => return Ok(ThresholdCommand::Show { server: None }),
        Some((first, _)) if Metric::parse(first).is_some() => (None, args),
        Some((first, rest)) => (Some((*first).to_owned()), rest),
    };
    let Some((metric_word, rest)) = rest.split_first() else {
        return Ok(ThresholdCommand::Show { server });
    };
    let metric = Metric::parse(metric_word)
        .ok_or_else(|| ThresholdError::UnknownMetric((*metric_word).to_owned()))?;
    match rest {
        [] => Err(ThresholdError::MissingValue),
        [word] if word.eq_ignore_ascii_case("off") => Ok(ThresholdCommand::Off { server, metric }),
        [word] if word.eq_ignore_ascii_case("default") => {
            Ok(ThresholdCommand::Default { server, metric })
        }
        [value, window @ ..] if window.len() <= 1 => {
            let value = rules::parse_value(metric, value)?;
            let for_secs = match window.first() {
                Some(_) if metric == Metric::Offline => return Err(ThresholdError::OfflineWindow),
                Some(minutes) => Some(rules::parse_minutes(minutes)?),
                None => None,
            };
            Ok(ThresholdCommand::Set {
                server,
                metric,
                value,
                for_secs,
            })
        }
        _ => Err(ThresholdError::TooMany),
    }
}

/// Answers `/threshold` for `owner_id`.
pub async fn threshold(alerts: &Alerts, owner_id: i64, args: &[&str]) -> Vec<Output> {
    let command = match parse_threshold(args) {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string(), THRESHOLD_USAGE),
    };
    reply(apply_threshold(alerts, owner_id, command).await)
}

/// Carries out a parsed `/threshold` for `owner_id`.
pub async fn apply_threshold(
    alerts: &Alerts,
    owner_id: i64,
    command: ThresholdCommand,
) -> Result<Reply, Failure> {
    let server_name = match &command {
        ThresholdCommand::Show { server }
        | ThresholdCommand::Set { server, .. }
        | ThresholdCommand::Off { server, .. }
        | ThresholdCommand::Default { server, .. } => server.clone(),
    };
    let server = match &server_name {
        Some(name) => Some(find_server(alerts, owner_id, name).await?),
        None => None,
    };
    let server_id = server.as_ref().map(|s| s.id);
    let scope = match &server {
        Some(s) => format!("<b>{}</b>", escape(&s.name)),
        None => "all your servers".to_owned(),
    };
    match command {
        ThresholdCommand::Show { .. } => match &server {
            Some(s) => show_server(alerts, owner_id, s).await,
            None => show_all(alerts, owner_id).await,
        },
        ThresholdCommand::Set {
            metric,
            value,
            for_secs,
            ..
        } => {
            let current = current_rules(alerts, owner_id, server_id).await?;
            let inherited = match server_id {
                Some(_) => current.effective(metric),
                None => current.default_for(metric),
            };
            let for_secs = for_secs
                .or(inherited.map(|r| r.for_secs))
                .unwrap_or(metric.default_rule().for_secs);
            let rule = Rule {
                threshold: value,
                for_secs: if metric == Metric::Offline {
                    0
                } else {
                    for_secs
                },
            };
            alerts
                .set_rule(owner_id, server_id, metric, Some(rule))
                .await?;
            let note = overridden_note(alerts, owner_id, server_id, metric).await?;
            Ok(Reply::html(format!(
                "✅ {metric} for {scope}: {}{note}",
                describe(metric, Some(rule))
            )))
        }
        ThresholdCommand::Off { metric, .. } => {
            alerts.set_rule(owner_id, server_id, metric, None).await?;
            let note = overridden_note(alerts, owner_id, server_id, metric).await?;
            Ok(Reply::html(format!(
                "✅ {metric} alerts are off for {scope}.{note}"
            )))
        }
        ThresholdCommand::Default { metric, .. } => {
            let Some(id) = server_id else {
                alerts.reset_rule(owner_id, 0, metric).await?;
                let rule = Some(metric.default_rule());
                let note = overridden_note(alerts, owner_id, None, metric).await?;
                return Ok(Reply::html(format!(
                    "✅ {metric} for all your servers is back to the built-in {}{note}",
                    describe(metric, rule)
                )));
            };
            alerts.reset_rule(owner_id, id, metric).await?;
            let rules = current_rules(alerts, owner_id, Some(id)).await?;
            Ok(Reply::html(format!(
                "✅ {metric} for {scope} follows your default again: {}",
                describe(metric, rules.effective(metric))
            )))
        }
    }
}

async fn current_rules(
    alerts: &Alerts,
    owner_id: i64,
    server_id: Option<i64>,
) -> Result<RuleSet, Failure> {
    Ok(alerts
        .server_rules(owner_id, server_id.unwrap_or(0))
        .await?)
}

/// After a default changed: which servers keep their own rule.
async fn overridden_note(
    alerts: &Alerts,
    owner_id: i64,
    server_id: Option<i64>,
    metric: Metric,
) -> Result<String, Failure> {
    if server_id.is_some() {
        return Ok(String::new());
    }
    let own: Vec<i64> = alerts
        .stored_rules(owner_id)
        .await?
        .into_iter()
        .filter(|(id, m, _)| *id != 0 && *m == metric)
        .map(|(id, _, _)| id)
        .collect();
    if own.is_empty() {
        return Ok(String::new());
    }
    let servers = alerts
        .storage()
        .list_servers(owner_id)
        .await
        .map_err(AlertError::from)?;
    let names: Vec<String> = servers
        .iter()
        .filter(|s| own.contains(&s.id))
        .map(|s| format!("<b>{}</b>", escape(&s.name)))
        .collect();
    let (verb, their) = if names.len() == 1 {
        ("keeps", "its")
    } else {
        ("keep", "their")
    };
    Ok(format!(
        "\n{} {verb} {their} own {metric} rule (<code>/threshold NAME {metric} default</code> to follow this one).",
        names.join(", ")
    ))
}

async fn show_all(alerts: &Alerts, owner_id: i64) -> Result<Reply, Failure> {
    let stored = alerts.stored_rules(owner_id).await?;
    let servers = alerts
        .storage()
        .list_servers(owner_id)
        .await
        .map_err(AlertError::from)?;
    let mut defaults = RuleSet::default();
    for (id, metric, setting) in &stored {
        if *id == 0 {
            defaults.defaults.insert(*metric, *setting);
        }
    }
    let mut blocks = vec![String::from(
        "<b>Alert rules</b>\nDefaults for all your servers:",
    )];
    let mut lines = String::new();
    for metric in Metric::ALL {
        let _ = writeln!(
            lines,
            "{metric} {}",
            describe(metric, defaults.default_for(metric))
        );
    }
    blocks.push(lines.trim_end().to_owned());
    for server in &servers {
        let own: Vec<String> = stored
            .iter()
            .filter(|(id, _, _)| *id == server.id)
            .map(|(_, metric, setting)| format!("{metric} {}", describe(*metric, *setting)))
            .collect();
        if !own.is_empty() {
            blocks.push(format!(
                "<b>{}</b>: {}",
                escape(&server.name),
                own.join(" · ")
            ));
        }
    }
    blocks.extend(mute_lines(alerts, owner_id, &servers).await?);
    blocks.push(
        "Change: <code>/threshold [NAME] METRIC VALUE [MINUTES]</code>, <code>/threshold [NAME] METRIC off</code>"
            .to_owned(),
    );
    Ok(Reply {
        blocks,
        keyboard: Vec::new(),
    })
}

async fn show_server(alerts: &Alerts, owner_id: i64, server: &Server) -> Result<Reply, Failure> {
    let rules = current_rules(alerts, owner_id, Some(server.id)).await?;
    let mut text = format!("<b>Alert rules for {}</b>", escape(&server.name));
    for metric in Metric::ALL {
        let own = if rules.overrides.contains_key(&metric) {
            " (own)"
        } else {
            ""
        };
        let _ = write!(
            text,
            "\n{metric} {}{own}",
            describe(metric, rules.effective(metric))
        );
    }
    let mut blocks = vec![text];
    blocks.extend(mute_lines(alerts, owner_id, std::slice::from_ref(server)).await?);
    Ok(Reply {
        blocks,
        keyboard: Vec::new(),
    })
}

/// Lines about running mutes of the owner, for the servers given.
async fn mute_lines(
    alerts: &Alerts,
    owner_id: i64,
    servers: &[Server],
) -> Result<Vec<String>, Failure> {
    let mut lines = Vec::new();
    for (id, until) in alerts.mutes(owner_id).await? {
        if id == 0 {
            lines.push(format!(
                "🔕 All your servers are muted until {}.",
                time(until)
            ));
        } else if let Some(s) = servers.iter().find(|s| s.id == id) {
            lines.push(format!(
                "🔕 <b>{}</b> is muted until {}.",
                escape(&s.name),
                time(until)
            ));
        }
    }
    Ok(lines)
}

/// What a `/mute` message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteCommand {
    /// `None`: all the user's servers.
    pub server: Option<String>,
    pub span: Duration,
}

/// Parses the words after `/mute`.
pub fn parse_mute(args: &[&str]) -> Result<MuteCommand, String> {
    let all = |word: &str| word.eq_ignore_ascii_case("all");
    let duration = |word: &str| {
        parse_duration(word).ok_or_else(|| {
            format!("{word:?} is not a duration such as 30m, 2h or 1d (at most a year)")
        })
    };
    match args {
        [] => Ok(MuteCommand {
            server: None,
            span: DEFAULT_MUTE,
        }),
        [word] if word.starts_with(|c: char| c.is_ascii_digit()) => Ok(MuteCommand {
            server: None,
            span: duration(word)?,
        }),
        [word] => Err(format!("say for how long, such as /mute {word} 2h")),
        [name, span] => Ok(MuteCommand {
            server: (!all(name)).then(|| (*name).to_owned()),
            span: duration(span)?,
        }),
        _ => Err("too many words".to_owned()),
    }
}

/// Answers `/mute` for `owner_id`.
pub async fn mute(alerts: &Alerts, owner_id: i64, args: &[&str]) -> Vec<Output> {
    let command = match parse_mute(args) {
        Ok(c) => c,
        Err(e) => return usage(&e, MUTE_USAGE),
    };
    reply(apply_mute(alerts, owner_id, command).await)
}

/// Carries out a parsed `/mute` for `owner_id`.
pub async fn apply_mute(
    alerts: &Alerts,
    owner_id: i64,
    command: MuteCommand,
) -> Result<Reply, Failure> {
    let server = match &command.server {
        Some(name) => Some(find_server(alerts, owner_id, name).await?),
        None => None,
    };
    let until = alerts
        .mute(owner_id, server.as_ref().map(|s| s.id), command.span)
        .await?;
    let scope = match &server {
        Some(s) => format!("<b>{}</b>", escape(&s.name)),
        None => "all your servers".to_owned(),
    };
    let name = server
        .as_ref()
        .map_or(String::new(), |s| format!(" {}", escape(&s.name)));
    Ok(Reply::html(format!(
        "🔕 Alerts for {scope} are muted for {} (until {}). Alerts are still tracked; \
         when the mute ends you hear once what changed. /unmute{name} ends it now.",
        format_duration(command.span),
        time(until)
    )))
}

/// Parses the words after `/unmute`: `None` for all servers.
pub fn parse_unmute(args: &[&str]) -> Result<Option<String>, String> {
    match args {
        [] => Ok(None),
        [word] if word.eq_ignore_ascii_case("all") => Ok(None),
        [name] => Ok(Some((*name).to_owned())),
        _ => Err("too many words".to_owned()),
    }
}

/// Answers `/unmute` for `owner_id`.
pub async fn unmute(alerts: &Alerts, owner_id: i64, args: &[&str]) -> Vec<Output> {
    let server = match parse_unmute(args) {
        Ok(s) => s,
        Err(e) => return usage(&e, UNMUTE_USAGE),
    };
    reply(apply_unmute(alerts, owner_id, server).await)
}

/// Carries out a parsed `/unmute` (`None`: all servers) for `owner_id`.
pub async fn apply_unmute(
    alerts: &Alerts,
    owner_id: i64,
    name: Option<String>,
) -> Result<Reply, Failure> {
    let server = match &name {
        Some(name) => Some(find_server(alerts, owner_id, name).await?),
        None => None,
    };
    let (ended, told) = alerts
        .unmute(owner_id, server.as_ref().map(|s| s.id))
        .await?;
    let mut text = match (&server, ended) {
        (None, 0) => "Nothing was muted.".to_owned(),
        (None, _) => "🔔 Alerts are on again for all your servers.".to_owned(),
        (Some(s), 0) => format!("<b>{}</b> was not muted.", escape(&s.name)),
        (Some(s), _) => format!("🔔 Alerts for <b>{}</b> are on again.", escape(&s.name)),
    };
    if told > 0 {
        text.push_str(" What changed meanwhile follows.");
    }
    if server.is_some() && alerts.mutes(owner_id).await?.iter().any(|(id, _)| *id == 0) {
        text.push_str(" All your servers are still muted: /unmute ends that.");
    }
    Ok(Reply::html(text))
}

/// Why a command could not be carried out.
#[derive(Debug)]
pub enum Failure {
    /// The user has no server by that name (or it is someone else's).
    NoSuchServer(String),
    Internal(AlertError),
}

impl From<AlertError> for Failure {
    fn from(e: AlertError) -> Self {
        Failure::Internal(e)
    }
}

impl From<Failure> for crate::bot::cmd::CommandError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::NoSuchServer(name) => Self::no_such_server(&name),
            Failure::Internal(AlertError::Storage(e)) => Self::Storage(e),
        }
    }
}

async fn find_server(alerts: &Alerts, owner_id: i64, name: &str) -> Result<Server, Failure> {
    alerts
        .storage()
        .find_server(owner_id, name)
        .await
        .map_err(AlertError::from)?
        .ok_or_else(|| Failure::NoSuchServer(name.to_owned()))
}

fn reply(result: Result<Reply, Failure>) -> Vec<Output> {
    match result {
        Ok(r) => vec![Output::Send(r)],
        Err(Failure::NoSuchServer(name)) => vec![Output::Send(Reply::html(format!(
            "You have no server named <b>{}</b>. /list shows yours.",
            escape(&name)
        )))],
        Err(Failure::Internal(e)) => {
            tracing::error!("alert command failed: {e}");
            vec![Output::Send(Reply::html(
                "Something went wrong on our side; nothing was changed. Please try again in a minute.",
            ))]
        }
    }
}

fn usage(problem: &str, usage: &str) -> Vec<Output> {
    vec![Output::Send(Reply::html(escape(&usage_text(
        problem, usage,
    ))))]
}

/// The answer to a form that is not understood (plain text).
pub fn usage_text(problem: &str, usage: &str) -> String {
    format!("⚠️ {problem}\n{usage}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_forms() {
        use ThresholdCommand::*;
        assert_eq!(parse_threshold(&[]), Ok(Show { server: None }));
        assert_eq!(
            parse_threshold(&["web1"]),
            Ok(Show {
                server: Some("web1".into())
            })
        );
        assert_eq!(
            parse_threshold(&["cpu", "95", "10"]),
            Ok(Set {
                server: None,
                metric: Metric::Cpu,
                value: 95.0,
                for_secs: Some(600)
            })
        );
        assert_eq!(
            parse_threshold(&["web1", "DISK", "80%"]),
            Ok(Set {
                server: Some("web1".into()),
                metric: Metric::Disk,
                value: 80.0,
                for_secs: None
            })
        );
        assert_eq!(
            parse_threshold(&["web1", "load", "off"]),
            Ok(Off {
                server: Some("web1".into()),
                metric: Metric::Load
            })
        );
        assert_eq!(
            parse_threshold(&["offline", "10"]),
            Ok(Set {
                server: None,
                metric: Metric::Offline,
                value: 10.0,
                for_secs: None
            })
        );
        assert_eq!(
            parse_threshold(&["web1", "mem", "default"]),
            Ok(Default {
                server: Some("web1".into()),
                metric: Metric::Mem
            })
        );
    }

    #[test]
    fn bad_threshold_forms_say_why() {
        let bad: &[(&[&str], ThresholdError)] = &[
            (
                &["web1", "temp", "5"],
                ThresholdError::UnknownMetric("temp".into()),
            ),
            (&["cpu"], ThresholdError::MissingValue),
            (
                &["cpu", "150"],
                ThresholdError::Value(ValueError::Percent {
                    metric: Metric::Cpu,
                }),
            ),
            (
                &["cpu", "90", "abc"],
                ThresholdError::Value(ValueError::Minutes),
            ),
            (&["offline", "5", "2"], ThresholdError::OfflineWindow),
            (&["cpu", "90", "5", "6"], ThresholdError::TooMany),
            (&["load", "-1"], ThresholdError::Value(ValueError::Load)),
        ];
        for (args, expected) in bad {
            assert_eq!(parse_threshold(args).as_ref(), Err(expected), "{args:?}");
        }
    }

    #[test]
    fn mute_forms() {
        assert_eq!(
            parse_mute(&[]),
            Ok(MuteCommand {
                server: None,
                span: DEFAULT_MUTE
            })
        );
        assert_eq!(
            parse_mute(&["2h"]),
            Ok(MuteCommand {
                server: None,
                span: Duration::from_secs(7200)
            })
        );
        assert_eq!(
            parse_mute(&["web1", "30m"]),
            Ok(MuteCommand {
                server: Some("web1".into()),
                span: Duration::from_secs(1800)
            })
        );
        assert_eq!(parse_mute(&["all", "1d"]).map(|c| c.server), Ok(None));
        for bad in [
            &["web1"][..],
            &["2x"],
            &["web1", "soon"],
            &["web1", "2h", "x"],
            &["0m"],
        ] {
            assert!(parse_mute(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_unmute(&[]), Ok(None));
        assert_eq!(parse_unmute(&["web1"]), Ok(Some("web1".into())));
        assert!(parse_unmute(&["a", "b"]).is_err());
    }
}
