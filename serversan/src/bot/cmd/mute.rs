//! `/mute [DURATION]` (all the user's servers) and `/mute NAME DURATION`
//! (one, for maintenance): alerts are still tracked but not sent until the
//! mute ends, when the user hears once what changed.

use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::alerts::Alerts;
use crate::alerts::command::{MUTE_USAGE, MuteCommand, apply_mute, parse_mute, usage_text};
use crate::bot::reply::Output;

#[derive(Debug)]
pub struct Mute(MuteCommand);

impl Run for Mute {
    const USAGE: Usage = Usage {
        name: "mute",
        args: "[NAME] [DURATION]",
        about: "silence alerts for a while (all servers or one)",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        parse_mute(args)
            .map(Mute)
            .map_err(|e| CommandError::Refused(usage_text(&e, MUTE_USAGE)))
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let alerts = Alerts::at_time(cx.storage.clone(), cx.now);
        let reply = apply_mute(&alerts, cx.user.user_id, self.0).await?;
        Ok(vec![Output::Send(reply)])
    }
}
