//! Sending, editing and deleting messages: Telegram's limits, chat rules,
//! keyboard checks and the records a test inspects.

mod common;

use bot_api_double::{BotApiDouble, ButtonAction, TestGroup, TestUser};
use common::{call, ok, refused, started_user};
use serde_json::{Value, json};

fn send(text: &str) -> Value {
    json!({ "chat_id": 1001, "text": text })
}

fn with_keyboard(buttons: Value) -> Value {
    json!({ "chat_id": 1001, "text": "pick", "reply_markup": { "inline_keyboard": buttons } })
}

#[tokio::test]
async fn text_length_counts_utf16_code_units_after_parsing() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    ok(&double, "sendMessage", send(&"a".repeat(4096))).await;
    refused(
        &double,
        "sendMessage",
        send(&"a".repeat(4097)),
        400,
        "Bad Request: message is too long",
    )
    .await;
    // 2048 emoji are 4096 UTF-16 units; one more is too many although it is
    // only 2049 characters.
    ok(&double, "sendMessage", send(&"😀".repeat(2048))).await;
    refused(
        &double,
        "sendMessage",
        send(&"😀".repeat(2049)),
        400,
        "Bad Request: message is too long",
    )
    .await;
    // Tags and entities do not count, their rendering does.
    let tagged = format!("<b>{}</b>", "a".repeat(4095) + "&amp;");
    let message = ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": tagged, "parse_mode": "HTML" }),
    )
    .await;
    assert_eq!(
        bot_api_double::utf16_len(message["text"].as_str().unwrap_or("")),
        4096
    );
}

#[tokio::test]
async fn empty_text_and_whitespace_are_refused_and_text_is_trimmed() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    refused(
        &double,
        "sendMessage",
        send(""),
        400,
        "Bad Request: message text is empty",
    )
    .await;
    refused(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001 }),
        400,
        "Bad Request: message text is empty",
    )
    .await;
    refused(
        &double,
        "sendMessage",
        send(" \n "),
        400,
        "Bad Request: message must be non-empty",
    )
    .await;
    refused(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "<b> </b>", "parse_mode": "HTML" }),
        400,
        "Bad Request: message must be non-empty",
    )
    .await;
    let trimmed = ok(&double, "sendMessage", send("  \nhello  \n")).await;
    assert_eq!(trimmed["text"], "hello");
}

#[tokio::test]
async fn messages_go_only_to_chats_that_talked_to_the_bot() {
    let double = BotApiDouble::start().await;
    refused(
        &double,
        "sendMessage",
        send("hi"),
        400,
        "Bad Request: chat not found",
    )
    .await;
    refused(
        &double,
        "sendMessage",
        json!({ "text": "hi" }),
        400,
        "Bad Request: chat_id is empty",
    )
    .await;
    refused(
        &double,
        "sendMessage",
        json!({ "chat_id": "@somechannel", "text": "hi" }),
        400,
        "Bad Request: chat not found",
    )
    .await;

    // Seen in a group only: the bot cannot start the private conversation.
    let group = TestGroup::new(-4001, "ops");
    let bob = TestUser::new(2002, "Bob");
    double.send_group_text(&group, &bob, "/stat");
    refused(
        &double,
        "sendMessage",
        json!({ "chat_id": 2002, "text": "hi" }),
        403,
        "Forbidden: bot can't initiate conversation with a user",
    )
    .await;
    let in_group = ok(
        &double,
        "sendMessage",
        json!({ "chat_id": -4001, "text": "hi" }),
    )
    .await;
    assert_eq!(
        in_group["chat"],
        json!({ "id": -4001, "type": "group", "title": "ops" })
    );

    let alice = started_user(&double, 1001);
    let sent = ok(&double, "sendMessage", send("hi")).await;
    assert_eq!(sent["chat"]["id"], 1001);
    assert_eq!(sent["chat"]["type"], "private");
    assert_eq!(sent["from"]["is_bot"], true);
    // The user's /start was message 1 of the chat.
    assert_eq!(sent["message_id"], 2);

    double.user_blocks_bot(alice.id);
    refused(
        &double,
        "sendMessage",
        send("hi"),
        403,
        "Forbidden: bot was blocked by the user",
    )
    .await;
    refused(
        &double,
        "sendChatAction",
        json!({ "chat_id": 1001, "action": "typing" }),
        403,
        "Forbidden: bot was blocked by the user",
    )
    .await;
    // Writing to the bot again unblocks it, as restarting it does.
    double.send_text(&alice, "/start");
    ok(&double, "sendMessage", send("welcome back")).await;
    assert_eq!(
        double.messages(1001).len(),
        2,
        "refused messages are not stored"
    );
}

