//! `/threshold [NAME] [METRIC VALUE [MINUTES] | METRIC off | METRIC default]`:
//! see and change the alert rules of all the user's servers or of one. The
//! rules and their checks live in [`crate::alerts::command`].

use super::{CommandError, CommandResult, Context, Run, Usage};
use crate::alerts::Alerts;
use crate::alerts::command::{
    THRESHOLD_USAGE, ThresholdCommand, apply_threshold, parse_threshold, usage_text,
};
use crate::bot::reply::Output;

#[derive(Debug)]
pub struct Threshold(ThresholdCommand);

impl Run for Threshold {
    const USAGE: Usage = Usage {
        name: "threshold",
        args: "[NAME] [METRIC VALUE [MINUTES] | METRIC off]",
        about: "see or change alert thresholds",
        admin: false,
    };

    fn parse(args: &[&str]) -> Result<Self, CommandError> {
        parse_threshold(args)
            .map(Threshold)
            .map_err(|e| CommandError::Refused(usage_text(&e.to_string(), THRESHOLD_USAGE)))
    }

    async fn apply(self, cx: &Context<'_>) -> CommandResult {
        let alerts = Alerts::at_time(cx.storage.clone(), cx.now);
        let reply = apply_threshold(&alerts, cx.user.user_id, self.0).await?;
        Ok(vec![Output::Send(reply)])
    }
}
