//! `/chart [NAME] [cpu|mem|disk|net|load|all] [1h|6h|24h|7d|30d]`: a
//! server's history as a picture, with buttons that switch the figure and
//! the period by replacing the picture in place.

use super::pick::{Target, keyboard, owned, target};
use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::bot::callback::Callback;
use crate::bot::html::escape;
use crate::bot::reply::{Button, Keyboard, Output, Photo, Reply};
use crate::charts::{ChartRequest, Metric, Period, TimeZone, render_png};
use crate::history::chart_history;
use crate::storage::Server;

/// What a chart shows when the command does not say: every figure over
/// the last day.
pub const DEFAULT_METRIC: Metric = Metric::All;
pub const DEFAULT_PERIOD: Period = Period::H24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    name: Option<String>,
    metric: Metric,
    period: Period,
}

impl Run for Chart {
    const USAGE: Usage = Usage {
        name: "chart",
        args: "[NAME] [cpu|mem|disk|net|load|all] [1h|6h|24h|7d|30d]",
        about: "a chart of a server's history",
        admin: false,
    };

    /// The words may come in any order. A server may be named like a
    /// period (`24h`), never like a metric (those names are reserved): as
    /// the first of three words it is the name.
    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        classify(None, args)
            .or_else(|| match args {
                [name, rest @ ..] if name.parse::<Metric>().is_err() => classify(Some(name), rest),
                _ => None,
            })
            .ok_or_else(|| Self::USAGE.error())
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let (metric, period) = (self.metric, self.period);
        Ok(vec![match target(cx, self.name.as_deref()).await? {
            Target::One(server) => Output::Photo(photo(cx, &server, metric, period).await?),
            Target::Choose(servers) => Output::Send(Reply::html("Which server?").with_keyboard(
                keyboard(&servers, |server| Callback::OpenChart {
                    server,
                    metric,
                    period,
                }),
            )),
        }])
    }
}

/// Sorts the words into metric, period and (unless `name` is given) a
/// name; `None` when one kind comes twice or more words remain.
fn classify(name: Option<&str>, words: &[&str]) -> Option<Chart> {
    let mut name = name.map(str::to_owned);
    let (mut metric, mut period) = (None, None);
    for word in words {
        let slot_taken = if let Ok(m) = word.parse::<Metric>() {
            metric.replace(m).is_some()
        } else if let Ok(p) = word.parse::<Period>() {
            period.replace(p).is_some()
        } else {
            name.replace((*word).to_owned()).is_some()
        };
        if slot_taken {
            return None;
        }
    }
    Some(Chart {
        name,
        metric: metric.unwrap_or(DEFAULT_METRIC),
        period: period.unwrap_or(DEFAULT_PERIOD),
    })
}

/// The button that opens a server's chart, for other views (`/stat`).
pub fn open_button(server: i64) -> Button {
    Button::new(
        "Chart",
        Callback::OpenChart {
            server,
            metric: DEFAULT_METRIC,
            period: DEFAULT_PERIOD,
        },
    )
}

/// A metric or period button under a chart: the chart it is under is
/// replaced. The server is looked up again for this user; an id from a
/// button proves nothing.
pub async fn switch(
    cx: &Context<'_>,
    server: i64,
    metric: Metric,
    period: Period,
) -> CommandResult {
    let server = owned(cx, server).await?;
    Ok(vec![
        Output::EditPhoto(photo(cx, &server, metric, period).await?),
        Output::Notice(format!("{metric} · {period}")),
    ])
}

/// The Chart button of a text message, or a server picked from a
/// keyboard: the chart comes as a new message.
pub async fn open(cx: &Context<'_>, server: i64, metric: Metric, period: Period) -> CommandResult {
    let server = owned(cx, server).await?;
    Ok(vec![Output::Photo(
        photo(cx, &server, metric, period).await?,
    )])
}