#[tokio::test]
async fn inline_keyboards_are_checked_as_telegram_checks_them() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);

    let max = "d".repeat(64);
    let sent = ok(
        &double,
        "sendMessage",
        with_keyboard(json!([[{ "text": "Refresh", "callback_data": max }, { "text": "Docs", "url": "https://example.com" }]])),
    )
    .await;
    assert_eq!(
        sent["reply_markup"],
        json!({ "inline_keyboard": [[{ "text": "Refresh", "callback_data": max }, { "text": "Docs", "url": "https://example.com" }]] })
    );
    // 64 bytes, not characters: 16 four-byte emoji fit, one more byte does not.
    ok(
        &double,
        "sendMessage",
        with_keyboard(json!([[{ "text": "e", "callback_data": "😀".repeat(16) }]])),
    )
    .await;

    let cases: [(Value, &str); 10] = [
        (
            with_keyboard(json!([[{ "text": "x", "callback_data": "d".repeat(65) }]])),
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            with_keyboard(
                json!([[{ "text": "x", "callback_data": format!("{}a", "😀".repeat(16)) }]]),
            ),
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            with_keyboard(json!([[{ "text": "x", "callback_data": "" }]])),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            with_keyboard(json!([[{ "text": "x" }]])),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            with_keyboard(json!([[{ "callback_data": "x" }]])),
            "Bad Request: can't parse inline keyboard button: Can't find field \"text\"",
        ),
        (
            with_keyboard(json!([[{ "text": 5, "callback_data": "x" }]])),
            "Bad Request: can't parse inline keyboard button: Field \"text\" must be of type String",
        ),
        (
            with_keyboard(json!([["Refresh"]])),
            "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object",
        ),
        (
            with_keyboard(json!([{ "text": "x", "callback_data": "x" }])),
            "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays",
        ),
        (
            with_keyboard(json!({ "text": "x" })),
            "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array",
        ),
        (
            with_keyboard(json!([[{ "text": "x", "url": "javascript:alert(1)" }]])),
            "Bad Request: BUTTON_URL_INVALID",
        ),
    ];
    for (body, description) in cases {
        refused(&double, "sendMessage", body, 400, description).await;
    }
    refused(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "x", "reply_markup": "{not json" }),
        400,
        "Bad Request: can't parse reply keyboard markup JSON object",
    )
    .await;
    refused(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "x", "reply_markup": [1] }),
        400,
        "Bad Request: object expected as reply markup",
    )
    .await;

    // Telegram drops buttons without text instead of refusing them.
    let dropped = ok(
        &double,
        "sendMessage",
        with_keyboard(json!([[{ "text": "", "callback_data": "a" }, { "text": "Keep", "callback_data": "b" }], [{ "text": "", "callback_data": "c" }]])),
    )
    .await;
    assert_eq!(
        dropped["reply_markup"],
        json!({ "inline_keyboard": [[{ "text": "Keep", "callback_data": "b" }]] })
    );
    let stored = double.last_message(1001).expect("recorded");
    assert_eq!(stored.buttons().len(), 1);
    assert_eq!(
        stored.button("Keep").map(|b| &b.action),
        Some(&ButtonAction::Callback("b".to_owned()))
    );
}

