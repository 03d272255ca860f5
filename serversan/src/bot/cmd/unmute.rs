//! `/unmute [NAME]`: alerts on again, for all the user's servers or one;
//! what changed while muted follows at once.

use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::alerts::Alerts;
use crate::alerts::command::{UNMUTE_USAGE, apply_unmute, parse_unmute, usage_text};
use crate::bot::reply::Output;

#[derive(Debug)]
pub struct Unmute(Option<String>);

impl Run for Unmute {
    const USAGE: Usage = Usage {
        name: "unmute",
        args: "[NAME]",
        about: "turn alerts back on",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        parse_unmute(args)
            .map(Unmute)
            .map_err(|e| CommandError::Refused(usage_text(&e, UNMUTE_USAGE)))
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let alerts = Alerts::at_time(cx.storage.clone(), cx.now);
        let reply = apply_unmute(&alerts, cx.user.user_id, self.0).await?;
        Ok(vec![Output::Send(reply)])
    }
}
