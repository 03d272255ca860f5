//! answerCallbackQuery.

use std::time::Instant;

use serde_json::json;

use crate::args::Args;
use crate::model::CallbackAnswer;
use crate::reply::{ApiError, ApiResult, Success};
use crate::world::Shared;

const QUERY_TOO_OLD: &str = "query is too old and response timeout expired or query ID is invalid";

pub(crate) fn answer_callback_query(shared: &Shared, args: &Args) -> ApiResult {
    let id = args.get("callback_query_id").unwrap_or("").trim();
    let ttl = shared.options.callback_query_ttl;
    let mut world = shared.lock();
    let query = world
        .callbacks
        .iter_mut()
        .find(|q| q.id == id)
        .filter(|q| q.answer.is_none())
        .filter(|q| ttl.is_none_or(|ttl| q.created.elapsed() <= ttl))
        .ok_or_else(|| ApiError::bad_request(QUERY_TOO_OLD))?;
    query.answer = Some(CallbackAnswer {
        query_id: id.to_owned(),
        text: args
            .get("text")
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        show_alert: args.flag("show_alert"),
        url: args.get("url").filter(|u| !u.is_empty()).map(str::to_owned),
        cache_time: args
            .int("cache_time")
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0),
        at: Instant::now(),
    });
    Ok(Success::of(json!(true)))
}