#[tokio::test]
async fn edits_follow_telegrams_rules_and_keep_history() {
    let double = BotApiDouble::start().await;
    let alice = started_user(&double, 1001);
    let keyboard = json!({ "inline_keyboard": [[{ "text": "Refresh", "callback_data": "r:1" }]] });
    let sent = ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "<b>cpu</b> 5%", "parse_mode": "HTML", "reply_markup": keyboard }),
    )
    .await;
    let id = sent["message_id"].clone();
    let edit = |text: &str, markup: Option<&Value>| {
        let mut body =
            json!({ "chat_id": 1001, "message_id": id, "text": text, "parse_mode": "HTML" });
        if let Some(m) = markup {
            body["reply_markup"] = m.clone();
        }
        body
    };
    let not_modified = "Bad Request: message is not modified: specified new message content and \
                        reply markup are exactly the same as a current content and reply markup \
                        of the message";

    refused(
        &double,
        "editMessageText",
        edit("<b>cpu</b> 5%", Some(&keyboard)),
        400,
        not_modified,
    )
    .await;
    // Same rendering from different HTML is still the same content.
    refused(
        &double,
        "editMessageText",
        edit("<strong>cpu</strong> 5%", Some(&keyboard)),
        400,
        not_modified,
    )
    .await;
    let edited = ok(
        &double,
        "editMessageText",
        edit("<b>cpu</b> 7%", Some(&keyboard)),
    )
    .await;
    assert_eq!(edited["text"], "cpu 7%");
    assert!(edited["edit_date"].is_i64());
    // Leaving reply_markup out removes the keyboard: a change.
    let bare = ok(&double, "editMessageText", edit("<b>cpu</b> 7%", None)).await;
    assert!(bare.get("reply_markup").is_none());
    ok(
        &double,
        "editMessageReplyMarkup",
        json!({ "chat_id": 1001, "message_id": id, "reply_markup": keyboard }),
    )
    .await;
    refused(
        &double,
        "editMessageReplyMarkup",
        json!({ "chat_id": 1001, "message_id": id, "reply_markup": keyboard }),
        400,
        not_modified,
    )
    .await;

    let message = double.last_message(1001).expect("recorded");
    assert_eq!(message.text, "cpu 7%");
    assert_eq!(message.edit_count(), 3);
    let methods: Vec<&str> = message.history.iter().map(|v| v.method).collect();
    assert_eq!(
        methods,
        [
            "sendMessage",
            "editMessageText",
            "editMessageText",
            "editMessageReplyMarkup"
        ]
    );
    assert_eq!(message.history[0].text, "cpu 5%");

    let edits: [(&str, Value, &str); 5] = [
        (
            "editMessageText",
            json!({ "chat_id": 1001, "message_id": 999, "text": "x" }),
            "Bad Request: message to edit not found",
        ),
        (
            "editMessageText",
            json!({ "chat_id": 1001, "text": "x" }),
            "Bad Request: message identifier is not specified",
        ),
        // The user's own /start is message 1.
        (
            "editMessageText",
            json!({ "chat_id": 1001, "message_id": 1, "text": "x" }),
            "Bad Request: message can't be edited",
        ),
        (
            "editMessageText",
            json!({ "chat_id": 1001, "message_id": id, "text": "a".repeat(4097) }),
            "Bad Request: MESSAGE_TOO_LONG",
        ),
        (
            "editMessageReplyMarkup",
            json!({ "chat_id": 1001, "message_id": id, "reply_markup": { "keyboard": [["a"]] } }),
            "Bad Request: inline keyboard expected",
        ),
    ];
    for (method, body, description) in edits {
        refused(&double, method, body, 400, description).await;
    }

    ok(
        &double,
        "deleteMessage",
        json!({ "chat_id": 1001, "message_id": id }),
    )
    .await;
    refused(
        &double,
        "deleteMessage",
        json!({ "chat_id": 1001, "message_id": id }),
        400,
        "Bad Request: message to delete not found",
    )
    .await;
    refused(
        &double,
        "editMessageText",
        json!({ "chat_id": 1001, "message_id": id, "text": "x" }),
        400,
        "Bad Request: message to edit not found",
    )
    .await;
    assert!(double.last_message(1001).is_some_and(|m| m.deleted));
    assert!(
        double
            .click_button(&alice, 1001, id.as_i64().unwrap_or(0), "Refresh")
            .is_err()
    );
}

