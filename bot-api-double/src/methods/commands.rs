//! setMyCommands, getMyCommands and deleteMyCommands, with the checks of
//! the Bot API server, tdlib and Telegram's servers in their order.

use serde_json::{Map, Value, json};

use crate::args::Args;
use crate::model::BotCommand;
use crate::reply::{ApiError, ApiResult, Success};
use crate::world::Shared;

const MAX_COMMAND_CHARS: usize = 32;
const MAX_DESCRIPTION_CHARS: usize = 256;
const MAX_COMMANDS: usize = 100;
const SCOPE_TYPES: [&str; 7] = [
    "default",
    "all_private_chats",
    "all_group_chats",
    "all_chat_administrators",
    "chat",
    "chat_administrators",
    "chat_member",
];

/// The storage key of a `scope` argument: its JSON with sorted keys.
pub(crate) fn scope_key(scope: &Value) -> String {
    scope.to_string()
}

fn scope_arg(args: &Args) -> Result<String, ApiError> {
    let raw = args.get("scope").unwrap_or("");
    if raw.is_empty() {
        return Ok(scope_key(&json!({ "type": "default" })));
    }
    let scope: Value = serde_json::from_str(raw)
        .map_err(|_| ApiError::bad_request("can't parse BotCommandScope JSON object"))?;
    let known = scope
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| SCOPE_TYPES.contains(&t));
    if !known {
        return Err(ApiError::bad_request(
            "wrong BotCommandScope type specified",
        ));
    }
    Ok(scope_key(&scope))
}

fn key(args: &Args) -> Result<(String, String), ApiError> {
    let language = args.get("language_code").unwrap_or("").to_owned();
    Ok((scope_arg(args)?, language))
}

fn string_field(object: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match object.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::bad_request(format!(
            "can't parse BotCommand: Field \"{name}\" must be of type String"
        ))),
        None => Err(ApiError::bad_request(format!(
            "can't parse BotCommand: Can't find field \"{name}\""
        ))),
    }
}

fn parse_commands(raw: Option<&str>) -> Result<Vec<BotCommand>, ApiError> {
    let raw = raw
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("parameter \"commands\" is required"))?;
    let value: Value = serde_json::from_str(raw)
        .map_err(|_| ApiError::bad_request("can't parse commands JSON object"))?;
    let Value::Array(items) = value else {
        return Err(ApiError::bad_request("expected an Array of BotCommand"));
    };
    let mut commands = Vec::with_capacity(items.len());
    for item in &items {
        let Value::Object(object) = item else {
            return Err(ApiError::bad_request(
                "can't parse BotCommand: expected an Object",
            ));
        };
        let command = string_field(object, "command")?;
        let description = string_field(object, "description")?;
        let command = command.trim();
        let command = command.strip_prefix('/').unwrap_or(command);
        if command.is_empty() {
            return Err(ApiError::bad_request("command must be non-empty"));
        }
        if command.chars().count() > MAX_COMMAND_CHARS {
            return Err(ApiError::bad_request(format!(
                "command length must not exceed {MAX_COMMAND_CHARS}"
            )));
        }
        let description = description.trim();
        if description.is_empty() {
            return Err(ApiError::bad_request(
                "command description must be non-empty",
            ));
        }
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(ApiError::bad_request(format!(
                "command description length must not exceed {MAX_DESCRIPTION_CHARS}"
            )));
        }
        commands.push(BotCommand {
            command: command.to_owned(),
            description: description.to_owned(),
        });
    }
    let valid_name = |c: &BotCommand| {
        c.command
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if !commands.iter().all(valid_name) {
        return Err(ApiError::bad_request("BOT_COMMAND_INVALID"));
    }
    if commands.len() > MAX_COMMANDS {
        return Err(ApiError::bad_request("BOT_COMMANDS_TOO_MUCH"));
    }
    Ok(commands)
}

pub(crate) fn set_my_commands(shared: &Shared, args: &Args) -> ApiResult {
    let key = key(args)?;
    let commands = parse_commands(args.get("commands"))?;
    let mut world = shared.lock();
    if commands.is_empty() {
        world.commands.remove(&key);
    } else {
        world.commands.insert(key, commands);
    }
    Ok(Success::of(json!(true)))
}

pub(crate) fn get_my_commands(shared: &Shared, args: &Args) -> ApiResult {
    let key = key(args)?;
    let world = shared.lock();
    let commands: Vec<Value> = world
        .commands
        .get(&key)
        .into_iter()
        .flatten()
        .map(|c| json!({ "command": c.command, "description": c.description }))
        .collect();
    Ok(Success::of(json!(commands)))
}

pub(crate) fn delete_my_commands(shared: &Shared, args: &Args) -> ApiResult {
    let key = key(args)?;
    shared.lock().commands.remove(&key);
    Ok(Success::of(json!(true)))
}
