//! getMe.

use serde_json::json;

use crate::reply::{ApiResult, Success};
use crate::world::Shared;

pub(crate) fn get_me(shared: &Shared) -> ApiResult {
    let mut me = shared.bot_user_json();
    me["can_join_groups"] = json!(true);
    me["can_read_all_group_messages"] = json!(!shared.options.privacy_mode);
    me["supports_inline_queries"] = json!(false);
    me["can_connect_to_business"] = json!(false);
    me["has_main_web_app"] = json!(false);
    Ok(Success::of(me))
}