#[tokio::test]
async fn callback_queries_are_answered_once() {
    let double = BotApiDouble::start().await;
    let alice = started_user(&double, 1001);
    let sent = ok(
        &double,
        "sendMessage",
        with_keyboard(json!([[{ "text": "Delete", "callback_data": "del:7" }]])),
    )
    .await;
    let id = sent["message_id"].as_i64().unwrap_or(0);

    let missing = double.click_button(&alice, 1001, id, "Cancel");
    assert!(
        matches!(&missing, Err(bot_api_double::ControlError::ButtonNotFound { available, .. }) if available == &["Delete"]),
        "{missing:?}"
    );
    let press = double
        .click_button(&alice, 1001, id, "Delete")
        .expect("the button exists");
    ok(
        &double,
        "answerCallbackQuery",
        json!({ "callback_query_id": press.query_id, "text": "Deleted", "show_alert": true }),
    )
    .await;
    let answer = double.callback_answer(&press.query_id).expect("answered");
    assert_eq!(answer.text.as_deref(), Some("Deleted"));
    assert!(answer.show_alert);

    let too_old =
        "Bad Request: query is too old and response timeout expired or query ID is invalid";
    refused(
        &double,
        "answerCallbackQuery",
        json!({ "callback_query_id": press.query_id }),
        400,
        too_old,
    )
    .await;
    refused(
        &double,
        "answerCallbackQuery",
        json!({ "callback_query_id": "12345" }),
        400,
        too_old,
    )
    .await;

    // A forged press (data no button carries) reaches the bot all the same.
    let forged = double
        .press_button(&alice, 1001, id, "del:1")
        .expect("the message exists");
    assert_ne!(forged.query_id, press.query_id);
    assert_eq!(double.callback_answers().len(), 1);
}

#[tokio::test]
async fn chat_actions_and_commands_are_validated_and_recorded() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    ok(
        &double,
        "sendChatAction",
        json!({ "chat_id": 1001, "action": "upload_photo" }),
    )
    .await;
    refused(
        &double,
        "sendChatAction",
        json!({ "chat_id": 1001, "action": "dancing" }),
        400,
        "Bad Request: wrong parameter action in request",
    )
    .await;
    assert_eq!(double.chat_actions(1001), ["upload_photo"]);

    let commands = |list: Value| json!({ "commands": list });
    ok(
        &double,
        "setMyCommands",
        commands(json!([{ "command": "/stat", "description": " Show a server " }, { "command": "add_2", "description": "Add" }])),
    )
    .await;
    let registered = double.commands();
    assert_eq!(registered[0].command, "stat", "the slash is stripped");
    assert_eq!(
        registered[0].description, "Show a server",
        "descriptions are trimmed"
    );
    let listed = ok(&double, "getMyCommands", json!({})).await;
    assert_eq!(
        listed[1],
        json!({ "command": "add_2", "description": "Add" })
    );

    let cases: [(Value, String); 7] = [
        (
            json!([{ "command": "", "description": "x" }]),
            "Bad Request: command must be non-empty".to_owned(),
        ),
        (
            json!([{ "command": "a".repeat(33), "description": "x" }]),
            "Bad Request: command length must not exceed 32".to_owned(),
        ),
        (
            json!([{ "command": "a", "description": " " }]),
            "Bad Request: command description must be non-empty".to_owned(),
        ),
        (
            json!([{ "command": "a", "description": "d".repeat(257) }]),
            "Bad Request: command description length must not exceed 256".to_owned(),
        ),
        (
            json!([{ "command": "Stat", "description": "x" }]),
            "Bad Request: BOT_COMMAND_INVALID".to_owned(),
        ),
        (
            json!([{ "command": "st-at", "description": "x" }]),
            "Bad Request: BOT_COMMAND_INVALID".to_owned(),
        ),
        (
            json!([{ "description": "x" }]),
            "Bad Request: can't parse BotCommand: Can't find field \"command\"".to_owned(),
        ),
    ];
    for (list, description) in cases {
        refused(&double, "setMyCommands", commands(list), 400, &description).await;
    }
    ok(
        &double,
        "setMyCommands",
        commands(json!([{ "command": "a".repeat(32), "description": "d".repeat(256) }])),
    )
    .await;
    assert_eq!(double.commands()[0].command.len(), 32);
    ok(
        &double,
        "setMyCommands",
        json!({ "commands": [{ "command": "users", "description": "Users" }], "scope": { "type": "all_private_chats" } }),
    )
    .await;
    assert_eq!(
        double.commands_for(&json!({ "type": "all_private_chats" }), "")[0].command,
        "users"
    );
    ok(&double, "deleteMyCommands", json!({})).await;
    assert!(double.commands().is_empty());
}

#[tokio::test]
async fn replies_must_name_a_message_of_the_chat() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    refused(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "x", "reply_to_message_id": 77 }),
        400,
        "Bad Request: message to be replied not found",
    )
    .await;
    ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "x", "reply_parameters": { "message_id": 1 } }),
    )
    .await;
    let (status, _) = call(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "x", "reply_parameters": { "message_id": 77, "allow_sending_without_reply": true } }),
    )
    .await;
    assert_eq!(status, 200);
}