/// The chart of `server` ending now, with its caption and buttons.
async fn photo(
    cx: &Context<'_>,
    server: &Server,
    metric: Metric,
    period: Period,
) -> Result<Photo, CommandError> {
    let history = chart_history(cx.storage, server.id, period, cx.now).await?;
    let empty = history.cpu.is_empty();
    let request = ChartRequest {
        server: server.name.clone(),
        metric,
        period,
        end: cx.now,
        zone: TimeZone::utc(),
        history,
    };
    let png = render_png(&request).map_err(|e| {
        tracing::error!(error = %e, "could not draw a chart");
        CommandError::Refused("I could not draw that chart. Please try again in a minute.".into())
    })?;
    let mut caption = format!(
        "<b>{}</b> · {} · {}",
        escape(&server.name),
        metric.title(),
        period.label()
    );
    if empty {
        caption.push_str("\nNo reports in this period.");
    }
    Ok(Photo {
        png,
        caption,
        keyboard: buttons(server.id, metric, period),
        file_name: format!("chart-{metric}-{period}.png"),
    })
}

/// One row of metrics, one of periods; each keeps the other choice.
fn buttons(server: i64, metric: Metric, period: Period) -> Keyboard {
    let metrics = Metric::CHOICES
        .iter()
        .map(|&m| {
            Button::new(
                m.as_str(),
                Callback::Chart {
                    server,
                    metric: m,
                    period,
                },
            )
        })
        .collect();
    let periods = Period::CHOICES
        .iter()
        .map(|&p| {
            Button::new(
                p.as_str(),
                Callback::Chart {
                    server,
                    metric,
                    period: p,
                },
            )
        })
        .collect();
    vec![metrics, periods]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(name: Option<&str>, metric: Metric, period: Period) -> Chart {
        Chart {
            name: name.map(str::to_owned),
            metric,
            period,
        }
    }

    #[test]
    fn words_come_in_any_order_with_defaults() {
        let parse = |args: &[&str]| Chart::parse(args).ok();
        assert_eq!(parse(&[]), Some(chart(None, Metric::All, Period::H24)));
        assert_eq!(
            parse(&["web1", "net", "7d"]),
            Some(chart(Some("web1"), Metric::Net, Period::D7))
        );
        assert_eq!(
            parse(&["30D", "web1"]),
            Some(chart(Some("web1"), Metric::All, Period::D30))
        );
        assert_eq!(parse(&["cpu"]), Some(chart(None, Metric::Cpu, Period::H24)));
        // A server named like a period, named first.
        assert_eq!(
            parse(&["24h", "cpu", "1h"]),
            Some(chart(Some("24h"), Metric::Cpu, Period::H1))
        );
    }

    #[test]
    fn surplus_words_are_refused() {
        for args in [
            &["web1", "web2"][..],
            &["cpu", "mem"],
            &["web1", "cpu", "1h", "6h"],
            &["1h", "6h", "7d"],
        ] {
            assert!(
                matches!(Chart::parse(args), Err(CommandError::Usage(_))),
                "{args:?}"
            );
        }
    }

    #[test]
    fn buttons_switch_one_choice_and_keep_the_other() {
        let kb = buttons(7, Metric::Mem, Period::D7);
        let labels: Vec<Vec<&str>> = kb
            .iter()
            .map(|row| row.iter().map(|b| b.label.as_str()).collect())
            .collect();
        assert_eq!(
            labels,
            [
                vec!["cpu", "mem", "disk", "net", "load", "all"],
                vec!["1h", "6h", "24h", "7d", "30d"]
            ]
        );
        assert_eq!(
            kb[0][3].action,
            Callback::Chart {
                server: 7,
                metric: Metric::Net,
                period: Period::D7
            }
        );
        assert_eq!(
            kb[1][0].action,
            Callback::Chart {
                server: 7,
                metric: Metric::Mem,
                period: Period::H1
            }
        );
    }
}
